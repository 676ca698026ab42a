"""The instructor's admin home in a real browser (issue 28, item 1): the class at a glance.

At 1366 px and on a 390 px phone: axe-core finds nothing serious (Django's breadcrumbs
and the app list included), the page never scrolls sideways, no table header is squeezed
to one letter per line, the cards come before the app list, and the numbers lead to
their lists. Screenshots go to docs/screenshots/admin-home-{desktop,phone}.png.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from challenges.services import project_save
from news.factories import AnnouncementFactory
from scoring import services
from scoring.factories import BadgeFactory
from scoring.models import Submission
from tenants.factories import StudentFactory

from .pages import (
    SIZES,
    admin_log_in,
    alpha_academy,
    assert_accessible,
    assert_fits,
    base_url,
    instructor_ines,
    screenshot,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Table headers of the page squeezed narrower than their longest word (the old home's
# "W a i t i n g" headers): a header taller than three lines of its text.
SQUEEZED_HEADERS = """() => [...document.querySelectorAll("#content th")]
  .filter((th) => th.offsetParent !== null && th.innerText.trim())
  .filter((th) => th.getBoundingClientRect().height > 3 * parseFloat(getComputedStyle(th).lineHeight || 16) + 24)
  .map((th) => th.innerText.trim())"""


@pytest.fixture
def school(live_server, settings):
    tenant = alpha_academy(settings)
    ines = instructor_ines(tenant)
    names = ["Alice Anderson", "Bob Baker", "Chidinma Okonkwo-Adebayo", "Dana Dubois", "Esteban Etxeberria"]
    students = [
        StudentFactory(
            tenant=tenant,
            email=f"{first.lower()}@alpha.test",
            first_name=first,
            last_name=last,
            date_joined=timezone.now() - timedelta(days=n * 3),
        )
        for n, (first, last) in enumerate(name.split(" ", 1) for name in names)
    ]
    flag = ProjectFactory(tenant=tenant, name="Cookie Monster", slug="cookies", points=100, category="Web")
    project_save(project=flag, flag="FLAG{cookies}")
    report = ProjectFactory(
        tenant=tenant, name="Report the stored cross-site scripting in the guestbook", slug="xss-report", points=200
    )
    ProjectFactory(tenant=tenant, name="SQL injection 101", slug="sqli")
    services.submission_create(user=students[0], project=flag, flag="FLAG{cookies}")
    services.submission_create(user=students[1], project=flag, flag="FLAG{cookies}")
    services.submission_create(user=students[2], project=flag, flag="FLAG{nope}")
    for who in students[:3]:
        services.submission_create(user=who, project=report, writeup="The guestbook echoes <script> back.")
    badge = BadgeFactory(tenant=tenant, name="Helping Hand", slug="helping-hand")
    services.badge_award(badge=badge, user=students[2], actor=ines)
    AnnouncementFactory(tenant=tenant, author=ines, title="Lab 2 is open", body="Start with **Cookie Monster**.")
    return {"base": base_url(live_server), "ines": ines}


def test_the_admin_home_shows_the_class_at_desktop_and_phone_width(school, page_at):
    page = page_at("desktop")
    admin_log_in(page, school["base"], school["ines"].email)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.goto(f"{school['base']}/admin/")
        for title in ("Waiting for grading", "This week", "Challenges", "Not started yet", "Recent badges"):
            expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        expect(page.locator("#home-waiting")).to_contain_text("3 submissions waiting for a grade")
        expect(page.locator("#home-not-started")).to_contain_text("Dana Dubois")
        # the class first, then the app list (beside it at 1366 px, below it on a phone)
        cards, apps = page.locator("#class-home").bounding_box(), page.locator(".home-apps").bounding_box()
        if size == "desktop":
            assert apps["x"] >= cards["x"] + cards["width"], "the app list is not beside the class"
            assert cards["width"] >= 700
        else:
            assert apps["y"] >= cards["y"] + cards["height"], "the app list is not below the class"

        assert_accessible(page, f"admin home ({size})")
        assert page.evaluate(SQUEEZED_HEADERS) == []
        assert_fits(page, f"admin home ({size})")
        screenshot(page, "admin-home", size)


def test_the_numbers_lead_to_their_lists(school, page_at):
    page = page_at("phone")
    admin_log_in(page, school["base"], school["ines"].email)

    page.locator("#home-waiting a.home-number").click()

    expect(page).to_have_url(re.compile(r"/admin/scoring/submission/\?status__exact=PENDING$"))
    expect(page.locator("#result_list tbody tr")).to_have_count(3)

    page.goto(f"{school['base']}/admin/")
    page.locator("#home-challenges tbody tr", has_text="Cookie Monster").get_by_role(
        "link", name=re.compile("solves")
    ).click()
    expect(page.locator("#result_list tbody tr")).to_have_count(
        Submission.objects.filter(project__slug="cookies", status="APPROVED").count()
    )

    page.goto(f"{school['base']}/admin/")
    oldest = page.locator("#home-waiting tbody a").first
    expect(oldest).to_have_text("Alice Anderson")
    oldest.click()
    expect(page).to_have_url(re.compile(r"/admin/scoring/submission/\d+/change/$"))
