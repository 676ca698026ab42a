"""The app role's own database login, used as an attacker would (issue "defence in depth").

Each test logs in as the app role with psycopg, as someone holding DATABASE_URL or a
statement injected into a request would, and tries a statement the hostile test of
1c227c6 got through: bypassing row-level security with a setting, forging a tenant
context, making a tenant admin a platform superuser, reading sessions and invite codes,
granting permissions, forging audit rows. Every one is refused now. The data is committed
(`transaction=True`) so that the attacker's separate connection sees it.
"""

import datetime

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from audit import verify
from audit.models import AuditChainHead, AuditLog
from challenges.factories import ProjectFactory
from scoring.services import submission_create
from tenants import rls
from tenants.factories import StudentFactory, TenantAdminFactory, TenantFactory
from vulhub.ops.db_roles import app_role_name, use_role

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = (psycopg.errors.InsufficientPrivilege, psycopg.errors.CheckViolation)


@pytest.fixture
def two_tenants():
    made = {}
    for slug in ("alpha", "beta"):
        tenant = TenantFactory(slug=slug, domain=f"{slug}.localhost", settings={"invite_code": f"secret-{slug}-invite"})
        student = StudentFactory(tenant=tenant, email=f"student@{slug}.test")
        admin = TenantAdminFactory(tenant=tenant, email=f"admin@{slug}.test")
        project = ProjectFactory(tenant=tenant, flag="flag{x}")
        submission_create(user=student, project=project, flag="flag{x}")
        made[slug] = (tenant, student, admin)
    return made


@pytest.fixture
def app_login():
    """A psycopg connection logged in as the app role (acting as it: SET ROLE, when the tests' login differs)."""
    params = connection.settings_dict
    owner = settings.DATABASE_ROLES["owner"]
    conn = psycopg.connect(
        host=params["HOST"] or owner.get("HOST") or None,
        port=params["PORT"] or owner.get("PORT") or None,
        user=params["USER"],
        password=params.get("PASSWORD") or None,
        dbname=params["NAME"],
        autocommit=True,
    )
    conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(app_role_name())))
    assert conn.execute("SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
        False,
    )
    yield conn
    conn.close()


def refused(conn, statement: str, params=None) -> str:
    """Run `statement` in its own transaction and return the error it raised (a test fails if none)."""
    with pytest.raises(psycopg.Error) as raised, conn.transaction():
        conn.execute(statement, params)
    return str(raised.value)


def count(conn, statement: str, params=None) -> int:
    with conn.transaction():
        return conn.execute(statement, params).fetchone()[0]


# --- the tenant context --------------------------------------------------------------------


def test_the_old_bypass_setting_shows_nothing(two_tenants, app_login):
    with app_login.transaction():
        app_login.execute("SELECT set_config('vulhub.rls_bypass', 'on', true)")
        assert app_login.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        assert app_login.execute("SELECT count(*) FROM submissions").fetchone()[0] == 0
        assert app_login.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0


