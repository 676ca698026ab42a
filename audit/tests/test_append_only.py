"""audit_logs and event_store are append-only, whoever asks; their rows outlive what they describe.

The guards are triggers (audit/migrations/0003_append_only_triggers). The TRUNCATE
guards are switched off in the test database (conftest: vulhub.tests.append_only.allow_test_flush)
so Django's flush works; the TRUNCATE tests switch them back on inside their own
transaction, which the end of the test rolls back.
"""

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.context import acting_as
from audit.models import AuditChainHead, AuditLog, EventStore
from audit.recording import append_event, audit_row, event_row, write_audit
from challenges.models import Project
from tenants.models import Tenant, User
from vulhub.tests.append_only import TRUNCATE_GUARDS, allow_test_flush

pytestmark = pytest.mark.django_db

APPEND_ONLY = ["audit_logs", "event_store"]
INSUFFICIENT_PRIVILEGE = "42501"


def execute(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def scalar(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def count(table):
    return scalar(f"SELECT count(*) FROM {table}")


@pytest.fixture
def as_owner(db):
    """The guards hold for the table's owner too: these tests run as it (the tests log in
    as the owner and act as the app role, which may not TRUNCATE at all)."""
    execute("SET LOCAL ROLE NONE")  # until the test's transaction is rolled back


def trigger_state(table, trigger):
    """pg_trigger.tgenabled: 'O' fires (origin), 'D' disabled."""
    return scalar(
        "SELECT tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
        [table, trigger],
    )


def assert_append_only_error(excinfo, table, operation):
    error = excinfo.value
    assert isinstance(error, DatabaseError)
    assert "append-only" in str(error)
    assert f"{table} is append-only: {operation} is not allowed" in str(error)
    assert getattr(error.__cause__, "sqlstate", None) == INSUFFICIENT_PRIVILEGE


@pytest.fixture
def records(tenant):
    """At least one row in each guarded table (the row triggers fire only on matched rows)."""
    write_audit(audit_row(action="test", tenant_id=tenant.pk, object_text="original"))
    append_event(
        event_row(event_type="Tested", aggregate_type="Test", aggregate_id=1, payload={"n": 1}, tenant_id=tenant.pk)
    )
    counts = {table: count(table) for table in [*APPEND_ONLY, "audit_chain_heads"]}
    assert all(counts.values()), counts
    return counts


# --- UPDATE and DELETE ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "table,statement",
    [
        ("audit_logs", "UPDATE audit_logs SET object_text = 'tampered'"),
        ("event_store", "UPDATE event_store SET payload = '{\"n\": 2}'::jsonb"),
    ],
)
def test_update_is_refused(records, table, statement):
    snapshot = scalar(f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t")

    with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
        execute(statement)

    assert_append_only_error(excinfo, table, "UPDATE")
    assert scalar(f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t") == snapshot


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_delete_is_refused(records, table):
    with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
        execute(f"DELETE FROM {table}")

    assert_append_only_error(excinfo, table, "DELETE")
    assert count(table) == records[table]


def test_delete_of_a_chain_head_is_refused(records, tenant):
    assert AuditChainHead.objects.filter(chain_key=tenant.pk).exists()

    with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
        execute("DELETE FROM audit_chain_heads WHERE chain_key = %s", [tenant.pk])

    assert_append_only_error(excinfo, "audit_chain_heads", "DELETE")
    assert count("audit_chain_heads") == records["audit_chain_heads"]


def test_the_orm_is_refused_too(records, tenant):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLog.objects.filter(tenant_id=tenant.pk).update(object_text="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLog.objects.filter(tenant_id=tenant.pk).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        EventStore.objects.all().delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditLog.objects.filter(tenant_id=tenant.pk).first().save()

    assert AuditLog.objects.filter(object_text="tampered").count() == 0
    assert count("audit_logs") == records["audit_logs"]
    assert count("event_store") == records["event_store"]


# --- TRUNCATE -------------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "trigger"), TRUNCATE_GUARDS)
def test_the_truncate_guards_are_off_in_the_test_database_so_the_flush_works(as_owner, records, table, trigger):
    """The baseline the TRUNCATE tests depend on: without the guard, TRUNCATE goes through."""
    assert trigger_state(table, trigger) == "D"

    with transaction.atomic():
        execute(f"TRUNCATE {table}")
        assert count(table) == 0
        transaction.set_rollback(True)

    assert count(table) == records[table]


@pytest.mark.parametrize(("table", "trigger"), TRUNCATE_GUARDS)
def test_a_plain_enable_trigger_is_what_makes_truncate_fail(as_owner, records, table, trigger):
    with transaction.atomic():
        execute(f"TRUNCATE {table}")  # guard off: succeeds (rolled back below)
        assert count(table) == 0
        transaction.set_rollback(True)
    assert count(table) == records[table]

    with transaction.atomic():
        execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
        assert trigger_state(table, trigger) == "O"
        with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
            execute(f"TRUNCATE {table}")
        transaction.set_rollback(True)

    assert_append_only_error(excinfo, table, "TRUNCATE")
    assert count(table) == records[table]
    # ALTER TABLE is transactional: the rollback switched the guard off again.
    assert trigger_state(table, trigger) == "D"


@pytest.mark.parametrize("table", [*APPEND_ONLY, "audit_chain_heads"])
def test_truncate_is_refused_once_the_guards_are_on(as_owner, records, table):
    allow_test_flush(enable_guards=True)  # inside the test's transaction; rolled back at its end
    assert {trigger_state(t, g) for t, g in TRUNCATE_GUARDS} == {"O"}

    with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
        execute(f"TRUNCATE {table}")
    assert_append_only_error(excinfo, table, "TRUNCATE")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute(f"TRUNCATE {table} CASCADE")

    assert count(table) == records[table]


# --- history outlives what it describes --------------------------------------------------------


def audit_rows_of(actor_id):
    return list(
        AuditLog.objects.filter(actor_id=actor_id)
        .order_by("chain_seq")
        .values("id", "actor_id", "actor_text", "action", "object_type", "object_id", "changes")
    )


def rename_as(user, project, name):
    with acting_as(user):
        project.name = name
        project.save()


def check_deferred_constraints():
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_deleting_a_user_keeps_their_audit_rows(instructor, project):
    old_name = project.name
    rename_as(instructor, project, "Renamed by the instructor")
    before = audit_rows_of(instructor.pk)
    assert before == [
        {
            "id": before[0]["id"],
            "actor_id": instructor.pk,
            "actor_text": "instructor@alpha.test",
            "action": "update",
            "object_type": "challenges.project",
            "object_id": str(project.pk),
            "changes": {"name": [old_name, "Renamed by the instructor"]},
        }
    ]
    instructor_id = instructor.pk

    instructor.delete()
    check_deferred_constraints()

    assert not User.objects.filter(pk=instructor_id).exists()
    assert audit_rows_of(instructor_id) == before
    row = AuditLog.objects.get(pk=before[0]["id"])
    assert (row.actor_id, row.actor_text) == (instructor_id, "instructor@alpha.test")
    # the deletion itself is recorded too
    assert AuditLog.objects.filter(action="delete", object_type="tenants.user", object_id=str(instructor_id)).exists()
    call_command("verify_audit", "--no-progress")


def test_deleting_a_tenant_keeps_its_audit_rows(tenant, instructor, project, other_tenant):
    rename_as(instructor, project, "Renamed before the tenant went")
    tenant_id, instructor_id, project_id = tenant.pk, instructor.pk, project.pk
    before = list(AuditLog.objects.filter(tenant_id=tenant_id).order_by("chain_seq").values())
    assert [r["action"] for r in before] == ["create", "create", "create", "update"]
    assert before[-1]["actor_id"] == instructor_id
    assert before[-1]["actor_text"] == "instructor@alpha.test"

    with acting_as(None):
        tenant.delete()
    check_deferred_constraints()

    assert not Tenant.objects.filter(pk=tenant_id).exists()
    assert not Project.objects.filter(pk=project_id).exists()
    after = list(AuditLog.objects.filter(tenant_id=tenant_id).order_by("chain_seq").values())
    assert after[: len(before)] == before
    deleted = {(r["object_type"], r["object_id"]) for r in after[len(before) :] if r["action"] == "delete"}
    assert {
        ("tenants.tenant", str(tenant_id)),
        ("tenants.user", str(instructor_id)),
        ("challenges.project", str(project_id)),
    } <= deleted
    # the chain of the deleted tenant still verifies (and the other tenant's is untouched)
    call_command("verify_audit", "--no-progress")
