"""The last hour before a deadline: the leaderboard read hard while wrong flags pour in.

wrk reads /leaderboard/ of the largest class at 8 connections, as randomly drawn
students (each their own session, so their own page); meanwhile a paced loop in this
process POSTs 10 wrong flags a second to the class's flag challenges, as other
students, each POST timed. The server runs with FLAG_ATTEMPT_LIMIT raised so the
rotation over students and challenges is never refused for too many attempts (the
limit is still checked on every POST). Each wrong flag adds a rejected submission.
When the sampled students have solved every flag (smoke data after many runs), a new
flag challenge is opened for the scenario and unpublished after it.
"""

from concurrent.futures import ThreadPoolExecutor

from bench.framework import Context, Figure, Series
from bench.http_load import (
    BenchError,
    BoardCacheCount,
    LoadResult,
    Request,
    flag_challenges,
    flag_post,
    gunicorn,
    open_challenge,
    paced,
    sample_students,
    send,
    sessions_for,
    unsolved_pairs,
    wrk,
    wrong_flag,
)

SCENARIO = "2 Deadline load"
CONNECTIONS = 8
FLAGS_PER_SECOND = 10
CTFD_PAGES_PER_SECOND = 2  # CTFd's scoreboard under a deadline, as measured for issue 8


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    host = tenant["domain"]
    seconds = 2 if ctx.smoke else 5
    readers = sessions_for(ctx, sample_students(tenant["id"], 8 if ctx.smoke else 64))
    submitters = {s.user_id: s for s in sessions_for(ctx, sample_students(tenant["id"], 20 if ctx.smoke else 100))}
    challenges = {c.id: c for c in flag_challenges(tenant["id"])}
    pairs = unsolved_pairs(tenant["id"], list(submitters), list(challenges))
    if not pairs:
        extra = open_challenge(ctx, tenant["id"], flag=True)
        challenges[extra.id] = extra
        pairs = [(user, extra.id) for user in submitters]
    posts = [flag_post(host, challenges[p].slug, submitters[u], wrong_flag()) for u, p in pairs]
    reads = [Request("GET", host, "/leaderboard/", s.cookie) for s in readers]

    board: list[LoadResult] = []
    flags: list[LoadResult] = []
    caches: list[dict] = []
    with gunicorn(ctx, FLAG_ATTEMPT_LIMIT="1000000") as server:
        answer = send(server, posts[-1])
        if answer.status != 302:
            raise BenchError(f"a wrong flag answered {answer.status}, not a redirect:\n{server.log_tail()}")
        wrk(server, reads, seconds=1, connections=CONNECTIONS)  # warm: workers, pool, cache
        for _ in range(ctx.runs):
            counting = BoardCacheCount(tenant["id"])
            with ThreadPoolExecutor(max_workers=1) as loop:
                posting = loop.submit(paced, server, posts, per_second=FLAGS_PER_SECOND, seconds=seconds)
                read = wrk(server, reads, seconds=seconds, connections=CONNECTIONS)
                sent = posting.result()
            caches.append(counting.stop())
            if read.bad or sent.bad:
                raise BenchError(f"failed requests: leaderboard {read.statuses} {read.errors}, flags {sent.statuses}")
            board.append(read)
            flags.append(sent)
            ctx.log(
                f"   leaderboard {read.rate:.1f} req/s, p95 {read.p95_ms:.1f} ms; "
                f"wrong flags {sent.rate:.1f}/s, p95 {sent.p95_ms:.1f} ms; leaderboard cache {caches[-1]}"
            )

    where = f"{tenant['slug']}, {CONNECTIONS} wrk connections reading, {FLAGS_PER_SECOND} wrong flags/s posted"
    return [
        Figure(
            SCENARIO,
            "deadline: leaderboard throughput",
            ours=Series("/leaderboard/ under flag load", [r.rate for r in board], "req/s"),
            compare="absolute",
            goal=100 * CTFD_PAGES_PER_SECOND,
            note=f"{where}; goal 100x CTFd's measured {CTFD_PAGES_PER_SECOND} scoreboard pages/s",
            extra={"statuses": [r.statuses for r in board], "socket_errors": [r.errors for r in board]},
        ),
        Figure(
            SCENARIO,
            "deadline: leaderboard p95",
            ours=Series("/leaderboard/ p95", [r.p95_ms for r in board], "ms"),
            compare="absolute",
            goal_op="<",
            goal=100,
            note=where,
        ),
        Figure(
            SCENARIO,
            "deadline: wrong-flag submission p95",
            ours=Series("POST /challenges/<slug>/ p95", [r.p95_ms for r in flags], "ms"),
            compare="absolute",
            goal_op="<",
            goal=100,
            note=f"{where}; FLAG_ATTEMPT_LIMIT raised on the server so the rotation is never refused",
            extra={"statuses": [r.statuses for r in flags], "pairs": len(pairs)},
        ),
        Figure(
            SCENARIO,
            "deadline: wrong flags actually sent",
            ours=Series("wrong flags answered", [r.rate for r in flags], "submissions/s"),
            compare="absolute",
            goal=None,
            note=f"paced at {FLAGS_PER_SECOND}/s; each adds a rejected submission to the dataset",
        ),
        *cache_figures(SCENARIO, "deadline", caches),
    ]


def cache_figures(scenario: str, name: str, caches: list, baseline: list | None = None) -> list[Figure]:
    """Report-only: the class's leaderboard cache entries loaded (misses) and version bumps a second.

    Every committed change to the standings bumps the class's version, and each reader's
    next page and standing are then loaded from the database again (bench.http_load.BoardCacheCount).
    """
    if not caches or None in caches or (baseline is not None and None in baseline):
        return []

    def series(label: str, counts: list[dict], what: str) -> Series:
        return Series(label, [c[what] for c in counts], "per s")

    figures = []
    for what, label in (("loaded_per_s", "leaderboard cache misses"), ("bumps_per_s", "leaderboard versions bumped")):
        figures.append(
            Figure(
                scenario,
                f"{name}: {label}",
                ours=series(label, caches, what),
                baseline=series("all static", baseline, what) if baseline is not None else None,
                compare="absolute",
                goal=None,
                note=(
                    "entries of the class's cached leaderboard set during the run (each a page or a standing "
                    "loaded from the database after a miss; a lower bound) and bumps of its version, "
                    "a second of the run, read from Redis"
                ),
                extra={"runs": caches, "baseline_runs": baseline},
            )
        )
    return figures
