"""A solve of a dynamic challenge with 1,000 earlier solvers, against a solve of a static one.

Both are scoring.services.submission_create with the right flag, in process, each its
own committed transaction, by a student of the largest class who had not solved it;
dynamic and static solves alternate. The dynamic challenge decays linearly by one point
per solver from 2,000 down to 100, so at 1,000 solvers each solve still lowers its
value and runs the whole of scoring.dynamic.settle: every earlier solver's approval
scored again and their leaderboard row moved in one statement (REVALUE), the rank
trigger re-ranking the span of points those rows cover, the automatic points badges of
the solvers who moved, one ProjectPointsChanged event. The static challenge is worth
what the dynamic one is worth at 1,000 solvers, so both solvers climb past as many
classmates (the re-ranking of their own row costs the same).

Setting up: the two flag challenges are opened for the scenario, static, at that value;
the earlier solvers solve the first through the same service (static solves: no
revalue), then it is switched to dynamic, which moves nobody's points since its value
is already right. Both are deleted afterwards (their solves and points go with them,
recorded as ProjectDeleted events), so the standings are as before. The leaderboard
table is vacuumed first, as autovacuum would have done (the machine's server may run
without it), since the earlier scenarios churn its rows.

Report-only figures break the dynamic solve down: its queries and their time against
the static solve's, and EXPLAIN ANALYZE of REVALUE at the next value (rolled back): the
update of the approvals, the update of the leaderboard rows, the rank trigger, the
rows in the span it re-ranks and the ranks that changed. REVALUE is explained twice:
as the app runs it, in a session whose statements have already fired the rank trigger
for one row (the trigger's plans are cached from that first call: every worker's
session has graded or solved something before), and with those plans made afresh
(DISCARD PLANS) for the rows at hand.
"""

import json
import secrets

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from bench.framework import Context, Figure, Series, timed_ms
from bench.http_load import BenchError, sample_students
from challenges.models import Project, dynamic_value
from scoring import dynamic, services

