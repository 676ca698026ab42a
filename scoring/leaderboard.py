"""The materialised leaderboard: kept current by each grading, rebuilt on demand.

Every write takes the tenant's leaderboard lock (held until commit), so concurrent
gradings of one tenant apply one after the other; the database's rank trigger takes the
same lock for writes that come another way. Ranks are competition ranks (1, 2, 2, 4),
one more than the number of students with more points, stored in the rows and kept by
that trigger (migration scoring 0012); equal points are listed by who reached them
first. A student has a row while they have at least one approved submission.
"""

import logging

from django.db import connection, transaction

from vulhub.lib import metrics
from vulhub.lib.tenant_cache import TenantCache

logger = logging.getLogger(__name__)

# advisory lock class of the per-tenant leaderboard lock ("VHLB")
LEADERBOARD_LOCK = 0x56484C42
# the tenant's cached pages and standings (scoring.selectors); every write bumps its version on commit
CACHE = TenantCache("leaderboard", seconds=300, counter=metrics.LEADERBOARD_CACHE)

# What a student's approved submission of a challenge counts: its points less the costs of
# the hints they unlocked on that challenge, never below zero (scoring.hints).
NET_POINTS = "greatest(s.points_awarded - coalesce(h.cost, 0), 0)"

# One student's totals from their approved submissions (at most one per challenge).
STUDENT_TOTALS = f"""
    SELECT coalesce(sum({NET_POINTS}), 0)::int AS points, count(*) AS count,
           max(coalesce(s.graded_at, s.submitted_at)) AS last_scored_at
    FROM submissions s
    LEFT JOIN LATERAL (
        SELECT sum(u.cost) AS cost FROM hint_unlocks u
        WHERE u.tenant_id = s.tenant_id AND u.user_id = s.user_id AND u.project_id = s.project_id
    ) AS h ON true
    WHERE s.tenant_id = %(tenant)s AND s.user_id = %(user)s AND s.status = 'APPROVED'
"""  # noqa: S608  (constant SQL)

# A tenant's approved submissions (s), each with the hint costs (h.cost) its student paid on its challenge.
APPROVED_WITH_HINT_COSTS = """
    FROM submissions s
    LEFT JOIN (
        SELECT user_id, project_id, sum(cost) AS cost FROM hint_unlocks
        WHERE tenant_id = %(tenant)s GROUP BY user_id, project_id
    ) AS h ON h.user_id = s.user_id AND h.project_id = s.project_id
    WHERE s.tenant_id = %(tenant)s AND s.status = 'APPROVED'
"""

# The whole standings of a tenant, from the approved submissions of its students.
STANDINGS = f"""
    SELECT s.user_id, sum({NET_POINTS})::int AS points, count(*) AS solves,
           max(coalesce(s.graded_at, s.submitted_at)) AS last_scored_at
    {APPROVED_WITH_HINT_COSTS}
    GROUP BY s.user_id
"""  # noqa: S608  (constant SQL)


def lock_tenant(tenant_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LEADERBOARD_LOCK, tenant_id])


