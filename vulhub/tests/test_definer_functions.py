"""SECURITY DEFINER functions run as the schema's owner: none may be steered by the caller.

A caller who may create temporary tables (the app role may) could put a temporary view in
front of a table such a function reads, unless pg_temp comes last in the function's own
search path (migration vulhub 0003).
"""

import pytest
from django.db import connection, transaction

from challenges.factories import ProjectFactory
from scoring.factories import SubmissionFactory
from tenants.factories import StudentFactory


def app_role_runs_the_tests() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        return not cursor.fetchone()[0]


@pytest.mark.django_db
def test_every_definer_function_searches_pg_temp_last():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.oid::regprocedure::text, coalesce(array_to_string(p.proconfig, ' '), '')
            FROM pg_proc p WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace
            """
        )
        functions = dict(cursor.fetchall())
    assert "vulhub_pending_writeups()" in functions
    assert "audit_record_sealed(jsonb,jsonb)" in functions
    unsafe = {name: config for name, config in functions.items() if not config.endswith("pg_temp")}
    assert not unsafe, f"SECURITY DEFINER functions that search pg_temp first: {unsafe}"


@pytest.mark.django_db
def test_a_temporary_view_cannot_stand_in_for_a_table_the_metrics_function_reads(tenant):
    SubmissionFactory(tenant=tenant, user=StudentFactory(tenant=tenant), project=ProjectFactory(tenant=tenant))
    with transaction.atomic(), connection.cursor() as cursor:
        # the attack: a view of ours named like the table, calling a function of ours
        cursor.execute(
            "CREATE FUNCTION pg_temp.whoami() RETURNS text LANGUAGE sql AS $$ SELECT 'ran as ' || current_user $$"
        )
        cursor.execute(
            "CREATE TEMP VIEW tenants AS SELECT 1::bigint AS id, pg_temp.whoami() AS slug, true AS is_active"
        )
        cursor.execute("CREATE TEMP TABLE submissions (tenant_id bigint, status text, submitted_at timestamptz)")
        cursor.execute("INSERT INTO submissions VALUES (1, 'PENDING', now())")
        cursor.execute("SELECT tenant, pending FROM vulhub_pending_writeups()")
        rows = cursor.fetchall()
        transaction.set_rollback(True)
    assert not any(slug.startswith("ran as") for slug, _ in rows), rows
    assert (tenant.slug, 1) in rows


@pytest.mark.django_db
def test_only_the_app_role_may_run_the_metrics_function():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT acl::text FROM pg_proc p, unnest(p.proacl) acl "
            "WHERE p.oid = 'vulhub_pending_writeups()'::regprocedure"
        )
        grants = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT has_function_privilege(current_user, 'vulhub_pending_writeups()', 'EXECUTE')")
        may_run = cursor.fetchone()[0]
    assert may_run
    assert grants, "EXECUTE is granted explicitly (not left to PUBLIC)"
    assert not any(acl.startswith("=") for acl in grants), grants  # "=X/owner" is PUBLIC's grant
    if app_role_runs_the_tests():
        assert any(acl.startswith("vulhub_app=X") for acl in grants), grants
