"""Reads from a streaming replica: the leaderboard through the router against the same read from the primary.

The benchmark's database is copied to a primary of the run's own, with a hot standby
made by `pg_basebackup -R` streaming from it (bench/replica_pair.py: the benchmark's
own server may refuse replication and holds other databases). Two gunicorns side by
side (2 sync workers each, metrics off, as scenario 16's "off" server), both on that
primary as the app role and on a redis-server of the scenario's own: the router, with
REPLICA_DATABASE_URL on the standby (vulhub/lib/replica.py), and the plain one without.

wrk reads the cached leaderboard page of the largest class (scenario 1's page, Redis
warm) at 8 connections as students on its first page, three ways in turn, a different
one first each run: from the plain server, through the router (pages from the standby),
and through the router with every student pinned (the read-your-writes cookie: the
router's own work, the page from the primary). Beside the rates, the workers' CPU time
per request (psutil, as scenario 16): on a machine shared with other work it moves less.
Goal (issue 30): the router >= 0.9x the primary, the router adding next to nothing.
That the router's pages really ran on the standby is checked, not assumed: once the
router has stopped (its connections closed, so the standby's statistics are complete),
the standby must have committed about a transaction or more for each page it was sent.

Then the read-your-writes check's cost in cache reads: the same page, one request at a
time, as one student on the plain server, on the router (served from the standby) and on
the router with the cookie of a student who has just written (replica.PIN_COOKIE, an
end in the future: served from the primary). The Redis commands of each stretch are
counted by the cache server itself (INFO commandstats, before and after); the figure is
what the router adds per request to the plain server's reads. Goal: <= 1 (the pin is a
cookie, so 0 is expected). The pinned student's requests must leave the standby alone:
no connection there changes state while they are served.
"""

import time
from dataclasses import replace

from bench.framework import Context, Figure, Series
from bench.http_load import SECRET_KEY as SERVERS_SECRET_KEY
from bench.http_load import BenchError, LoadResult, Request, Server, leaderboard_viewers, send, wrk
from bench.replica_pair import Pair, gunicorn_on, own_redis, primary_and_standby
from bench.scenarios.s16_metrics import paired, worker_cpu_seconds
from tenants.rls import install_context_key
from vulhub.lib.replica import PIN_COOKIE

SCENARIO = "18 Reads from a replica"
CONNECTIONS = 8
VIEWERS = 16
ONE_BY_ONE = 100  # requests a run for the cache reads
ONE_BY_ONE_SMOKE = 30
WARM = 5  # unrecorded requests before each stretch of them
# Redis commands that only read
READS = {"get", "mget", "exists", "hget", "hmget", "hgetall", "ttl", "pttl", "strlen", "getex"}
# every page enters its tenant in a transaction on the server that serves it; wrk's count
# leaves out the few requests still queued when it stops, which the standby served too
MIN_TRANSACTIONS_PER_PAGE = 0.9
# the plain server; the router (pages from the standby); the router with students who have just written
KINDS = ("primary", "replica", "pinned")


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    # both made in the benchmark's database before it is copied: the sessions, and the
    # key that makes the servers' tenant proofs valid
    students, sessions = leaderboard_viewers(ctx, VIEWERS)
    install_context_key(extra=(SERVERS_SECRET_KEY,))
    board = [Request("GET", tenant["domain"], "/leaderboard/", s.cookie) for s in sessions]
    with primary_and_standby(ctx) as pair, own_redis() as cache:
        standby_before = pair.transactions(pair.standby)
        with (
            gunicorn_on(ctx, pair, cache, replica=True) as router,
            gunicorn_on(ctx, pair, cache, replica=False) as plain,
        ):
            targets = {"primary": plain, "replica": router, "pinned": router}
            rates, cpu, pages = under_load(ctx, targets, board)
            reads, more_pages = one_by_one(ctx, pair, cache, targets, board[0])
        standby_transactions = settled_transactions(pair) - standby_before
    per_page = standby_transactions / max(1, pages + more_pages)
    ctx.log(f"   the standby committed {standby_transactions:,} transactions for {pages + more_pages:,} pages "
            f"({per_page:.2f} a page)")  # fmt: skip
    if per_page < MIN_TRANSACTIONS_PER_PAGE:
        raise BenchError(f"the router did not serve from the standby: {standby_transactions} transactions there "
                         f"for {pages + more_pages} pages")  # fmt: skip
    return figures(tenant, students, rates, cpu, reads, per_page)


