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
    assert "The role “wizard” is not one a roster may give" in content
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

    email_at = next(i for i, header in enumerate(users[0]) if header.lower() in ("email", "e-mail"))
    emails = {row[email_at] for row in users[1:]}
    assert student.email in emails and other_student.email not in emails
    assert [r[submissions[0].index("E-mail")] for r in submissions[1:]] == [student.email]
    assert board[0][:4] == ["Rank", "First name", "Last name", "E-mail"]
    assert [r[3] for r in board[1:]] == [student.email]


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


# --- what the admin reads: rows to fix, the preview, the template, the roles (issue 28) ---

TEMPLATE = "/admin/tenants/user/import/template.csv"


def test_a_refused_row_is_a_table_row_with_its_spreadsheet_row_email_name_and_message(tenant, tenant_admin, client_for):
    text = ROSTER + "bad@alpha.test,Bad,Role,wizard\n,No,Email,student\n"

    response = upload(client_for(tenant, tenant_admin), text)

    problems = response.context["row_problems"]
    assert [(p.line, p.email, p.name) for p in problems] == [(4, "bad@alpha.test", "Bad Role"), (5, "", "No Email")]
    assert problems[0].messages == (
        "role: The role “wizard” is not one a roster may give: write STUDENT (Student), INSTRUCTOR (Instructor) "
        "or ADMIN (Tenant admin), or leave it empty for a student.",
    )
    assert problems[1].messages == ("email: This field cannot be blank.",)
    html = response.content.decode()
    assert "Nothing was imported: 2 rows to fix" in html
    assert "The other 2 rows are fine." in html
    # the table comes first, in plain sight (no hover badge), and the upload asks for the corrected file
    assert html.index('class="roster-problem-table"') < html.index("Upload the corrected file")
    assert "validation-error-count" not in html
    assert response.context.get("confirm_form") is None


def test_after_the_preview_the_confirmation_asks_for_no_file(tenant, tenant_admin, client_for):
    response = upload(client_for(tenant, tenant_admin), ROSTER)

    html = response.content.decode()
    assert 'type="file"' not in html
    assert "Check the preview: nothing is saved yet" in html
    assert "2 new people, 0 updated, 0 unchanged" in html
    assert 'value="Import this roster"' in html
    assert f'name="import_file_name" value="{response.context["confirm_form"].initial["import_file_name"]}"' in html


def test_a_fixed_file_uploaded_again_imports(tenant, tenant_admin, client_for):
    client = client_for(tenant, tenant_admin)
    assert upload(client, ROSTER + "bad@alpha.test,Bad,Role,wizard\n").context["row_problems"]

    preview = upload(client, ROSTER + "bad@alpha.test,Fixed,Role,student\n")
    assert preview.context["row_problems"] == []
    response = confirm(client, preview)

    assert response.status_code == 302
    assert User.objects.for_tenant(tenant).get(email="bad@alpha.test").first_name == "Fixed"


def test_rows_refused_at_the_confirmation_are_listed_the_same_way(tenant, tenant_admin, client_for, settings):
    """The file changed on the server between preview and confirmation: nothing imported, the rows listed."""
    from import_export.tmp_storages import TempFolderStorage

    client = client_for(tenant, tenant_admin)
    preview = upload(client, ROSTER)
    name = preview.context["confirm_form"].initial["import_file_name"]
    TempFolderStorage(name=name, encoding="utf-8-sig").save(ROSTER + "late@alpha.test,Late,Comer,wizard\n")

    response = confirm(client, preview)

    assert response.status_code == 409
    assert [(p.line, p.email) for p in response.context["row_problems"]] == [(4, "late@alpha.test")]
    assert "Upload the corrected file" in response.content.decode()
    assert not User.objects.filter(email__in=["ada@alpha.test", "late@alpha.test"]).exists()


def test_a_role_may_be_written_as_its_name_in_any_case(tenant, tenant_admin, client_for):
    client = client_for(tenant, tenant_admin)
    text = "email,role\nt@alpha.test,Tenant admin\ni@alpha.test,instructor\ns@alpha.test,\n"

    confirm(client, upload(client, text))

    roles = dict(User.objects.for_tenant(tenant).filter(email__endswith="@alpha.test").values_list("email", "role"))
    assert (roles["t@alpha.test"], roles["i@alpha.test"], roles["s@alpha.test"]) == ("ADMIN", "INSTRUCTOR", "STUDENT")


def test_the_import_page_lists_the_columns_and_the_roles_in_words_and_codes(tenant, tenant_admin, client_for):
    html = client_for(tenant, tenant_admin).get(IMPORT).content.decode()

    for column in ("email", "first_name", "last_name", "role"):
        assert f"<code>{column}</code>" in html
    for code, label in (("STUDENT", "Student"), ("INSTRUCTOR", "Instructor"), ("ADMIN", "Tenant admin")):
        assert f"<td><code>{code}</code></td><td>{label}</td>" in html
    assert f'href="{TEMPLATE}" download' in html


def test_the_template_is_a_roster_the_import_reads(tenant, tenant_admin, client_for):
    client = client_for(tenant, tenant_admin)

    response = client.get(TEMPLATE)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="class-roster-template.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["email", "first_name", "last_name", "role"]
    assert len(rows) == 3
    preview = upload(client, response.content.decode())
    assert preview.context["result"].totals["new"] == 2 and preview.context["row_problems"] == []


@pytest.mark.parametrize("persona", ["instructor", "student"])
def test_only_who_may_import_gets_the_template(tenant, client_for, request, persona):
    user = request.getfixturevalue(persona)

    response = client_for(tenant, user).get(TEMPLATE)

    assert response.status_code in (302, 403)  # a student is sent to the admin's login
    assert b"email,first_name" not in response.content
