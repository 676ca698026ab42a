"""The leaderboard page of the largest class, served by gunicorn and read by wrk at 8 connections.

Signed in as students listed on the first page (each its own session). Measured:
- cached (Redis warm) against a template-only page of the same size: the same
  template and rows, built in memory by a bench view (no query of its own, no cache);
- uncached: gunicorn restarted with Django's dummy cache backend, so every request
  computes the page from the database; against the same template-only page;
- cached against a CTFd-style standings view: the points of approved submissions
  summed per student on every request, sorted, the same page rendered.
"""

import json
import tempfile
from pathlib import Path

from bench.framework import Context, Figure, Series
from bench.http_load import BenchError, LoadResult, Request, get, gunicorn, leaderboard_viewers, wrk
from scoring import selectors

SCENARIO = "1 Leaderboard page"
CONNECTIONS = 8
VIEWERS = 16


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    seconds = 1 if ctx.smoke else 5
    students, sessions = leaderboard_viewers(ctx, VIEWERS)
    fixture = write_fixture(ctx, tenant["id"], students[0])
    host = tenant["domain"]
    pages = {
        "ours": [Request("GET", host, "/leaderboard/", s.cookie) for s in sessions],
        "template": [Request("GET", host, "/_bench/leaderboard-template/")],
        "ctfd": [Request("GET", host, "/_bench/ctfd-standings/", s.cookie) for s in sessions],
    }
    cached = measure(ctx, pages, seconds, BENCH_LEADERBOARD_FIXTURE=fixture)
    reads = {k: pages[k] for k in ("ours", "template")}
    uncached = measure(ctx, reads, seconds, BENCH_CACHE="dummy", BENCH_LEADERBOARD_FIXTURE=fixture)

    def series(label: str, results: list[LoadResult]) -> Series:
        return Series(label, [r.rate for r in results], "req/s")

    def extra(**named: list[LoadResult]) -> dict:
        return {
            name: {
                "p95_ms": [round(r.p95_ms, 1) for r in results],
                "bytes_per_response": round(sum(r.bytes for r in results) / max(1, sum(r.requests for r in results))),
                "statuses": [r.statuses for r in results],
                "socket_errors": [r.errors for r in results],
            }
            for name, results in named.items()
        }

    size = f"{tenant['slug']}, page one ({len(students)} signed-in students), {CONNECTIONS} connections"
    return [
        Figure(
            SCENARIO,
            "leaderboard page, cached, vs template-only page",
            ours=series("/leaderboard/ (Redis warm)", cached["ours"]),
            baseline=series("template only", cached["template"]),
            goal=0.5,
            note=f"{size}; baseline: the same template and rows from memory, no query but the tenant lookup",
            extra=extra(ours=cached["ours"], template=cached["template"]),
        ),
        Figure(
            SCENARIO,
            "leaderboard page, uncached, vs template-only page",
            ours=series("/leaderboard/ (dummy cache)", uncached["ours"]),
            baseline=series("template only", uncached["template"]),
            goal=0.1,
            note=f"{size}; gunicorn with Django's DummyCache, so every request reads the database",
            extra=extra(ours=uncached["ours"], template=uncached["template"]),
        ),
        Figure(
            SCENARIO,
            "leaderboard page, cached, vs CTFd-style standings",
            ours=series("/leaderboard/ (Redis warm)", cached["ours"]),
            baseline=series("CTFd-style standings", cached["ctfd"]),
            goal=100,
            note=f"{size}; baseline: sum of approved points per student from submissions on every request",
            extra=extra(ours=cached["ours"], ctfd=cached["ctfd"]),
        ),
    ]


def write_fixture(ctx: Context, tenant_id: int, viewer) -> str:
    """Page one of the tenant's standings as seen by `viewer`, for the template-only view."""
    page = selectors.leaderboard_page(tenant_id, 1)
    fixture = {
        "viewer": {"id": viewer.pk, "first_name": viewer.first_name, "last_name": viewer.last_name},
        "number": page.number,
        "total": page.total,
        "rows": [
            {
                "rank": row.rank,
                "user_id": row.user_id,
                "name": row.name,
                "points": row.points,
                "solves": row.solves,
                "last_scored_at": row.last_scored_at.isoformat(),
            }
            for row in page.rows
        ],
    }
    path = Path(tempfile.mkstemp(prefix="vulhub-bench-leaderboard-", suffix=".json")[1])
    path.write_text(json.dumps(fixture))
    ctx.scratch.setdefault("cleanups", []).append(lambda: path.unlink(missing_ok=True))
    return str(path)


def measure(ctx: Context, pages: dict[str, list[Request]], seconds: float, **env: str) -> dict[str, list[LoadResult]]:
    """Each page's wrk runs on one server, interleaved run by run; after a check and a warm-up."""
    results: dict[str, list[LoadResult]] = {name: [] for name in pages}
    with gunicorn(ctx, **env) as server:
        for name, requests in pages.items():
            check(server, requests[0], name)
            wrk(server, requests, seconds=1, connections=CONNECTIONS)  # warm: workers, pool, cache
        for _ in range(ctx.runs):
            for name, requests in pages.items():
                result = wrk(server, requests, seconds=seconds, connections=CONNECTIONS)
                if result.bad:
                    raise BenchError(f"{name}: {result.bad} failed requests of {result.requests}: {result.statuses}")
                results[name].append(result)
                ctx.log(f"   {name:8} {result.rate:8.1f} req/s, p95 {result.p95_ms:6.1f} ms")
    return results


def check(server, request: Request, name: str) -> None:
    """The page answers 200 with the leaderboard of a signed-in student, not a login redirect."""
    response = get(server, request.host, request.path, request.cookie)
    if response.status != 200 or b"Signed in as" not in response.body or b"<table" not in response.body:
        answer = f"{response.status} {response.location}"
        raise BenchError(f"{name}: {request.path} answered {answer}: not the page\n{server.log_tail()}")
