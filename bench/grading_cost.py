"""The cost of one grading in process: median time and queries of `submission_grade` approvals.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/vulhub_prof REDIS_URL=redis://127.0.0.1:6379/13 \
        .venv/bin/python bench/grading_cost.py

It approves the pending write-ups the benchmark's scenario 4 would pick (up to --limit
per tenant) in the database of DATABASE_URL, each its own transaction, and prints how
many it graded, the median milliseconds (the first two left out: warm-up) and the
median number of queries. The graded write-ups stay graded: use a scratch database
(`manage.py seed --scale small` into a new one).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=60, metavar="N", help="write-ups per tenant (default 60)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.scenarios.s04_submit import PENDING_WRITEUPS
    from scoring import services
    from scoring.models import Submission
    from tenants.models import User

    times, counts = [], []
    for tenant_id in Submission.objects.values_list("tenant_id", flat=True).distinct():
        grader = User.objects.filter(tenant_id=tenant_id, is_active=True).staff().order_by("pk").first()
        if grader is None:
            continue
        with connection.cursor() as cursor:
            cursor.execute(PENDING_WRITEUPS, {"tenant": tenant_id, "limit": args.limit})
            ids = [row[0] for row in cursor.fetchall()]
        for submission in Submission.objects.filter(pk__in=ids):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                services.submission_grade(
                    submission=submission, status=Submission.Status.APPROVED, score=80, grader=grader, feedback="bench"
                )
                times.append((time.perf_counter() - started) * 1000)
            counts.append(len(queries))
    if len(times) < 3:
        raise SystemExit("Fewer than 3 pending write-ups to grade: seed a new database first.")
    print(  # noqa: T201
        f"graded {len(times)}: median {statistics.median(times[2:]):.1f} ms, {statistics.median(counts):.0f} queries"
    )


if __name__ == "__main__":
    main()
