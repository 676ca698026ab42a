"""A student's rank and the ±5 rows around it, in the largest tenant.

Ours is scoring.selectors.neighbours(): the student's row and five either side, read
from the materialised leaderboards table along idx_leaderboards_tenant_points. The
baseline computes the same rows without that table: a window function ranks every
student of the tenant from the sums of their approved submissions, then the rows
around the student are picked. Each call is timed from Python (execute and fetch,
so one local round trip is included) for random students with a row.
"""

import random
import statistics

from django.db import connection

from bench.framework import Context, Figure, Series, p95, timed_ms
from scoring import selectors
from scoring.models import Leaderboard

SCENARIO = "3 My rank and neighbours"
AROUND = 5

# The same rows as neighbours(), computed from the submissions over the whole tenant.
WINDOW = """
    WITH standings AS (
        SELECT user_id, sum(points_awarded) AS points, count(*) AS solves,
               max(coalesce(graded_at, submitted_at)) AS last_scored_at,
               rank() OVER (ORDER BY sum(points_awarded) DESC) AS rank,
               row_number() OVER (ORDER BY sum(points_awarded) DESC, max(coalesce(graded_at, submitted_at)),
                                  user_id) AS n
        FROM submissions
        WHERE tenant_id = %(tenant)s AND status = 'APPROVED'
        GROUP BY user_id
    )
    SELECT s.rank, s.user_id, u.first_name, u.last_name, s.points, s.solves, s.last_scored_at
    FROM standings s JOIN users u ON u.id = s.user_id,
         (SELECT n FROM standings WHERE user_id = %(user)s) AS me
    WHERE s.n BETWEEN me.n - %(around)s AND me.n + %(around)s
    ORDER BY s.n
"""


def window_neighbours(tenant_id: int, user_id: int) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(WINDOW, {"tenant": tenant_id, "user": user_id, "around": AROUND})
        return cursor.fetchall()


def my_page(tenant_id: int, user_id: int) -> None:
    """What the leaderboard view reads, on a cache miss, to open on the student's page: their row and rank."""
    selectors.neighbours(tenant_id, user_id, around=0)


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    users = list(Leaderboard.objects.for_tenant(tenant["id"]).order_by("user_id").values_list("user_id", flat=True))
    rng = random.Random(3)
    ours_calls = 20 if ctx.smoke else 200
    window_calls = 5 if ctx.smoke else 20  # a full window per call: fewer calls keep the suite short
    # the two must agree before either is timed
    for user_id in rng.sample(users, min(5, len(users))):
        expected = [row[1] for row in window_neighbours(tenant["id"], user_id)]
        got = [s.user_id for s in selectors.neighbours(tenant["id"], user_id, AROUND)]
        if got != expected:
            raise AssertionError(f"neighbours of user {user_id}: {got} != window {expected}")
    ours_p95, ours_median, base_median, page_p95 = [], [], [], []
    for _ in range(ctx.runs):
        picked = [rng.choice(users) for _ in range(ours_calls)]
        selectors.neighbours(tenant["id"], picked[0], AROUND)  # warm up
        times = [timed_ms(lambda u=u: selectors.neighbours(tenant["id"], u, AROUND)) for u in picked]
        ours_p95.append(p95(times))
        ours_median.append(statistics.median(times))
        page_p95.append(p95([timed_ms(lambda u=u: my_page(tenant["id"], u)) for u in picked]))
        window_neighbours(tenant["id"], picked[0])
        base = [timed_ms(lambda u=u: window_neighbours(tenant["id"], u)) for u in picked[:window_calls]]
        base_median.append(statistics.median(base))
    where = f"tenant {tenant['slug']} ({len(users):,} ranked students, {tenant['submissions']:,} submissions)"
    extra = {"tenant": tenant["slug"], "ranked_students": len(users), "calls_per_run": ours_calls}
    return [
        Figure(
            SCENARIO,
            "neighbours (±5): p95 per call",
            ours=Series("selectors.neighbours p95", ours_p95),
            compare="absolute",
            goal_op="<=",
            goal=2,
            note=f"p95 of {ours_calls} random students per run, one query each, round trip included; {where}",
            extra=extra,
        ),
        Figure(
            SCENARIO,
            "neighbours (±5) vs window over the tenant",
            ours=Series("selectors.neighbours median", ours_median),
            baseline=Series("rank() over submissions", base_median),
            compare="speed",
            goal=25,
            note=f"medians of per-call times; the window baseline is timed on {window_calls} of the students "
            f"per run; both give the same rows (checked); {where}",
            extra={**extra, "window_calls_per_run": window_calls},
        ),
        Figure(
            SCENARIO,
            "leaderboard view: my row + my page (p95)",
            ours=Series("row and rank (around 0), p95", page_p95),
            compare="absolute",
            note="report: the query the leaderboard view runs, when the student's standing is not "
            "cached, to open on their page (leaderboard_neighbours with no rows around)",
            extra=extra,
        ),
    ]
