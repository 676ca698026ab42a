"""Granting and revoking the role groups' permissions in a migration (not itself a migration: its name starts with _).

Permissions are made here, since Django makes them only after `migrate` finishes.
tenants/roles.py adds each migration's lists to the groups' (it restores them after a flush).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def _permissions(apps, codes):
    Permission = apps.get_model("auth", "Permission")
    return [
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in (code.split(".", 1) for code in codes)
    ]


def grants(groups: dict[str, list[str]]) -> migrations.RunPython:
    """A reversible operation: each group gains its codes ("app.codename"); reversed, it loses them."""

    def grant(apps, schema_editor):
        for app_config in apps.get_app_configs():
            app_config.models_module = True
            create_permissions(app_config, apps=apps, verbosity=0)
            app_config.models_module = None
        for group in apps.get_model("auth", "Group").objects.filter(name__in=groups):
            group.permissions.add(*_permissions(apps, groups[group.name]))

    def revoke(apps, schema_editor):
        for group in apps.get_model("auth", "Group").objects.filter(name__in=groups):
            group.permissions.remove(*_permissions(apps, groups[group.name]))

    return migrations.RunPython(grant, revoke)