SCENARIO = "11 Dynamic solve"
EARLIER_SOLVERS = 1000
# LINEAR, 1 point per solver, 2,000 down to 100: the value still moves at 1,000 solvers
DECAY = {"decay_function": Project.Decay.LINEAR, "initial_points": 2000, "minimum_points": 100, "decay": 1}


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    measured = 2 * (ctx.runs + 1)  # a fresh student for every solve, warm-up included
    # students who play alone: in a class that plays in teams a team is one solver (scoring.dynamic)
    students = sample_students(tenant["id"], EARLIER_SOLVERS + measured, alone=True)
    earlier = len(students) - measured
    if earlier < 2:
        raise BenchError(f"{tenant['slug']}: {len(students)} students; the scenario needs {measured + 2}")
    solvers, solving = students[:earlier], students[earlier:]
    value = dynamic_value(
        initial=DECAY["initial_points"],
        minimum=DECAY["minimum_points"],
        decay=DECAY["decay"],
        function=DECAY["decay_function"],
        solvers=earlier,
    )
    vacuum_leaderboards(ctx)
    dynamic_one = BenchChallenge.open(ctx, tenant["id"], "dynamic", points=value)
    static_one = BenchChallenge.open(ctx, tenant["id"], "static", points=value)

    ctx.log(f"   {earlier:,} earlier solvers of {dynamic_one.project.slug} (static solves) ...")
    for user in solvers:
        dynamic_one.solve(user)
    project = dynamic_one.load()
    project.scoring = Project.Scoring.DYNAMIC
    for name, setting in DECAY.items():
        setattr(project, name, setting)
    project.save()  # scoring.changes settles it: its value with `earlier` solvers is its points, nobody moves
    if dynamic.solvers(project) != earlier or project.points != value:
        raise BenchError(f"{project.slug}: set-up left {dynamic.solvers(project)} solvers at {project.points} points")

    pairs = list(zip(solving[0::2], solving[1::2], strict=True))
    # the warm-up pair, its queries counted
    loaded = dynamic_one.load(), static_one.load()
    with CaptureQueriesContext(connection) as dynamic_queries:
        dynamic_one.solve(pairs[0][0], loaded[0])
    with CaptureQueriesContext(connection) as static_queries:
        static_one.solve(pairs[0][1], loaded[1])
    profile = {"dynamic": sql_profile(dynamic_queries), "static": sql_profile(static_queries)}
    ctx.log(f"   warm-up dynamic solve: {json.dumps(profile['dynamic'])}")

    dynamic_ms, static_ms = [], []
    for for_dynamic, for_static in pairs[1:]:
        dynamic_ms.append(dynamic_one.timed_solve(for_dynamic))
        static_ms.append(static_one.timed_solve(for_static))
    project = dynamic_one.load()
    ctx.log(
        f"   dynamic solves {[round(v, 1) for v in dynamic_ms]} ms, static {[round(v, 1) for v in static_ms]} ms "
        f"({dynamic.solvers(project)} solvers now, value {project.points})"
    )
    check_rescored(project)
    as_app = [explain_revalue(project, fresh_plans=False) for _ in range(ctx.runs)]
    fresh = [explain_revalue(project, fresh_plans=True) for _ in range(ctx.runs)]
    ctx.log(f"   REVALUE as the app runs it: {json.dumps(as_app[0])}")
    ctx.log(f"   REVALUE, plans made afresh: {json.dumps(fresh[0])}")

    where = (
        f"{tenant['slug']}: solves {earlier + 2}-{earlier + 1 + len(dynamic_ms)} of a dynamic challenge "
        f"(LINEAR, {DECAY['decay']} point per solver from {DECAY['initial_points']} down to "
        f"{DECAY['minimum_points']}) against a static one worth {value} points; "
        "scoring.services.submission_create in process, each its own transaction"
    )
    span = f"{as_app[0]['span_rows']:,} leaderboard rows in the span, {as_app[0]['ranks_changed']:,} ranks changed"
    return [
        Figure(
            SCENARIO,
            f"dynamic solve, {earlier:,} earlier solvers: database work",
            ours=Series("submission_create, dynamic challenge", dynamic_ms, "ms"),
            baseline=Series("a static solve", static_ms, "ms"),
            compare="cost",
            goal_op="<=",
            goal=5,
            note=where,
        ),
        Figure(
            SCENARIO,
            "dynamic solve: its SQL time (warm-up pair)",
            ours=Series("SQL of a dynamic solve", [profile["dynamic"]["sql_ms"]], "ms"),
            baseline=Series("of a static solve", [profile["static"]["sql_ms"]], "ms"),
            compare="cost",
            goal=None,
            note=(
                f"{profile['dynamic']['queries']} queries against {profile['static']['queries']}, timed by "
                "CaptureQueriesContext; the slowest in extra"
            ),
            extra=profile,
        ),
        Figure(
            SCENARIO,
            "dynamic solve: REVALUE, as the app runs it",
            ours=Series("REVALUE, trigger planned for 1 row", [p["total_ms"] for p in as_app], "ms"),
            baseline=Series("plans made afresh", [p["total_ms"] for p in fresh], "ms"),
            compare="cost",
            goal=None,
            note=(
                "EXPLAIN ANALYZE of scoring.dynamic.REVALUE at the next value, rolled back, after a one-row "
                "leaderboard update in the same session (as every app session has made) against after "
                f"DISCARD PLANS; {span}; parts in extra"
            ),
            extra={"as_the_app_runs_it": as_app, "plans_made_afresh": fresh},
        ),
        Figure(
            SCENARIO,
            "dynamic solve: of which the rank trigger",
            ours=Series("leaderboards_rank_update, as the app", [p["rank_trigger_ms"] for p in as_app], "ms"),
            baseline=Series("plans made afresh", [p["rank_trigger_ms"] for p in fresh], "ms"),
            compare="cost",
            goal=None,
            note=f"re-ranking the span the moved rows cover: {span}",
        ),
    ]


def vacuum_leaderboards(ctx: Context) -> None:
    """VACUUM (ANALYZE) leaderboards: small, and what autovacuum would have done after the scenarios before."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) leaderboards")
    ctx.log("   vacuumed leaderboards")


class BenchChallenge:
    """A published flag challenge of the scenario's own and its flag, deleted (with its solves) after the scenario."""

    def __init__(self, project: Project, flag: str):
        self.project = project
        self.flag = flag

    @classmethod
    def open(cls, ctx: Context, tenant_id: int, kind: str, *, points: int) -> "BenchChallenge":
        flag = f"FLAG{{bench_{secrets.token_hex(8)}}}"
        project = Project(
            tenant_id=tenant_id,
            name=f"Benchmark {kind} solve {secrets.token_hex(3)}",
            slug=f"bench-{kind}-{secrets.token_hex(4)}",
            description="Opened by the benchmark suite (scenario 11) and deleted after it.",
            category="Benchmark",
            difficulty=Project.Difficulty.BEGINNER,
            points=points,
            is_published=True,
        )
        project.set_flag(flag)
        project.save()
        opened = cls(project, flag)
        ctx.scratch.setdefault("cleanups", []).append(opened.delete)
        return opened

    def load(self) -> Project:
        """The challenge as a request loads it (its tenant joined: the access check reads it)."""
        return Project.objects.select_related("tenant").get(pk=self.project.pk)

    def solve(self, user, project: Project | None = None) -> None:
        services.submission_create(user=user, project=project or self.load(), flag=self.flag)

    def timed_solve(self, user) -> float:
        """The solve's milliseconds: the service alone, the challenge loaded before."""
        project = self.load()
        return timed_ms(lambda: services.submission_create(user=user, project=project, flag=self.flag))

    def delete(self) -> None:
        """Its solves and their points gone (recorded by scoring.changes), the points first in one revalue.

        Deleting a challenge rescores its solvers one at a time (scoring.changes), each
        update re-ranking the span of points the student falls through: with 1,000
        solvers of a challenge worth 1,000 points that takes minutes. At a value of 0
        first (one set-based revalue), each of those updates moves no points.
        """
        with transaction.atomic():
            zero = Project.objects.get(pk=self.project.pk)
            zero.scoring = Project.Scoring.DYNAMIC
            zero.initial_points = zero.minimum_points = 0
            zero.decay, zero.decay_function = 1, Project.Decay.LINEAR
            zero.save()
        Project.objects.filter(pk=self.project.pk).delete()