def pinned(request: Request) -> Request:
    """`request` from a browser that has just written: pinned to the primary for a day (beyond the scenario)."""
    return replace(request, cookie=f"{request.cookie}; {PIN_COOKIE}={int(time.time()) + 24 * 3600}")


def in_turn(runs: int) -> list[tuple[str, ...]]:
    """KINDS in a different order each run (a rotation): none always first."""
    return [KINDS[i % len(KINDS) :] + KINDS[: i % len(KINDS)] for i in range(runs)]


def under_load(ctx: Context, targets: dict[str, Server], board: list[Request]) -> tuple[dict, dict, int]:
    """wrk for each of KINDS in turn, run after run: (rates, CPU ms a request, pages the standby served)."""
    seconds = 1 if ctx.smoke else 5
    boards = {kind: [pinned(r) for r in board] if kind == "pinned" else board for kind in KINDS}
    rates: dict[str, list[LoadResult]] = {kind: [] for kind in KINDS}
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    pages = 0
    for kind in ("primary", "replica"):  # each server once
        check_page(targets[kind], board[0], kind)
        warm = wrk(targets[kind], board, seconds=1, connections=CONNECTIONS)  # workers, pools, cache
        pages += (warm.requests + 1) if kind == "replica" else 0
    for order in in_turn(ctx.runs):
        for kind in order:
            result, cpu_ms = measure(targets[kind], boards[kind], seconds)
            rates[kind].append(result)
            cpu[kind].append(cpu_ms)
            pages += result.requests if kind == "replica" else 0
            ctx.log(f"   leaderboard, {kind:7} {result.rate:8.1f} req/s, p95 {result.p95_ms:6.1f} ms, "
                    f"{cpu_ms:.2f} ms CPU a request")  # fmt: skip
    return rates, cpu, pages


def one_by_one(ctx: Context, pair: Pair, cache, targets: dict[str, Server], page: Request) -> tuple[dict, int]:
    """Redis commands a request for each of KINDS in turn, run after run: (counts, pages the standby served)."""
    requests = {kind: pinned(page) if kind == "pinned" else page for kind in KINDS}
    count = ONE_BY_ONE_SMOKE if ctx.smoke else ONE_BY_ONE
    reads: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    pages = 0
    for order in in_turn(ctx.runs):
        for kind in order:
            standby_seen = pair.last_app_activity(pair.standby)
            reads[kind].append(commands_per_request(cache, targets[kind], requests[kind], count))
            if kind == "pinned" and touched_since(pair.last_app_activity(pair.standby), standby_seen):
                raise BenchError("a pinned student's pages reached the standby")
            pages += (WARM + count) if kind == "replica" else 0
            ctx.log(f"   one by one, {kind:7} {reads[kind][-1]['reads']:.2f} cache reads, "
                    f"{reads[kind][-1]['commands']:.2f} Redis commands a request")  # fmt: skip
    return reads, pages


