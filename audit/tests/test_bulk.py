"""Bulk writes record their audit rows in bulk: a fixed number of queries for any row count."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.bulk import bulk_create_recorded, delete_recorded, update_recorded
from audit.context import acting_as
from audit.models import AuditLog
from challenges.factories import ProjectFactory
from challenges.models import Project
from scoring.factories import SubmissionFactory
from scoring.models import Submission


def make_projects(tenant, n):
    return bulk_create_recorded(
        Project,
        [
            Project(tenant=tenant, name=f"Lab {i}", slug=f"lab-{i}", category="Web Security", difficulty="BEGINNER")
            for i in range(n)
        ],
    )


def test_bulk_create_records_a_create_per_row_in_two_statements(tenant, instructor):
    with acting_as(instructor), CaptureQueriesContext(connection) as queries:
        projects = make_projects(tenant, 100)

    statements = [q["sql"] for q in queries.captured_queries]
    # projects in one INSERT, their audit rows in one call of audit_record()
    assert len([sql for sql in statements if sql.startswith("INSERT")]) == 1
    assert len([sql for sql in statements if "audit_record(" in sql]) == 1
    rows = AuditLog.objects.filter(action="create", object_type="challenges.project")
    assert rows.count() == 100
    assert set(rows.values_list("actor_id", flat=True)) == {instructor.pk}
    assert {r.changes["name"][1] for r in rows} == {p.name for p in projects}


def test_a_100_row_update_takes_a_fixed_number_of_queries(tenant, instructor, django_assert_num_queries):
    make_projects(tenant, 100)
    queryset = Project.objects.for_tenant(tenant)

    # SAVEPOINT; SELECT ... FOR UPDATE (old values); UPDATE; INSERT the 100 audit rows; RELEASE
    with acting_as(instructor), django_assert_num_queries(5):
        count = update_recorded(queryset, points=50, is_published=True)

    assert count == 100
    rows = AuditLog.objects.filter(action="update", object_type="challenges.project")
    assert rows.count() == 100
    assert all(r.changes == {"points": [100, 50], "is_published": [False, True]} for r in rows)


def test_an_update_records_only_rows_that_changed(tenant):
    keep = ProjectFactory(tenant=tenant, points=50)
    change = ProjectFactory(tenant=tenant, points=100)

    update_recorded(Project.objects.filter(pk__in=[keep.pk, change.pk]), points=50)

    updated = AuditLog.objects.filter(action="update", object_type="challenges.project")
    assert list(updated.values_list("object_id", flat=True)) == [str(change.pk)]


def test_an_update_with_an_expression_records_the_resulting_values(tenant):
    from django.db.models import F

    project = ProjectFactory(tenant=tenant, points=100)

    update_recorded(Project.objects.filter(pk=project.pk), points=F("points") + 25)

    row = AuditLog.objects.get(action="update", object_id=str(project.pk), object_type="challenges.project")
    assert row.changes == {"points": [100, 125]}


def test_a_bulk_delete_writes_its_audit_rows_in_one_call(tenant):
    for _ in range(20):
        SubmissionFactory(tenant=tenant)

    with CaptureQueriesContext(connection) as queries:
        deleted, _ = delete_recorded(Submission.objects.for_tenant(tenant))

    recordings = [q for q in queries.captured_queries if "audit_record(" in q["sql"]]
    assert deleted == 20
    assert len(recordings) == 1
    assert AuditLog.objects.filter(action="delete", object_type="scoring.submission").count() == 20


def test_a_bulk_write_that_fails_records_nothing(tenant):
    import pytest
    from django.db import IntegrityError

    ProjectFactory(tenant=tenant, slug="lab-3")
    before = AuditLog.objects.count()

    with pytest.raises(IntegrityError):
        make_projects(tenant, 5)  # lab-3 exists: the unique slug fails the whole insert

    assert AuditLog.objects.count() == before
    assert Project.objects.for_tenant(tenant).count() == 1
