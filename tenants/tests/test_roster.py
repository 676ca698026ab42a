"""Importing a class roster from CSV, and exporting users, submissions and the leaderboard."""

import csv
import io

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import EventStore
from scoring import services
from tenants.factories import StudentFactory
from tenants.models import User

pytestmark = pytest.mark.usefixtures("fast_hashing")

IMPORT = "/admin/tenants/user/import/"


def upload(client, text):
    """Step 1: the preview (a dry run). Returns the response."""
    data = {"import_file": SimpleUploadedFile("class.csv", text.encode(), content_type="text/csv"), "format": "0"}
    return client.post(IMPORT, data)


def confirm(client, preview):
    form = preview.context["confirm_form"]
    return client.post("/admin/tenants/user/process_import/", {**form.initial, "format": form.initial["format"]})


ROSTER = (
    "email,first_name,last_name,role\nada@alpha.test,Ada,Lovelace,student\ngrace@alpha.test,Grace,Hopper,INSTRUCTOR\n"
)


def test_the_preview_writes_nothing(tenant, tenant_admin, client_for):
    response = upload(client_for(tenant, tenant_admin), ROSTER)

    assert response.status_code == 200
    assert response.context["result"].totals["new"] == 2
    assert not User.objects.filter(email__in=["ada@alpha.test", "grace@alpha.test"]).exists()


def test_confirming_imports_the_class_into_the_admins_tenant_with_welcome_mails(
    tenant, tenant_admin, client_for, django_capture_on_commit_callbacks
):
    client = client_for(tenant, tenant_admin)
    preview = upload(client, ROSTER)

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm(client, preview)

    assert response.status_code == 302
    ada = User.objects.get(email="ada@alpha.test")
    assert (ada.tenant, ada.role, ada.has_usable_password()) == (tenant, "STUDENT", False)
    assert User.objects.get(email="grace@alpha.test").role == "INSTRUCTOR"
    assert EventStore.objects.filter(event_type="UserRegistered", aggregate_id=str(ada.pk)).exists()
    assert sorted(m.to[0] for m in mail.outbox) == ["ada@alpha.test", "grace@alpha.test"]
    assert f"http://{tenant.domain}/accounts/reset/" in mail.outbox[0].body


def test_a_wrong_row_shows_its_error_and_nothing_is_imported(tenant, tenant_admin, client_for):
    text = ROSTER + "bad@alpha.test,Bad,Role,wizard\n,No,Email,student\n"

    response = upload(client_for(tenant, tenant_admin), text)

    content = response.content.decode()
    assert "role must be one of" in content
    assert "This field cannot be blank." in content
    assert "confirm_form" not in response.context or response.context["confirm_form"] is None
    assert not User.objects.filter(email="ada@alpha.test").exists()


def test_an_existing_email_updates_instead_of_duplicating(tenant, tenant_admin, client_for):
    StudentFactory(tenant=tenant, email="ada@alpha.test", first_name="A")
    client = client_for(tenant, tenant_admin)

    confirm(client, upload(client, ROSTER))

    assert User.objects.for_tenant(tenant).filter(email="ada@alpha.test").count() == 1
    assert User.objects.get(email="ada@alpha.test").first_name == "Ada"


def test_the_same_email_in_another_tenant_is_left_alone(tenant, tenant_admin, other_tenant, client_for):
    theirs = StudentFactory(tenant=other_tenant, email="ada@alpha.test", first_name="Theirs")
    client = client_for(tenant, tenant_admin)

    confirm(client, upload(client, ROSTER))

    theirs.refresh_from_db()
    assert theirs.first_name == "Theirs"
    assert User.objects.for_tenant(tenant).filter(email="ada@alpha.test").exists()


def test_an_instructor_cannot_import(tenant, instructor, client_for):
    assert client_for(tenant, instructor).get(IMPORT).status_code == 403


def export(client, path):
    """Export as CSV with every field of the (only) resource ticked."""
    form = client.get(path).context["form"]
    data = {
        "format": "0",
        "resource": "0",
        **{name: "on" for name in form.fields if "_" in name and name not in ("export_items",)},
    }
    response = client.post(path, data)
    assert response["Content-Type"].startswith("text/csv"), response.status_code
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_exports_are_csv_of_the_tenants_rows_only(
    tenant, other_tenant, tenant_admin, student, other_student, client_for
):
    from challenges.factories import ProjectFactory

    project = ProjectFactory(tenant=tenant, flag="FLAG{x}", points=70)
    services.submission_create(user=student, project=project, flag="FLAG{x}")
    theirs = ProjectFactory(tenant=other_tenant, flag="FLAG{y}")
    services.submission_create(user=other_student, project=theirs, flag="FLAG{y}")
    client = client_for(tenant, tenant_admin)

    users = export(client, "/admin/tenants/user/export/")
    submissions = export(client, "/admin/scoring/submission/export/?status__exact=APPROVED")
    board = export(client, "/admin/scoring/leaderboard/export/")

    emails = {row[0] for row in users[1:]}
    assert student.email in emails and other_student.email not in emails
    assert [r[1] for r in submissions[1:]] == [student.email]
    assert board[0][:2] == ["rank", "student"]
    assert [r[1] for r in board[1:]] == [student.email]


def test_a_class_is_recorded_in_one_write_not_one_per_student(tenant, tenant_admin, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows = "".join(f"s{n}@alpha.test,S,{n},student\n" for n in range(25))
    client = client_for(tenant, tenant_admin)
    preview = upload(client, "email,first_name,last_name,role\n" + rows)

    with CaptureQueriesContext(connection) as queries:
        confirm(client, preview)

    assert User.objects.for_tenant(tenant).filter(email__startswith="s").count() == 25
    recordings = [q for q in queries.captured_queries if "audit_record(" in q["sql"]]
    assert len(recordings) == 1
    assert EventStore.objects.filter(event_type="UserRegistered").count() == 25
