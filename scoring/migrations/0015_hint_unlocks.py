"""hint_unlocks: the hints students unlocked and what they cost.

Tenant-owned: forced row-level security with the tenant_isolation policy, and
composite foreign keys to the student, the challenge and the hint of the same tenant.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


RULE = "tenant_id = (SELECT vulhub_current_tenant())"
REFERENCES = [("user_id", "users"), ("project_id", "projects"), ("hint_id", "hints")]

FORWARD = [
    "ALTER TABLE hint_unlocks ENABLE ROW LEVEL SECURITY;",
    "ALTER TABLE hint_unlocks FORCE ROW LEVEL SECURITY;",
    f"CREATE POLICY tenant_isolation ON hint_unlocks USING ({RULE}) WITH CHECK ({RULE});",
    *[
        f"ALTER TABLE hint_unlocks ADD CONSTRAINT fk_hint_unlocks_{column.removesuffix('_id')}_same_tenant "
        f"FOREIGN KEY ({column}, tenant_id) REFERENCES {parent} (id, tenant_id) DEFERRABLE INITIALLY DEFERRED;"
        for column, parent in REFERENCES
    ],
]
BACKWARD = [
    *[
        f"ALTER TABLE hint_unlocks DROP CONSTRAINT fk_hint_unlocks_{column.removesuffix('_id')}_same_tenant;"
        for column, _ in REFERENCES
    ],
    "DROP POLICY tenant_isolation ON hint_unlocks;",
    "ALTER TABLE hint_unlocks NO FORCE ROW LEVEL SECURITY;",
    "ALTER TABLE hint_unlocks DISABLE ROW LEVEL SECURITY;",
]


class Migration(migrations.Migration):
    dependencies = [
        ("challenges", "0005_content"),
        ("scoring", "0014_first_blood"),
        ("tenants", "0007_event_window_time_zone"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="HintUnlock",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("cost", models.IntegerField(default=0)),
                ("unlocked_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "hint",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="unlocks",
                        to="challenges.hint",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="hint_unlocks",
                        to="challenges.project",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="hint_unlocks",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "hint_unlocks",
                "ordering": ["-unlocked_at"],
                "indexes": [
                    models.Index(fields=["tenant", "user", "project"], name="idx_hint_unlocks_student"),
                    models.Index(fields=["project"], name="idx_hint_unlocks_project"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("tenant", "user", "hint"),
                        name="uniq_hint_unlocks_once",
                        violation_error_message="This student has already unlocked this hint.",
                    ),
                    models.CheckConstraint(condition=models.Q(("cost__gte", 0)), name="chk_hint_unlocks_cost_positive"),
                ],
            },
        ),
        migrations.RunSQL(FORWARD, reverse_sql=BACKWARD),
    ]