def check_rescored(project: Project) -> None:
    """Every approval of the challenge is worth its value: the solves revalued what they had to."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM submissions WHERE tenant_id = %s AND project_id = %s AND status = 'APPROVED'
               AND points_awarded <> (%s * score + 50) / 100""",
            [project.tenant_id, project.pk, project.points],
        )
        wrong = cursor.fetchone()[0]
    if wrong:
        raise BenchError(f"{project.slug}: {wrong} approvals not worth the value {project.points}")


def sql_profile(captured: CaptureQueriesContext) -> dict:
    """A solve's statements: how many, their time together, the slowest five (ms, start of the SQL)."""
    timed = sorted(
        ((float(q["time"]) * 1000, " ".join(q["sql"].split())[:90]) for q in captured.captured_queries), reverse=True
    )
    return {
        "queries": len(timed),
        "sql_ms": round(sum(ms for ms, _ in timed), 2),
        "slowest": [[round(ms, 2), sql] for ms, sql in timed[:5]],
    }


def explain_revalue(project: Project, *, fresh_plans: bool) -> dict:
    """REVALUE at the value one more solver would give, under EXPLAIN ANALYZE, rolled back: where its time goes.

    The rank trigger's plpgsql plans are made on its first call in a session and kept:
    either for a one-row update made first (as in every app session), or afresh for
    REVALUE's rows (DISCARD PLANS, nothing before it).
    """
    value = project.value_with(dynamic.solvers(project) + 1)
    params = {"tenant": project.tenant_id, "project": project.pk, "value": value}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id, rank FROM leaderboards WHERE tenant_id = %s", [project.tenant_id])
        ranks = dict(cursor.fetchall())
        cursor.execute(
            """SELECT min(l.points), max(l.points) FROM leaderboards l
               JOIN submissions s ON s.tenant_id = l.tenant_id AND s.user_id = l.user_id
               WHERE s.tenant_id = %(tenant)s AND s.project_id = %(project)s AND s.status = 'APPROVED'""",
            params,
        )
        low, high = cursor.fetchone()
        cursor.execute("DISCARD PLANS")
        if not fresh_plans:  # a one-row update, as an app session makes them: it fires the trigger first
            cursor.execute(
                "UPDATE leaderboards SET updated_at = now() WHERE id = (SELECT min(id) FROM leaderboards"
                " WHERE tenant_id = %s)",
                [project.tenant_id],
            )
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + dynamic.REVALUE, params)
        plan = cursor.fetchone()[0]
        plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]
        cursor.execute(
            "SELECT count(*) FROM leaderboards WHERE tenant_id = %s AND points BETWEEN %s AND %s",
            [project.tenant_id, low + min(value - project.points, 0), high + max(value - project.points, 0)],
        )
        span_rows = cursor.fetchone()[0]
        cursor.execute("SELECT id, rank FROM leaderboards WHERE tenant_id = %s", [project.tenant_id])
        ranks_changed = sum(1 for pk, rank in cursor.fetchall() if ranks.get(pk) != rank)
        transaction.set_rollback(True)
    cursor = connection.cursor()
    cursor.execute("DISCARD PLANS")  # the next statements plan afresh, whatever was cached in the rollback
    cursor.close()
    updates = {
        node["Relation Name"]: node["Actual Total Time"]
        for node in _nodes(plan["Plan"])
        if node.get("Node Type") == "ModifyTable"
    }
    triggers = {t["Trigger Name"]: t["Time"] for t in plan.get("Triggers", [])}
    return {
        "value": value,
        "total_ms": round(plan["Execution Time"], 2),
        "update_submissions_ms": round(updates.get("submissions", 0.0), 2),
        "update_leaderboards_ms": round(updates.get("leaderboards", 0.0), 2),
        "rank_trigger_ms": round(triggers.get("leaderboards_rank_update", 0.0), 2),
        "span_rows": span_rows,
        "ranks_changed": ranks_changed,
    }


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)