def test_a_tenant_context_typed_by_hand_or_copied_is_no_context(two_tenants, app_login):
    alpha, _, _ = two_tenants["alpha"]
    with app_login.transaction():
        app_login.execute("SELECT set_config('vulhub.tenant_id', %s, true)", [str(alpha.pk)])
        app_login.execute("SELECT set_config('vulhub.tenant', %s, true)", [f"{alpha.pk}:{'0' * 64}"])
        assert app_login.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    # a genuine context, made in one transaction, is worth nothing in the next
    stamp, proof = rls.host_proof(alpha.domain)
    with app_login.transaction():
        app_login.execute("SELECT * FROM vulhub_enter_host(%s, %s, %s)", [alpha.domain, stamp, proof])
        sealed = app_login.execute("SELECT current_setting('vulhub.tenant')").fetchone()[0]
        assert app_login.execute("SELECT count(*) FROM users").fetchone()[0] == 2  # the genuine one works
    with app_login.transaction():
        app_login.execute("SELECT set_config('vulhub.tenant', %s, true)", [sealed])
        assert app_login.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_entering_a_tenant_needs_the_apps_proof(two_tenants, app_login):
    beta, _, _ = two_tenants["beta"]
    now = int(timezone.now().timestamp())
    assert "does not verify" in refused(app_login, "SELECT vulhub_enter_tenant(%s, %s, %s)", [beta.pk, now, "0" * 64])
    assert "does not verify" in refused(
        app_login, "SELECT * FROM vulhub_enter_host(%s, %s, %s)", [beta.domain, now, "forged"]
    )
    # a proof for another host, or an old one, does not stretch
    stamp, proof = rls.host_proof("alpha.localhost")
    assert "does not verify" in refused(
        app_login, "SELECT * FROM vulhub_enter_host(%s, %s, %s)", [beta.domain, stamp, proof]
    )
    old = now - 3600
    assert "does not verify" in refused(
        app_login, "SELECT * FROM vulhub_enter_host(%s, %s, %s)", [beta.domain, old, proof]
    )
    # and the key, or the functions that use it, are out of reach
    for statement in (
        "SELECT * FROM vulhub_context_key",
        "SELECT * FROM vulhub_seal_key",
        "SELECT vulhub_context_seal('1')",
        "SELECT vulhub_set_context(1)",
        "SELECT vulhub_check_proof('x', 1, 'y')",
    ):
        assert "permission denied" in refused(app_login, statement)


def sealed(conn, tenant) -> None:
    """Enter `tenant` as a request does (with the app's proof), for the current transaction."""
    stamp, proof = rls.host_proof(tenant.domain)
    conn.execute("SELECT * FROM vulhub_enter_host(%s, %s, %s)", [tenant.domain, stamp, proof])


def test_a_tenant_admin_cannot_be_made_a_platform_superuser(two_tenants, app_login):
    alpha, _, admin = two_tenants["alpha"]
    with app_login.transaction():
        sealed(app_login, alpha)
        with pytest.raises(psycopg.Error, match="row-level security"), app_login.transaction():
            app_login.execute("UPDATE users SET is_superuser = true, tenant_id = NULL WHERE id = %s", [admin.pk])
        with pytest.raises(psycopg.errors.CheckViolation), app_login.transaction():
            app_login.execute("UPDATE users SET is_superuser = true WHERE id = %s", [admin.pk])
    admin.refresh_from_db()
    assert (admin.is_superuser, admin.tenant_id) == (False, alpha.pk)


def test_tenants_other_rows_and_their_invite_codes_stay_hidden(two_tenants, app_login):
    alpha, _, _ = two_tenants["alpha"]
    beta, _, _ = two_tenants["beta"]
    with app_login.transaction():
        sealed(app_login, alpha)
        rows = app_login.execute("SELECT id, settings::text FROM tenants").fetchall()
        assert [row[0] for row in rows] == [alpha.pk]
        assert "secret-beta-invite" not in str(rows)
        # its own row: the columns a tenant admin edits, and no other
        app_login.execute("UPDATE tenants SET name = 'Renamed' WHERE id = %s", [alpha.pk])
        assert app_login.execute("UPDATE tenants SET name = 'x' WHERE id = %s", [beta.pk]).rowcount == 0
    for statement in (
        f"UPDATE tenants SET domain = 'evil.example' WHERE id = {alpha.pk}",
        f"UPDATE tenants SET is_active = false WHERE id = {alpha.pk}",
        "INSERT INTO tenants (name, slug, domain, settings, registration_mode, is_active, created_at, updated_at) "
        "VALUES ('x', 'x', 'x.localhost', '{}', 'OPEN', true, now(), now())",
        f"DELETE FROM tenants WHERE id = {alpha.pk}",
    ):
        assert "permission denied" in refused(app_login, statement)


def test_sessions_are_reached_through_their_key_only(two_tenants, app_login):
    alpha, student, _ = two_tenants["alpha"]
    browser = Client(HTTP_HOST=alpha.domain)
    browser.force_login(student)
    key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    for statement in (
        "SELECT session_key FROM django_session",
        "DELETE FROM django_session",
        "UPDATE django_session SET expire_date = now()",
    ):
        assert "permission denied" in refused(app_login, statement)
    assert count(app_login, "SELECT count(*) FROM vulhub_session_load(%s)", [key]) == 1
    other_key = key[:-1] + ("y" if key.endswith("x") else "x")  # one character off (a random key may end in x)
    assert count(app_login, "SELECT count(*) FROM vulhub_session_load(%s)", [other_key]) == 0
    assert browser.get("/").status_code == 200  # the site itself still signs students in


