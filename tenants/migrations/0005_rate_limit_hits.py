"""rate_limit_hits: attempts at registration and password reset, counted by tenants.rate_limits.

Tenant-owned, so it gets the row-level security of every tenant table (vulhub 0001):
forced, with the tenant_isolation policy.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

RULE = "tenant_id = vulhub_current_tenant() OR vulhub_rls_bypass()"

ENABLE_RLS = f"""
ALTER TABLE rate_limit_hits ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_limit_hits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rate_limit_hits USING ({RULE}) WITH CHECK ({RULE});
"""

DISABLE_RLS = """
DROP POLICY tenant_isolation ON rate_limit_hits;
ALTER TABLE rate_limit_hits NO FORCE ROW LEVEL SECURITY;
ALTER TABLE rate_limit_hits DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_constraint_messages"),
        ("vulhub", "0001_row_level_security"),  # the policy's functions
    ]

    operations = [
        migrations.CreateModel(
            name="RateLimitHit",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "scope",
                    models.CharField(
                        choices=[
                            ("REGISTRATION_IP", "Registration, per client address"),
                            ("PASSWORD_RESET_IP", "Password reset, per client address"),
                            ("PASSWORD_RESET_EMAIL", "Password reset, per e-mail address"),
                        ],
                        max_length=20,
                    ),
                ),
                ("key", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
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
                "db_table": "rate_limit_hits",
                "indexes": [
                    models.Index(fields=["tenant", "scope", "key", "created_at"], name="idx_rate_limit_hits_key"),
                    models.Index(fields=["tenant", "created_at"], name="idx_rate_limit_hits_age"),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("scope__in", ["REGISTRATION_IP", "PASSWORD_RESET_IP", "PASSWORD_RESET_EMAIL"])
                        ),
                        name="chk_rate_limit_hits_scope",
                    )
                ],
            },
        ),
        migrations.RunSQL(ENABLE_RLS, reverse_sql=DISABLE_RLS),
    ]
