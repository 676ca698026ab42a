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