def test_permission_tables_are_read_only_to_the_site(two_tenants, app_login):
    _, _, admin = two_tenants["alpha"]
    for statement in (
        f"INSERT INTO users_user_permissions (user_id, permission_id) SELECT {admin.pk}, id FROM auth_permission",
        f"INSERT INTO users_groups (user_id, group_id) SELECT {admin.pk}, id FROM auth_group",
        "INSERT INTO auth_group_permissions (group_id, permission_id) SELECT g.id, p.id FROM auth_group g, "
        "auth_permission p",
        "UPDATE auth_permission SET codename = codename",
        "DELETE FROM django_migrations",
    ):
        assert "permission denied" in refused(app_login, statement)
    assert count(app_login, "SELECT count(*) FROM auth_permission") > 0  # reading is fine


# --- the audit log -------------------------------------------------------------------------


def test_the_app_role_cannot_insert_audit_rows_or_move_chain_heads(two_tenants, app_login):
    alpha, _, admin = two_tenants["alpha"]
    with app_login.transaction():
        sealed(app_login, alpha)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), app_login.transaction():
            app_login.execute(
                "INSERT INTO audit_logs (tenant_id, actor_id, actor_text, action, object_type, object_id, "
                "object_text, changes, ip, user_agent, request_id, created_at) VALUES "
                "(%s, %s, 'x', 'delete', 'project', '1', 'x', '{}', '10.6.6.6', '', '', now() - interval '3 days')",
                [alpha.pk, admin.pk],
            )
        for statement in (
            "UPDATE audit_chain_heads SET last_seq = last_seq + 1",
            "INSERT INTO event_store (tenant_id, aggregate_type, aggregate_id, version, event_type, payload, "
            "metadata, occurred_at) VALUES (1, 'x', '1', 99, 'X', '{}', '{}', now())",
            "DELETE FROM audit_logs",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), app_login.transaction():
                app_login.execute(statement)


def test_the_recorder_takes_tenant_and_time_from_the_context_not_the_caller(two_tenants, app_login):
    alpha, _, admin = two_tenants["alpha"]
    beta, beta_student, _ = two_tenants["beta"]
    three_days_ago = (timezone.now() - datetime.timedelta(days=3)).isoformat()
    row = {
        "actor_id": admin.pk,
        "actor_text": admin.email,
        "action": "delete",
        "object_type": "project",
        "object_id": "1",
        "object_text": "a challenge",
        "ip": "10.6.6.6",
        "user_agent": "",
        "request_id": "",
        "created_at": three_days_ago,
    }
    with app_login.transaction():
        sealed(app_login, alpha)
        app_login.execute("SELECT * FROM audit_record(%s::jsonb, '[]'::jsonb)", [psycopg.types.json.Jsonb([row])])
    written = AuditLog.objects.filter(actor_id=admin.pk, action="delete").get()
    assert written.tenant_id == alpha.pk
    assert abs(written.created_at - timezone.now()) < datetime.timedelta(minutes=1)  # not three days back
    assert written.recorded is True
    # another tenant's rows, or another tenant's user as actor, are refused
    with app_login.transaction():
        sealed(app_login, alpha)
        for forged in ({**row, "tenant_id": beta.pk}, {**row, "actor_id": beta_student.pk}):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), app_login.transaction():
                app_login.execute(
                    "SELECT * FROM audit_record(%s::jsonb, '[]'::jsonb)", [psycopg.types.json.Jsonb([forged])]
                )
    # and with no tenant context, nothing at all
    assert "tenant's context" in refused(
        app_login, "SELECT * FROM audit_record(%s::jsonb, '[]'::jsonb)", [psycopg.types.json.Jsonb([row])]
    )


