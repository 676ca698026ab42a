"""A service's records go with the end of its block (psycopg's pipeline), and an error in them is never lost.

`in_bulk()` sends audit_record() without waiting for its answer: the answer and any
error arrive with the block's COMMIT or RELEASE SAVEPOINT. Here the records fail in
the database (an address that is not one), and the change they describe must not
commit, in either place.
"""

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError

from audit.models import AuditLog
from audit.recording import audit_row, in_bulk, write_audit
from challenges.models import Project


def unwritable_record(tenant):
    row = audit_row(action="test", object_text="the database refuses this row", tenant_id=tenant.pk)
    row.ip = "not an address"  # the function's cast to inet fails
    return row


def new_project(tenant, slug):
    return Project.objects.create(tenant=tenant, name=slug, slug=slug, category="Web Security", difficulty="BEGINNER")


def test_records_that_fail_at_commit_roll_the_change_back(transactional_db, tenant):
    before = AuditLog.objects.count()

    with pytest.raises(DatabaseError, match="inet"), in_bulk():
        new_project(tenant, "never-committed")
        write_audit(unwritable_record(tenant))

    assert not Project.objects.filter(slug="never-committed").exists()
    assert AuditLog.objects.count() == before  # the project's own audit row went too
    new_project(tenant, "after-the-error")  # the connection serves the next transaction
    assert AuditLog.objects.filter(object_text="after-the-error").count() == 1


def test_records_that_fail_in_a_savepoint_leave_the_outer_transaction_unable_to_commit(db, tenant):
    """Inside a request's transaction the error surfaces after the savepoint: the request cannot commit anyway."""
    with transaction.atomic():
        with pytest.raises(DatabaseError, match="inet"), in_bulk():
            new_project(tenant, "half-written")
            write_audit(unwritable_record(tenant))
        assert connection.needs_rollback
        with pytest.raises(TransactionManagementError):
            Project.objects.count()


def test_records_sent_with_the_end_of_the_block_are_written(transactional_db, tenant):
    with in_bulk():
        project = new_project(tenant, "recorded")
        write_audit(audit_row(action="test", object_text="sent with the commit", tenant_id=tenant.pk))

    assert AuditLog.objects.filter(object_type="challenges.project", object_id=str(project.pk)).count() == 1
    assert AuditLog.objects.filter(object_text="sent with the commit").count() == 1
