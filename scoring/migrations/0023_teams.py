"""Teams (scoring.teams): teams, their members, the team each answer and hint unlock was made for, team standings.

- teams, team_memberships and team_leaderboards are tenant-owned: forced row-level
  security with the tenant_isolation policy; every reference to a team, a student or a
  team's row is a composite foreign key to a row of the same tenant.
- team_leaderboards keeps its ranks in the database as leaderboards does (0012): after
  each statement that writes it, a statement-level trigger re-ranks, per tenant it
  touched and under the tenant's leaderboard lock, the span of points between the
  changed rows' lowest and highest points (from 0 when a row came or went), offset by
  the teams above the span, with one window function; only rows whose rank changed are
  written. A class has at most a few thousand teams, so one span per tenant is enough.
"""

import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


RULE = "tenant_id = (SELECT vulhub_current_tenant())"
LOCK = 0x56484C42  # scoring.leaderboard.LEADERBOARD_LOCK ("VHLB")
OWNED = ["teams", "team_memberships", "team_leaderboards"]
REFERENCES = [
    ("team_memberships", "team_id", "teams"),
    ("team_memberships", "user_id", "users"),
    ("team_leaderboards", "team_id", "teams"),
    ("submissions", "team_id", "teams"),
    ("hint_unlocks", "team_id", "teams"),
]


def fk_name(table, column):
    return f"fk_{table}_{column.removesuffix('_id')}_same_tenant"


SECURITY = [
    "ALTER TABLE teams ADD CONSTRAINT uniq_teams_id_tenant UNIQUE (id, tenant_id);",
    *[
        statement
        for table in OWNED
        for statement in (
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;",
            f"CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE});",
        )
    ],
    *[
        f"ALTER TABLE {table} ADD CONSTRAINT {fk_name(table, column)} FOREIGN KEY ({column}, tenant_id) "
        f"REFERENCES {parent} (id, tenant_id) DEFERRABLE INITIALLY DEFERRED;"
        for table, column, parent in REFERENCES
    ],
]
SECURITY_BACK = [
    *[f"ALTER TABLE {table} DROP CONSTRAINT {fk_name(table, column)};" for table, column, _ in REFERENCES],
    *[
        statement
        for table in OWNED
        for statement in (
            f"DROP POLICY tenant_isolation ON {table};",
            f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;",
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;",
        )
    ],
    "ALTER TABLE teams DROP CONSTRAINT uniq_teams_id_tenant;",
]

