"""Ranks stored again (the operators' plan's leaderboards.rank and chk_rank_positive), kept by the database.

Migration 0010 dropped the column because each grading rewrote, under the tenant's lock,
the rank of every student it moved past; 0011 then counted ranks on read from band
counts. A reporting tool, an export or an instructor's SQL reading leaderboards found no
rank at all. Now the database keeps the rank in the row, whoever writes the points:

- After each statement that inserts, updates or deletes leaderboards rows, a
  statement-level trigger (with the statement's transition tables) works out, per
  tenant, the span of points whose ranks can have moved: between a row's old and new
  points for an update; from 0 up to the row's points for an insert or a delete (every
  student below it moves by one). It takes the tenant's leaderboard lock (the one the
  app's writers take first, scoring.leaderboard.LEADERBOARD_LOCK) and re-ranks that span
  with one window function, offset by the students above it, read from the stored rank
  of the first row above the span (which nothing in the span can change). Only rows whose
  rank differs are written. A grading moves a student by at most a challenge's points:
  a few dozen rows; a rebuild into an empty table re-ranks the tenant once.
- The trigger's own rank updates fire it again one level down: it returns at once there.
- The band counts of 0011 (leaderboard_bands, its row triggers and
  leaderboard_students_above) go: a rank is read from the row. leaderboard_neighbours()
  reads the stored ranks too.
"""

from importlib import import_module

from django.db import migrations, models

BANDS = import_module("scoring.migrations.0011_leaderboard_bands")
LOCK = 0x56484C42  # scoring.leaderboard.LEADERBOARD_LOCK ("VHLB")

# The two reads of leaderboard_rerank(), also planned by the benchmarks (scenario 10):
# the first row above a span of points, and the rows of the span.
NEXT_ABOVE = """SELECT l.rank, l.points FROM leaderboards l
    WHERE l.tenant_id = p_tenant AND l.points > p_high ORDER BY l.points LIMIT 1"""
SPAN_ROWS = """SELECT s.id, s.points FROM leaderboards s
          WHERE s.tenant_id = p_tenant AND s.points BETWEEN p_low AND p_high"""

RERANK = f"""
CREATE FUNCTION leaderboard_rerank(p_tenant bigint, p_low integer, p_high integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    above bigint := 0;  -- students with more than p_high points
    next_up record;
    changed integer;
BEGIN
    {NEXT_ABOVE} INTO next_up;
    IF FOUND THEN
        SELECT next_up.rank - 1 + count(*) INTO above FROM leaderboards l
        WHERE l.tenant_id = p_tenant AND l.points = next_up.points;
    END IF;
    UPDATE leaderboards l SET rank = r.rank
    FROM (SELECT span.id, (above + rank() OVER (ORDER BY span.points DESC))::integer AS rank
          FROM ({SPAN_ROWS}) AS span) r
    WHERE l.id = r.id AND l.tenant_id = p_tenant AND l.rank IS DISTINCT FROM r.rank;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

CREATE FUNCTION leaderboard_rerank_spans(p_spans jsonb) RETURNS void
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

CREATE FUNCTION leaderboards_rank_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;
    PERFORM leaderboard_rerank_spans(
        (SELECT jsonb_agg(jsonb_build_object('tenant', tenant_id, 'low', 0, 'high', points)) FROM new_rows));
    RETURN NULL;
END
$$;

CREATE FUNCTION leaderboards_rank_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;
    PERFORM leaderboard_rerank_spans(
        (SELECT jsonb_agg(jsonb_build_object('tenant', tenant_id, 'low', 0, 'high', points)) FROM old_rows));
    RETURN NULL;
END
$$;

CREATE FUNCTION leaderboards_rank_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;  -- the re-ranking's own updates
    PERFORM leaderboard_rerank_spans((
        SELECT jsonb_agg(span) FROM (
            SELECT jsonb_build_object('tenant', n.tenant_id, 'low', least(o.points, n.points),
                                      'high', greatest(o.points, n.points)) AS span
            FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE n.tenant_id = o.tenant_id
            UNION ALL  -- a row moved to another tenant: left one, joined the other
            SELECT jsonb_build_object('tenant', o.tenant_id, 'low', 0, 'high', o.points)
            FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE n.tenant_id <> o.tenant_id
            UNION ALL
            SELECT jsonb_build_object('tenant', n.tenant_id, 'low', 0, 'high', n.points)
            FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE n.tenant_id <> o.tenant_id
        ) AS spans));
    RETURN NULL;
END
$$;

CREATE TRIGGER leaderboards_rank_insert AFTER INSERT ON leaderboards
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION leaderboards_rank_inserted();
CREATE TRIGGER leaderboards_rank_update AFTER UPDATE ON leaderboards
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION leaderboards_rank_updated();
CREATE TRIGGER leaderboards_rank_delete AFTER DELETE ON leaderboards
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION leaderboards_rank_deleted();

-- the ranks of the rows already there
UPDATE leaderboards l SET rank = r.rank
FROM (SELECT id, rank() OVER (PARTITION BY tenant_id ORDER BY points DESC)::integer AS rank FROM leaderboards) r
WHERE l.id = r.id AND l.rank <> r.rank;
"""

