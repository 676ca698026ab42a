"""Teams (issue 31): what a team solve costs the database, and the team standings page.

1. The same right flag through scoring.services.submission_create, in this process, each
   its own transaction with commit: a student of a team of four in the largest class
   (which plays in teams) against a student who plays alone, alternately, each on a
   challenge opened for the scenario (so every solve is its team's first of it, the
   case that writes the team's row). Counted per solve: the statements sent (BEGIN and
   COMMIT aside) and the time spent in them (each statement's round trip, summed with
   connection.execute_wrapper); the wall time of the call beside them. Goal: a team
   solve's database time at most 1.5x an individual one's.
   When the class has too few teams of four (a dataset seeded before teams), the
   scenario turns team mode on and forms them from students playing alone, through the
   team services, and dissolves them and restores the mode afterwards.
2. The team standings page, when the URL exists: read by wrk at 8 connections as team
   members (one session each), cached, against scenario 17's template-only leaderboard
   page on the same server (goal >= 0.5x); then at the deadline, while 10 wrong flags a
   second are posted, its p95 (goal < 100 ms, as scenario 2's for /leaderboard/).
"""

import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import connection
from django.db.models import Count
from django.urls import NoReverseMatch, reverse

from bench.framework import Context, Figure, Series, timed_ms
from bench.http_load import (
    BenchError,
    LoadResult,
    Request,
    flag_challenges,
    flag_post,
    get,
    gunicorn,
    paced,
    sessions_for,
    unsolved_pairs,
    wrk,
    wrong_flag,
)
from bench.scenarios.s01_leaderboard import write_fixture
from challenges.models import Project
from scoring import services
from scoring.models import Team, TeamMembership
from scoring.teams import team_create, team_dissolve, team_join
from tenants.models import TeamMode, Tenant, User

SCENARIO = "19 Teams"
TEAM_SIZE = 4
CONNECTIONS = 8
VIEWERS = 16
FLAGS_PER_SECOND = 10
# the team standings page: the first of these URL names that resolves
PAGE_NAMES = ("scoring:team-standings", "scoring:teams")
TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def run(ctx: Context) -> list[Figure]:
    return [*solve_cost(ctx), *standings_page(ctx)]


# --- 1. a team solve's database work ------------------------------------------------------


class Statements:
    """Statements sent through Django while installed (connection.execute_wrapper), and their time."""

    def __init__(self):
        self.count = 0
        self.ms = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if sql.lstrip().split(" ", 1)[0].upper() not in TRANSACTION_CONTROL:
                self.count += 1
                self.ms += (time.perf_counter() - started) * 1000


