"""How the instructor admin opens on a big class: time and query count per page.

    DATABASE_URL=... REDIS_URL=... python bench/admin_pages.py [--tenant bench-scoring]

Run `bench/scoring_cost.py` first: it generates the tenant (20,000 students, 1,000,000
submissions) and its instructor grader@bench.invalid. Each page is loaded once to warm
up, then timed once, through Django's test client in this process.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from tenants.models import Tenant, User  # noqa: E402

PAGES = [
    "/admin/",
    "/admin/scoring/submission/?status__exact=PENDING",
    "/admin/scoring/submission/?status__exact=APPROVED&p=3",
    "/admin/scoring/submission/?q=student17",
    "/admin/scoring/leaderboard/",
    "/admin/audit/auditlog/",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenant", default="bench-scoring")
    args = parser.parse_args()
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    tenant = Tenant.objects.get(slug=args.tenant)
    client = Client(HTTP_HOST=tenant.domain)
    client.force_login(User.objects.for_tenant(tenant).staff().order_by("pk").first())
    print(f"{'page':60} {'status':>6} {'ms':>8} {'queries':>8}")
    for path in PAGES:
        client.get(path)
        start = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        elapsed = (time.perf_counter() - start) * 1000
        print(f"{path:60} {response.status_code:>6} {elapsed:8.0f} {len(queries):>8}")


if __name__ == "__main__":
    main()
