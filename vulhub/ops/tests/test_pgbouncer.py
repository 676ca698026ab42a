"""Behind a transaction-mode PgBouncer, requests of two tenants share one server connection and nothing else.

PgBouncer in transaction mode hands a server connection to a client for one transaction,
then to the next client. The tenant middleware sets the request's tenant with
set_config(..., true), which ends with the transaction, so whatever request comes next on
that server connection starts with no tenant. These tests start a real PgBouncer
(Debian's package, `make test-deps`) with a pool of ONE server connection in front of the
test database, and VulHub under gunicorn behind it as the restricted app role.

A control shows the test would notice a leak: a session-level set_config(..., false)
made through the same PgBouncer is still there for the next client.
"""

import os
import pwd

import psycopg
import pytest
from django.db import connection

from challenges.factories import ProjectFactory
from tenants.factories import StudentFactory, TenantFactory
from vulhub.ops.db_roles import app_role_name, role_settings
from vulhub.ops.pg_cluster import run_as
from vulhub.tests.servers import app_database_url, binary, fetch, free_port, gunicorn, running, session_for

pytestmark = pytest.mark.django_db(transaction=True)


def pgbouncer_account(host: str | None) -> str:
    """The account PgBouncer runs as under root (it refuses root itself).

    A server on a Unix socket (the embedded one) is reached as the owner of the socket's
    directory, which may let nobody else in; a TCP server as the cluster account.
    """
    if host and host.startswith("/"):
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name
        if owner != "root":
            return owner
    return run_as()


@pytest.fixture
def pgbouncer(tmp_path_factory):
    """A transaction-mode PgBouncer on a free loopback port: one server connection to the test database."""
    database = connection.settings_dict
    app = app_role_name()
    password = role_settings("app").get("PASSWORD") or ""
    folder = tmp_path_factory.mktemp("pgbouncer")
    folder.chmod(0o755)  # pgbouncer drops root for the postgres user: it must still read its files
    port = free_port()
    target = f"host={database['HOST'] or '127.0.0.1'} port={database['PORT'] or 5432} dbname={database['NAME']}"
    if password:
        target += f" password={password}"
    (folder / "users.txt").write_text(f'"{app}" "{password}"\n')
    (folder / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"{database['NAME']} = {target}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'users.txt'}",
                "pool_mode = transaction",
                "default_pool_size = 1",
                "max_db_connections = 1",
                "min_pool_size = 0",
                "reserve_pool_size = 0",
                "max_client_conn = 50",
                "server_reset_query =",
                "ignore_startup_parameters = extra_float_digits,options",
                *([f"user = {pgbouncer_account(database['HOST'])}"] if os.geteuid() == 0 else []),
                "",
            ]
        )
    )
    for name in ("users.txt", "pgbouncer.ini"):
        (folder / name).chmod(0o644)
    dsn = f"host=127.0.0.1 port={port} dbname={database['NAME']} user={app}"

    def answers() -> bool:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    with running([binary("pgbouncer"), str(folder / "pgbouncer.ini")], what="pgbouncer", ready=answers):
        yield {"port": port, "dsn": dsn, "url": app_database_url("127.0.0.1", port)}


def backend_and_tenant(conn) -> tuple[int, str]:
    return conn.execute("SELECT pg_backend_pid(), coalesce(current_setting('vulhub.tenant', true), '')").fetchone()


def test_a_session_level_setting_does_leak_through_pgbouncer(pgbouncer):
    """The control: the pooler really shares the server connection, so a leak would be seen."""
    with psycopg.connect(pgbouncer["dsn"], autocommit=True) as first:
        first_pid, _ = backend_and_tenant(first)
        first.execute("SELECT set_config('vulhub.tenant', '42', false)")  # session-level: the wrong way
        with psycopg.connect(pgbouncer["dsn"], autocommit=True) as second:
            pid, tenant = backend_and_tenant(second)
            second.execute("SELECT set_config('vulhub.tenant', '', false)")  # tidy the shared connection
    assert pid == first_pid
    assert tenant == "42"


def test_a_transaction_local_tenant_ends_with_its_transaction_behind_pgbouncer(pgbouncer):
    """Two clients, interleaved transactions, one server connection: each sees its own tenant only while it runs."""
    seen = []
    with psycopg.connect(pgbouncer["dsn"]) as alpha, psycopg.connect(pgbouncer["dsn"]) as beta:
        for conn, tenant in ((alpha, "1"), (beta, "2"), (alpha, "3"), (beta, "")):
            with conn.transaction():
                before = backend_and_tenant(conn)
                conn.execute("SELECT set_config('vulhub.tenant', %s, true)", [tenant])
                during = backend_and_tenant(conn)
            seen.append((before, during))
        conn.rollback()
    assert len({pid for (pid, _), _ in seen}) == 1  # one server connection carried every transaction
    assert [before_tenant for (_, before_tenant), _ in seen] == ["", "", "", ""]
    assert [during_tenant for _, (_, during_tenant) in seen] == ["1", "2", "3", ""]


@pytest.fixture
def two_classes():
    """Two tenants, each with a challenge and a signed-in student, committed for the server to see."""
    made = []
    for slug in ("alpha", "beta"):
        tenant = TenantFactory(slug=slug, domain=f"{slug}.localhost", name=f"{slug.title()} School")
        ProjectFactory(tenant=tenant, name=f"Challenge of {slug}")
        made.append((tenant, session_for(StudentFactory(tenant=tenant), tenant.domain)))
    return made


def test_requests_of_two_tenants_interleaved_over_one_pgbouncer_connection(pgbouncer, two_classes):
    """VulHub under gunicorn (two workers: two clients of PgBouncer) over one server connection."""
    answers = []
    # each worker keeps its client connection to PgBouncer
    with gunicorn(pgbouncer["url"], DB_POOL="false", CONN_MAX_AGE="60", DB_TRANSACTION_POOLER="true") as port:
        for _ in range(4):
            for tenant, session in two_classes:
                answers.append((tenant.slug, *fetch(port, tenant.domain, "/challenges/", session)))
        with connection.cursor() as cursor:  # the test's own connection: straight to PostgreSQL
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = current_database()",
                [app_role_name()],
            )
            (server_connections,) = cursor.fetchone()
        with psycopg.connect(pgbouncer["dsn"], autocommit=True) as after:
            _, leftover = backend_and_tenant(after)

    assert [(slug, status) for slug, status, _ in answers] == [("alpha", 200), ("beta", 200)] * 4
    for slug, _, body in answers:
        other = "beta" if slug == "alpha" else "alpha"
        assert f"Challenge of {slug}" in body
        assert f"Challenge of {other}" not in body
    assert server_connections == 1  # PgBouncer's one server connection carried both workers' requests
    assert leftover == ""  # and holds no tenant after them
