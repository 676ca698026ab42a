"""The groups' permissions on challenge content (issue 26): files, hints, prerequisites, hint unlocks.

Instructors author a challenge's files, hints and prerequisites (inlines of the
challenge's admin page) and see who unlocked which hint; tenant admins do the same.
tenants/roles.py adds these lists to those of 0002.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

INSTRUCTOR_PERMISSIONS = [
    *[
        f"challenges.{action}_{model}"
        for model in ("challengefile", "hint", "prerequisite")
        for action in ("view", "add", "change", "delete")
    ],
    "scoring.view_hintunlock",
]
TENANT_ADMIN_PERMISSIONS = INSTRUCTOR_PERMISSIONS
GROUPS = {"Instructors": INSTRUCTOR_PERMISSIONS, "Tenant admins": TENANT_ADMIN_PERMISSIONS}


def _permissions(apps, codes):
    Permission = apps.get_model("auth", "Permission")
    return [
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in (code.split(".", 1) for code in codes)
    ]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=GROUPS):
        group.permissions.add(*_permissions(apps, GROUPS[group.name]))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=GROUPS):
        group.permissions.remove(*_permissions(apps, GROUPS[group.name]))


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0007_event_window_time_zone"),
        ("challenges", "0005_content"),
        ("scoring", "0015_hint_unlocks"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
