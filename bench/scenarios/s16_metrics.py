"""What the Prometheus metrics cost: the leaderboard page with metrics on and off, and /metrics itself.

Two gunicorns side by side on the same data (the repository's gunicorn.conf.py, 2 sync
workers): one with METRICS_ENABLED on, a METRICS_TOKEN and a PROMETHEUS_MULTIPROC_DIR
of its own (django-prometheus counts every request, database and cache call, VulHub its
own counters), one with it off as production runs it (no instrumentation, no multiprocess
folder, /metrics a 404). wrk reads the cached leaderboard page of the largest class
(scenario 1's page, Redis warm) at 8 connections as students on its first page, the two
servers in turn, the order swapped every run (on-off, off-on, ...) so neither always runs
first. Beside the rates, the workers' CPU time per request (psutil) over each wrk run: on
a machine shared with other work it moves less than the rates do.

Then /metrics: wrk sends the metrics-on server a mix of student pages (dashboard,
catalogue, a challenge, submissions, leaderboard pages one and two, badges, profile,
the login page and an unknown page: 200s, 302s and 404s, so the request, latency and
database metrics hold the label sets a real site has) until its own /metrics counts
10,000 requests (2,000 in the smoke run); then GET /metrics with the bearer token,
one request at a time and idle, a number of times per run: the median and p95 of each
run, after one GET with the scrape-time gauges cold: their cached values (kept
METRICS_SCRAPE_CACHE_SECONDS, so about one scrape in two at a 15 s interval reads them
afresh: write-ups waiting per class, the newest backups) removed from the cache first.
"""

import http.client
import secrets
import statistics
import time

import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.framework import Context, Figure, Series, p95
from bench.http_load import (
    BenchError,
    LoadResult,
    Request,
    Server,
    flag_challenges,
    get,
    gunicorn,
    leaderboard_viewers,
    wrk,
)
from vulhub.monitoring import forget_scrape_values

