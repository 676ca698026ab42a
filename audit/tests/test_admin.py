"""The audit and event admin: read-only for everyone, each tenant's staff see their own rows."""

import pytest

from audit.context import acting_as
from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from challenges.services import project_publish

CHANGELIST = "/admin/audit/auditlog/"
EVENTS = "/admin/audit/eventstore/"


@pytest.fixture
def records(tenant, other_tenant, instructor):
    with acting_as(instructor):
        mine = ProjectFactory(tenant=tenant, name="Alpha Lab", is_published=False)
        mine.name = "Alpha Lab Renamed"
        mine.save()
        project_publish(project=mine, actor=instructor)
    theirs = ProjectFactory(tenant=other_tenant, name="Beta Lab", is_published=False)
    project_publish(project=theirs, actor=None)
    return mine, theirs


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root@vulhub.test", "root-password-1")


def test_an_instructor_sees_only_their_tenants_audit_rows(records, tenant, instructor, client_for):
    response = client_for(tenant, instructor).get(CHANGELIST)

    assert response.status_code == 200
    assert b"Alpha Lab" in response.content
    assert b"Beta Lab" not in response.content


def test_another_tenants_row_is_a_404(records, tenant, other_tenant, instructor, client_for):
    foreign = AuditLog.objects.filter(tenant_id=other_tenant.pk).first()

    response = client_for(tenant, instructor).get(f"{CHANGELIST}{foreign.pk}/change/")

    assert response.status_code == 404


def test_another_tenants_event_is_a_404(records, tenant, other_tenant, instructor, client_for):
    foreign = EventStore.objects.filter(tenant_id=other_tenant.pk).first()

    response = client_for(tenant, instructor).get(f"{EVENTS}{foreign.pk}/change/")

    assert response.status_code == 404


def test_a_row_shows_its_changes_as_a_before_and_after_table(records, tenant, instructor, client_for):
    mine, _ = records
    row = AuditLog.objects.get(
        object_id=str(mine.pk), object_type="challenges.project", action="update", changes__has_key="name"
    )

    response = client_for(tenant, instructor).get(f"{CHANGELIST}{row.pk}/change/")

    assert response.status_code == 200
    content = response.content.decode()
    assert '<table class="audit-changes">' in content
    assert "<th>name</th><td>Alpha Lab</td><td>Alpha Lab Renamed</td>" in content


@pytest.mark.parametrize("persona", ["instructor", "superuser"])
def test_nobody_can_add_change_or_delete_records(persona, records, tenant, request, client_for):
    client = client_for(tenant, request.getfixturevalue(persona))
    row = AuditLog.objects.filter(tenant_id=tenant.pk).first()
    event = EventStore.objects.filter(tenant_id=tenant.pk).first()

    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(f"{CHANGELIST}{row.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize(
    "query",
    ["action__exact=update", "object_type__exact=challenges.project", "created_at__year={year}", "q=Renamed"],
)
def test_filters_and_search_narrow_the_list(query, records, tenant, instructor, client_for):
    from django.utils import timezone

    response = client_for(tenant, instructor).get(f"{CHANGELIST}?{query.format(year=timezone.now().year)}")

    assert response.status_code == 200
    assert b"Alpha Lab Renamed" in response.content


def test_the_actor_filter_separates_staff_from_the_system(records, tenant, instructor, client_for):
    client = client_for(tenant, instructor)

    by_instructor = client.get(f"{CHANGELIST}?actor={instructor.pk}")
    by_system = client.get(f"{CHANGELIST}?actor=system")

    assert by_instructor.status_code == by_system.status_code == 200
    assert len(by_instructor.context["cl"].result_list) == AuditLog.objects.filter(actor_id=instructor.pk).count()
    assert all(row.actor_id is None for row in by_system.context["cl"].result_list)


def test_a_superuser_sees_the_hosts_tenant_only(records, tenant, other_tenant, superuser, client_for):
    """No bypass for a request (row-level security): the platform's view across tenants is manage.py's."""
    client = client_for(tenant, superuser)

    page = client.get(CHANGELIST).content

    assert b"Alpha Lab" in page and b"Beta Lab" not in page
    assert b"Beta Lab" not in client.get(f"{CHANGELIST}?tenant_id={other_tenant.pk}").content


def test_a_student_has_no_admin(records, tenant, student, client_for):
    response = client_for(tenant, student).get(CHANGELIST)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_event_list_and_page_render(records, tenant, instructor, client_for):
    client = client_for(tenant, instructor)
    event = EventStore.objects.filter(tenant_id=tenant.pk).first()

    assert client.get(EVENTS).status_code == 200
    page = client.get(f"{EVENTS}{event.pk}/change/")
    assert page.status_code == 200
    assert b"ProjectPublished" in page.content
    assert b"Alpha Lab Renamed" in page.content


def test_an_objects_history_page_links_to_exactly_its_audit_rows(records, tenant, instructor, client_for):
    mine, _ = records
    other = ProjectFactory(tenant=tenant, name="Other Lab")  # its own rows must not show
    client = client_for(tenant, instructor)

    history = client.get(f"/admin/challenges/project/{mine.pk}/history/")

    link = f"{CHANGELIST}?object_type=challenges.project&amp;object_id={mine.pk}"
    assert history.status_code == 200 and link.encode() in history.content
    listed = client.get(link.replace("&amp;", "&"))
    assert listed.status_code == 200
    shown = {(row.object_type, row.object_id) for row in listed.context["cl"].result_list}
    assert shown == {("challenges.project", str(mine.pk))}, shown
    assert other.pk != mine.pk


def test_object_types_and_events_read_as_words(records, tenant, instructor, client_for):
    client = client_for(tenant, instructor)

    log = client.get(CHANGELIST).content.decode()
    events = client.get(EVENTS).content.decode()

    assert ">challenge<" in log and ">challenges.project<" not in log
    assert "Project published" in events and ">ProjectPublished<" not in events
