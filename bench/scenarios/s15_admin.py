"""The instructor's admin: the home and the class roster against the grading queue, in one run.

An instructor of the largest class (7,000+ students in the large data set) and one of
the smallest open three pages through django.test.Client with the tenant's host:
the admin home (the class at a glance), the roster (the user list with points, rank,
solves, pending write-ups and last activity) and the grading queue (pending write-ups,
oldest first: the instructor's main screen, the baseline). Each page is requested twice
to warm the caches and the session, then:

- its queries are counted on the third request, at both sizes: at most 10, and the same
  number in the small class as in the large one (BEGIN and COMMIT of the request's
  transaction are not counted, as in scenario 7);
- its time is measured `runs` times in the large class, interleaved with the queue's,
  and judged as a cost against the queue: the home and the roster in at most 3x its time.
"""

from django.conf import settings
from django.test import Client

from bench.framework import Context, Figure, Series, timed_ms
from bench.scenarios.s07_query_counts import count_queries
from tenants.models import User

SCENARIO = "15 Instructor's admin"
LIMIT = 10
QUEUE = "/admin/scoring/submission/?status__exact=PENDING"
PAGES = {"admin home": "/admin/", "roster": "/admin/tenants/user/"}
REQUESTS_PER_RUN = 5


def instructor_of(tenant: dict) -> User:
    staff = User.objects.for_tenant(tenant["id"]).filter(role=User.Role.INSTRUCTOR, is_active=True).order_by("pk")
    instructor = staff.first()
    if instructor is None:
        raise AssertionError(f"{tenant['slug']} has no instructor")
    return instructor


def instructor_client(tenant: dict) -> Client:
    client = Client(HTTP_HOST=tenant["domain"])
    client.force_login(instructor_of(tenant))
    return client


def fetch(client: Client, path: str):
    response = client.get(path)
    if response.status_code != 200:
        raise AssertionError(f"{path}: HTTP {response.status_code} for an instructor")
    return response


def queries(tenant: dict, paths: list[str]) -> dict[str, int]:
    """{path: queries} on the third request as the class's instructor (scenario 7's count)."""
    found = count_queries(tenant, instructor_of(tenant), paths)
    for path, (status, _) in found.items():
        if status != 200:
            raise AssertionError(f"{path}: HTTP {status} for an instructor of {tenant['slug']}")
    return {path: count for path, (_, count) in found.items()}


def run(ctx: Context) -> list[Figure]:
    large, small = ctx.tenants[0], ctx.tenants[-1]
    hosts = settings.ALLOWED_HOSTS
    settings.ALLOWED_HOSTS = [*hosts, large["domain"], small["domain"]]
    try:
        return measure(ctx, large, small)
    finally:
        settings.ALLOWED_HOSTS = hosts


def measure(ctx: Context, large: dict, small: dict) -> list[Figure]:
    pages = {**PAGES, "grading queue": QUEUE}
    large_counts, small_counts = queries(large, list(pages.values())), queries(small, list(pages.values()))
    figures, differ = [], []
    for name, path in pages.items():
        big, little = large_counts[path], small_counts[path]
        if big != little:
            differ.append(f"{name}: {little} small, {big} large")
        figures.append(
            Figure(
                SCENARIO,
                f"queries {name} ({path})",
                ours=Series(f"{large['slug']} (large)", [big], "queries"),
                compare="absolute",
                goal_op="<=",
                goal=LIMIT,
                note=f"an instructor, third request; {small['slug']} (small): {little}"
                + ("" if big == little else " - DIFFERS from the large class"),
                extra={"large": big, "small": little, "same": big == little},
            )
        )
    figures.append(
        Figure(
            SCENARIO,
            "admin pages whose count differs between sizes",
            ours=Series("pages", [len(differ)], "pages"),
            compare="absolute",
            goal_op="==",
            goal=0,
            note="; ".join(differ) or f"each page runs as many queries in {small['slug']} as in {large['slug']}",
        )
    )
    big_client = instructor_client(large)
    times: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(ctx.runs):
        for name, path in {"grading queue": QUEUE, **PAGES}.items():
            runs = [timed_ms(lambda path=path: fetch(big_client, path)) for _ in range(REQUESTS_PER_RUN)]
            times[name].append(sorted(runs)[len(runs) // 2])
        ctx.log("   " + ", ".join(f"{name} {values[-1]:.1f} ms" for name, values in times.items()))
    queue = Series("grading queue (pending, oldest first)", times["grading queue"])
    for name, path in PAGES.items():
        figures.append(
            Figure(
                SCENARIO,
                f"{name} render time vs the grading queue's",
                ours=Series(path, times[name]),
                baseline=queue,
                compare="cost",
                goal_op="<=",
                goal=3,
                note=f"{large['slug']} ({large['students']} students), an instructor, median of "
                f"{REQUESTS_PER_RUN} requests per run, in-process (django.test.Client)",
            )
        )
    return figures