SCENARIO = "16 Metrics"
CONNECTIONS = 8
VIEWERS = 16
COUNTED = 10_000
COUNTED_SMOKE = 2_000
METRICS_GETS = 30  # timed GETs of /metrics per run
ROUNDS = 40  # of wrk at most, to reach the count
REQUESTS_COUNTED = "django_http_requests_total_by_view_transport_method_total"


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    seconds = 1 if ctx.smoke else 5
    students, sessions = leaderboard_viewers(ctx, VIEWERS)
    host = tenant["domain"]
    token = secrets.token_urlsafe(32)
    board = [Request("GET", host, "/leaderboard/", s.cookie) for s in sessions]
    rates: dict[str, list[LoadResult]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}  # the workers' CPU ms per request
    on_env = {"METRICS_ENABLED": "true", "METRICS_TOKEN": token, "METRICS_ALLOWED_NETWORKS": ""}
    # off as in production: no multiprocess folder either (gunicorn.conf.py sets none when off)
    off_env = {"METRICS_ENABLED": "false", "METRICS_TOKEN": token, "METRICS_ALLOWED_NETWORKS": "",
               "PROMETHEUS_MULTIPROC_DIR": ""}  # fmt: skip
    with gunicorn(ctx, **on_env) as on, gunicorn(ctx, **off_env) as off:
        servers = {"on": on, "off": off}
        for state, server in servers.items():
            check_page(server, board[0], state)
            wrk(server, board, seconds=1, connections=CONNECTIONS)  # warm: workers, pool, cache
        check_metrics(on, token, served=True)
        check_metrics(off, token, served=False)
        for i in range(ctx.runs):
            for state in ("on", "off") if i % 2 == 0 else ("off", "on"):
                before = worker_cpu_seconds(servers[state])
                result = wrk(servers[state], board, seconds=seconds, connections=CONNECTIONS)
                cpu[state].append((worker_cpu_seconds(servers[state]) - before) * 1000 / max(1, result.requests))
                if result.bad or result.errors:
                    raise BenchError(f"leaderboard ({state}): {result.bad} failed of {result.requests}: "
                                     f"{result.statuses} {result.errors}")  # fmt: skip
                rates[state].append(result)
                ctx.log(f"   leaderboard metrics {state:3} {result.rate:8.1f} req/s, p95 {result.p95_ms:6.1f} ms, "
                        f"{cpu[state][-1]:.2f} ms CPU a request")  # fmt: skip

        target = COUNTED_SMOKE if ctx.smoke else COUNTED
        counted = count_up_to(ctx, on, token, mixed_pages(tenant, sessions), target)
        scrape = time_metrics(ctx, on, token, gets=10 if ctx.smoke else METRICS_GETS)
        scrape["requests_counted"] = counted
        scrape["multiproc_files"] = len(list(on.metrics_dir.glob("*.db"))) if on.metrics_dir else None

    def series(label: str, results: list[LoadResult]) -> Series:
        return Series(label, [r.rate for r in results], "req/s")

    size = f"{tenant['slug']}, page one ({len(students)} signed-in students), {CONNECTIONS} connections"
    counted_text = f"{counted:,} requests counted, {scrape['series']} series, {scrape['bytes']:,} bytes"
    return [
        Figure(
            SCENARIO,
            "leaderboard page, cached, metrics on vs off",
            ours=series("/leaderboard/ (metrics on)", rates["on"]),
            baseline=series("metrics off", rates["off"]),
            goal=0.95,
            note=f"{size}; two gunicorns side by side, METRICS_ENABLED true and false, runs interleaved",
            extra={
                **{state: {"p95_ms": [round(r.p95_ms, 1) for r in rates[state]]} for state in ("on", "off")},
                # on/off of each run's pair, taken back to back: less exposed to the machine's other work
                "paired_ratios": paired(rates["on"], rates["off"]),
            },
        ),
        Figure(
            SCENARIO,
            "leaderboard page: workers' CPU a request, metrics on vs off",
            ours=Series("CPU ms a request (metrics on)", cpu["on"], "ms"),
            baseline=Series("metrics off", cpu["off"], "ms"),
            compare="cost",
            note=f"{size}; the gunicorn workers' user and system time over each wrk run, per request: "
            "less sensitive than req/s to other work on the machine",
            extra={"paired_ratios": paired(cpu["on"], cpu["off"])},
        ),
        *(
            Figure(
                SCENARIO,
                f"/metrics of a worker: {statistic}",
                ours=Series(f"GET /metrics ({statistic} of a run)", scrape[key], "ms"),
                compare="absolute",
                goal_op="<=",
                goal=50,
                note=f"{counted_text}; {scrape['gets']} GETs a run with the bearer token, one at a time, idle",
                extra=scrape if key == "medians" else {},
            )
            for statistic, key in (("median", "medians"), ("p95", "p95s"))
        ),
        Figure(
            SCENARIO,
            "/metrics of a worker: scrape-time gauges cold",
            ours=Series("GET /metrics (gauges read afresh)", scrape["cold_ms"], "ms"),
            compare="absolute",
            goal_op="<=",
            goal=50,
            note=f"{counted_text}; one GET a run, the cached write-up and backup gauges removed first",
        ),
    ]


def paired(ours: list, theirs: list) -> list[float]:
    """Each run's ratio ours/theirs (rates of LoadResults, or plain numbers)."""
    values = [(getattr(a, "rate", a), getattr(b, "rate", b)) for a, b in zip(ours, theirs, strict=True)]
    return [round(a / b, 3) if b else None for a, b in values]


def worker_cpu_seconds(server: Server) -> float:
    """User and system CPU seconds the server's workers have used so far."""
    total = 0.0
    for worker in psutil.Process(server.process.pid).children():
        try:
            times = worker.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def check_page(server: Server, request: Request, state: str) -> None:
    """The page answers 200 with the leaderboard of a signed-in student, not a login redirect."""
    response = get(server, request.host, request.path, request.cookie)
    if response.status != 200 or b"Signed in as" not in response.body or b"<table" not in response.body:
        raise BenchError(f"metrics {state}: {request.path} answered {response.status}: not the page\n"
                         f"{server.log_tail()}")  # fmt: skip


