"""Row-level security: the database keeps tenants apart even when the code forgets to.

These tests talk to PostgreSQL directly, as the app role, with raw SQL (no ORM scoping
to hide behind). They commit their data (`transaction=True`) so that a second
connection, the owner's or a pool's, sees it.
"""

import psycopg
import pytest
from django.conf import settings
from django.db import ProgrammingError, connection, transaction
from psycopg import sql
from psycopg_pool import ConnectionPool

from audit.models import AuditLog
from challenges.factories import ProjectFactory
from scoring.factories import BadgeFactory, LeaderboardFactory, UserBadgeFactory
from scoring.models import Submission
from scoring.services import submission_create
from tenants import rls
from tenants.factories import InstructorFactory, StudentFactory, TenantFactory
from vulhub.ops.db_roles import app_role_name, describe_current_role

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED_TABLES = {
    "users",
    "projects",
    "submissions",
    "badges",
    "user_badges",
    "leaderboards",
    "audit_logs",
    "event_store",
}


def tenant_tables(cursor) -> list[str]:
    cursor.execute(
        """
        SELECT c.table_name FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
        ORDER BY 1
        """
    )
    return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def two_tenants():
    """Two tenants with a row in every tenant-owned table each, committed."""
    made = {}
    for slug in ("alpha", "beta"):
        tenant = TenantFactory(slug=slug, domain=f"{slug}.localhost", name=f"{slug.title()} School")
        student = StudentFactory(tenant=tenant)
        InstructorFactory(tenant=tenant)
        project = ProjectFactory(tenant=tenant, name=f"Challenge of {slug}", flag="flag{x}")
        submission_create(user=student, project=project, flag="flag{x}")  # submission, audit, events
        LeaderboardFactory(tenant=tenant, user=StudentFactory(tenant=tenant), points=5)
        UserBadgeFactory(tenant=tenant, user=student, badge=BadgeFactory(tenant=tenant))
        made[slug] = tenant
    return made


def counts(cursor, tables) -> dict[str, int]:
    found = {}
    for table in tables:
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        found[table] = cursor.fetchone()[0]
    return found


def visible_tenants(cursor, tables) -> dict[str, set]:
    found = {}
    for table in tables:
        cursor.execute(sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(sql.Identifier(table)))
        found[table] = {row[0] for row in cursor.fetchall()}
    return found


def as_app_without_bypass(cursor, tenant_id=None) -> None:
    """What a request's transaction is: the app role, the tenant (or none) entered with the app's proof."""
    cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(app_role_name())))
    stamp, proof = rls.tenant_proof(tenant_id)
    cursor.execute("SELECT vulhub_enter_tenant(%s, %s, %s)", [tenant_id, stamp, proof])


# --- the schema ------------------------------------------------------------------------


