"""The rank trigger finds the moved rows' spans without joining its transition tables, and rewrites only changed ranks.

leaderboards_rank_updated() (0012) joined old_rows to new_rows on id. PL/pgSQL plans that
query once per session, for the size of the first update that fired it: in the app, one
student's row, so a nested loop. When a dynamic challenge's value moves 1,000 solvers in
one statement (scoring.dynamic), that plan costs n² (about 190 ms of a 230 ms revalue in
the benchmark, scenario 11). Now each row's span comes from one grouping of the two
transition tables: a row seen twice (same tenant) spans its old and new points; a row
seen once (it changed tenant) spans from 0 up to its points in each. The spans go to
leaderboard_rerank_spans() one per row, which merges them into islands (0016).

leaderboard_rerank() keeps each row's old rank from its one read of the span and joins
back only the rows whose rank changes.
"""

import re
from importlib import import_module

from django.db import migrations

STORED_RANKS = import_module("scoring.migrations.0012_stored_ranks")

UPDATED = """
CREATE OR REPLACE FUNCTION leaderboards_rank_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;  -- the re-ranking's own updates
    PERFORM leaderboard_rerank_spans((
        SELECT jsonb_agg(jsonb_build_object('tenant', tenant_id, 'low', CASE WHEN seen = 1 THEN 0 ELSE low END,
                                            'high', high))
        FROM (SELECT tenant_id, id, min(points) AS low, max(points) AS high, count(*) AS seen
              FROM (SELECT id, tenant_id, points FROM old_rows
                    UNION ALL SELECT id, tenant_id, points FROM new_rows) AS r
              GROUP BY tenant_id, id) AS per_row));
    RETURN NULL;
END
$$;
"""

RERANK = """
CREATE OR REPLACE FUNCTION leaderboard_rerank(p_tenant bigint, p_low integer, p_high integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    above bigint := 0;  -- students with more than p_high points
    next_up record;
    changed integer;
BEGIN
    SELECT l.rank, l.points INTO next_up FROM leaderboards l
    WHERE l.tenant_id = p_tenant AND l.points > p_high ORDER BY l.points LIMIT 1;
    IF FOUND THEN
        SELECT next_up.rank - 1 + count(*) INTO above FROM leaderboards l
        WHERE l.tenant_id = p_tenant AND l.points = next_up.points;
    END IF;
    UPDATE leaderboards l SET rank = r.rank
    FROM (SELECT span.id, span.old_rank, (above + rank() OVER (ORDER BY span.points DESC))::integer AS rank
          FROM (SELECT s.id, s.points, s.rank AS old_rank FROM leaderboards s
                WHERE s.tenant_id = p_tenant AND s.points BETWEEN p_low AND p_high) AS span) r
    WHERE l.id = r.id AND l.tenant_id = p_tenant AND r.old_rank IS DISTINCT FROM r.rank;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;
"""


def previous(name: str) -> str:
    """0012's definition of the function `name`, to put back."""
    found = re.search(rf"CREATE FUNCTION {name}\(.*?\n\$\$;\n", STORED_RANKS.RERANK, re.S)
    return found.group(0).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0016_rerank_disjoint_spans")]

    operations = [
        migrations.RunSQL(UPDATED, reverse_sql=previous("leaderboards_rank_updated")),
        migrations.RunSQL(RERANK, reverse_sql=previous("leaderboard_rerank")),
    ]
