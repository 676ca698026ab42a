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
from playwright.sync_api import expect

from audit.models import AuditLog, EventStore
from scoring.factories import BadgeFactory
from scoring.models import UserBadge
from tenants.factories import StudentFactory, TenantFactory

from .pages import PASSWORD, admin_log_in, alpha_academy, base_url, check_page, instructor_ines, open_page

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    alpha = alpha_academy(settings)
    beta = TenantFactory(name="Beta Bootcamp", slug="beta", domain="beta.localhost")

    def student(tenant, first, last, email):
        return StudentFactory(tenant=tenant, first_name=first, last_name=last, email=email, password=PASSWORD)

    return {
        "base": base_url(live_server),
        "badge": BadgeFactory(tenant=alpha, name="First Blood", slug="first-blood", rule_kind=""),
        "scully": student(alpha, "Dana", "Scully", "dana.scully@alpha.test"),
        "fox": student(alpha, "Dana", "Fox", "dana.fox@alpha.test"),
        "alice": student(alpha, "Alice", "Anderson", "alice@alpha.test"),
        "abroad": student(beta, "Dana", "Abroad", "dana@beta.test"),
        "ines": instructor_ines(alpha),
    }


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
    page = open_page(page_at, "desktop")
    admin_log_in(page, base, "ines@alpha.test")

    page.goto(f"{base}/admin/scoring/userbadge/add/")
    page.get_by_label("Badge").select_option(label="First Blood")
    danas = ["Dana Fox (dana.fox@alpha.test)", "Dana Scully (dana.scully@alpha.test)"]

    def two_danas():
        # both Danas of the class, told apart by their e-mails; never the other class's Dana
        expect(search_student(page, "Dan")).to_have_text(danas)

    check_page(page, "admin-badges", prepare=two_danas)
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
    check_page(page, "admin-badges-list", shot=False)

    # revoke from the list: a reason is required
    row.get_by_role("link", name=re.compile("^Revoke")).click()
    expect(page).to_have_url(f"{base}/admin/scoring/userbadge/{award.pk}/revoke/")
    expect(page).to_have_title(re.compile("^Revoke First Blood from Dana Fox"))
    check_page(page, "admin-badges-revoke", shot=False)
    page.get_by_label("Reason").fill("   ")
    page.get_by_role("button", name="Revoke the badge").click()
    expect(page.locator(".errorlist")).to_contain_text("Say why the badge is taken back.")
    assert UserBadge.objects.filter(pk=award.pk).exists()
    check_page(page, "admin-badges-revoke-error", shot=False)

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
