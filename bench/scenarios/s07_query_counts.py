"""Queries per page for a student and the tenant admin, in a small and in a large tenant.

Each page is requested through django.test.Client with the tenant's host, signed in
with force_login, twice to warm the caches (leaderboard and catalogue pages, the
session), then counted on the third request: the steady state a returning student
sees. The small tenant is the smallest generated one, the large one the largest.
A page is fine when it runs at most 8 queries and the same number at both sizes.
Each request is one transaction (row-level security, tenants/rls.py); its BEGIN and
COMMIT are not counted as the page's queries.
"""

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.framework import Context, Figure, Series
from challenges.models import Project
from scoring.models import Submission
from tenants.models import User

SCENARIO = "7 Query counts"
LIMIT = 8
STUDENT_PAGES = ["/", "/challenges/", "/challenges/{slug}/", "/submissions/", "/leaderboard/", "/badges/", "/profile/"]
# the bare changelist redirects to the pending queue; this is the page the admin lands on
ADMIN_PAGES = ["/admin/scoring/submission/?status__exact=PENDING"]


def busiest_student(tenant_id: int) -> User:
    """The student with most submissions: full pages, a leaderboard row, badges."""
    counts = Submission.objects.for_tenant(tenant_id).values("user_id")
    user_id = counts.annotate(n=Count("id")).order_by("-n", "user_id")[0]["user_id"]
    return User.objects.get(pk=user_id, tenant_id=tenant_id)


def count_queries(tenant: dict, user: User, paths: list[str]) -> dict[str, tuple[int, int]]:
    """{path: (status, queries)} on the third request of each path."""
    client = Client(HTTP_HOST=tenant["domain"])
    client.force_login(user)
    found = {}
    for path in paths:
        client.get(path)
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        found[path] = (response.status_code, sum(1 for q in queries.captured_queries if not is_transaction_control(q)))
    return found


def is_transaction_control(query: dict) -> bool:
    """BEGIN and COMMIT of the request's transaction (it sets the tenant for row-level
    security), which Django's query log lists too: not queries of the page."""
    return query["sql"].split(" ", 1)[0].upper() in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def tenant_counts(tenant: dict) -> dict[str, tuple[int, int]]:
    student = busiest_student(tenant["id"])
    attempted = Submission.objects.for_tenant(tenant["id"]).filter(user=student).values("project_id")
    project = Project.objects.for_tenant(tenant["id"]).published().filter(pk__in=attempted).order_by("slug").first()
    pages = [p.format(slug=project.slug) for p in STUDENT_PAGES]
    found = count_queries(tenant, student, pages)
    admin = User.objects.for_tenant(tenant["id"]).filter(role=User.Role.ADMIN).order_by("pk").first()
    found.update(count_queries(tenant, admin, ADMIN_PAGES))
    # the same key for the challenge detail page at both sizes
    return {(k if k != pages[2] else STUDENT_PAGES[2]): v for k, v in found.items()}


def run(ctx: Context) -> list[Figure]:
    large, small = ctx.tenants[0], ctx.tenants[-1]
    hosts = settings.ALLOWED_HOSTS
    settings.ALLOWED_HOSTS = [*hosts, large["domain"], small["domain"]]
    try:
        big, little = tenant_counts(large), tenant_counts(small)
    finally:
        settings.ALLOWED_HOSTS = hosts
    figures, differ = [], []
    for path, (status, queries) in big.items():
        small_status, small_queries = little[path]
        if (status, small_status) != (200, 200):
            raise AssertionError(f"{path}: HTTP {status} (large), {small_status} (small)")
        same = queries == small_queries
        if not same:
            differ.append(f"{path}: {small_queries} small, {queries} large")
        figures.append(
            Figure(
                SCENARIO,
                f"queries {path}",
                ours=Series(f"{large['slug']} (large)", [queries], "queries"),
                compare="absolute",
                goal_op="<=",
                goal=LIMIT,
                note=f"steady state (third request); {small['slug']} (small): {small_queries}"
                + ("" if same else " - DIFFERS from the large tenant"),
                extra={"large": queries, "small": small_queries, "same": same},
            )
        )
    figures.append(
        Figure(
            SCENARIO,
            "pages whose count differs between sizes",
            ours=Series("pages", [len(differ)], "pages"),
            compare="absolute",
            goal_op="==",
            goal=0,
            note="; ".join(differ) or f"every page runs as many queries in {small['slug']} as in {large['slug']}",
            extra={"differ": differ, "small": small["slug"], "large": large["slug"]},
        )
    )
    return figures
