"""The permission groups each role draws its admin permissions from.

The groups are created by the data migration `tenants/migrations/0002_permission_groups`;
a user's role decides which group applies (no membership rows to keep in sync).
"""

from importlib import import_module

from django.apps import apps

INSTRUCTORS_GROUP = "Instructors"
TENANT_ADMINS_GROUP = "Tenant admins"

# The permissions of each group are those of the migrations that created and widened them.
_groups = import_module("tenants.migrations.0002_permission_groups")
_content = import_module("tenants.migrations.0008_content_permissions")
_news = import_module("tenants.migrations.0011_news_permissions")
_roster = import_module("tenants.migrations.0012_roster_permissions")
_teams = import_module("tenants.migrations.0015_team_permissions")
INSTRUCTOR_PERMISSIONS = [
    *_groups.INSTRUCTOR_PERMISSIONS,
    *_content.INSTRUCTOR_PERMISSIONS,
    *_news.INSTRUCTOR_PERMISSIONS,
    *_roster.INSTRUCTOR_PERMISSIONS,
    *_teams.INSTRUCTOR_PERMISSIONS,
]
TENANT_ADMIN_PERMISSIONS = [
    *_groups.TENANT_ADMIN_PERMISSIONS,
    *_content.TENANT_ADMIN_PERMISSIONS,
    *_news.TENANT_ADMIN_PERMISSIONS,
    *_roster.TENANT_ADMIN_PERMISSIONS,
    *_teams.TENANT_ADMIN_PERMISSIONS,
]

GROUP_PERMISSIONS = {
    INSTRUCTORS_GROUP: INSTRUCTOR_PERMISSIONS,
    TENANT_ADMINS_GROUP: TENANT_ADMIN_PERMISSIONS,
}

ROLE_GROUP = {"INSTRUCTOR": INSTRUCTORS_GROUP, "ADMIN": TENANT_ADMINS_GROUP}


def ensure_permission_groups(using="default", **kwargs):
    """Restore missing permission groups after a flush (post_migrate receiver).

    A flush (as between transactional tests) empties auth_group but leaves the
    migration applied; this puts back the groups the migration made. It never
    touches an existing group, and does nothing while 0002 is unapplied.
    """
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    applied = MigrationRecorder(connections[using]).applied_migrations()
    if ("tenants", "0002_permission_groups") not in applied:
        return
    missing = set(GROUP_PERMISSIONS) - set(Group.objects.using(using).values_list("name", flat=True))
    if not missing:
        return
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    permissions = {
        f"{p.content_type.app_label}.{p.codename}": p
        for p in Permission.objects.using(using).select_related("content_type")
    }
    for name in missing:
        group = Group.objects.using(using).create(name=name)
        group.permissions.set([permissions[code] for code in GROUP_PERMISSIONS[name]])
