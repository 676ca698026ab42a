"""What scoring costs: one grading in a big class, and a full leaderboard rebuild.

    python bench/scoring_cost.py [--students 20000] [--submissions 1000000] [--runs 5]

1. A grading through scoring.services.submission_grade (the submission, its audit
   row and event, the student's leaderboard row, the tenant's ranks, the badge rules)
   in a tenant of --students students. Goal: well under 50 ms.
2. leaderboard.rebuild() of that tenant over --submissions submissions, against the
   bare SELECT that computes the same ranks (the lower bound). Goal: within 1.5x.
   Measured twice: on a current table (it writes nothing) and into an empty one.

Uses the database of DATABASE_URL (or the embedded one) and leaves a tenant
"bench-scoring" behind; a second run reuses it.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from scoring import leaderboard, services  # noqa: E402
from scoring.models import Badge, Submission  # noqa: E402
from tenants.models import Tenant, User  # noqa: E402

CHALLENGES = 200


def ensure_data(students: int, submissions: int) -> Tenant:
    tenant, created = Tenant.objects.get_or_create(
        slug="bench-scoring", defaults={"name": "Bench scoring", "domain": "bench-scoring.invalid"}
    )
    if not created and Submission.objects.for_tenant(tenant).count() >= submissions:
        return tenant
    print(f"generating {students:,} students and {submissions:,} submissions...", flush=True)
    p = {"t": tenant.pk, "students": students, "challenges": CHALLENGES, "n": submissions}
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO users (tenant_id, email, first_name, last_name, role, is_active, is_superuser,
                   date_joined, password)
               SELECT %(t)s, 'student' || g || '@bench.invalid', 'Student', g::text, 'STUDENT', true, false,
                   now(), '!'
               FROM generate_series(1, %(students)s) g""",
            p,
        )
        cursor.execute(
            """INSERT INTO users (tenant_id, email, first_name, last_name, role, is_active, is_superuser,
                   date_joined, password)
               VALUES (%(t)s, 'grader@bench.invalid', 'Grace', 'Grader', 'INSTRUCTOR', true, false, now(), '!')""",
            p,
        )
        cursor.execute(
            """INSERT INTO projects (tenant_id, name, slug, description, category, difficulty, points, flag_hash,
                   is_published, created_at, updated_at)
               SELECT %(t)s, 'Lab ' || g, 'lab-' || g, '', (ARRAY['Web Security','Cryptography','Forensics',
                   'Network Security'])[1 + g %% 4], (ARRAY['BEGINNER','INTERMEDIATE','ADVANCED','EXPERT'])[1 + g %% 4],
                   50 * (1 + g %% 10), '', true, now(), now()
               FROM generate_series(1, %(challenges)s) g""",
            p,
        )
        # each (student, challenge) pair at most once, so at most one approval per pair
        cursor.execute(
            """WITH u AS (SELECT array_agg(id ORDER BY id) ids FROM users WHERE tenant_id = %(t)s AND role = 'STUDENT'),
                    pr AS (SELECT array_agg(id ORDER BY id) ids, array_agg(points ORDER BY id) pts
                           FROM projects WHERE tenant_id = %(t)s)
               INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, score, points_awarded, answer,
                   link, feedback, submitted_at, graded_at)
               SELECT %(t)s, u.ids[1 + g %% %(students)s], pr.ids[1 + (g / %(students)s) %% %(challenges)s], 'WRITEUP',
                   s.status, s.score,
                   CASE WHEN s.status = 'APPROVED'
                        THEN round(pr.pts[1 + (g / %(students)s) %% %(challenges)s] * s.score / 100.0) ELSE 0 END,
                   'write-up', '', '', now() - (g || ' seconds')::interval,
                   CASE WHEN s.status = 'PENDING' THEN NULL ELSE now() - (g || ' seconds')::interval END
               FROM generate_series(1, %(n)s) g, u, pr,
                    LATERAL (SELECT CASE WHEN g %% 5 < 2 THEN 'APPROVED' WHEN g %% 5 < 4 THEN 'REJECTED'
                                         ELSE 'PENDING' END AS status,
                                    CASE WHEN g %% 5 < 2 THEN 40 + g %% 61 WHEN g %% 5 < 4 THEN 0 END AS score) s""",
            p,
        )
        cursor.execute("ANALYZE submissions; ANALYZE users; ANALYZE projects")
    kinds = [
        ("FIRST_SOLVE", {}),
        ("POINTS_AT_LEAST", {"n": 5000}),
        ("SOLVES_AT_LEAST", {"n": 10}),
        ("CATEGORY_SOLVES", {"n": 5, "category": "Forensics"}),
        ("CATEGORY_COMPLETE", {"category": "Cryptography"}),
        ("DIFFICULTY_SOLVES", {"n": 3, "difficulty": "EXPERT"}),
    ]
    for kind, params in kinds:
        Badge.objects.get_or_create(
            tenant=tenant, slug=kind.lower(), defaults={"name": kind.title(), "rule_kind": kind, "rule_params": params}
        )
    leaderboard.rebuild(tenant.pk)
    return tenant


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def report(name: str, values: list[float]) -> float:
    median = statistics.median(values)
    print(f"{name:34} {median:10.1f} {min(values):10.1f} {max(values):10.1f}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--submissions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tenant = ensure_data(args.students, args.submissions)
    grader = User.objects.for_tenant(tenant).get(email="grader@bench.invalid")
    pending = list(Submission.objects.for_tenant(tenant).pending().order_by("id")[: 10 * args.runs + 5])
    for submission in pending[:5]:  # warm up
        services.submission_grade(submission=submission, status="APPROVED", score=80, grader=grader)
    gradings = [
        timed(lambda s=s: services.submission_grade(submission=s, status="APPROVED", score=90, grader=grader))
        for s in pending[5:]
    ]
    bare, rebuilds, from_empty = [], [], []
    bare_sql = f"SELECT count(*), sum(rank) FROM ({leaderboard.STANDINGS}) AS standings"  # noqa: S608
    for _ in range(args.runs):
        with connection.cursor() as cursor:
            bare.append(timed(lambda c=cursor: (c.execute(bare_sql, {"tenant": tenant.pk}), c.fetchall())))
        rebuilds.append(timed(lambda: leaderboard.rebuild(tenant.pk)))
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM leaderboards WHERE tenant_id = %s", [tenant.pk])
        from_empty.append(timed(lambda: leaderboard.rebuild(tenant.pk)))
    total = Submission.objects.for_tenant(tenant).count()
    students = User.objects.for_tenant(tenant).students().count()
    print(f"tenant: {students:,} students, {total:,} submissions; times in ms")
    print(f"{'':34} {'median':>10} {'min':>10} {'max':>10}")
    grading = report(f"grading (n={len(gradings)})", gradings)
    base = report("bare standings SELECT", bare)
    full = report("rebuild, table already current", rebuilds)
    empty = report("rebuild into an empty table", from_empty)
    print(
        f"grading: {grading:.1f} ms (goal well under 50 ms); rebuild/bare: {full / base:.2f}x current, "
        f"{empty / base:.2f}x from empty (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
