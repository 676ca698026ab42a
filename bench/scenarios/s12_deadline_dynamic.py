"""The deadline of scenario 2 with half of the class's challenges dynamic, and right flags among the wrong.

As scenario 2: wrk reads /leaderboard/ of the largest class at 8 connections, as
randomly drawn students (each their own session), while a paced loop in this process
POSTs 10 flags a second as other students, each POST timed. Here one flag in five is
right, in turn for a challenge of each half of the class's flag challenges (a (student,
challenge) pair still open, each sent once), so solves pour in as they do before a
deadline: every solve invalidates the cached leaderboard the readers hit, and a solve of
a dynamic challenge lowers its value and rescores every earlier solver (their points,
the ranks between them, their badges: scoring.dynamic).

The same load runs twice on one server: first with every challenge static (the
baseline), then with every other published challenge of the class (by id, flag and
write-up ones alike) dynamic: LINEAR, one point per solver, the initial value set so
that the value at its present number of solvers is its present points (nobody's points
move when it is switched), so each solve lowers the value by one and runs the whole
revalue over all its solvers (hundreds to thousands on the large data set). Afterwards
each goes back to static at its points from before: its initial value raised so the
value returns to them (one set-based revalue), then static again (nothing moves), so
the other scenarios see the same challenges and points. The solves of the run stay, as
scenario 4's do. The leaderboard table is vacuumed first, as in scenario 11.

A dynamic solve of a challenge with thousands of solvers can hold a worker for seconds,
and the requests behind it queue: every request here may wait up to WAIT_SECONDS for its
answer (a timeout would be counted in the figures' extra, not hidden), and each run
starts once the queue of the one before has drained.
"""

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import transaction

from bench.framework import Context, Figure, Series
from bench.http_load import (
    BenchError,
    BoardCacheCount,
    LoadResult,
    Request,
    Server,
    flag_challenges,
    flag_post,
    gunicorn,
    open_challenge,
    paced_by_kind,
    sample_students,
    send,
    sessions_for,
    unsolved_pairs,
    wrk,
    wrong_flag,
)
from bench.scenarios.s02_deadline import cache_figures
from bench.scenarios.s11_dynamic_solve import vacuum_leaderboards
from challenges.models import Project
from scoring import dynamic

SCENARIO = "12 Deadline, half dynamic"
CONNECTIONS = 8
FLAGS_PER_SECOND = 10
RIGHT_EVERY = 5
# A dynamic solve can take seconds (docs/performance.md): requests wait for the queue, not fail.
WAIT_SECONDS = 120
DYNAMIC_FIELDS = ("scoring", "initial_points", "minimum_points", "decay", "decay_function")
# the kinds of flags posted: right ones for each half of the challenges, wrong ones
HALF, OTHER, WRONG = "right flag, the half made dynamic", "right flag, the other half", "wrong flag"


