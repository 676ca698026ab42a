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
a few pending write-ups; the rows of the bare INSERTs are deleted afterwards. When the
sampled students have solved (nearly) every flag (the smoke data after a few runs), a
new challenge is opened for the run and unpublished after the scenario.
"""

import random

import psycopg
from django.db import connection, transaction

from bench.framework import Context, Figure, Series, timed_ms
from bench.http_load import (
    BenchError,
    LoadResult,
    Session,
    flag_challenges,
    flag_post,
    gunicorn,
    open_challenge,
    sample_students,
    send,
    sessions_for,
    unsolved_pairs,
    wrk,
    wrong_flag,
)
from challenges.models import Project
from scoring import leaderboard, services
from scoring.models import Submission
from tenants.models import User
from vulhub.ops import backups
from vulhub.ops.db_roles import use_role

SCENARIO = "4 Submit and grade"
CONNECTIONS = 8
RIGHT_EVERY = 5

# Pending write-ups an approval is still allowed for, one per (student, challenge).
PENDING_WRITEUPS = """
    SELECT id FROM (
        SELECT DISTINCT ON (s.user_id, s.project_id) s.id, s.submitted_at FROM submissions s
        WHERE s.tenant_id = %(tenant)s AND s.status = 'PENDING' AND s.kind = 'WRITEUP'
          AND NOT EXISTS (SELECT 1 FROM submissions a
                          WHERE a.tenant_id = s.tenant_id AND a.user_id = s.user_id
                            AND a.project_id = s.project_id AND a.status = 'APPROVED')
        ORDER BY s.user_id, s.project_id, s.submitted_at DESC
    ) AS open
    ORDER BY submitted_at DESC
    LIMIT %(limit)s
"""


def run(ctx: Context) -> list[Figure]:
    return [*submit_over_http(ctx), grade_in_process(ctx), rank_maintenance(ctx)]


def submit_over_http(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    seconds = 1 if ctx.smoke else 5
    right_per_run = 60 if ctx.smoke else 600  # the list must outlast a run: it is not sent twice
    students_per_run = 40 if ctx.smoke else 400
    challenges = {c.id: c for c in flag_challenges(tenant["id"])}
    known = {c.id for c in challenges.values() if c.right_flag}
    sessions: dict[int, Session] = {}
    listed_right: set[tuple[int, int]] = set()

    def requests() -> list:
        """A fresh list each run, without the pairs an earlier list answered (sent or not)."""
        students = [u for u in sample_students(tenant["id"], students_per_run) if u.pk not in sessions]
        sessions.update({s.user_id: s for s in sessions_for(ctx, students)})
        pairs = [p for p in unsolved_pairs(tenant["id"], list(sessions), list(challenges)) if p not in listed_right]
        random.shuffle(pairs)
        right = [p for p in pairs if p[1] in known][:right_per_run]
        taken = set(right)
        # a wrong flag goes to a pair no right flag of this list solves: on a solved pair it is refused
        wrong = [p for p in pairs if p not in taken]
        while len(right) < right_per_run // 2 or not wrong:
            # The class has (nearly) solved every flag it has (small data sets, many runs): a new
            # challenge opens one pair per student, up to half of them for right flags.
            extra = open_challenge(ctx, tenant["id"], flag=True)
            challenges[extra.id] = extra
            fresh = [(user, extra.id) for user in sessions]
            if len(fresh) < 2:
                raise BenchError(f"{tenant['slug']}: {len(fresh)} student(s) to submit as; the scenario needs two")
            random.shuffle(fresh)
            cut = max(0, min(right_per_run - len(right), len(fresh) // 2))
            right += fresh[:cut]
            wrong += fresh[cut:]
        listed_right.update(right)
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


def pending_writeups(ctx: Context, tenant_id: int, count: int) -> list[int]:
    """Ids of `count` pending write-ups still gradable as approved; submitted now (as students do) if short."""

    def find() -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(PENDING_WRITEUPS, {"tenant": tenant_id, "limit": count})
            return [row[0] for row in cursor.fetchall()]

    ids = find()
    if len(ids) < count:
        writeups = list(
            Project.objects.for_tenant(tenant_id).published().filter(flag_hash="").values_list("pk", flat=True)
        )
        students = sample_students(tenant_id, 50)
        open_pairs = unsolved_pairs(tenant_id, [u.pk for u in students], writeups)
        if len(open_pairs) < count - len(ids):
            writeups.append(open_challenge(ctx, tenant_id, flag=False).id)
            open_pairs = unsolved_pairs(tenant_id, [u.pk for u in students], writeups[-1:])
        by_id = {u.pk: u for u in students}
        projects = Project.objects.in_bulk(writeups)
        for user, project in open_pairs[: count - len(ids)]:
            services.submission_create(
                user=by_id[user], project=projects[project], writeup="Benchmark write-up: the steps I took."
            )
        ctx.log(f"   submitted {min(len(open_pairs), count - len(ids))} write-ups to grade")
        ids = find()
    if len(ids) < count:
        raise BenchError(f"needs {count} pending write-ups, found {len(ids)}")
    return ids


def grade_in_process(ctx: Context) -> Figure:
    tenant = ctx.largest
    grader = User.objects.filter(tenant_id=tenant["id"], is_active=True).staff().order_by("pk").first()
    if grader is None:
        raise BenchError(f"{tenant['slug']}: no staff member to grade")
    ids = pending_writeups(ctx, tenant["id"], ctx.runs + 1)
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


RANK_TRIGGERS = ("leaderboards_rank_insert", "leaderboards_rank_update", "leaderboards_rank_delete")


def rank_maintenance(ctx: Context) -> Figure:
    """The same grading with the stored ranks kept (scoring 0012) and with their triggers off, alternately.

    The triggers are switched by the schema's owner between gradings (never inside one);
    afterwards a rebuild puts right the ranks the gradings without them left stale.
    """
    tenant = ctx.largest
    grader = User.objects.filter(tenant_id=tenant["id"], is_active=True).staff().order_by("pk").first()
    ids = pending_writeups(ctx, tenant["id"], 2 * ctx.runs + 1)
    pending = list(Submission.objects.filter(pk__in=ids).order_by("-submitted_at"))
    with use_role("owner"):
        owner = psycopg.connect(backups.Server.of().conninfo(), autocommit=True)

    def triggers(on: bool) -> None:
        for name in RANK_TRIGGERS:
            owner.execute(f"ALTER TABLE leaderboards {'ENABLE' if on else 'DISABLE'} TRIGGER {name}")

    def grade(submission: Submission) -> None:
        services.submission_grade(
            submission=submission, status=Submission.Status.APPROVED, score=80, grader=grader, feedback="benchmark"
        )

    kept, unkept = [], []
    try:
        grade(pending[0])  # warm-up
        for with_ranks, without in zip(pending[1::2], pending[2::2], strict=False):
            kept.append(timed_ms(lambda s=with_ranks: grade(s)))
            triggers(False)
            try:
                unkept.append(timed_ms(lambda s=without: grade(s)))
            finally:
                triggers(True)
    finally:
        triggers(True)
        owner.close()
        leaderboard.rebuild(tenant["id"])  # the ranks the gradings without triggers left behind
    return Figure(
        SCENARIO,
        "grading a write-up: stored ranks kept vs not",
        ours=Series("submission_grade, ranks kept", kept, "ms"),
        baseline=Series("rank triggers off", unkept, "ms"),
        compare="cost",
        goal_op="<=",
        goal=1.2,
        note=f"{tenant['slug']}: the same grading, alternately with the rank triggers on and off (issue 24)",
    )