def solve_cost(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    per_run = 2 if ctx.smoke else 10
    needed = ctx.runs * per_run + 1  # and a warm-up
    members, alone = players(ctx, tenant["id"], needed)
    challenge = fresh_challenge(ctx, tenant["id"])
    project = Project.objects.select_related("tenant").get(pk=challenge.pk)

    def solve(user: User) -> tuple[int, float, float]:
        statements = Statements()
        with connection.execute_wrapper(statements):
            wall = timed_ms(lambda: services.submission_create(user=user, project=project, flag=challenge.flag))
        return statements.count, statements.ms, wall

    solve(alone.pop())  # warm-up, and the challenge's first blood
    solve(members.pop())
    measured: dict[str, list[list[tuple]]] = {"team": [], "alone": []}
    for _ in range(ctx.runs):
        team_runs, alone_runs = [], []
        for _ in range(per_run):
            team_runs.append(solve(members.pop()))
            alone_runs.append(solve(alone.pop()))
        measured["team"].append(team_runs)
        measured["alone"].append(alone_runs)
        ctx.log(
            f"   team solve {median(team_runs, 1):.2f} ms in {median(team_runs, 0):.0f} statements, "
            f"alone {median(alone_runs, 1):.2f} ms in {median(alone_runs, 0):.0f} statements (database time)"
        )

    def series(label: str, who: str, index: int, unit: str) -> Series:
        return Series(label, [median(runs, index) for runs in measured[who]], unit)

    where = (
        f"{tenant['slug']}, in process, each solve its own transaction with commit; {per_run} solves of each "
        f"kind a run (medians), alternately, on a challenge opened for the scenario"
    )
    return [
        Figure(
            SCENARIO,
            "team solve vs individual solve: database time",
            ours=series("right flag, a member of a team of 4", "team", 1, "ms"),
            baseline=series("right flag, a student alone", "alone", 1, "ms"),
            compare="cost",
            goal_op="<=",
            goal=1.5,
            note=f"{where}; the statements' round trips summed (connection.execute_wrapper)",
        ),
        Figure(
            SCENARIO,
            "team solve vs individual solve: statements",
            ours=series("right flag, a member of a team of 4", "team", 0, "statements"),
            baseline=series("right flag, a student alone", "alone", 0, "statements"),
            compare="cost",
            goal=None,
            note=f"{where}; BEGIN, COMMIT and savepoints not counted",
        ),
        Figure(
            SCENARIO,
            "team solve vs individual solve: the whole call",
            ours=series("submission_create, a member of a team of 4", "team", 2, "ms"),
            baseline=series("submission_create, a student alone", "alone", 2, "ms"),
            compare="cost",
            goal=None,
            note=f"{where}; wall time of the call with its commit (Python, signals, audit, badges included)",
        ),
    ]


def median(runs: list[tuple], index: int) -> float:
    values = sorted(run[index] for run in runs)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


class FreshChallenge:
    def __init__(self, pk: int, slug: str, flag: str):
        self.pk, self.slug, self.flag = pk, slug, flag


def fresh_challenge(ctx: Context, tenant_id: int) -> FreshChallenge:
    """A published flag challenge nobody has solved, unpublished after the scenario."""
    flag = f"FLAG{{bench_teams_{secrets.token_hex(8)}}}"
    project = Project(
        tenant_id=tenant_id,
        name=f"Benchmark teams {secrets.token_hex(3)}",
        slug=f"bench-teams-{secrets.token_hex(4)}",
        description="Opened by the benchmark suite (scenario 19): every solve of it is its team's first.",
        category="Benchmark",
        difficulty=Project.Difficulty.BEGINNER,
        points=100,
        is_published=True,
    )
    project.set_flag(flag)
    project.save()
    ctx.scratch.setdefault("cleanups", []).append(
        lambda: Project.objects.filter(pk=project.pk).update(is_published=False)
    )
    return FreshChallenge(project.pk, project.slug, flag)


def players(ctx: Context, tenant_id: int, needed: int) -> tuple[list[User], list[User]]:
    """`needed` students each in a different team of four, and `needed` students in no team, in random order.

    Teams of four are formed (and dissolved after the scenario) when the class has too few.
    """
    tenant = Tenant.objects.get(pk=tenant_id)
    mode = tenant.team_mode
    if mode == TeamMode.OFF or tenant.team_size_max < TEAM_SIZE:
        Tenant.objects.filter(pk=tenant_id).update(team_mode=TeamMode.OPTIONAL, team_size_max=TEAM_SIZE)
        ctx.scratch.setdefault("cleanups", []).append(
            lambda: Tenant.objects.filter(pk=tenant_id).update(team_mode=mode, team_size_max=tenant.team_size_max)
        )
    full = list(
        TeamMembership.objects.for_tenant(tenant_id)
        .values("team_id")
        .annotate(n=Count("id"))
        .filter(n=TEAM_SIZE)
        .values_list("team_id", flat=True)
    )
    random.shuffle(full)
    in_teams = set(TeamMembership.objects.for_tenant(tenant_id).values_list("user_id", flat=True))
    students = User.objects.filter(tenant_id=tenant_id, is_active=True).students().order_by("?")
    loners = [u for u in students if u.pk not in in_teams]
    short = max(0, needed - len(full))
    if len(loners) < needed + short * TEAM_SIZE:
        raise BenchError(f"needs {needed + short * TEAM_SIZE} students in no team, the class has {len(loners)}")
    alone, formed = loners[:needed], form_teams(ctx, tenant_id, loners[needed : needed + short * TEAM_SIZE])
    if formed:
        ctx.log(f"   formed {len(formed)} teams of {TEAM_SIZE} for the scenario (dissolved after it)")
    chosen = full[:needed] + formed
    by_team: dict[int, list[int]] = {}
    for team_id, user_id in (
        TeamMembership.objects.for_tenant(tenant_id).filter(team_id__in=chosen).values_list("team_id", "user_id")
    ):
        by_team.setdefault(team_id, []).append(user_id)
    picked = [random.choice(by_team[team]) for team in chosen]
    users = User.objects.in_bulk(picked)
    return [users[pk] for pk in picked], alone


def form_teams(ctx: Context, tenant_id: int, students: list[User]) -> list[int]:
    """Teams of four from these students, through the team services; dissolved by an admin after the scenario."""
    admin = User.objects.filter(tenant_id=tenant_id, is_active=True).staff().order_by("pk").first()
    teams = []
    for start in range(0, len(students) - TEAM_SIZE + 1, TEAM_SIZE):
        group = students[start : start + TEAM_SIZE]
        team = team_create(user=group[0], name=f"Bench {secrets.token_hex(4)}")
        for user in group[1:]:
            team_join(user=user, code=team.invite_code)
        teams.append(team.pk)

    def dissolve() -> None:
        for team in Team.objects.filter(pk__in=teams):
            team_dissolve(team=team, actor=admin)

    ctx.scratch.setdefault("cleanups", []).append(dissolve)
    return teams


# --- 2. the team standings page -----------------------------------------------------------


def page_path() -> str | None:
    for name in PAGE_NAMES:
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return None


def skipped(reason: str) -> Figure:
    return Figure(
        SCENARIO,
        "team standings page: skipped: no team standings page",
        ours=Series("skipped", [0.0], "pages"),
        compare="absolute",
        goal=None,
        note=reason,
    )


def standings_page(ctx: Context) -> list[Figure]:
    path = page_path()
    if path is None:
        reason = f"skipped: no team standings page (none of {', '.join(PAGE_NAMES)} resolves)"
        ctx.log(f"   {reason}")
        return [skipped(reason)]
    tenant = ctx.largest
    host = tenant["domain"]
    seconds = 1 if ctx.smoke else 5
    teams = Team.objects.for_tenant(tenant["id"]).count()
    viewers = list(
        User.objects.filter(tenant_id=tenant["id"], team_memberships__isnull=False, is_active=True).order_by("?")[
            :VIEWERS
        ]
    )
    if not viewers:
        reason = f"skipped: {tenant['slug']} has no team members to read {path}"
        ctx.log(f"   {reason}")
        return [skipped(reason)]
    sessions = sessions_for(ctx, viewers)
    submitters = {s.user_id: s for s in sessions}
    challenges = {c.id: c for c in flag_challenges(tenant["id"])}
    pairs = unsolved_pairs(tenant["id"], list(submitters), list(challenges))
    if not pairs:
        extra = fresh_challenge(ctx, tenant["id"])
        challenges[extra.pk] = extra
        pairs = [(user, extra.pk) for user in submitters]
    posts = [flag_post(host, challenges[p].slug, submitters[u], wrong_flag()) for u, p in pairs]
    fixture = write_fixture(ctx, tenant["id"], viewers[0])
    pages = {
        "teams": [Request("GET", host, path, s.cookie) for s in sessions],
        "template": [Request("GET", host, "/_bench/leaderboard-template/")],
    }
    results: dict[str, list[LoadResult]] = {"teams": [], "template": [], "deadline": []}
    flags: list[LoadResult] = []
    with gunicorn(ctx, FLAG_ATTEMPT_LIMIT="1000000", BENCH_LEADERBOARD_FIXTURE=fixture) as server:
        for name, requests in pages.items():
            answer = get(server, host, requests[0].path, requests[0].cookie)
            if answer.status != 200 or b"<table" not in answer.body:
                raise BenchError(f"{name}: {requests[0].path} answered {answer.status} {answer.location}: not the page")
            if not ctx.smoke:  # warm: workers, pool, cache (the smoke run stays short)
                wrk(server, requests, seconds=1, connections=CONNECTIONS)
        for _ in range(ctx.runs):
            for name, requests in pages.items():
                result = wrk(server, requests, seconds=seconds, connections=CONNECTIONS)
                if result.bad:
                    raise BenchError(f"{name}: {result.bad} failed requests of {result.requests}: {result.statuses}")
                results[name].append(result)
            with ThreadPoolExecutor(max_workers=1) as loop:
                posting = loop.submit(paced, server, posts, per_second=FLAGS_PER_SECOND, seconds=seconds)
                read = wrk(server, pages["teams"], seconds=seconds, connections=CONNECTIONS)
                sent = posting.result()
            if read.bad or sent.bad:
                raise BenchError(f"deadline: failed requests: {path} {read.statuses}, flags {sent.statuses}")
            results["deadline"].append(read)
            flags.append(sent)
            ctx.log(
                f"   {path} {results['teams'][-1].rate:.1f} req/s, template {results['template'][-1].rate:.1f} req/s; "
                f"deadline {read.rate:.1f} req/s, p95 {read.p95_ms:.1f} ms ({sent.rate:.1f} wrong flags/s)"
            )
    size = f"{tenant['slug']} ({teams:,} teams), {len(sessions)} team members signed in, {CONNECTIONS} connections"
    return [
        Figure(
            SCENARIO,
            "team standings page, cached, vs template-only page",
            ours=Series(f"{path} (Redis warm)", [r.rate for r in results["teams"]], "req/s"),
            baseline=Series("template only", [r.rate for r in results["template"]], "req/s"),
            goal=0.5,
            note=f"{size}; baseline: scenario 17's template-only leaderboard page on the same server",
            extra={"p95_ms": [round(r.p95_ms, 1) for r in results["teams"]]},
        ),
        Figure(
            SCENARIO,
            "deadline: team standings p95",
            ours=Series(f"{path} p95 under flag load", [r.p95_ms for r in results["deadline"]], "ms"),
            compare="absolute",
            goal_op="<",
            goal=100,
            note=f"{size}; {FLAGS_PER_SECOND} wrong flags/s posted meanwhile by the same students",
            extra={"rate": [round(r.rate, 1) for r in results["deadline"]], "flags": [f.statuses for f in flags]},
        ),
    ]
