"""The materialised leaderboard: kept current by each grading, rebuilt on demand.

Every write takes the tenant's leaderboard lock (held until commit), so concurrent
gradings of one tenant apply one after the other and ranks are never computed from
a half-applied state. Ranks are competition ranks (1, 2, 2, 4) from one window-
function statement; equal points are listed by who reached them first. A student
has a row while they have at least one approved submission.
"""

from django.core.cache import cache
from django.db import connection, transaction

# advisory lock class of the per-tenant leaderboard lock ("VHLB")
LEADERBOARD_LOCK = 0x56484C42
CACHE_VERSION_KEY = "leaderboard:{tenant_id}:version"

# One student's totals from their approved submissions (at most one per challenge).
STUDENT_TOTALS = """
    SELECT coalesce(sum(points_awarded), 0) AS points, count(*) AS count,
           max(coalesce(graded_at, submitted_at)) AS last_scored_at
    FROM submissions
    WHERE tenant_id = %(tenant)s AND user_id = %(user)s AND status = 'APPROVED'
"""

RERANK = """
    UPDATE leaderboards AS l SET rank = r.rank
    FROM (SELECT id, rank() OVER (ORDER BY points DESC) AS rank FROM leaderboards WHERE tenant_id = %(tenant)s) AS r
    WHERE l.id = r.id AND l.rank IS DISTINCT FROM r.rank
"""

# The whole standings of a tenant, from the approved submissions of its students.
STANDINGS = """
    SELECT user_id, sum(points_awarded) AS points, count(*) AS solves,
           max(coalesce(graded_at, submitted_at)) AS last_scored_at,
           rank() OVER (ORDER BY sum(points_awarded) DESC) AS rank
    FROM submissions
    WHERE tenant_id = %(tenant)s AND status = 'APPROVED'
    GROUP BY user_id
"""


def lock_tenant(tenant_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LEADERBOARD_LOCK, tenant_id])


def invalidate_cache_on_commit(tenant_id: int) -> None:
    def bump():
        key = CACHE_VERSION_KEY.format(tenant_id=tenant_id)
        try:
            cache.incr(key)
        except ValueError:  # no version yet
            cache.set(key, 2, timeout=None)

    transaction.on_commit(bump)


def cache_version(tenant_id: int) -> int:
    return cache.get_or_set(CACHE_VERSION_KEY.format(tenant_id=tenant_id), 1, timeout=None)


def update_student(*, tenant_id: int, user_id: int) -> None:
    """Refresh one student's row from their submissions, then the tenant's ranks (two statements).

    The row goes when the student has no approved submission left (after a regrade).
    """
    lock_tenant(tenant_id)
    params = {"tenant": tenant_id, "user": user_id}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH totals AS ({STUDENT_TOTALS}),
                 unranked AS (
                     DELETE FROM leaderboards
                     WHERE tenant_id = %(tenant)s AND user_id = %(user)s AND (SELECT count FROM totals) = 0
                 )
            INSERT INTO leaderboards (tenant_id, user_id, points, solves, last_scored_at, rank, updated_at)
            SELECT %(tenant)s, %(user)s, t.points, t.count, t.last_scored_at, 1, now()
            FROM totals AS t
            WHERE t.count > 0
            ON CONFLICT (tenant_id, user_id) DO UPDATE
            SET points = EXCLUDED.points, solves = EXCLUDED.solves,
                last_scored_at = EXCLUDED.last_scored_at, updated_at = now()
            """,  # noqa: S608  (constant SQL, values are parameters)
            params,
        )
        cursor.execute(RERANK, params)
    invalidate_cache_on_commit(tenant_id)


def rebuild(tenant_id: int) -> int:
    """Recompute a tenant's whole table from submissions; returns the number of rows."""
    with transaction.atomic():
        lock_tenant(tenant_id)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM leaderboards WHERE tenant_id = %s", [tenant_id])
            cursor.execute(
                f"""
                INSERT INTO leaderboards (tenant_id, user_id, points, solves, last_scored_at, rank, updated_at)
                SELECT %(tenant)s, user_id, points, solves, last_scored_at, rank, now()
                FROM ({STANDINGS}) AS standings
                """,  # noqa: S608
                {"tenant": tenant_id},
            )
            count = cursor.rowcount
        invalidate_cache_on_commit(tenant_id)
    return count


def replace(tenant_id: int, rows: list[tuple]) -> int:
    """Write a tenant's table from computed (user_id, points, solves, last_scored_at) rows."""
    with transaction.atomic():
        lock_tenant(tenant_id)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM leaderboards WHERE tenant_id = %s", [tenant_id])
            cursor.execute(
                """
                INSERT INTO leaderboards (tenant_id, user_id, points, solves, last_scored_at, rank, updated_at)
                SELECT %s, r.user_id, r.points, r.solves, r.last_scored_at,
                       rank() OVER (ORDER BY r.points DESC), now()
                FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::timestamptz[])
                     AS r (user_id, points, solves, last_scored_at)
                """,
                [
                    tenant_id,
                    [r[0] for r in rows],
                    [r[1] for r in rows],
                    [r[2] for r in rows],
                    [r[3] for r in rows],
                ],
            )
        invalidate_cache_on_commit(tenant_id)
    return len(rows)