def figures(tenant, students, rates, cpu, reads, per_page: float) -> list[Figure]:
    size = f"{tenant['slug']}, page one ({len(students)} signed-in students), {CONNECTIONS} connections"
    served = f"the standby committed {per_page:.2f} transactions a page sent to the router"

    def added(kind: str) -> list[float]:
        pairs = zip(reads[kind], reads["primary"], strict=True)
        return [round(ours["reads"] - base["reads"], 3) for ours, base in pairs]

    counted = {kind: {"reads": [r["reads"] for r in runs], "commands": [r["commands"] for r in runs],
                      "by_command": runs[-1]["by_command"]} for kind, runs in reads.items()}  # fmt: skip

    def series(kind: str, label: str) -> Series:
        return Series(label, [r.rate for r in rates[kind]], "req/s")

    return [
        Figure(
            SCENARIO,
            "leaderboard page, cached: router (replica) vs primary",
            ours=series("replica", "/leaderboard/ from the standby (router)"),
            baseline=series("primary", "from the primary"),
            goal=0.9,
            note=f"{size}; two gunicorns side by side on a copy of the data, runs interleaved; {served}",
            extra={
                **{kind: {"p95_ms": [round(r.p95_ms, 1) for r in rates[kind]]} for kind in KINDS},
                "paired_ratios": paired(rates["replica"], rates["primary"]),
                "standby_transactions_per_page": round(per_page, 2),
            },
        ),
        Figure(
            SCENARIO,
            "leaderboard page, cached: router with students pinned (primary) vs primary",
            ours=series("pinned", "/leaderboard/ through the router, every student pinned"),
            baseline=series("primary", "from the primary"),
            note=f"{size}; the router's own cost: the read-your-writes cookie sends every page to the primary",
            extra={"paired_ratios": paired(rates["pinned"], rates["primary"])},
        ),
        Figure(
            SCENARIO,
            "leaderboard page: workers' CPU a request, router (replica) vs primary",
            ours=Series("CPU ms a request (router, replica)", cpu["replica"], "ms"),
            baseline=Series("primary only", cpu["primary"], "ms"),
            compare="cost",
            note=f"{size}; the gunicorn workers' user and system time over each wrk run, per request "
            "(the database servers' time is not in it)",
            extra={
                "paired_ratios": paired(cpu["replica"], cpu["primary"]),
                "pinned_ms": cpu["pinned"],
                "pinned_paired_ratios": paired(cpu["pinned"], cpu["primary"]),
            },
        ),
        *(
            Figure(
                SCENARIO,
                f"cache reads the router adds a request: {who}",
                ours=Series(f"reads added ({kind})", added(kind), "reads"),
                compare="absolute",
                goal_op="<=",
                goal=1,
                note="one request at a time, one student; Redis commands that read (GET, MGET, EXISTS, ...) "
                "per request on the router less those on the plain server, counted by INFO commandstats",
                extra=counted,
            )
            for kind, who in (
                ("pinned", "a student who just wrote (pinned, primary)"),
                ("replica", "a student reading from the standby"),
            )
        ),
    ]


def measure(server: Server, board: list[Request], seconds: float) -> tuple[LoadResult, float]:
    """One wrk run: its result, and the workers' CPU ms per request over it."""
    before = worker_cpu_seconds(server)
    result = wrk(server, board, seconds=seconds, connections=CONNECTIONS)
    cpu_ms = (worker_cpu_seconds(server) - before) * 1000 / max(1, result.requests)
    if result.bad or result.errors:
        raise BenchError(f"leaderboard: {result.bad} failed of {result.requests}: {result.statuses} {result.errors}\n"
                         f"{server.log_tail()}")  # fmt: skip
    return result, cpu_ms


def check_page(server: Server, request: Request, name: str) -> None:
    """The page answers 200 with the leaderboard of a signed-in student, not a login redirect."""
    response = send(server, request, timeout=10)
    if response.status != 200 or b"Signed in as" not in response.body or b"<table" not in response.body:
        raise BenchError(f"{name}: {request.path} answered {response.status}: not the page\n{server.log_tail()}")


def commands_per_request(cache, server: Server, request: Request, count: int) -> dict:
    """`request` sent `count` times, one at a time: the Redis commands (and those that read) per request."""
    for _ in range(WARM):
        send(server, request)
    before = command_calls(cache)
    for _ in range(count):
        response = send(server, request)
        if response.status != 200:
            raise BenchError(f"{request.path} answered {response.status}\n{server.log_tail()}")
    after = command_calls(cache)
    delta = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    delta.pop("info", None)  # ours
    return {
        "reads": sum(n for name, n in delta.items() if name in READS) / count,
        "commands": sum(delta.values()) / count,
        "by_command": {name: round(n / count, 2) for name, n in sorted(delta.items())},
    }


def command_calls(cache) -> dict[str, int]:
    """{command: calls so far} as the Redis server counts them."""
    stats = cache.info("commandstats")
    return {name.removeprefix("cmdstat_").lower(): value["calls"] for name, value in stats.items()}


def touched_since(latest, seen) -> bool:
    """Whether a connection changed state after `seen` (None: no connection then, or now)."""
    return latest is not None and (seen is None or latest > seen)


def settled_transactions(pair: Pair, timeout: float = 30) -> int:
    """The standby's transactions once the servers' connections there have closed.

    A connection reports its counts to the statistics now and then, and all of them as it ends.
    """
    deadline = time.monotonic() + timeout
    while pair.app_sessions(pair.standby) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pair.transactions(pair.standby)
