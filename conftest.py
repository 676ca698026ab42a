"""Persona fixtures shared by every app's tests.

Three people, as in every test that crosses a boundary: a student and an
instructor of one tenant, and a student of another tenant.
"""

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from challenges.factories import ProjectFactory
from challenges.tests.attachments import attachments_in
from tenants import rls
from tenants.factories import (
    DEFAULT_PASSWORD,
    InstructorFactory,
    StudentFactory,
    TenantAdminFactory,
    TenantFactory,
)
from vulhub.ops.db_roles import app_role_name, assume, ensure_roles, switch_role
from vulhub.ops.embedded_db.server import EmbeddedServerError, ensure_running
from vulhub.tests.append_only import allow_test_flush
from vulhub.tests.servers import SERVER_SECRET_KEY


def pytest_sessionstart(session):
    """The embedded server starts before any test, and a failure to start is one line, not a traceback."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "vulhub.ops.embedded_db":
        try:
            ensure_running(database["PGDATA"])
        except EmbeddedServerError as exc:
            pytest.exit(str(exc), returncode=1)


# --- The database roles of the tests ---------------------------------------------------
# The test database is created and migrated by the schema's owner. The tests' own setup
# and checks then act as PLATFORM_ROLE: the app role's data privileges on every table
# plus BYPASSRLS, so they see every tenant, as an operator's command does. A request
# through the test client acts as the restricted app role (vulhub/ops/db_roles.py) for
# its transaction (tenants.rls.request_role), under row-level security exactly as live.
PLATFORM_ROLE = "vulhub_test_platform"
# Servers the tests start (gunicorn, the browser tests') sign with their own key: the
# database accepts their tenant-context proofs as a fallback key's (`migrate` installs it).
settings.SECRET_KEY_FALLBACKS = [*settings.SECRET_KEY_FALLBACKS, SERVER_SECRET_KEY]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    switch_role(settings.DATABASE_ROLES["owner"])


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        allow_test_flush()
        app = app_role_name()
        ensure_roles(app=app)  # installs the tenant-context keys too
        ensure_platform_role(PLATFORM_ROLE)
        # Log in as the owner, act as the platform role (db_roles.assume: SET ROLE on every
        # connection and pool checkout), requests as the app role. A test that must act as
        # the owner (tampering, migrating) uses db_roles.use_role("owner"), a SET ROLE NONE
        # inside its own transaction.
        assume(PLATFORM_ROLE)
        rls.request_role = app
        close_connections()
    yield
    with django_db_blocker.unblock():
        assume(None)  # the owner drops the test database
        rls.request_role = None
        close_connections()


def ensure_platform_role(name: str) -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE ROLE "{name}" NOLOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT')
        for statement in (
            'GRANT USAGE ON SCHEMA public TO "{0}"',
            'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{0}"',
            'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{0}"',
            'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{0}"',
            'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "{0}"',
            # /metrics reads it outside a request's role, as the platform role here (the app role live)
            'GRANT EXECUTE ON FUNCTION vulhub_pending_writeups() TO "{0}"',
        ):
            cursor.execute(statement.format(name))


def close_connections():
    for connection in connections.all(initialized_only=True):
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()


@pytest.fixture(scope="session", autouse=True)
def _attachments_in_a_scratch_folder(tmp_path_factory):
    """Challenge files stored by the tests go to a folder of the run's own, never to var/attachments."""
    with attachments_in(tmp_path_factory.mktemp("attachments")):
        yield


@pytest.fixture(autouse=True)
def _empty_redis_cache(settings):
    # A shared Redis (CI) outlives the test database, so start every test from an empty
    # cache. The database cache needs no clearing: it rolls back with each test.
    if "redis" in settings.CACHES["default"]["BACKEND"].lower():
        from django.core.cache import cache

        cache.clear()


@pytest.fixture(autouse=True)
def _notification_emails_without_a_thread(settings):
    # The web process's e-mail thread (news.emails) would outlive a test that commits for
    # real and race its flush; the tests of that thread turn it back on themselves.
    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = False


@pytest.fixture(autouse=True)
def _any_test_host(settings):
    # Tenants in tests live on *.localhost names; allow whatever a test invents.
    settings.ALLOWED_HOSTS = ["*"]


@pytest.fixture
def fast_hashing(settings):
    """MD5 instead of Argon2: for tests that make many users and never test hashing itself."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser(django_user_model):
    """A platform superuser (no tenant)."""
    return django_user_model.objects.create_superuser("root@x.test", "pw")


@pytest.fixture
def password():
    return DEFAULT_PASSWORD


@pytest.fixture
def tenant(db):
    return TenantFactory(name="Alpha Academy", slug="alpha", domain="alpha.localhost")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(name="Beta Bootcamp", slug="beta", domain="beta.localhost")


@pytest.fixture
def student(tenant):
    return StudentFactory(tenant=tenant, email="student@alpha.test")


@pytest.fixture
def instructor(tenant):
    return InstructorFactory(tenant=tenant, email="instructor@alpha.test")


@pytest.fixture
def tenant_admin(tenant):
    return TenantAdminFactory(tenant=tenant, email="admin@alpha.test")


@pytest.fixture
def other_student(other_tenant):
    return StudentFactory(tenant=other_tenant, email="student@beta.test")


@pytest.fixture
def project(tenant):
    return ProjectFactory(tenant=tenant, name="SQL Injection Challenge", slug="sql-injection")


@pytest.fixture
def client_for():
    """A test client on a tenant's host: client_for(tenant)."""

    def make(tenant, user=None):
        client = Client(HTTP_HOST=tenant.domain)
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def pooled_connections_for():
    """Make room for `n` threads at once when Django's connection pool is on.

    Each thread keeps its own connection until it closes it, so a thread test with more
    threads than DB_POOL_MAX_SIZE would wait for the pool. The pool is rebuilt larger for
    the test and back to its size afterwards.
    """
    from django.db import connection

    pool = connection.settings_dict["OPTIONS"].get("pool")
    saved = dict(pool) if isinstance(pool, dict) else None

    def grow(n):
        if saved is not None:
            connection.close_pool()
            pool["max_size"] = max(saved["max_size"], n + 2)

    yield grow
    if saved is not None:
        connection.close_pool()
        pool.clear()
        pool.update(saved)
