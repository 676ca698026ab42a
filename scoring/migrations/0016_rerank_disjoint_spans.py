"""The rank trigger re-ranks each disjoint span of points that moved, when there are a few, not one from the lowest to the highest.

Migration 0012's leaderboard_rerank_spans() merged a statement's spans into one per
tenant: from the lowest changed points to the highest. A statement that moves many
students by a little (a dynamic challenge's value falling by a few points for its 1,000
solvers: scoring.dynamic) then re-ranked nearly the whole board. Now the spans are merged
only where they overlap (gaps and islands), and each island is re-ranked on its own, from
the top of the board down:

- a row between two islands keeps its rank: every changed row moved within its own
  island, so no row crossed it (an inserted or deleted row's island runs from 0 up to
  its points, so nothing below it is a gap);
- an island is re-ranked from the stored rank of the first row above it, which is
  either in a gap (right, as above) or in an island re-ranked just before (from the top
  down): right too.

Each island costs a call of leaderboard_rerank() (three statements). Past MAX_ISLANDS in
a tenant, one span from the lowest to the highest costs less (a dynamic challenge's
1,000 solvers spread over the board make hundreds of islands: benchmark scenario 11),
so the tenant gets one span, as before.

Tenants are still taken in one order, each under its leaderboard lock.
"""

from django.db import migrations

LOCK = 0x56484C42  # scoring.leaderboard.LEADERBOARD_LOCK ("VHLB")
MAX_ISLANDS = 8

DISJOINT = f"""
CREATE OR REPLACE FUNCTION leaderboard_rerank_spans(p_spans jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    span record;
    locked bigint;
BEGIN
    FOR span IN
        WITH spans AS (
            SELECT (s->>'tenant')::bigint AS tenant, (s->>'low')::int AS low, (s->>'high')::int AS high
            FROM jsonb_array_elements(p_spans) s
        ),
        marked AS (  -- 1 where a span starts above every span before it: a new island
            SELECT tenant, low, high,
                   CASE WHEN low <= max(high) OVER (PARTITION BY tenant ORDER BY low, high
                                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                        THEN 0 ELSE 1 END AS starts
            FROM spans
        ),
        islands AS (
            SELECT tenant, low, high, sum(starts) OVER (PARTITION BY tenant ORDER BY low, high) AS island
            FROM marked
        ),
        merged AS (
            SELECT tenant, min(low) AS low, max(high) AS high, count(*) OVER (PARTITION BY tenant) AS n_islands
            FROM islands GROUP BY tenant, island
        )
        SELECT tenant, low, high FROM merged WHERE n_islands <= {MAX_ISLANDS}
        UNION ALL  -- many islands: one span costs less than a call each
        SELECT tenant, min(low), max(high) FROM merged WHERE n_islands > {MAX_ISLANDS} GROUP BY tenant
        ORDER BY 1, 3 DESC  -- tenants in one order: no deadlock; each from the top down
    LOOP
        IF locked IS DISTINCT FROM span.tenant THEN
            PERFORM pg_advisory_xact_lock({LOCK}, span.tenant::integer);
            locked := span.tenant;
        END IF;
        PERFORM leaderboard_rerank(span.tenant, span.low, span.high);
    END LOOP;
END
$$;
"""

ONE_SPAN = f"""
CREATE OR REPLACE FUNCTION leaderboard_rerank_spans(p_spans jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    span record;
BEGIN
    FOR span IN
        SELECT (s->>'tenant')::bigint AS tenant, min((s->>'low')::int) AS low, max((s->>'high')::int) AS high
        FROM jsonb_array_elements(p_spans) s GROUP BY 1 ORDER BY 1  -- tenants in one order: no deadlock
    LOOP
        PERFORM pg_advisory_xact_lock({LOCK}, span.tenant::integer);
        PERFORM leaderboard_rerank(span.tenant, span.low, span.high);
    END LOOP;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("scoring", "0015_hint_unlocks")]

    operations = [migrations.RunSQL(DISJOINT, reverse_sql=ONE_SPAN)]