@dataclass
class Phase:
    board: list[LoadResult] = field(default_factory=list)
    flags: list[dict[str, LoadResult]] = field(default_factory=list)
    caches: list[dict | None] = field(default_factory=list)

    def p95s(self, kind: str) -> list[float]:
        return [r[kind].p95_ms for r in self.flags]


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    host = tenant["domain"]
    seconds = 2 if ctx.smoke else 5
    readers = sessions_for(ctx, sample_students(tenant["id"], 8 if ctx.smoke else 64))
    submitters = {s.user_id: s for s in sessions_for(ctx, sample_students(tenant["id"], 20 if ctx.smoke else 200))}
    vacuum_leaderboards(ctx)
    half = set(every_other(tenant["id"]))

    per_run = max(1, round(FLAGS_PER_SECOND * seconds))
    right_per_run = -(-per_run // RIGHT_EVERY)
    listings = 2 * ctx.runs + 1  # both phases and the warm-up
    needed = {HALF: -(-right_per_run // 2) * listings, OTHER: right_per_run // 2 * listings}
    challenges = {c.id: c for c in flag_challenges(tenant["id"])}
    pools: dict[str, list[tuple[int, int]]] = {HALF: [], OTHER: []}
    for user, project in unsolved_pairs(tenant["id"], list(submitters), list(challenges)):
        if challenges[project].right_flag:
            pools[HALF if project in half else OTHER].append((user, project))
    for kind, pool in pools.items():
        random.shuffle(pool)
        if len(pool) < needed[kind]:
            # the class has (nearly) solved every flag it has (small data sets): one more challenge
            extra = open_challenge(ctx, tenant["id"], flag=True)
            challenges[extra.id] = extra
            if kind == HALF:
                half.add(extra.id)
            pool.extend((user, extra.id) for user in submitters)
        del pool[needed[kind] :]  # the right flags of the runs, each pair once
    taken = set(pools[HALF] + pools[OTHER])
    wrongs = [p for p in unsolved_pairs(tenant["id"], list(submitters), list(challenges)) if p not in taken]
    if not wrongs:
        raise BenchError(f"{tenant['slug']}: no open (student, challenge) pair left for wrong flags")
    random.shuffle(wrongs)

    def listing() -> list[tuple[str, Request]]:
        """One run's flags: one in RIGHT_EVERY right (each half in turn, each pair once)."""
        flags, right = [], 0
        for i in range(per_run):
            if i % RIGHT_EVERY == 0:
                kind = (HALF, OTHER)[right % 2]
                right += 1
                user, project = pools[kind].pop()
                flag = challenges[project].right_flag
            else:
                kind, (user, project), flag = WRONG, wrongs[i % len(wrongs)], wrong_flag()
            flags.append((kind, flag_post(host, challenges[project].slug, submitters[user], flag)))
        return flags

    reads = [Request("GET", host, "/leaderboard/", s.cookie) for s in readers]
    static, dynamic_half = Phase(), Phase()
    with gunicorn(ctx, FLAG_ATTEMPT_LIMIT="1000000") as server:
        for _kind, request in listing()[:2]:  # warm-up: a right flag and a wrong one
            answer = send(server, request)
            if answer.status != 302:
                raise BenchError(f"a flag answered {answer.status}, not a redirect:\n{server.log_tail()}")
        wrk(server, reads, seconds=1, connections=CONNECTIONS, drain_timeout=WAIT_SECONDS)  # warm: workers, cache
        measure(ctx, server, reads, listing, seconds, static, "all static")
        made = make_dynamic(ctx, sorted(half))
        ctx.log(f"   {len(made)} challenges of {tenant['slug']} dynamic")
        measure(ctx, server, reads, listing, seconds, dynamic_half, "half dynamic")

    where = (
        f"{tenant['slug']}, {len(made)} challenges made dynamic (LINEAR, 1 point per solver), "
        f"{CONNECTIONS} wrk connections reading, {FLAGS_PER_SECOND} flags/s posted, one in {RIGHT_EVERY} right "
        "(each half in turn); baseline: the same load with every challenge static"
    )

    def flags_figure(name: str, kind: str, label: str, goal: float | None, note: str) -> Figure:
        return Figure(
            SCENARIO,
            name,
            ours=Series(label, dynamic_half.p95s(kind), "ms"),
            baseline=Series("all static", static.p95s(kind), "ms"),
            compare="absolute",
            goal_op="<",
            goal=goal,
            note=note,
            extra={
                "max_ms": {
                    "half dynamic": [r[kind].max_ms for r in dynamic_half.flags],
                    "all static": [r[kind].max_ms for r in static.flags],
                },
                "statuses": [r[kind].statuses for r in dynamic_half.flags],
                "errors": [r[kind].errors for r in dynamic_half.flags],
            },
        )

    solves = dynamic_half.flags[0][HALF].requests
    return [
        Figure(
            SCENARIO,
            "half dynamic: leaderboard throughput",
            ours=Series("/leaderboard/ under flag load", [r.rate for r in dynamic_half.board], "req/s"),
            baseline=Series("all static", [r.rate for r in static.board], "req/s"),
            compare="absolute",
            goal=200,
            note=where,
            extra={
                "statuses": [r.statuses for r in dynamic_half.board],
                "socket_errors": [r.errors for r in dynamic_half.board],
                "max_ms": [r.max_ms for r in dynamic_half.board],
            },
        ),
        Figure(
            SCENARIO,
            "half dynamic: leaderboard p95",
            ours=Series("/leaderboard/ p95", [r.p95_ms for r in dynamic_half.board], "ms"),
            baseline=Series("all static", [r.p95_ms for r in static.board], "ms"),
            compare="absolute",
            goal_op="<",
            goal=100,
            note=where,
        ),
        flags_figure(
            "half dynamic: flag submission p95 (right and wrong)",
            "all",
            "POST /challenges/<slug>/ p95",
            100,
            f"{where}; FLAG_ATTEMPT_LIMIT raised on the server so the rotation is never refused",
        ),
        flags_figure("half dynamic: wrong-flag p95", WRONG, "a wrong flag", None, "what scenario 2 measures"),
        flags_figure(
            "half dynamic: right flag of a dynamic challenge, p95",
            HALF,
            "a solve that revalues",
            None,
            f"{solves} per run; the baseline: the same challenges, static",
        ),
        flags_figure(
            "half dynamic: right flag of a static challenge, p95",
            OTHER,
            "a static solve",
            None,
            f"{dynamic_half.flags[0][OTHER].requests} per run",
        ),
        Figure(
            SCENARIO,
            "half dynamic: flags actually sent",
            ours=Series("flags answered", [r["all"].rate for r in dynamic_half.flags], "submissions/s"),
            baseline=Series("all static", [r["all"].rate for r in static.flags], "submissions/s"),
            compare="absolute",
            goal=None,
            note=f"paced at {FLAGS_PER_SECOND}/s, one in {RIGHT_EVERY} right; the solves stay in the dataset",
        ),
        *cache_figures(SCENARIO, "half dynamic", dynamic_half.caches, static.caches),
    ]


def measure(ctx: Context, server: Server, reads: list[Request], listing, seconds: float, into: Phase, label: str):
    for _ in range(ctx.runs):
        posts = listing()
        counting = BoardCacheCount(ctx.largest["id"])
        with ThreadPoolExecutor(max_workers=1) as loop:
            posting = loop.submit(
                paced_by_kind, server, posts, per_second=FLAGS_PER_SECOND, seconds=seconds, timeout=WAIT_SECONDS
            )
            read = wrk(server, reads, seconds=seconds, connections=CONNECTIONS, drain_timeout=WAIT_SECONDS)
            sent = posting.result()
        into.caches.append(counting.stop())
        if read.bad or sent["all"].bad:  # refused or failed (a timeout is counted, in the figures' extra)
            raise BenchError(
                f"failed requests: leaderboard {read.statuses} {read.errors}, flags {sent['all'].statuses}"
            )
        into.board.append(read)
        into.flags.append(sent)
        ctx.log(
            f"   {label}: leaderboard {read.rate:.1f} req/s, p95 {read.p95_ms:.1f} ms; flags {sent['all'].rate:.1f}/s, "
            f"p95 {sent['all'].p95_ms:.1f} ms (right flags of the half made dynamic: max {sent[HALF].max_ms:.0f} ms, "
            f"of the other half: max {sent[OTHER].max_ms:.0f} ms); leaderboard cache {into.caches[-1]}"
        )


def every_other(tenant_id: int) -> list[int]:
    """Every other published static challenge of the tenant by id, flag and write-up ones alike."""
    published = list(
        Project.objects.for_tenant(tenant_id).published().filter(scoring=Project.Scoring.STATIC).order_by("pk")
    )
    return [p.pk for p in published if p.has_flag][::2] + [p.pk for p in published if not p.has_flag][::2]


def make_dynamic(ctx: Context, ids: list[int]) -> set[int]:
    """These challenges made dynamic, their points unmoved; restored after the scenario.

    LINEAR, one point per solver: the initial value is the points plus the solvers after
    the first, so the value now is the points.
    """
    made: dict[int, dict] = {}
    ctx.scratch.setdefault("cleanups", []).append(lambda: restore(made))
    for pk in ids:
        with transaction.atomic():
            dynamic.lock_solves(pk)
            project = Project.objects.select_related("tenant").get(pk=pk)
            solvers = dynamic.solvers(project)
            made[pk] = {"points": project.points, **{f: getattr(project, f) for f in DYNAMIC_FIELDS}}
            project.scoring = Project.Scoring.DYNAMIC
            project.decay_function = Project.Decay.LINEAR
            project.decay = 1
            project.initial_points = project.points + max(solvers - 1, 0)
            project.minimum_points = project.points // 2
            project.save()  # scoring.changes settles it: the value is the points, nothing moves
        if project.points != made[pk]["points"]:
            raise BenchError(f"{project.slug}: made dynamic at {project.points} points, not {made[pk]['points']}")
    return set(made)


def restore(made: dict[int, dict]) -> None:
    """The challenges static again at their points from before (one revalue each back to them)."""
    for pk, before in made.items():
        with transaction.atomic():
            dynamic.lock_solves(pk)
            project = Project.objects.select_related("tenant").get(pk=pk)
            solvers = dynamic.solvers(project)
            project.initial_points = before["points"] + max(solvers - 1, 0)
            project.minimum_points = min(project.minimum_points, before["points"])
            project.save()  # settles: the value (and every solver's points) back to the points from before
            for name in DYNAMIC_FIELDS:
                setattr(project, name, before[name])
            project.save()  # static at the same points: nothing is rescored
            if project.points != before["points"]:
                raise BenchError(f"{project.slug}: restored at {project.points} points, not {before['points']}")
