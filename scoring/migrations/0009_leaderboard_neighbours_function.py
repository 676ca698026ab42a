"""leaderboard_neighbours(): a student's leaderboard row and the rows around it, in the database.

A PL/pgSQL function rather than a statement sent each time: its statements are planned
once per connection and reused, and planning five index walks joined to users (~2 ms)
costs ten times more than running them (~0.2 ms). The plan is the generic one from the
first call on (plan_cache_mode): every walk is an index range cut short by a LIMIT, so
no value makes another plan better, and without the setting PostgreSQL would go on
planning each call. It runs with the caller's rights.
"""

from django.db import migrations

# The rows around the student: four short walks of idx_leaderboards_tenant_points from
# the student's exact position (ties just before and after it, then more and fewer
# points) and the student's own row. The caller orders them and keeps p_around either side.
WALKS = """
    (SELECT l.rank, l.user_id, u.first_name::text, u.last_name::text, l.points, l.solves, l.last_scored_at
     FROM leaderboards l JOIN users u ON u.id = l.user_id AND u.tenant_id = l.tenant_id
     WHERE l.tenant_id = p_tenant AND l.points = me.points
       AND (l.last_scored_at, l.user_id) < (me.last_scored_at, p_user)
     ORDER BY l.points, l.last_scored_at DESC, l.user_id DESC LIMIT p_around)
    UNION ALL
    (SELECT l.rank, l.user_id, u.first_name::text, u.last_name::text, l.points, l.solves, l.last_scored_at
     FROM leaderboards l JOIN users u ON u.id = l.user_id AND u.tenant_id = l.tenant_id
     WHERE l.tenant_id = p_tenant AND l.points > me.points
     ORDER BY l.points, l.last_scored_at DESC, l.user_id DESC LIMIT p_around)
    UNION ALL
    (SELECT l.rank, l.user_id, u.first_name::text, u.last_name::text, l.points, l.solves, l.last_scored_at
     FROM leaderboards l JOIN users u ON u.id = l.user_id AND u.tenant_id = l.tenant_id
     WHERE l.tenant_id = p_tenant AND l.user_id = p_user)
    UNION ALL
    (SELECT l.rank, l.user_id, u.first_name::text, u.last_name::text, l.points, l.solves, l.last_scored_at
     FROM leaderboards l JOIN users u ON u.id = l.user_id AND u.tenant_id = l.tenant_id
     WHERE l.tenant_id = p_tenant AND l.points = me.points
       AND (l.last_scored_at, l.user_id) > (me.last_scored_at, p_user)
     ORDER BY l.points DESC, l.last_scored_at, l.user_id LIMIT p_around)
    UNION ALL
    (SELECT l.rank, l.user_id, u.first_name::text, u.last_name::text, l.points, l.solves, l.last_scored_at
     FROM leaderboards l JOIN users u ON u.id = l.user_id AND u.tenant_id = l.tenant_id
     WHERE l.tenant_id = p_tenant AND l.points < me.points
     ORDER BY l.points DESC, l.last_scored_at, l.user_id LIMIT p_around)
"""

CREATE = rf"""
CREATE FUNCTION leaderboard_neighbours(p_tenant bigint, p_user bigint, p_around integer)
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
    {WALKS};
END
$$;
"""

DROP = "DROP FUNCTION leaderboard_neighbours(bigint, bigint, integer);"


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0008_drop_tenant_only_index"),
    ]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
