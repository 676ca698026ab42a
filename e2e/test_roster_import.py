"""A tenant admin imports a class roster in a real browser (issue 28, item 7).

They download the template, upload a file with a wrong row, read the rows to fix in a
table (no hovering), upload the fixed file and import it from the preview without
choosing it again. Every page is scanned with axe-core at 1366 px and on a 390 px phone
and must fit the phone; the Content-Security-Policy refuses nothing (page_at).
Screenshots: docs/screenshots/admin-import-{desktop,phone}.png (the rows to fix).
"""

import re

import pytest
from playwright.sync_api import expect

from tenants.factories import TenantAdminFactory
from tenants.models import User

from .pages import PASSWORD, admin_log_in, alpha_academy, base_url, check_page

pytestmark = pytest.mark.django_db(transaction=True)

WRONG = (
    "email,first_name,last_name,role\n"
    "alice@alpha.test,Alice,Anderson,student\n"
    "bob@alpha.test,Bob,Brown,wizard\n"
    "not-an-email,Carol,Chen,Student\n"
    "ines@alpha.test,Ines,Instructor,Instructor\n"
)
FIXED = WRONG.replace(",wizard", ",student").replace("not-an-email", "carol@alpha.test")


@pytest.fixture
def school(live_server, settings):
    tenant = alpha_academy(settings)
    TenantAdminFactory(tenant=tenant, email="ada@alpha.test", first_name="Ada", last_name="Admin", password=PASSWORD)
    return {"base": base_url(live_server), "tenant": tenant}


def upload(page, text, name="class.csv"):
    page.get_by_label("Roster file (CSV)").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": text.encode()}
    )
    page.get_by_role("button", name="Check the file").click()


def test_a_tenant_admin_fixes_the_rows_named_and_imports_the_class(school, page_at):
    page = page_at("desktop")
    base = school["base"]
    admin_log_in(page, base, "ada@alpha.test")
    page.goto(f"{base}/admin/tenants/user/import/")

    # what a roster holds: the columns, the roles in words and codes, a template to fill in
    roles = page.get_by_role("region", name="Roles")
    for code, label in (("STUDENT", "Student"), ("INSTRUCTOR", "Instructor"), ("ADMIN", "Tenant admin")):
        expect(roles.get_by_role("row", name=re.compile(rf"{code} {label}"))).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the roster template (CSV)").click()
    assert download.value.suggested_filename == "class-roster-template.csv"
    check_page(page, "import page", shot=False)

    # a file with two wrong rows: a table names them, visible without hovering
    upload(page, WRONG)
    expect(page.get_by_role("heading", name="Nothing was imported: 2 rows to fix")).to_be_visible()
    problems = page.locator(".roster-problem-table tbody tr")
    expect(problems).to_have_count(2)
    expect(problems.nth(0)).to_contain_text("3")
    expect(problems.nth(0)).to_contain_text("bob@alpha.test")
    expect(problems.nth(0)).to_contain_text("The role “wizard” is not one a roster may give")
    expect(problems.nth(1)).to_contain_text("Carol Chen")
    expect(problems.nth(1)).to_contain_text("email: Enter a valid email address.")
    expect(page.get_by_role("heading", name="Upload the corrected file")).to_be_visible()
    check_page(page, "rows to fix", shot="admin-import")
    assert not User.objects.filter(email="alice@alpha.test").exists()

    # the fixed file: a preview, then the import without choosing the file again
    upload(page, FIXED)
    expect(page.get_by_role("heading", name="Check the preview: nothing is saved yet")).to_be_visible()
    expect(page.get_by_text("4 new people, 0 updated, 0 unchanged")).to_be_visible()
    assert page.locator("input[type=file]").count() == 0
    check_page(page, "preview", shot=False)
    page.get_by_role("button", name="Import this roster").click()

    expect(page.locator(".messagelist .success")).to_be_visible()
    roles = dict(User.objects.for_tenant(school["tenant"]).values_list("email", "role"))
    assert {email: roles.get(email) for email in ("alice@alpha.test", "bob@alpha.test", "carol@alpha.test")} == {
        "alice@alpha.test": "STUDENT",
        "bob@alpha.test": "STUDENT",
        "carol@alpha.test": "STUDENT",
    }
    assert roles["ines@alpha.test"] == "INSTRUCTOR"