def test_a_row_the_owner_inserts_by_hand_is_named_by_verify_audit(two_tenants):
    alpha, _, admin = two_tenants["alpha"]
    assert verify.verify_chain(alpha.pk).broken is None
    with use_role("owner"), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_logs (tenant_id, actor_id, actor_text, action, object_type, object_id, object_text, "
            "changes, ip, user_agent, request_id, created_at) VALUES "
            "(%s, %s, 'x', 'delete', 'project', '1', 'x', '{}', '10.6.6.6', '', '', now() - interval '3 days')",
            [alpha.pk, admin.pk],
        )
    forged = AuditLog.objects.get(ip="10.6.6.6")
    assert forged.recorded is False
    head = AuditChainHead.objects.get(chain_key=alpha.pk)
    assert head.last_seq == forged.chain_seq  # the trigger linked it: the chain alone would look intact
    broken = verify.verify_chain(alpha.pk).broken
    assert broken is not None and broken.row_id == forged.pk
    assert "not written by the recorder" in broken.problem


def test_exported_heads_catch_a_history_rewritten_by_the_owner(two_tenants, tmp_path):
    """Someone with the owner's powers rewrites the newest row and its hash and moves the head:
    the chain is self-consistent again, but the link exported before no longer matches."""
    from django.core.management import CommandError, call_command

    alpha, _, _ = two_tenants["alpha"]
    heads = tmp_path / "heads.json"
    call_command("verify_audit", heads=str(heads), no_progress=True)  # exports the first
    call_command("verify_audit", heads=str(heads), no_progress=True)  # nothing changed: fine
    newest = AuditLog.objects.filter(tenant_id=alpha.pk).order_by("-chain_seq").first()
    with use_role("owner"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # no triggers: the superuser's way
        cursor.execute("UPDATE audit_logs SET actor_text = 'someone else' WHERE id = %s", [newest.pk])
        cursor.execute("UPDATE audit_logs a SET row_hash = audit_logs_row_hash(a) WHERE id = %s", [newest.pk])
        cursor.execute(
            "UPDATE audit_chain_heads h SET last_hash = a.row_hash FROM audit_logs a "
            "WHERE a.id = %s AND h.chain_key = a.tenant_id",
            [newest.pk],
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
    assert verify.verify_chain(alpha.pk).broken is None  # the chain alone cannot tell
    with pytest.raises(CommandError, match="broken"):
        call_command("verify_audit", heads=str(heads), no_progress=True)
    [problem] = verify.check_exported_heads(__import__("json").loads(heads.read_text())["chains"])
    assert "history was rewritten" in problem.problem and problem.row_id == newest.pk


def test_every_table_is_as_narrow_for_the_app_role_as_the_site_allows():
    """What the app role may read and write on each table, pinned: a new table shows up here."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, has_table_privilege(%(app)s, c.oid, 'SELECT'),
                   has_table_privilege(%(app)s, c.oid, 'INSERT') OR has_table_privilege(%(app)s, c.oid, 'UPDATE')
                   OR has_table_privilege(%(app)s, c.oid, 'DELETE'),
                   c.relrowsecurity AND c.relforcerowsecurity
            FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
            """,
            {"app": app_role_name()},
        )
        tables = {name: (reads, writes, isolated) for name, reads, writes, isolated in cursor.fetchall()}
    unreadable = {name for name, (reads, _, _) in tables.items() if not reads}
    assert unreadable == {"vulhub_context_key", "vulhub_seal_key", "django_session"}
    written_outside_isolation = {name for name, (_, writes, isolated) in tables.items() if writes and not isolated}
    # login throttling's counters (django-axes) and the database cache (REDIS_URL unset) only
    assert written_outside_isolation <= {
        "axes_accessattempt",
        "axes_accessattemptexpiration",
        "axes_accessfailurelog",
        "axes_accesslog",
        "cache_table",
    }
    read_only = {name for name, (reads, writes, _) in tables.items() if reads and not writes}
    assert read_only >= {
        "audit_logs",
        "event_store",
        "audit_chain_heads",
        "auth_group",
        "auth_group_permissions",
        "auth_permission",
        "django_content_type",
        "django_migrations",
        "users_groups",
        "users_user_permissions",
    }