def test_every_table_with_a_tenant_id_has_forced_rls_and_a_policy_with_using_and_check():
    with connection.cursor() as cursor:
        tables = tenant_tables(cursor)
        assert set(tables) >= EXPECTED_TABLES  # a new tenant table is checked too
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   bool_or(p.qual IS NOT NULL AND p.with_check IS NOT NULL AND p.cmd = 'ALL')
            FROM pg_class c LEFT JOIN pg_policies p ON p.schemaname = 'public' AND p.tablename = c.relname
            WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)
            GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity
            """,
            [tables],
        )
        rows = {name: (enabled, forced, policy) for name, enabled, forced, policy in cursor.fetchall()}
    missing = {t: rows.get(t) for t in tables if rows.get(t) != (True, True, True)}
    assert missing == {}, f"tables without ENABLE + FORCE ROW LEVEL SECURITY and a full policy: {missing}"


def test_the_app_runs_as_a_restricted_role():
    facts = describe_current_role(role=app_role_name())
    assert facts.name == app_role_name()
    assert not facts.superuser
    assert not facts.bypass_rls
    assert facts.owns_tables == 0
    assert facts.can_truncate == 0
    for statement in (
        "CREATE TABLE sneaky (id int)",
        "TRUNCATE submissions",
        "ALTER TABLE projects DISABLE ROW LEVEL SECURITY",
    ):
        with pytest.raises(ProgrammingError, match="permission denied|must be owner"), transaction.atomic():
            as_app_without_bypass(connection.cursor(), None)
            connection.cursor().execute(statement)


# --- isolation -------------------------------------------------------------------------


def test_with_no_tenant_set_every_tenant_table_reads_empty_and_refuses_inserts(two_tenants):
    with connection.cursor() as cursor:
        tables = tenant_tables(cursor)
        seen = counts(cursor, EXPECTED_TABLES)
        assert all(n > 0 for n in seen.values()), {t: n for t, n in seen.items() if not n}  # the tests see all
        with transaction.atomic():
            as_app_without_bypass(cursor, None)
            assert counts(cursor, tables) == dict.fromkeys(tables, 0)
    alpha = two_tenants["alpha"]
    with pytest.raises(Exception, match="row-level security"), transaction.atomic(), connection.cursor() as cursor:
        as_app_without_bypass(cursor, None)
        cursor.execute(
            "INSERT INTO badges (tenant_id, name, slug, description, icon, rule_kind, rule_params, created_at) "
            "VALUES (%s, 'Sneaky', 'sneaky', '', '', '', '{}', now())",
            [alpha.pk],
        )


def test_a_tenant_sees_reads_and_changes_only_its_own_rows(two_tenants):
    alpha, beta = two_tenants["alpha"], two_tenants["beta"]
    with transaction.atomic(), connection.cursor() as cursor:
        tables = tenant_tables(cursor)
        as_app_without_bypass(cursor, alpha.pk)
        visible = visible_tenants(cursor, tables)
        assert {t: visible[t] for t in EXPECTED_TABLES} == dict.fromkeys(EXPECTED_TABLES, {alpha.pk})
        assert all(seen <= {alpha.pk} for seen in visible.values()), visible
        # raw statements aimed straight at beta's rows touch nothing
        cursor.execute("UPDATE projects SET name = 'hijacked' WHERE tenant_id = %s", [beta.pk])
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM leaderboards WHERE tenant_id = %s", [beta.pk])
        assert cursor.rowcount == 0
        cursor.execute("SELECT count(*) FROM submissions WHERE tenant_id = %s", [beta.pk])
        assert cursor.fetchone()[0] == 0
        # and a row cannot be moved into beta or written for beta
        with pytest.raises(Exception, match="row-level security"), transaction.atomic():
            cursor.execute("UPDATE projects SET tenant_id = %s", [beta.pk])
    assert not Submission.objects.filter(tenant=beta).filter(project__name="hijacked").exists()
    assert Submission.objects.filter(tenant=beta).count() == 1


def test_the_isolation_checks_fail_when_the_policies_are_gone(two_tenants):
    """The same checks, on a copy of the schema whose policies are dropped: they see the leak.

    Proves the tests above measure the database, not the ORM. Done by the owner in a
    transaction that is rolled back, acting as the app role.
    """
    alpha = two_tenants["alpha"]
    owner = settings.DATABASE_ROLES["owner"]
    params = {
        "host": connection.settings_dict["HOST"] or owner.get("HOST") or None,
        "port": owner.get("PORT") or None,
        "user": owner["USER"],
        "password": owner.get("PASSWORD") or None,
        "dbname": connection.settings_dict["NAME"],
    }
    with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as conn, conn.cursor() as cursor:
        tables = tenant_tables(cursor)
        for table in tables:
            cursor.execute(sql.SQL("DROP POLICY tenant_isolation ON {}").format(sql.Identifier(table)))
            cursor.execute(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(sql.Identifier(table)))
        cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(app_role_name())))
        as_app_without_bypass(cursor, alpha.pk)
        leaked = {t: v for t, v in visible_tenants(cursor, EXPECTED_TABLES).items() if v != {alpha.pk}}
        conn.rollback()
    assert set(leaked) == EXPECTED_TABLES


# --- pooled connections ----------------------------------------------------------------


def test_nothing_tenant_specific_survives_in_a_pooled_connection(two_tenants):
    """Requests of two tenants, interleaved over one pooled connection (a pool of one).

    Each "request" is a transaction that sets its tenant with set_config(..., true), as
    the middleware does; the setting ends with the transaction, so the next checkout of
    the same server connection (same backend pid) starts with no tenant and sees nothing.
    A transaction-mode PgBouncer hands out server connections the same way.
    """
    alpha, beta = two_tenants["alpha"], two_tenants["beta"]
    settings_dict = connection.settings_dict
    conninfo = psycopg.conninfo.make_conninfo(
        host=settings_dict["HOST"] or "",
        port=str(settings_dict["PORT"] or ""),
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
        password=settings_dict.get("PASSWORD") or "",
    )
    seen = []
    assumed = app_role_name()

    def act_as_app(conn):  # as the tests' connections do (db_roles.assume): once per server connection
        if assumed:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(assumed)))
            conn.commit()

    with ConnectionPool(conninfo, min_size=1, max_size=1, open=True, configure=act_as_app) as pool:
        for tenant in (alpha, beta, None, alpha, None, beta):
            with pool.connection() as conn, conn.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid(), current_setting('vulhub.tenant', true)")
                pid, leftover = cursor.fetchone()
                with conn.transaction():
                    as_app_without_bypass(cursor, tenant.pk if tenant else None)
                    cursor.execute("SELECT DISTINCT tenant_id FROM projects")
                    visible = {row[0] for row in cursor.fetchall()}
                    cursor.execute("SELECT DISTINCT tenant_id FROM users")
                    visible |= {row[0] for row in cursor.fetchall() if row[0] is not None}
                seen.append((pid, leftover or "", visible))
    pids = {pid for pid, _, _ in seen}
    assert len(pids) == 1  # one server connection served every request
    assert [leftover for _, leftover, _ in seen] == [""] * 6  # nothing carried over
    expected = [{alpha.pk}, {beta.pk}, set(), {alpha.pk}, set(), {beta.pk}]
    assert [visible for _, _, visible in seen] == expected


def test_requests_of_two_tenants_over_one_django_connection_see_their_own_tenant(two_tenants):
    """Through the app: the middleware's transaction sets the tenant and leaves nothing behind."""
    from django.test import Client

    alpha, beta = two_tenants["alpha"], two_tenants["beta"]
    before = rls.current()
    for tenant, other in ((alpha, beta), (beta, alpha), (alpha, beta)):
        student = StudentFactory(tenant=tenant)
        browser = Client(HTTP_HOST=tenant.domain)
        browser.force_login(student)
        page = browser.get("/challenges/").content.decode()
        assert f"Challenge of {tenant.slug}" in page
        assert f"Challenge of {other.slug}" not in page
        assert rls.current() == before  # the request's settings ended with its transaction


def test_a_platform_superuser_request_sees_the_hosts_tenant_only(two_tenants, django_user_model):
    """No request bypasses row-level security, a platform superuser's neither: work across tenants is manage.py's."""
    alpha = two_tenants["alpha"]
    admin = django_user_model.objects.create_superuser(email="root@platform.test", password="x" * 12)
    from django.test import Client

    browser = Client(HTTP_HOST=alpha.domain)
    browser.force_login(admin)
    page = browser.get("/admin/scoring/badge/")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1  # alpha's badge only
    assert not AuditLog.objects.filter(action="rls_bypass").exists()


def test_check_deploy_accepts_the_app_role_and_flags_one_that_bypasses_security():
    from django.test import override_settings

    from vulhub.ops.role_checks import app_role_is_restricted

    assert app_role_is_restricted() == []
    owner = settings.DATABASE_ROLES["owner"]["USER"]  # the tests' owner is a superuser (or owns the tables)
    with override_settings(DATABASE_ROLES={**settings.DATABASE_ROLES, "app": {"USER": owner}}):
        [warning] = app_role_is_restricted()
    assert warning.id == "vulhub.W101"
    assert "row-level security does not hold" in warning.msg
