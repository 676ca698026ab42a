"""Badges by hand in a real browser (issue 28): an instructor awards a badge to the right one of two
Danas by searching, then revokes it with a reason.

The student field is Django admin's select2 widget fed by the awards admin's own search;
it must work under the site's Content-Security-Policy (page_at fails the test on any
refusal). Every page is scanned with axe-core (no serious or critical violation) and must
fit a 390 px phone without scrolling sideways. The award form with the two Danas found is
saved as docs/screenshots/admin-badges-{desktop,phone}.png.
"""

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from audit.models import AuditLog, EventStore
from scoring.factories import BadgeFactory
from scoring.models import UserBadge
from tenants.factories import InstructorFactory, StudentFactory, TenantFactory

from .conftest import SCREENSHOTS

PASSWORD = "correct-horse-battery"
SIZES = {"desktop": {"width": 1366, "height": 800}, "phone": {"width": 390, "height": 844}}
# see e2e/test_challenge_content.py: axe's preload injects <style> elements the CSP refuses
AXE_OPTIONS = {"resultTypes": ["violations"], "preload": False}
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > width + 1 && !e.closest(".table-wrap, [role=region], #changelist"))
    .slice(0, 5)
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${[...e.classList].join(".")}`);
}"""
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    alpha = TenantFactory(name="Alpha Academy", slug="alpha", domain="localhost")
    beta = TenantFactory(name="Beta Bootcamp", slug="beta", domain="beta.localhost")
    port = live_server.url.rsplit(":", 1)[1]

    def student(tenant, first, last, email):
        return StudentFactory(tenant=tenant, first_name=first, last_name=last, email=email, password=PASSWORD)

    return {
        "base": f"http://localhost:{port}",
        "badge": BadgeFactory(tenant=alpha, name="First Blood", slug="first-blood", rule_kind=""),
        "scully": student(alpha, "Dana", "Scully", "dana.scully@alpha.test"),
        "fox": student(alpha, "Dana", "Fox", "dana.fox@alpha.test"),
        "alice": student(alpha, "Alice", "Anderson", "alice@alpha.test"),
        "abroad": student(beta, "Dana", "Abroad", "dana@beta.test"),
        "ines": InstructorFactory(
            tenant=alpha, email="ines@alpha.test", first_name="Ines", last_name="Instructor", password=PASSWORD
        ),
    }


def check_page(page, name, screenshots=None, prepare=None):
    """axe finds nothing serious at either width, the page fits a phone; a screenshot of each into `screenshots`.

    `prepare()` runs after each change of width (a dropdown is opened again at the new width).
    """
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        if prepare is not None:
            prepare()
        results = Axe().run(page, options=AXE_OPTIONS)
        serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == [], f"{name} ({size}): " + "; ".join(
            f"{v['id']}: {v['help']} ({', '.join(str(n['target']) for n in v['nodes'][:4])})" for v in serious
        )
        if size == "phone":
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= viewport["width"], f"{name} is {scroll} px wide on a phone: {page.evaluate(OVERFLOWING)}"
        if screenshots is not None:
            screenshots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshots / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size(SIZES["desktop"])


def admin_log_in(page, base, email):
    page.goto(f"{base}/admin/login/")
    page.get_by_label(re.compile("e-?mail", re.I)).fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    expect(page).to_have_url(f"{base}/admin/")


def search_student(page, term):
    """Open the student field's search box and type: select2 asks the awards admin's search."""
    if page.locator(".select2-container--open").count():
        page.keyboard.press("Escape")
    page.locator(".field-user .select2-selection").click()
    search = page.locator(".select2-container--open .select2-search__field")
    expect(search).to_be_focused()
    search.press_sequentially(term, delay=50)
    return page.locator(".select2-results__option:not(.loading-results)")


def test_an_instructor_awards_by_search_and_revokes_with_a_reason(school, page_at):
    base, fox, scully = school["base"], school["fox"], school["scully"]
    page = page_at("desktop")
    page.set_viewport_size(SIZES["desktop"])
    admin_log_in(page, base, "ines@alpha.test")

    page.goto(f"{base}/admin/scoring/userbadge/add/")
    page.get_by_label("Badge").select_option(label="First Blood")
    danas = ["Dana Fox (dana.fox@alpha.test)", "Dana Scully (dana.scully@alpha.test)"]

    def two_danas():
        # both Danas of the class, told apart by their e-mails; never the other class's Dana
        expect(search_student(page, "Dan")).to_have_text(danas)

    check_page(page, "admin-badges", screenshots=SCREENSHOTS, prepare=two_danas)
    two_danas()
    options = page.locator(".select2-results__option")
    options.filter(has_text="dana.fox@alpha.test").click()
    expect(page.locator(".field-user .select2-selection__rendered")).to_have_text(
        re.compile(r"Dana Fox \(dana\.fox@alpha\.test\)")
    )
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page).to_have_url(f"{base}/admin/scoring/userbadge/")
    award = UserBadge.objects.get(badge=school["badge"])
    assert award.user == fox and award.awarded_by == school["ines"]
    assert not UserBadge.objects.filter(user=scully).exists()
    row = page.locator("#result_list tbody tr", has_text="dana.fox@alpha.test")
    expect(row).to_contain_text("Dana Fox (dana.fox@alpha.test)")
    check_page(page, "admin-badges-list")

    # revoke from the list: a reason is required
    row.get_by_role("link", name=re.compile("^Revoke")).click()
    expect(page).to_have_url(f"{base}/admin/scoring/userbadge/{award.pk}/revoke/")
    expect(page).to_have_title(re.compile("^Revoke First Blood from Dana Fox"))
    check_page(page, "admin-badges-revoke")
    page.get_by_label("Reason").fill("   ")
    page.get_by_role("button", name="Revoke the badge").click()
    expect(page.locator(".errorlist")).to_contain_text("Say why the badge is taken back.")
    assert UserBadge.objects.filter(pk=award.pk).exists()
    check_page(page, "admin-badges-revoke-error")

    page.get_by_label("Reason").fill("Meant for Dana Scully: wrong Dana.")
    page.get_by_role("button", name="Revoke the badge").click()

    expect(page).to_have_url(f"{base}/admin/scoring/userbadge/")
    expect(page.locator(".messagelist")).to_contain_text("Revoked First Blood from Dana Fox.")
    assert not UserBadge.objects.filter(pk=award.pk).exists()
    event = EventStore.objects.get(event_type="BadgeRevoked")
    assert event.payload["reason"] == "Meant for Dana Scully: wrong Dana."
    row = AuditLog.objects.get(action="revoke", object_id=str(award.pk))
    assert row.changes["reason"] == [None, "Meant for Dana Scully: wrong Dana."]


def test_the_student_search_works_on_a_phone(school, page_at):
    base = school["base"]
    page = page_at("phone")
    admin_log_in(page, base, "ines@alpha.test")

    page.goto(f"{base}/admin/scoring/userbadge/add/")
    options = search_student(page, "scully")

    expect(options).to_have_text(["Dana Scully (dana.scully@alpha.test)"])
    options.first.click()
    page.get_by_label("Badge").select_option(label="First Blood")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page).to_have_url(f"{base}/admin/scoring/userbadge/")
    assert UserBadge.objects.get(badge=school["badge"]).user == school["scully"]
