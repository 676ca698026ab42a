"""Pages whose inline script or style moved to static files, under the Content-Security-Policy.

page_at (conftest) fails a test on anything the policy makes the browser refuse.
"""

import re

import pytest
from playwright.sync_api import expect

from tenants.factories import InstructorFactory, TenantFactory

PASSWORD = "correct-horse-battery"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_site(live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    tenant = TenantFactory(name="Alpha Academy", slug="alpha", domain="localhost")
    InstructorFactory(tenant=tenant, email="ines@alpha.test", password=PASSWORD)
    port = live_server.url.rsplit(":", 1)[1]
    return f"http://localhost:{port}"


def test_select_all_on_the_export_page_toggles_every_field(admin_site, page_at):
    # it was an inline onchange handler; static/js/export_select_all.js binds it now
    page = page_at("desktop")
    page.goto(f"{admin_site}/admin/login/")
    page.get_by_label(re.compile("e-?mail", re.I)).fill("ines@alpha.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    expect(page).to_have_url(f"{admin_site}/admin/")

    page.goto(f"{admin_site}/admin/scoring/submission/export/")
    fields = page.locator('.selectable-field-export-row input[type="checkbox"]')
    expect(fields.first).to_be_visible()
    assert fields.count() > 1

    page.locator("input.select-toggle").uncheck()
    for i in range(fields.count()):
        expect(fields.nth(i)).not_to_be_checked()
    page.locator("input.select-toggle").check()
    for i in range(fields.count()):
        expect(fields.nth(i)).to_be_checked()


def test_the_stand_alone_pages_get_their_stylesheet(admin_site, page_at, settings):
    settings.HEALTH_DETAIL_TOKEN = token = "a-monitors-token-of-at-least-32-characters"  # /health/detail/'s
    page = page_at("desktop")
    port = admin_site.rsplit(":", 1)[1]

    page.goto(f"http://127.0.0.1:{port}/")  # no tenant on this host
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(244, 246, 248)"

    page.set_extra_http_headers({"Authorization": f"Bearer {token}"})
    page.goto(f"{admin_site}/health/detail/")
    expect(page.get_by_role("heading", name=re.compile("System status"))).to_be_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('table')).borderCollapse") == "collapse"
