"""Create the permission groups of instructors and tenant admins.

Permissions are normally created after `migrate` finishes (post_migrate), so this
migration creates the ones it needs itself. tenants/roles.py reads the lists
below; changing what a group grants takes a new migration.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

INSTRUCTOR_PERMISSIONS = [
    "challenges.view_project",
    "challenges.add_project",
    "challenges.change_project",
    "scoring.view_submission",
    "scoring.change_submission",
    "scoring.view_badge",
    "scoring.add_badge",
    "scoring.change_badge",
    "scoring.view_userbadge",
    "scoring.add_userbadge",
    "scoring.delete_userbadge",
    "scoring.view_leaderboard",
    "audit.view_auditlog",
    "audit.view_eventstore",
]
TENANT_ADMIN_PERMISSIONS = [
    *INSTRUCTOR_PERMISSIONS,
    "challenges.delete_project",
    "scoring.delete_badge",
    "tenants.view_user",
    "tenants.add_user",
    "tenants.change_user",
    "tenants.view_tenant",
    "tenants.change_tenant",
]
GROUPS = {"Instructors": INSTRUCTOR_PERMISSIONS, "Tenant admins": TENANT_ADMIN_PERMISSIONS}


def create_groups(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = [code.split(".", 1) for code in codes]
        permissions = [
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in wanted
        ]
        group.permissions.set(permissions)


def delete_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("challenges", "0001_initial"),
        ("scoring", "0001_initial"),
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
