"""Every project app migrates down to nothing and back up, losing nothing on the way.

These tests rebuild the schema of the test database: whatever happens, the
`migrated_afterwards` fixture leaves it fully migrated for the tests that follow.
"""

import io
from importlib import import_module

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython, RunSQL
from django.db.migrations.recorder import MigrationRecorder

from tenants.roles import GROUP_PERMISSIONS
from vulhub.tests.append_only import allow_test_flush

PROJECT_APPS = ["tenants", "challenges", "scoring", "news", "audit", "vulhub"]
APP_TABLES = {
    "tenants": {"tenants", "users", "users_groups", "users_user_permissions"},
    "challenges": {"projects"},
    "scoring": {"submissions", "badges", "user_badges", "leaderboards"},
    "news": {"notifications", "notification_readers", "announcements"},
    "audit": {"audit_logs", "event_store"},
    "vulhub": set(),  # row-level security on the others' tables (checked by schema_objects below)
}


def migrate(*args):
    call_command("migrate", *args, interactive=False, verbosity=0, stdout=io.StringIO())


def tables():
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def schema_objects():
    """Every constraint, index and row-level security policy of the schema, with its definition."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE connamespace = current_schema()::regnamespace
            UNION ALL
            SELECT tablename, indexname, indexdef
            FROM pg_indexes
            WHERE schemaname = current_schema()
            UNION ALL
            SELECT tablename, policyname, concat_ws(' / ', cmd, qual, with_check)
            FROM pg_policies
            WHERE schemaname = current_schema()
            UNION ALL
            SELECT relname, 'row level security', concat_ws(' ', relrowsecurity, relforcerowsecurity)
            FROM pg_class
            WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'
            """
        )
        return set(cursor.fetchall())


def applied(app):
    return {name for label, name in MigrationRecorder(connection).applied_migrations() if label == app}


def unapplied_migrations():
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


def group_permissions():
    return {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.filter(name__in=GROUP_PERMISSIONS).prefetch_related("permissions__content_type")
    }


EXPECTED_GROUPS = {name: set(codes) for name, codes in GROUP_PERMISSIONS.items()}


@pytest.fixture
def migrated_afterwards(transactional_db):
    try:
        assert unapplied_migrations() == [], "the test database starts fully migrated"
        yield
    finally:
        migrate()
        allow_test_flush()  # re-created guards would block the flush after this test


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("app", PROJECT_APPS)
def test_app_migrates_to_zero_and_back(app, migrated_afterwards):
    before = schema_objects()
    assert APP_TABLES[app] <= tables()

    migrate(app, "zero")

    assert APP_TABLES[app].isdisjoint(tables())
    assert applied(app) == set()

    migrate()

    assert APP_TABLES[app] <= tables()
    assert unapplied_migrations() == []
    assert schema_objects() == before, "every constraint and index comes back as it was"


@pytest.mark.django_db(transaction=True)
def test_permission_groups_come_back_with_their_permissions(migrated_afterwards):
    assert group_permissions() == EXPECTED_GROUPS

    migrate("tenants", "zero")
    migrate()

    assert group_permissions() == EXPECTED_GROUPS


@pytest.mark.django_db(transaction=True)
def test_unapplying_the_permission_groups_migration_deletes_the_groups(migrated_afterwards):
    migrate("tenants", "0001_initial")

    assert applied("tenants") == {"0001_initial"}
    assert group_permissions() == {}

    migrate("tenants", "0002_permission_groups")

    first = import_module("tenants.migrations.0002_permission_groups").GROUPS
    assert group_permissions() == {name: set(codes) for name, codes in first.items()}
    migrate()  # 0008 widens them (challenge content)
    assert group_permissions() == EXPECTED_GROUPS


@pytest.mark.django_db(transaction=True)
def test_a_flush_gets_the_groups_back_from_the_post_migrate_hook(migrated_afterwards):
    call_command("flush", interactive=False, verbosity=0)

    assert group_permissions() == EXPECTED_GROUPS


def test_every_project_migration_is_reversible():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    migrations = [migration for (app, _), migration in sorted(loader.disk_migrations.items()) if app in PROJECT_APPS]
    irreversible, special = [], set()

    for migration in migrations:
        for operation in migration.operations:
            if isinstance(operation, RunPython):
                special.add((migration.app_label, migration.name, "RunPython"))
                reversible = operation.reverse_code is not None
            elif isinstance(operation, RunSQL):
                special.add((migration.app_label, migration.name, "RunSQL"))
                reversible = operation.reverse_sql is not None
            else:
                reversible = operation.reversible
            if not reversible:
                irreversible.append(f"{migration.app_label}.{migration.name}: {operation.describe()}")

    assert {migration.app_label for migration in migrations} == set(PROJECT_APPS)
    assert {
        ("tenants", "0002_permission_groups", "RunPython"),
        ("scoring", "0002_same_tenant_references", "RunSQL"),
    } <= special
    assert irreversible == []
