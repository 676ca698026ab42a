"""The permission groups each role draws its admin permissions from.

The groups are created by the data migration `tenants/migrations/0002_permission_groups`;
a user's role decides which group applies (no membership rows to keep in sync).
"""

from importlib import import_module

INSTRUCTORS_GROUP = "Instructors"
TENANT_ADMINS_GROUP = "Tenant admins"

# The permissions of each group are those of the migration that created them.
_groups = import_module("tenants.migrations.0002_permission_groups")
INSTRUCTOR_PERMISSIONS = _groups.INSTRUCTOR_PERMISSIONS
TENANT_ADMIN_PERMISSIONS = _groups.TENANT_ADMIN_PERMISSIONS

GROUP_PERMISSIONS = {
    INSTRUCTORS_GROUP: INSTRUCTOR_PERMISSIONS,
    TENANT_ADMINS_GROUP: TENANT_ADMIN_PERMISSIONS,
}

ROLE_GROUP = {"INSTRUCTOR": INSTRUCTORS_GROUP, "ADMIN": TENANT_ADMINS_GROUP}


def ensure_permission_groups(using="default", **kwargs):
    """Create (or complete) the permission groups; idempotent."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    for name, codes in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        labels = {tuple(code.split(".", 1)) for code in codes}
        permissions = [
            p
            for p in Permission.objects.using(using).select_related("content_type")
            if (p.content_type.app_label, p.codename) in labels
        ]
        group.permissions.set(permissions)