def scrape(server: Server, token: str | None) -> tuple[int, str, float]:
    """GET /metrics as Prometheus does (with the bearer token, or without): (status, body, milliseconds)."""
    headers = {"Host": "localhost", "Connection": "close", "Accept": "text/plain"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return response.status, body.decode(errors="replace"), (time.perf_counter() - started) * 1000


def check_metrics(server: Server, token: str, *, served: bool) -> None:
    """/metrics with the token: VulHub's metrics where they are on, a 404 where they are off; never without it."""
    status, body, _ = scrape(server, token)
    if served and (status != 200 or REQUESTS_COUNTED not in body):
        raise BenchError(f"metrics on: /metrics answered {status} without the request counts\n{server.log_tail()}")
    if not served and status != 404:
        raise BenchError(f"metrics off: /metrics answered {status}, not 404")
    if scrape(server, None)[0] != 404:
        raise BenchError("/metrics answered without the token (METRICS_ALLOWED_NETWORKS is empty)")


def requests_counted(server: Server, token: str) -> tuple[int, int]:
    """(requests counted by django-prometheus, series) in what /metrics of the server says now."""
    status, body, _ = scrape(server, token)
    if status != 200:
        raise BenchError(f"/metrics answered {status}\n{server.log_tail()}")
    total, series = 0.0, 0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            series += 1
            if sample.name == REQUESTS_COUNTED:
                total += sample.value
    return round(total), series


def mixed_pages(tenant: dict, sessions) -> list[Request]:
    """What students ask a real site for: their pages, a second leaderboard page, the login page, a 404."""
    challenges = flag_challenges(tenant["id"])
    if not challenges:
        raise BenchError(f"{tenant['slug']} has no flag challenge")
    paths = ["/", "/challenges/", f"/challenges/{challenges[0].slug}/", "/submissions/", "/leaderboard/",
             "/leaderboard/?page=2", "/badges/", "/profile/", "/no-such-page/"]  # fmt: skip
    host = tenant["domain"]
    requests = [Request("GET", host, path, s.cookie) for s in sessions for path in paths]
    return [*requests, Request("GET", host, "/accounts/login/")]


def count_up_to(ctx: Context, server: Server, token: str, requests: list[Request], target: int) -> int:
    """wrk sends `requests` until /metrics counts `target` requests; returns the count reached.

    Each round lasts about as long as the rate of the last one says the rest takes (1 to 30 s).
    """
    counted, _ = requests_counted(server, token)
    seconds = 1.0
    for _ in range(ROUNDS):
        if counted >= target:
            return counted
        result = wrk(server, requests, seconds=seconds, connections=CONNECTIONS)
        failed = {status: n for status, n in result.statuses.items() if status >= 500}
        if failed or result.errors:
            raise BenchError(f"mixed pages: {failed} {result.errors} of {result.requests}\n{server.log_tail()}")
        counted, _ = requests_counted(server, token)
        seconds = min(30.0, max(1.0, (target - counted) / max(result.rate, 1.0)))
    raise BenchError(f"/metrics counted {counted} requests after {ROUNDS} rounds of wrk, not {target}")


def time_metrics(ctx: Context, server: Server, token: str, *, gets: int) -> dict:
    """Per run: one GET with the scrape-time gauges cold, then `gets` warm ones (their median and p95)."""
    medians, p95s, colds, sizes = [], [], [], set()
    for _ in range(ctx.runs):
        forget_scrape_values()  # the server's cache (the same Redis and prefix as this process's)
        status, _, cold = scrape(server, token)
        if status != 200:
            raise BenchError(f"/metrics answered {status}")
        colds.append(cold)
        times = []
        for _ in range(gets):
            status, body, ms = scrape(server, token)
            if status != 200:
                raise BenchError(f"/metrics answered {status}")
            times.append(ms)
            sizes.add(len(body.encode()))
        medians.append(statistics.median(times))
        p95s.append(p95(times))
        ctx.log(f"   /metrics median {medians[-1]:6.1f} ms, p95 {p95s[-1]:6.1f} ms, cold {cold:6.1f} ms")
    _, series = requests_counted(server, token)
    return {
        "gets": gets,
        "medians": medians,
        "p95s": p95s,
        "cold_ms": colds,
        "series": series,
        "bytes": max(sizes),
    }
