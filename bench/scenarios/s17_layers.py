"""What each layer of a request costs: from a bare WSGI callable up to the template-only leaderboard page.

One gunicorn (VulHub's production configuration, 2 sync workers), with bench/layers.py in
front of VulHub's handler so one server serves every row; wrk at 8 connections reads each
row in turn, run after run. The rows add one thing each to the row above:
- a bare WSGI callable (no Django), then a bare Django view (no middleware, no template);
- settings.MIDDLEWARE one entry at a time, in order, in front of the same view (no cookie);
  before TenantMiddleware, its first query taken apart: the view runs SELECT 1 on a
  pooled connection, then the same in a transaction; TenantMiddleware's row then has
  the tenant lookup (vulhub_enter_host() and its proof) in place of SELECT 1;
- a session cookie (a stored session, nobody signed in: the session is read);
- a signed-in student's cookie (the user is loaded, by TenantMiddleware's check);
- the CSP nonce asked for (django-csp makes it and puts it in the header);
- the template: the template-only leaderboard page of scenario 1, signed in.
Last, the template-only page as scenario 1 reads it (no cookie), against the bare Django
view: the issue's goal, >= 0.5x. Every ratio is against the bare Django view of the run.
Beside the rates, the workers' CPU time per request (psutil, as scenario 16): what a layer
adds to the row above (extra `cpu_us_added`, from the medians) moves less than the rates
on a machine where wrk, PostgreSQL and Redis share the CPUs. It leaves out the time the
database and Redis spend answering, which the rates include.
"""

import http.client
import json
import shlex
import statistics
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from django.conf import settings
from django.test.utils import override_settings

from bench import http_load
from bench.framework import Context, Figure, Series
from bench.http_load import BenchError, LoadResult, Request, Server, gunicorn, leaderboard_viewers, wrk
from bench.scenarios.s01_leaderboard import write_fixture
from bench.scenarios.s16_metrics import worker_cpu_seconds

SCENARIO = "17 Layers of a request"
CONNECTIONS = 8
VIEWERS = 16
LAYERS_CONFIG = Path(__file__).resolve().parent.parent / "layers.py"
TENANT_MIDDLEWARE = "tenants.middleware.TenantMiddleware"
GOAL = 0.5  # issue 30: the template-only page >= 0.5x the bare Django view


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    requests: list[Request]
    expect: str  # what check() looks for in the answer (see there)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    seconds = 1 if ctx.smoke else 4
    students, sessions = leaderboard_viewers(ctx, VIEWERS)
    signed_in = [s.cookie for s in sessions]
    anonymous = anonymous_session(ctx)
    fixture = write_fixture(ctx, tenant["id"], students[0])
    config = f"--config {shlex.quote(str(LAYERS_CONFIG))}"
    with gunicorn(ctx, GUNICORN_CMD_ARGS=config, BENCH_LEADERBOARD_FIXTURE=fixture) as server:
        middleware = server_middleware(server)
        rows = layer_rows(tenant["domain"], middleware, anonymous, signed_in)
        for row in rows:
            check(server, row)
        if not ctx.smoke:  # warm: workers, pool, caches, templates
            for row in rows:
                wrk(server, row.requests, seconds=1, connections=CONNECTIONS)
        results: dict[str, list[LoadResult]] = {row.key: [] for row in rows}
        cpu: dict[str, list[float]] = {row.key: [] for row in rows}  # the workers' CPU us per request
        for _ in range(ctx.runs):
            for row in rows:
                before = worker_cpu_seconds(server)
                result = wrk(server, row.requests, seconds=seconds, connections=CONNECTIONS)
                cpu[row.key].append((worker_cpu_seconds(server) - before) * 1e6 / max(1, result.requests))
                if result.bad or result.errors:
                    raise BenchError(f"{row.label}: {result.bad} failed of {result.requests}: {result.statuses}")
                results[row.key].append(result)
                ctx.log(f"   {result.rate:8.1f} req/s, {cpu[row.key][-1]:7.0f} us CPU a request  {row.label}")
    return figures(ctx, tenant, rows, results, cpu)


