"""leaderboard_bands: students per band of 100 points, so a rank counts a band, not the board.

A rank is one more than the number of the tenant's students with more points. Counted
along idx_leaderboards_tenant_points, that walked one index entry per student above:
about 1.3 ms for the last of 7,213 students, most of leaderboard_neighbours()' time.
Now leaderboard_students_above() adds up the counts of the bands above the student's
(a few dozen rows) and counts inside the student's own band (a few hundred entries at
most).

Row triggers on leaderboards keep the counts: an insert adds to its band, a delete
takes away, and an update that moves a row to another band (or tenant) does both, the
lower band first so that two such updates never wait on each other in opposite order.
An update within one band fires nothing (the trigger's WHEN). A truncate empties the
bands. The gradings that write leaderboards already hold the tenant's leaderboard lock.
A decrement never inserts: when a tenant is deleted its bands may go first.

leaderboard_neighbours() (0010) now ranks its first row with the function. The table is
tenant-owned: it gets the row-level security of every tenant table (vulhub 0001).
"""

from importlib import import_module

import django.db.models.deletion
from django.db import migrations, models

PREVIOUS = import_module("scoring.migrations.0010_ranks_read_not_stored")
WIDTH = 100  # scoring.models.BAND_POINTS

RULE = "tenant_id = vulhub_current_tenant() OR vulhub_rls_bypass()"

ENABLE_RLS = f"""
ALTER TABLE leaderboard_bands ENABLE ROW LEVEL SECURITY;
ALTER TABLE leaderboard_bands FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON leaderboard_bands USING ({RULE}) WITH CHECK ({RULE});
"""

DISABLE_RLS = """
DROP POLICY tenant_isolation ON leaderboard_bands;
ALTER TABLE leaderboard_bands NO FORCE ROW LEVEL SECURITY;
ALTER TABLE leaderboard_bands DISABLE ROW LEVEL SECURITY;
"""

# The two halves of leaderboard_students_above(), also planned by the benchmarks (scenario 10)
BANDS_ABOVE = f"""SELECT sum(b.students) FROM leaderboard_bands b
                     WHERE b.tenant_id = p_tenant AND b.band > p_points / {WIDTH}"""
ROWS_IN_BAND = f"""SELECT count(*) FROM leaderboards l
            WHERE l.tenant_id = p_tenant AND l.points > p_points AND l.points < (p_points / {WIDTH} + 1) * {WIDTH}"""

TRIGGERS = f"""
CREATE FUNCTION leaderboard_bands_add(p_tenant bigint, p_band integer, p_students integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_students > 0 THEN
        INSERT INTO leaderboard_bands AS b (tenant_id, band, students) VALUES (p_tenant, p_band, p_students)
        ON CONFLICT (tenant_id, band) DO UPDATE SET students = b.students + EXCLUDED.students;
    ELSE
        UPDATE leaderboard_bands SET students = students + p_students
        WHERE tenant_id = p_tenant AND band = p_band;
    END IF;
END
$$;

CREATE FUNCTION leaderboards_count_bands() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM leaderboard_bands_add(NEW.tenant_id, NEW.points / {WIDTH}, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM leaderboard_bands_add(OLD.tenant_id, OLD.points / {WIDTH}, -1);
    ELSIF (OLD.tenant_id, OLD.points / {WIDTH}) < (NEW.tenant_id, NEW.points / {WIDTH}) THEN
        PERFORM leaderboard_bands_add(OLD.tenant_id, OLD.points / {WIDTH}, -1);
        PERFORM leaderboard_bands_add(NEW.tenant_id, NEW.points / {WIDTH}, 1);
    ELSE
        PERFORM leaderboard_bands_add(NEW.tenant_id, NEW.points / {WIDTH}, 1);
        PERFORM leaderboard_bands_add(OLD.tenant_id, OLD.points / {WIDTH}, -1);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION leaderboards_truncate_bands() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM leaderboard_bands;
    RETURN NULL;
END
$$;

CREATE TRIGGER leaderboards_bands_insert AFTER INSERT ON leaderboards
FOR EACH ROW EXECUTE FUNCTION leaderboards_count_bands();
CREATE TRIGGER leaderboards_bands_update AFTER UPDATE OF tenant_id, points ON leaderboards
FOR EACH ROW WHEN (OLD.tenant_id <> NEW.tenant_id OR OLD.points / {WIDTH} <> NEW.points / {WIDTH})
EXECUTE FUNCTION leaderboards_count_bands();
CREATE TRIGGER leaderboards_bands_delete AFTER DELETE ON leaderboards
FOR EACH ROW EXECUTE FUNCTION leaderboards_count_bands();
CREATE TRIGGER leaderboards_bands_truncate AFTER TRUNCATE ON leaderboards
FOR EACH STATEMENT EXECUTE FUNCTION leaderboards_truncate_bands();

CREATE FUNCTION leaderboard_students_above(p_tenant bigint, p_points integer) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(({BANDS_ABOVE}), 0)
         + ({ROWS_IN_BAND})
$$;

INSERT INTO leaderboard_bands (tenant_id, band, students)
SELECT tenant_id, points / {WIDTH}, count(*) FROM leaderboards GROUP BY 1, 2;
"""

DROP_TRIGGERS = """
DROP FUNCTION leaderboard_students_above(bigint, integer);
DROP TRIGGER leaderboards_bands_truncate ON leaderboards;
DROP TRIGGER leaderboards_bands_delete ON leaderboards;
DROP TRIGGER leaderboards_bands_update ON leaderboards;
DROP TRIGGER leaderboards_bands_insert ON leaderboards;
DROP FUNCTION leaderboards_truncate_bands();
DROP FUNCTION leaderboards_count_bands();
DROP FUNCTION leaderboard_bands_add(bigint, integer, integer);
"""

COUNT_ABOVE = """SELECT count(*) INTO before_first FROM leaderboards o
            WHERE o.tenant_id = p_tenant AND o.points > r.points;"""
assert COUNT_ABOVE in PREVIOUS.CREATE
NEIGHBOURS = PREVIOUS.CREATE.replace(COUNT_ABOVE, "before_first := leaderboard_students_above(p_tenant, r.points);")


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0010_ranks_read_not_stored"),
        ("tenants", "0005_rate_limit_hits"),
        ("vulhub", "0001_row_level_security"),  # the policy's functions
    ]

    operations = [
        migrations.CreateModel(
            name="LeaderboardBand",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("band", models.IntegerField()),
                ("students", models.IntegerField(default=0)),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "db_table": "leaderboard_bands",
                "constraints": [
                    models.UniqueConstraint(fields=("tenant", "band"), name="uniq_leaderboard_bands_tenant_band"),
                    models.CheckConstraint(
                        condition=models.Q(("band__gte", 0), ("students__gte", 0)),
                        name="chk_leaderboard_bands_positive",
                    ),
                ],
            },
        ),
        migrations.RunSQL(ENABLE_RLS, reverse_sql=DISABLE_RLS),
        migrations.RunSQL(TRIGGERS, reverse_sql=DROP_TRIGGERS),
        migrations.RunSQL(NEIGHBOURS, reverse_sql=PREVIOUS.CREATE),
    ]