RANKS = f"""
CREATE FUNCTION team_leaderboard_rerank(p_tenant bigint, p_low integer, p_high integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    above bigint;  -- teams with more than p_high points: their ranks cannot have moved
    changed integer;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK}, p_tenant::integer);
    SELECT count(*) INTO above FROM team_leaderboards t WHERE t.tenant_id = p_tenant AND t.points > p_high;
    UPDATE team_leaderboards l SET rank = r.rank
    FROM (SELECT t.id, (above + rank() OVER (ORDER BY t.points DESC))::integer AS rank
          FROM team_leaderboards t
          WHERE t.tenant_id = p_tenant AND t.points BETWEEN p_low AND p_high) AS r
    WHERE l.id = r.id AND l.tenant_id = p_tenant AND l.rank IS DISTINCT FROM r.rank;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

-- Per tenant, the span of points whose ranks can have moved: from the lowest to the
-- highest points a changed row had before or after; from 0 when a row came or went
-- (every team below it moves by one). Outside the span no team's count of teams above
-- it changed.
CREATE FUNCTION team_leaderboards_ranked() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    span record;
BEGIN
    IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;  -- the re-ranking's own updates
    IF TG_OP = 'INSERT' THEN
        FOR span IN SELECT tenant_id, 0 AS low, max(points) AS high FROM new_rows GROUP BY 1 ORDER BY 1 LOOP
            PERFORM team_leaderboard_rerank(span.tenant_id, span.low, span.high);
        END LOOP;
    ELSIF TG_OP = 'DELETE' THEN
        FOR span IN SELECT tenant_id, 0 AS low, max(points) AS high FROM old_rows GROUP BY 1 ORDER BY 1 LOOP
            PERFORM team_leaderboard_rerank(span.tenant_id, span.low, span.high);
        END LOOP;
    ELSE
        FOR span IN
            SELECT tenant_id, CASE WHEN bool_and(seen = 2) THEN min(low) ELSE 0 END AS low, max(high) AS high
            FROM (SELECT tenant_id, id, min(points) AS low, max(points) AS high, count(*) AS seen
                  FROM (SELECT tenant_id, id, points FROM old_rows
                        UNION ALL SELECT tenant_id, id, points FROM new_rows) AS r
                  GROUP BY tenant_id, id) AS per_row
            GROUP BY tenant_id ORDER BY tenant_id
        LOOP
            PERFORM team_leaderboard_rerank(span.tenant_id, span.low, span.high);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER team_leaderboards_rank_insert AFTER INSERT ON team_leaderboards
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION team_leaderboards_ranked();
CREATE TRIGGER team_leaderboards_rank_update AFTER UPDATE ON team_leaderboards
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION team_leaderboards_ranked();
CREATE TRIGGER team_leaderboards_rank_delete AFTER DELETE ON team_leaderboards
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION team_leaderboards_ranked();
"""
RANKS_BACK = """
DROP TRIGGER team_leaderboards_rank_delete ON team_leaderboards;
DROP TRIGGER team_leaderboards_rank_update ON team_leaderboards;
DROP TRIGGER team_leaderboards_rank_insert ON team_leaderboards;
DROP FUNCTION team_leaderboards_ranked();
DROP FUNCTION team_leaderboard_rerank(bigint, integer, integer);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("challenges", "0007_admin_names"),
        ("scoring", "0022_solves_index"),
        ("tenants", "0014_team_mode"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="TeamLeaderboard",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("points", models.IntegerField(default=0)),
                ("solves", models.IntegerField(default=0)),
                (
                    "last_scored_at",
                    models.DateTimeField(blank=True, help_text="Tie-break: who got there first.", null=True),
                ),
                (
                    "rank",
                    models.IntegerField(db_default=1, editable=False, help_text="Kept by the database: never set it."),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "team standings row",
                "verbose_name_plural": "team standings",
                "db_table": "team_leaderboards",
                "ordering": ["-points", "last_scored_at"],
            },
        ),
        migrations.CreateModel(
            name="TeamMembership",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("joined_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "team member",
                "verbose_name_plural": "team members",
                "db_table": "team_memberships",
                "ordering": ["joined_at"],
            },
        ),
        migrations.CreateModel(
            name="Team",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=60)),
                ("invite_code", models.CharField(editable=False, max_length=16)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="teams",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "db_table": "teams",
                "ordering": ["name"],
            },
        ),
        migrations.AddField(
            model_name="hintunlock",
            name="team",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="hint_unlocks",
                to="scoring.team",
            ),
        ),
        migrations.AddField(
            model_name="submission",
            name="team",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="submissions",
                to="scoring.team",
            ),
        ),
        migrations.AddIndex(
            model_name="hintunlock",
            index=models.Index(
                condition=models.Q(("team__isnull", False)),
                fields=["tenant", "team", "project"],
                name="idx_hint_unlocks_team",
            ),
        ),
        migrations.AddIndex(
            model_name="submission",
            index=models.Index(
                condition=models.Q(("status", "APPROVED"), ("team__isnull", False)),
                fields=["tenant", "team", "project"],
                name="idx_submissions_team_solves",
            ),
        ),
        migrations.AddField(
            model_name="teamleaderboard",
            name="team",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="leaderboard_rows", to="scoring.team"
            ),
        ),
        migrations.AddField(
            model_name="teamleaderboard",
            name="tenant",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenants.tenant"
            ),
        ),
        migrations.AddField(
            model_name="teammembership",
            name="team",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to="scoring.team"
            ),
        ),
        migrations.AddField(
            model_name="teammembership",
            name="tenant",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenants.tenant"
            ),
        ),
        migrations.AddField(
            model_name="teammembership",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="team_memberships",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="team",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"),
                models.F("tenant"),
                name="uniq_teams_tenant_name_ci",
                violation_error_message="A team of this class already has this name.",
            ),
        ),
        migrations.AddConstraint(
            model_name="team",
            constraint=models.UniqueConstraint(fields=("tenant", "invite_code"), name="uniq_teams_tenant_invite_code"),
        ),
        migrations.AddConstraint(
            model_name="team",
            constraint=models.CheckConstraint(
                condition=models.Q(("name", ""), _negated=True), name="chk_teams_name_not_empty"
            ),
        ),
        migrations.AddIndex(
            model_name="teamleaderboard",
            index=models.Index(
                fields=["tenant", "-points", "last_scored_at", "team"], name="idx_team_leaderboards_points"
            ),
        ),
        migrations.AddConstraint(
            model_name="teamleaderboard",
            constraint=models.UniqueConstraint(fields=("tenant", "team"), name="uniq_team_leaderboards_tenant_team"),
        ),
        migrations.AddConstraint(
            model_name="teamleaderboard",
            constraint=models.CheckConstraint(
                condition=models.Q(("points__gte", 0), ("solves__gte", 0)), name="chk_team_leaderboards_totals_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="teamleaderboard",
            constraint=models.CheckConstraint(condition=models.Q(("rank__gt", 0)), name="chk_team_rank_positive"),
        ),
        migrations.AddConstraint(
            model_name="teammembership",
            constraint=models.UniqueConstraint(
                fields=("tenant", "user"),
                name="uniq_team_memberships_student",
                violation_error_message="This student is already in a team.",
            ),
        ),
        migrations.RunSQL(SECURITY, reverse_sql=SECURITY_BACK),
        migrations.RunSQL(RANKS, reverse_sql=RANKS_BACK),
    ]