def update_student(*, tenant_id: int, user_id: int) -> None:
    """Refresh one student's row from their submissions (one statement; no other row changes).

    The row goes when the student has no approved submission left (after a regrade).
    """
    lock_tenant(tenant_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH totals AS ({STUDENT_TOTALS}),
                 unranked AS (
                     DELETE FROM leaderboards
                     WHERE tenant_id = %(tenant)s AND user_id = %(user)s AND (SELECT count FROM totals) = 0
                 )
            INSERT INTO leaderboards (tenant_id, user_id, points, solves, last_scored_at, updated_at)
            SELECT %(tenant)s, %(user)s, t.points, t.count, t.last_scored_at, now()
            FROM totals AS t
            WHERE t.count > 0
            ON CONFLICT (tenant_id, user_id) DO UPDATE
            SET points = EXCLUDED.points, solves = EXCLUDED.solves,
                last_scored_at = EXCLUDED.last_scored_at, updated_at = now()
            """,  # noqa: S608  (constant SQL, values are parameters)
            {"tenant": tenant_id, "user": user_id},
        )
    CACHE.invalidate_on_commit(tenant_id)


# Bring a tenant's table to `source` (user_id, points, solves, last_scored_at),
# writing only the rows that differ: a rebuild of a correct table changes nothing.
SYNC = """
    WITH source AS MATERIALIZED (
        -- the whole standings: each row's final rank, written with it (the rank trigger then finds it right)
        SELECT s.*, rank() OVER (ORDER BY s.points DESC)::int AS rank FROM ({source}) AS s
    ),
    current AS MATERIALIZED (
        SELECT user_id, points, solves, last_scored_at FROM leaderboards WHERE tenant_id = %(tenant)s
    ),
    changed AS (
        SELECT s.* FROM source s LEFT JOIN current c ON c.user_id = s.user_id
        WHERE c.user_id IS NULL
           OR (c.points, c.solves, c.last_scored_at) IS DISTINCT FROM (s.points, s.solves, s.last_scored_at)
    ),
    upserted AS (
        INSERT INTO leaderboards AS l (tenant_id, user_id, points, solves, last_scored_at, rank, updated_at)
        SELECT %(tenant)s, user_id, points, solves, last_scored_at, rank, now() FROM changed
        ON CONFLICT (tenant_id, user_id) DO UPDATE
        SET points = EXCLUDED.points, solves = EXCLUDED.solves, last_scored_at = EXCLUDED.last_scored_at,
            rank = EXCLUDED.rank, updated_at = now()
        WHERE (l.points, l.solves, l.last_scored_at)
              IS DISTINCT FROM (EXCLUDED.points, EXCLUDED.solves, EXCLUDED.last_scored_at)
        RETURNING 1
    ),
    removed AS (
        DELETE FROM leaderboards l
        WHERE l.tenant_id = %(tenant)s
          AND l.user_id IN (SELECT c.user_id FROM current c LEFT JOIN source s USING (user_id)
                            WHERE s.user_id IS NULL)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM source), (SELECT count(*) FROM upserted), (SELECT count(*) FROM removed)
"""

FROM_ROWS = """
    SELECT r.user_id, r.points, r.solves, r.last_scored_at
    FROM unnest(%(users)s::bigint[], %(points)s::int[], %(solves)s::int[], %(scored)s::timestamptz[])
         AS r (user_id, points, solves, last_scored_at)
"""


# Set the tenant's ranks to a fresh window-function rank. The trigger keeps them; this
# repairs them if something went around it (a load with triggers disabled, a hand edit
# as the owner with session_replication_role = replica). Answers how many rows were off.
REPAIR_RANKS = """
    WITH fresh AS (
        SELECT id, rank() OVER (ORDER BY points DESC)::int AS rank FROM leaderboards WHERE tenant_id = %(tenant)s
    ),
    fixed AS (
        UPDATE leaderboards l SET rank = fresh.rank FROM fresh
        WHERE l.id = fresh.id AND l.tenant_id = %(tenant)s AND l.rank <> fresh.rank
        RETURNING 1
    )
    SELECT count(*) FROM fixed
"""


def sync(tenant_id: int, source: str, params: dict, work_mem: str | None = None) -> tuple[int, int, int]:
    """(rows, rows written, rows removed) after syncing the tenant's table to `source`, ranks checked."""
    with transaction.atomic():
        lock_tenant(tenant_id)
        with connection.cursor() as cursor:
            if work_mem:
                cursor.execute("SELECT set_config('work_mem', %s, true)", [work_mem])
            cursor.execute(SYNC.format(source=source), {"tenant": tenant_id, **params})
            counts = cursor.fetchone()
            cursor.execute(REPAIR_RANKS, {"tenant": tenant_id})
            ranks_off = cursor.fetchone()[0]
        if ranks_off:
            logger.warning("leaderboard ranks of tenant %s were off in %s row(s): repaired", tenant_id, ranks_off)
        if counts[1] or counts[2] or ranks_off:
            CACHE.invalidate_on_commit(tenant_id)
    return counts


def rebuild(tenant_id: int) -> tuple[int, int, int]:
    """Recompute a tenant's table from its submissions: (rows, rows written, rows removed)."""
    return sync(tenant_id, STANDINGS, {})


def replace(tenant_id: int, rows: list[tuple]) -> tuple[int, int, int]:
    """Set a tenant's table to computed (user_id, points, solves, last_scored_at) rows."""
    params = {
        "users": [r[0] for r in rows],
        "points": [r[1] for r in rows],
        "solves": [r[2] for r in rows],
        "scored": [r[3] for r in rows],
    }
    return sync(tenant_id, FROM_ROWS, params)
