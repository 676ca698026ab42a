"""Ranks are read, not stored: a grading writes the student's row and nothing else.

Keeping a rank column current made each grading rewrite the rank of every student it
moved past (hundreds of rows at the top of a busy class, under the tenant's lock). A
rank is one more than the number of students with more points; pages count it along
idx_leaderboards_tenant_points (scoring.selectors, LeaderboardQuerySet.with_rank).

leaderboard_neighbours() now computes the ranks of the rows it returns: it counts the
students above the first row once, then ranks the rest by position.
"""

from importlib import import_module

from django.db import migrations

PREVIOUS = import_module("scoring.migrations.0009_leaderboard_neighbours_function")


def _walk(where: str, order: str) -> str:
    return f"""
            (SELECT l.user_id, u.first_name::text AS first_name, u.last_name::text AS last_name,
                    l.points, l.solves, l.last_scored_at
             FROM leaderboards l JOIN users u ON u.id = l.user_id AND u.tenant_id = l.tenant_id
             WHERE l.tenant_id = p_tenant AND {where}
             ORDER BY {order} LIMIT p_around)"""


UP, DOWN = "l.points, l.last_scored_at DESC, l.user_id DESC", "l.points DESC, l.last_scored_at, l.user_id"

# The student's row and p_around rows either side, in board order: four short walks of
# idx_leaderboards_tenant_points from the student's exact position (ties just before and
# after it, then more and fewer points), each side cut to the p_around nearest.
WINDOW_ROWS = f"""
    SELECT * FROM (
        SELECT * FROM ({_walk("l.points = me.points AND (l.last_scored_at, l.user_id) < (me.last_scored_at, p_user)", UP)}
            UNION ALL {_walk("l.points > me.points", UP)}
        ) AS a ORDER BY points, last_scored_at DESC, user_id DESC LIMIT p_around
    ) AS above
    UNION ALL
    SELECT l.user_id, u.first_name::text, u.last_name::text, l.points, l.solves, l.last_scored_at
    FROM leaderboards l JOIN users u ON u.id = l.user_id AND u.tenant_id = l.tenant_id
    WHERE l.tenant_id = p_tenant AND l.user_id = p_user
    UNION ALL
    SELECT * FROM (
        SELECT * FROM ({_walk("l.points = me.points AND (l.last_scored_at, l.user_id) > (me.last_scored_at, p_user)", DOWN)}
            UNION ALL {_walk("l.points < me.points", DOWN)}
        ) AS b ORDER BY points DESC, last_scored_at, user_id LIMIT p_around
    ) AS below
    ORDER BY points DESC, last_scored_at, user_id
"""

CREATE = rf"""
CREATE OR REPLACE FUNCTION leaderboard_neighbours(p_tenant bigint, p_user bigint, p_around integer)
RETURNS TABLE (rank integer, user_id bigint, first_name text, last_name text,
               points integer, solves integer, last_scored_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    me record;
    r record;
    pos integer := 0;
    before_first bigint;  -- students listed before the first row returned
    previous integer;
BEGIN
    SELECT l.points, l.last_scored_at INTO me
    FROM leaderboards l WHERE l.tenant_id = p_tenant AND l.user_id = p_user;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR r IN {WINDOW_ROWS} LOOP
        pos := pos + 1;
        IF pos = 1 THEN
            SELECT count(*) INTO before_first FROM leaderboards o
            WHERE o.tenant_id = p_tenant AND o.points > r.points;
            rank := before_first + 1;  -- ties share the rank of the first of their group
            SELECT before_first + count(*) INTO before_first FROM leaderboards o
            WHERE o.tenant_id = p_tenant AND o.points = r.points
              AND (o.last_scored_at, o.user_id) < (r.last_scored_at, r.user_id);
        ELSIF r.points <> previous THEN
            rank := before_first + pos;
        END IF;
        previous := r.points;
        user_id := r.user_id;
        first_name := r.first_name;
        last_name := r.last_name;
        points := r.points;
        solves := r.solves;
        last_scored_at := r.last_scored_at;
        RETURN NEXT;
    END LOOP;
END
$$;
"""

# Back to stored ranks: fill the restored column before its check comes back.
STORE_RANKS = """
    UPDATE leaderboards l SET rank = r.rank
    FROM (SELECT id, rank() OVER (PARTITION BY tenant_id ORDER BY points DESC) AS rank FROM leaderboards) r
    WHERE r.id = l.id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0009_leaderboard_neighbours_function"),
    ]

    operations = [
        migrations.RunSQL(CREATE, reverse_sql=PREVIOUS.CREATE.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")),
        migrations.RemoveConstraint(model_name="leaderboard", name="chk_rank_positive"),
        migrations.RunSQL(migrations.RunSQL.noop, reverse_sql=STORE_RANKS),
        migrations.RemoveField(model_name="leaderboard", name="rank"),
    ]