DROP_RERANK = """
DROP TRIGGER leaderboards_rank_delete ON leaderboards;
DROP TRIGGER leaderboards_rank_update ON leaderboards;
DROP TRIGGER leaderboards_rank_insert ON leaderboards;
DROP FUNCTION leaderboards_rank_updated();
DROP FUNCTION leaderboards_rank_deleted();
DROP FUNCTION leaderboards_rank_inserted();
DROP FUNCTION leaderboard_rerank_spans(jsonb);
DROP FUNCTION leaderboard_rerank(bigint, integer, integer);
"""

# 0011's leaderboard_neighbours() with its ranks read from the rows: the same walks of
# idx_leaderboards_tenant_points around the student, then each row's stored rank.
NEIGHBOURS = f"""
CREATE OR REPLACE FUNCTION leaderboard_neighbours(p_tenant bigint, p_user bigint, p_around integer)
RETURNS TABLE (rank integer, user_id bigint, first_name text, last_name text,
               points integer, solves integer, last_scored_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    me record;
BEGIN
    SELECT l.points, l.last_scored_at INTO me
    FROM leaderboards l WHERE l.tenant_id = p_tenant AND l.user_id = p_user;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT o.rank, w.user_id, w.first_name, w.last_name, w.points, w.solves, w.last_scored_at
    FROM ({BANDS.PREVIOUS.WINDOW_ROWS}) AS w
    JOIN leaderboards o ON o.tenant_id = p_tenant AND o.user_id = w.user_id
    ORDER BY w.points DESC, w.last_scored_at, w.user_id;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0011_leaderboard_bands"),
        ("tenants", "0005_rate_limit_hits"),
    ]

    operations = [
        migrations.AddField(
            model_name="leaderboard",
            name="rank",
            field=models.IntegerField(db_default=1, editable=False, help_text="Kept by the database: never set it."),
        ),
        migrations.RunSQL(RERANK, reverse_sql=DROP_RERANK),
        migrations.AddConstraint(
            model_name="leaderboard",
            constraint=models.CheckConstraint(condition=models.Q(("rank__gt", 0)), name="chk_rank_positive"),
        ),
        migrations.RunSQL(NEIGHBOURS, reverse_sql=BANDS.NEIGHBOURS),
        # the band counts go (reversed: the table, its row-level security, then its triggers, refilled)
        migrations.RunSQL(BANDS.DROP_TRIGGERS, reverse_sql=BANDS.TRIGGERS),
        migrations.RunSQL(migrations.RunSQL.noop, reverse_sql=BANDS.ENABLE_RLS),
        migrations.DeleteModel(name="LeaderboardBand"),
    ]
