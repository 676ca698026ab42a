"""What recording costs: a submission save with its audit row and event, against the bare save.

    python bench/audit_cost.py [--rows 1000000] [--saves 500] [--runs 5]

Both sides run the same INSERT into a submissions table of --rows rows, each in its own
transaction as a service would. "recorded" is what the app does (the row, its audit row
through the hash-chain trigger, its SubmissionCreated event); "bare" is the same save
with the audit receivers disconnected. Prints the median, min and max of --runs runs
and the ratio recorded/bare (goal: at most 1.5). Uses the database of DATABASE_URL (or
the embedded one) and leaves a tenant "bench-audit" with the generated rows behind.
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

from django.db import connection, transaction  # noqa: E402
from django.db.models import signals as model_signals  # noqa: E402

from audit import receivers  # noqa: E402
from audit.recording import in_bulk  # noqa: E402
from challenges.models import Project  # noqa: E402
from scoring import signals as scoring_signals  # noqa: E402
from scoring.models import Submission  # noqa: E402
from tenants.models import Tenant, User  # noqa: E402

STUDENTS, CHALLENGES = 2000, 50


def ensure_data(rows: int) -> tuple[Tenant, list[int], list[Project]]:
    tenant, _ = Tenant.objects.get_or_create(slug="bench-audit", defaults={"name": "Bench", "domain": "bench.invalid"})
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM submissions")
        have = cursor.fetchone()[0]
        if not User.objects.for_tenant(tenant).exists():
            cursor.execute(
                """INSERT INTO users (tenant_id, email, first_name, last_name, role, is_active, is_superuser,
                       date_joined, password)
                   SELECT %s, 'bench' || g || '@bench.invalid', 'B', 'S', 'STUDENT', true, false, now(), '!'
                   FROM generate_series(1, %s) g""",
                [tenant.pk, STUDENTS],
            )
            cursor.execute(
                """INSERT INTO projects (tenant_id, name, slug, description, category, difficulty, points,
                       flag_hash, is_published, created_at, updated_at)
                   SELECT %s, 'Bench ' || g, 'bench-' || g, '', 'Web Security', 'BEGINNER', 100, '', true,
                       now(), now()
                   FROM generate_series(1, %s) g""",
                [tenant.pk, CHALLENGES],
            )
        if have < rows:
            print(f"filling submissions to {rows:,} rows (set-based INSERT)...", flush=True)
            cursor.execute(
                """INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, score, points_awarded,
                       answer, link, feedback, submitted_at)
                   SELECT %s, u.ids[1 + g %% %s], p.ids[1 + (g / 7) %% %s], 'WRITEUP',
                       CASE WHEN g %% 3 = 0 THEN 'PENDING' ELSE 'REJECTED' END,
                       CASE WHEN g %% 3 = 0 THEN NULL ELSE 0 END, 0, 'write-up ' || g, '', '',
                       now() - (g || ' seconds')::interval
                   FROM generate_series(1, %s) g,
                        (SELECT array_agg(id) ids FROM users WHERE tenant_id = %s) u,
                        (SELECT array_agg(id) ids FROM projects WHERE tenant_id = %s) p""",
                [tenant.pk, STUDENTS, CHALLENGES, rows - have, tenant.pk, tenant.pk],
            )
            cursor.execute("ANALYZE submissions")
    users = list(User.objects.for_tenant(tenant).values_list("pk", flat=True)[:100])
    projects = list(Project.objects.for_tenant(tenant)[:10])
    return tenant, users, projects


def save_many(tenant, users, projects, saves: int, recorded: bool) -> float:
    start = time.perf_counter()
    for i in range(saves):
        project = projects[i % len(projects)]
        # a service: one transaction, its records written together at its end
        with in_bulk() if recorded else transaction.atomic():
            submission = Submission(tenant=tenant, user_id=users[i % len(users)], project=project, answer="x" * 200)
            submission.save()
            if recorded:
                scoring_signals.submission_created.send(sender=Submission, submission=submission, actor=None)
    return time.perf_counter() - start


def audit_receivers(connected: bool) -> None:
    action = "connect" if connected else "disconnect"
    getattr(model_signals.post_save, action)(
        receivers.record_save, sender=Submission, dispatch_uid="audit.scoring.Submission.save"
    )
    getattr(model_signals.post_init, action)(
        receivers.remember_loaded, sender=Submission, dispatch_uid="audit.scoring.Submission.init"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--saves", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tenant, users, projects = ensure_data(args.rows)
    save_many(tenant, users, projects, 50, recorded=True)  # warm up
    times = {"bare": [], "recorded": []}
    for _ in range(args.runs):
        audit_receivers(False)
        times["bare"].append(save_many(tenant, users, projects, args.saves, recorded=False))
        audit_receivers(True)
        times["recorded"].append(save_many(tenant, users, projects, args.saves, recorded=True))
    print(f"{'':10} {'median ms/save':>15} {'min':>8} {'max':>8}")
    for name, values in times.items():
        per = [v / args.saves * 1000 for v in values]
        print(f"{name:10} {statistics.median(per):15.3f} {min(per):8.3f} {max(per):8.3f}")
    ratio = statistics.median(times["recorded"]) / statistics.median(times["bare"])
    print(f"ratio recorded/bare: {ratio:.2f}x (goal <= 1.5x) on {Submission.objects.count():,} submissions")


if __name__ == "__main__":
    main()
