"""Submitting and grading: flags through HTTP, and the database work of one grading.

1. wrk POSTs flags to the largest class's flag challenges at 8 connections, one
   session per student over many students: one right flag in five (each a
   (student, challenge) pair still open, so it is accepted once), wrong flags on
   other open pairs. Audit, events, leaderboard and badges all run as in production;
   the server has FLAG_ATTEMPT_LIMIT raised so the wrong flags are never refused.
2. scoring.services.submission_grade approving a pending write-up of that class, in
   this process, each its own transaction (a different submission every run),
   against a bare single-row INSERT of a submission row, also committed alone.

Both change the dataset a little: each run adds its accepted submissions and grades
a few pending write-ups; the rows of the bare INSERTs are deleted afterwards.
"""

import random

from django.db import connection, transaction

from bench.framework import Context, Figure, Series, timed_ms
from bench.http_load import (
    BenchError,
    LoadResult,
    Session,
    flag_challenges,
    flag_post,
    gunicorn,
    sample_students,
    send,
    sessions_for,
    unsolved_pairs,
    wrk,
    wrong_flag,
)
from scoring import services
from scoring.models import Submission
from tenants.models import User

SCENARIO = "4 Submit and grade"
CONNECTIONS = 8
RIGHT_EVERY = 5

PENDING_WRITEUPS = """
    SELECT s.id FROM submissions s
    WHERE s.tenant_id = %(tenant)s AND s.status = 'PENDING' AND s.kind = 'WRITEUP'
      AND NOT EXISTS (SELECT 1 FROM submissions a
                      WHERE a.tenant_id = s.tenant_id AND a.user_id = s.user_id AND a.project_id = s.project_id
                        AND a.status = 'APPROVED')
    ORDER BY s.submitted_at DESC
    LIMIT %(limit)s
"""


def run(ctx: Context) -> list[Figure]:
    return [*submit_over_http(ctx), grade_in_process(ctx)]


def submit_over_http(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    seconds = 1 if ctx.smoke else 5
    right_per_run = 40 if ctx.smoke else 400
    students_per_run = 40 if ctx.smoke else 400
    challenges = {c.id: c for c in flag_challenges(tenant["id"])}
    known = {c.id for c in challenges.values() if c.right_flag}
    if not known:
        raise BenchError(f"{tenant['slug']}: no flag challenge has been solved: no right flag known")
    sessions: dict[int, Session] = {}

    def requests() -> list:
        """A fresh list each run: pairs solved by the previous runs are no longer open."""
        students = [u for u in sample_students(tenant["id"], students_per_run) if u.pk not in sessions]
        sessions.update({s.user_id: s for s in sessions_for(ctx, students)})
        pairs = unsolved_pairs(tenant["id"], list(sessions), list(challenges))
        random.shuffle(pairs)
        right = [p for p in pairs if p[1] in known][:right_per_run]
        taken = set(right)
        wrong = [p for p in pairs if p not in taken] or right
        listing = []
        for i, (user, challenge) in enumerate(right):
            slug = challenges[challenge].slug
            listing.append(flag_post(tenant["domain"], slug, sessions[user], challenges[challenge].right_flag))
            for j in range(RIGHT_EVERY - 1):
                user, challenge = wrong[(i * (RIGHT_EVERY - 1) + j) % len(wrong)]
                listing.append(flag_post(tenant["domain"], challenges[challenge].slug, sessions[user], wrong_flag()))
        return listing

    results: list[LoadResult] = []
    with gunicorn(ctx, FLAG_ATTEMPT_LIMIT="1000000") as server:
        warm = requests()
        answer = send(server, warm[1])
        if answer.status != 302:
            raise BenchError(f"a wrong flag answered {answer.status}, not a redirect:\n{server.log_tail()}")
        wrk(server, warm, seconds=1, connections=CONNECTIONS)  # warm: workers, pool
        for _ in range(ctx.runs):
            listing = requests()
            result = wrk(server, listing, seconds=seconds, connections=CONNECTIONS)
            accepted = result.statuses.get(302, 0)
            if accepted < result.requests * 0.9:
                raise BenchError(f"submissions refused or failed: {result.statuses} {result.errors}")
            results.append(result)
            ctx.log(
                f"   {result.rate:.1f} submissions/s, p95 {result.p95_ms:.1f} ms "
                f"({len(listing)} listed, statuses {result.statuses})"
            )
    note = (
        f"{tenant['slug']}, {CONNECTIONS} connections, one right flag in {RIGHT_EVERY}, "
        f"sessions of up to {len(sessions)} students; FLAG_ATTEMPT_LIMIT raised on the server; "
        "the accepted submissions stay in the dataset"
    )
    extra = {"statuses": [r.statuses for r in results], "errors": [r.errors for r in results]}
    return [
        Figure(
            SCENARIO,
            "flag submissions over HTTP",
            ours=Series("POST /challenges/<slug>/", [r.rate for r in results], "submissions/s"),
            compare="absolute",
            goal=None,
            note=note,
            extra=extra,
        ),
        Figure(
            SCENARIO,
            "flag submission p95 over HTTP",
            ours=Series("POST /challenges/<slug>/ p95", [r.p95_ms for r in results], "ms"),
            compare="absolute",
            goal=None,
            note=note,
        ),
    ]


def grade_in_process(ctx: Context) -> Figure:
    tenant = ctx.largest
    grader = User.objects.filter(tenant_id=tenant["id"], is_active=True).staff().order_by("pk").first()
    with connection.cursor() as cursor:
        cursor.execute(PENDING_WRITEUPS, {"tenant": tenant["id"], "limit": ctx.runs + 1})
        ids = [row[0] for row in cursor.fetchall()]
    if grader is None or len(ids) < ctx.runs + 1:
        raise BenchError(f"{tenant['slug']}: needs a staff member and {ctx.runs + 1} pending write-ups")
    pending = list(Submission.objects.filter(pk__in=ids).order_by("-submitted_at"))
    columns = [f.column for f in Submission._meta.concrete_fields if not f.primary_key]
    values = [getattr(pending[0], f.attname) for f in Submission._meta.concrete_fields if not f.primary_key]
    insert = (
        f"INSERT INTO submissions ({', '.join(columns)}) "  # noqa: S608  (column names from the model)
        f"VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id"
    )
    inserted: list[int] = []

    def remove() -> None:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM submissions WHERE id = ANY(%s)", [inserted])

    ctx.scratch.setdefault("cleanups", []).append(remove)

    def grade(submission: Submission) -> None:
        services.submission_grade(
            submission=submission, status=Submission.Status.APPROVED, score=80, grader=grader, feedback="benchmark"
        )

    def bare_insert() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(insert, values)
            inserted.append(cursor.fetchone()[0])

    grade(pending[0])  # warm-up
    bare_insert()
    grading, inserting = [], []
    for submission in pending[1:]:
        grading.append(timed_ms(lambda s=submission: grade(s)))
        inserting.append(timed_ms(bare_insert))
    return Figure(
        SCENARIO,
        "grading a write-up: database work",
        ours=Series("submission_grade (approve)", grading, "ms"),
        baseline=Series("bare INSERT of a submission", inserting, "ms"),
        compare="cost",
        goal_op="<=",
        goal=4,
        note=(
            f"{tenant['slug']}, in process, each its own transaction with commit: the submission, its audit row "
            "and event, the student's leaderboard row and the class's ranks, the badge rules; "
            f"{len(grading) + 1} pending write-ups approved (they stay graded)"
        ),
    )
