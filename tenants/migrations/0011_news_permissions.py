"""The groups' permissions on announcements: instructors and tenant admins post, correct and delete them.

Like 0008 (challenge content): the permissions are made here, since Django
makes them only after `migrate` finishes. tenants/roles.py adds these lists to the
groups' (it restores them after a flush).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

INSTRUCTOR_PERMISSIONS = [f"news.{action}_announcement" for action in ("view", "add", "change", "delete")]
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
        ("news", "0001_notifications"),
        ("tenants", "0010_tenant_public_profiles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