def layer_rows(host: str, middleware: list[str], anonymous: str, signed_in: list[str]) -> list[Row]:
    """The rows, each adding one layer to the one above; the last one is the goal's page."""

    def same(path: str, cookie: str = "") -> list[Request]:
        # as many lines as the signed-in rows: wrk runs the same number of threads for every row
        return [Request("GET", host, path, cookie)] * len(signed_in)

    rows = [
        Row("wsgi", "bare WSGI callable (no Django)", same("/_bench/wsgi/"), "ok"),
        Row("django", "bare Django view (no middleware)", same("/_bench/layers/0/_bench/bare/"), "ok"),
    ]
    for kept, name in enumerate(middleware, start=1):
        if name == TENANT_MIDDLEWARE:
            # its first query, taken apart: a pooled connection and a query, then a transaction around it
            before = f"/_bench/layers/{kept - 1}"
            rows += [
                Row("query", "+ one query (SELECT 1, a pooled connection)", same(f"{before}/_bench/bare-query/"), "ok"),
                Row("atomic", "+ in a transaction", same(f"{before}/_bench/bare-query-atomic/"), "ok"),
            ]
            label = f"+ {name} (the tenant lookup, in place of SELECT 1)"
        else:
            label = f"+ {name}"
        # all of them: VulHub's own handler; fewer: bench/layers.py's handler keeping the first `kept`
        path = "/_bench/bare/" if kept == len(middleware) else f"/_bench/layers/{kept}/_bench/bare/"
        rows.append(Row(f"mw{kept}", label, same(path), "ok"))
    rows += [
        Row("session", "+ session read (a stored session, nobody signed in)", same("/_bench/bare/", anonymous), "ok"),
        Row(
            "user",
            "+ user (a signed-in student)",
            [Request("GET", host, "/_bench/bare/", c) for c in signed_in],
            "signed-in",
        ),
        Row(
            "nonce",
            "+ CSP nonce",
            [Request("GET", host, "/_bench/bare-nonce/", c) for c in signed_in],
            "nonce",
        ),
        Row(
            "template",
            "+ template: template-only leaderboard page, signed in",
            [Request("GET", host, "/_bench/leaderboard-template/", c) for c in signed_in],
            "page",
        ),
        Row(
            "goal",
            "template-only leaderboard page, no cookie (scenario 1's)",
            same("/_bench/leaderboard-template/"),
            "page",
        ),
    ]
    return rows


def figures(
    ctx: Context, tenant: dict, rows: list[Row], results: dict[str, list[LoadResult]], cpu: dict[str, list[float]]
) -> list[Figure]:
    floor = Series("bare Django view", [r.rate for r in results["django"]], "req/s")
    size = f"{tenant['slug']}, {CONNECTIONS} connections, 2 sync workers"
    made, previous = [], None
    ctx.log("   layers (medians): req/s, x the bare Django view, workers' CPU us a request, added by the layer")
    for number, row in enumerate(rows, start=1):
        ours = Series(row.label, [r.rate for r in results[row.key]], "req/s")
        cpu_us = statistics.median(cpu[row.key])
        # the goal's page is measured beside the others, against the bare view only
        step = None if previous is None or row.key == "goal" else round(cpu_us - previous, 1)
        if row.key != "goal":
            previous = cpu_us
        added = "" if step is None else f"{step:+7.0f}"
        ratio = ours.median / floor.median
        ctx.log(f"   {number:2}. {ours.median:8.1f} {ratio:5.2f}x {cpu_us:7.0f} {added:>7}  {row.label}")
        made.append(
            Figure(
                SCENARIO,
                f"{number:2}. {row.label}",
                ours=ours,
                baseline=floor,
                goal=GOAL if row.key == "goal" else None,
                note=f"{size}; ratio against the bare Django view of the same run",
                extra={
                    "cpu_us_per_request": [round(v, 1) for v in cpu[row.key]],
                    "cpu_us_median": round(cpu_us, 1),
                    "cpu_us_added": step,
                    "p95_ms": [round(r.p95_ms, 2) for r in results[row.key]],
                    "bytes_per_response": round(
                        sum(r.bytes for r in results[row.key]) / max(1, sum(r.requests for r in results[row.key]))
                    ),
                    "path": row.requests[0].path,
                },
            )
        )
    return made


def anonymous_session(ctx: Context) -> str:
    """The cookie of a stored session with nobody signed in, removed after the scenario."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    with override_settings(SECRET_KEY=http_load.SECRET_KEY):  # the servers' key
        store = store_class()
        store["bench_layers"] = "anonymous"
        store.create()
    key = store.session_key
    ctx.scratch.setdefault("cleanups", []).append(lambda: store_class(key).delete())
    return f"{settings.SESSION_COOKIE_NAME}={key}"


def fetch(server: Server, request: Request) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(request.method, request.path, headers=request.headers())
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def server_middleware(server: Server) -> list[str]:
    """settings.MIDDLEWARE as the server's workers have it (bench/layers.py answers it)."""
    answer = fetch(server, Request("GET", "localhost", "/_bench/layers/"))
    if answer.status != 200:
        raise BenchError(f"/_bench/layers/ answered {answer.status}: not bench/layers.py's server\n{server.log_tail()}")
    return json.loads(answer.body)


def check(server: Server, row: Row) -> None:
    """The row's request answers what that layer should: the body, a signed-in user, a nonce, the page."""
    answer = fetch(server, row.requests[0])
    private = "private" in answer.headers.get("cache-control", "")
    problem = ""
    if answer.status != 200:
        problem = f"status {answer.status} {answer.headers.get('location', '')}"
    elif row.expect in ("ok", "signed-in", "nonce") and answer.body != b"ok\n":
        problem = f"body {answer.body[:80]!r}"
    elif row.expect == "ok" and private:
        problem = "a signed-in answer (Cache-Control: private) where nobody is signed in"
    elif row.expect in ("signed-in", "nonce") and not private:
        problem = "nobody signed in (no Cache-Control: private): the session cookie was not taken"
    elif row.expect == "nonce" and "'nonce-" not in answer.headers.get("content-security-policy", ""):
        problem = "no nonce in the Content-Security-Policy header"
    elif row.expect == "page" and (b"Signed in as" not in answer.body or b"<table" not in answer.body):
        problem = "not the leaderboard page"
    if problem:
        raise BenchError(f"{row.label}: {row.requests[0].path} answered wrong: {problem}\n{server.log_tail()}")
