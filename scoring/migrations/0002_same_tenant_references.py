"""A submission, user badge or leaderboard row refers only to rows of its own tenant.

Composite foreign keys (user_id, tenant_id) -> users (id, tenant_id), and the same for
projects and badges, so no code path can attach a student of one tenant to another
tenant's challenge. They are deferrable like Django's own foreign keys, so the ORM's
cascade order does not matter.
"""

from django.db import migrations

PARENTS = [
    ("users", "uniq_users_id_tenant"),
    ("projects", "uniq_projects_id_tenant"),
    ("badges", "uniq_badges_id_tenant"),
]

# child table, column, parent table
REFERENCES = [
    ("submissions", "user_id", "users"),
    ("submissions", "project_id", "projects"),
    ("user_badges", "user_id", "users"),
    ("user_badges", "badge_id", "badges"),
    ("leaderboards", "user_id", "users"),
]


def fk_name(table, column):
    return f"fk_{table}_{column.removesuffix('_id')}_same_tenant"


FORWARD = [f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE (id, tenant_id);" for table, name in PARENTS] + [
    f"ALTER TABLE {table} ADD CONSTRAINT {fk_name(table, column)} FOREIGN KEY ({column}, tenant_id) "
    f"REFERENCES {parent} (id, tenant_id) DEFERRABLE INITIALLY DEFERRED;"
    for table, column, parent in REFERENCES
]
BACKWARD = [f"ALTER TABLE {table} DROP CONSTRAINT {fk_name(table, column)};" for table, column, _ in REFERENCES] + [
    f"ALTER TABLE {table} DROP CONSTRAINT {name};" for table, name in PARENTS
]


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0001_initial"),
        ("tenants", "0001_initial"),
        ("challenges", "0001_initial"),
    ]

    operations = [migrations.RunSQL(sql=FORWARD, reverse_sql=BACKWARD)]
