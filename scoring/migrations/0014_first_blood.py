"""First Blood means what players expect: the first student of the class to solve a challenge.

Until now the badge called "First Blood" (slug first-blood) was given for a student's own
first solve. Those badges keep their rule and their awards under their own name, "First
Solve" (slug first-solve, where the class has no badge of that slug already). Each class
that had one gets a new "First Blood" with the new rule (FIRST_BLOOD), awarded to every
student who was first to solve a challenge, by approval time then submission id (as
scoring.badges reads it), at that approval's time. Migrating back deletes the new badges
with their awards and gives the old ones back their name.
"""

from django.db import migrations, models

# inside one statement each; as the migrations' owner, every tenant's rows (row-level security bypassed)
RENAME = """
UPDATE badges b SET name = 'First Solve', slug = 'first-solve'
WHERE b.slug = 'first-blood' AND b.rule_kind = 'FIRST_SOLVE'
  AND NOT EXISTS (SELECT 1 FROM badges o WHERE o.tenant_id = b.tenant_id AND o.slug = 'first-solve');
"""
NEW_BADGES = """
INSERT INTO badges (tenant_id, name, slug, description, icon, rule_kind, rule_params, created_at)
SELECT b.tenant_id, 'First Blood', 'first-blood', 'First in the class on a challenge.', 'droplet', 'FIRST_BLOOD',
       '{}'::jsonb, now()
FROM badges b
WHERE b.slug = 'first-solve' AND b.rule_kind = 'FIRST_SOLVE'
  AND NOT EXISTS (SELECT 1 FROM badges o WHERE o.tenant_id = b.tenant_id AND o.slug = 'first-blood');

INSERT INTO user_badges (tenant_id, user_id, badge_id, awarded_at, awarded_by_id)
SELECT f.tenant_id, f.user_id, nb.id, min(f.at), NULL
FROM (
    SELECT DISTINCT ON (s.tenant_id, s.project_id) s.tenant_id, s.user_id, coalesce(s.graded_at, s.submitted_at) AS at
    FROM submissions s WHERE s.status = 'APPROVED'
    ORDER BY s.tenant_id, s.project_id, coalesce(s.graded_at, s.submitted_at), s.id
) AS f
JOIN badges nb ON nb.tenant_id = f.tenant_id AND nb.slug = 'first-blood' AND nb.rule_kind = 'FIRST_BLOOD'
GROUP BY f.tenant_id, f.user_id, nb.id
ON CONFLICT DO NOTHING;
SET CONSTRAINTS ALL IMMEDIATE;
"""
DROP_NEW_BADGES = """
DELETE FROM user_badges WHERE badge_id IN (SELECT id FROM badges WHERE rule_kind = 'FIRST_BLOOD');
DELETE FROM badges WHERE rule_kind = 'FIRST_BLOOD';
SET CONSTRAINTS ALL IMMEDIATE;  -- the deferred key checks now: the table is altered next
"""
RENAME_BACK = """
UPDATE badges b SET name = 'First Blood', slug = 'first-blood'
WHERE b.slug = 'first-solve' AND b.rule_kind = 'FIRST_SOLVE'
  AND NOT EXISTS (SELECT 1 FROM badges o WHERE o.tenant_id = b.tenant_id AND o.slug = 'first-blood');
"""


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0013_submission_superseded_status"),
        ("tenants", "0005_rate_limit_hits"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="badge",
            name="chk_badges_rule_kind",
        ),
        migrations.AlterField(
            model_name="badge",
            name="rule_kind",
            field=models.CharField(
                blank=True,
                choices=[
                    ("FIRST_SOLVE", "First solve"),
                    ("FIRST_BLOOD", "First in the class to solve a challenge"),
                    ("POINTS_AT_LEAST", "Points at least N"),
                    ("SOLVES_AT_LEAST", "Solves at least N"),
                    ("CATEGORY_SOLVES", "N solves in a category"),
                    ("CATEGORY_COMPLETE", "Every challenge of a category"),
                    ("DIFFICULTY_SOLVES", "N solves at a difficulty"),
                ],
                help_text="Empty: awarded by hand only.",
                max_length=20,
            ),
        ),
        migrations.AddConstraint(
            model_name="badge",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "rule_kind__in",
                        [
                            "FIRST_SOLVE",
                            "FIRST_BLOOD",
                            "POINTS_AT_LEAST",
                            "SOLVES_AT_LEAST",
                            "CATEGORY_SOLVES",
                            "CATEGORY_COMPLETE",
                            "DIFFICULTY_SOLVES",
                            "",
                        ],
                    )
                ),
                name="chk_badges_rule_kind",
            ),
        ),
        migrations.RunSQL(RENAME, reverse_sql=RENAME_BACK),
        migrations.RunSQL(NEW_BADGES, reverse_sql=DROP_NEW_BADGES),
    ]
