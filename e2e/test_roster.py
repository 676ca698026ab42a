"""The class roster in a real browser (issue 28): an instructor reads the class, finds a student, opens them.

Every page is scanned with axe-core (no serious or critical violation), must fit a 390 px
phone without scrolling sideways, and runs under the site's Content-Security-Policy
(page_at fails the test on any refusal). The roster's screenshots go to docs/screenshots/.
The class is in Europe/Paris: times shown in UTC would not match.
"""

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from scoring import services
from scoring.factories import BadgeFactory
from scoring.models import Submission
from tenants.factories import StudentFactory

from .pages import admin_log_in, alpha_academy, base_url, check_page, instructor_ines, open_page

pytestmark = pytest.mark.django_db(transaction=True)
# the roster fits the window at 1366 px too, not only on a phone
FITS = ("desktop", "phone")


@pytest.fixture
def school(live_server, settings):
    alpha = alpha_academy(settings, time_zone="Europe/Paris")
    ines = instructor_ines(alpha)
    cookie = ProjectFactory(tenant=alpha, name="Cookie Monster", flag="FLAG{cookie}", points=100)
    report = ProjectFactory(tenant=alpha, name="Report the XSS", points=80)
    ada = StudentFactory(tenant=alpha, email="ada.lovelace@alpha.test", first_name="Ada", last_name="Lovelace")
    bob = StudentFactory(tenant=alpha, email="bob.babbage@alpha.test", first_name="Bob", last_name="Babbage")
    StudentFactory(tenant=alpha, email="cy.curie@alpha.test", first_name="Cy", last_name="Curie")
    services.submission_create(user=ada, project=cookie, flag="FLAG{nope}")
    services.submission_create(user=ada, project=cookie, flag="FLAG{cookie}")
    services.submission_create(user=ada, project=report, writeup="The search box reflects its query unescaped.")
    services.submission_create(user=bob, project=cookie, flag="FLAG{cookie}")
    Submission.objects.filter(user=ada, kind="WRITEUP").update(submitted_at=datetime(2026, 1, 5, 13, 0, tzinfo=UTC))
    services.badge_award(badge=BadgeFactory(tenant=alpha, name="Night Owl"), user=ada, actor=ines)
    return {"base": base_url(live_server), "ada": ada}


def test_an_instructor_reads_the_roster_finds_a_student_and_opens_their_attempts(school, page_at, tmp_path):
    base = school["base"]
    page = open_page(page_at, "desktop")
    admin_log_in(page, base, "ines@alpha.test")

    page.goto(f"{base}/admin/tenants/user/")
    table = page.locator("#result_list")
    ada = table.locator("tr", has_text="ada.lovelace@alpha.test")
    expect(ada.locator("td.field-points")).to_have_text("100")
    expect(ada.locator("td.field-rank")).to_have_text("1")
    expect(ada.locator("td.field-pending")).to_have_text("1")
    expect(table.locator("tr", has_text="cy.curie@alpha.test").locator("td.field-rank")).to_have_text("—")
    expect(page.get_by_role("link", name="Download the gradebook (CSV)")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("^Import$"))).to_have_count(0)  # read-only for instructors
    expect(page.get_by_role("link", name=re.compile("^Add "))).to_have_count(0)
    check_page(page, "admin-roster", fit=FITS)

    search = page.get_by_role("searchbox", name="Search", exact=True)
    search.fill("Lovelace")
    search.press("Enter")
    expect(table.locator("tbody tr")).to_have_count(1)
    table.get_by_role("link", name="Ada Lovelace").click()

    expect(page).to_have_url(re.compile(rf"/admin/tenants/user/{school['ada'].pk}/change/"))
    attempts = page.locator("#attempts tbody tr")
    expect(attempts).to_have_count(3)
    # the write-up, sent at 13:00 UTC: 14:00 in Paris in January
    writeup = attempts.filter(has_text="Report the XSS")
    expect(writeup).to_contain_text("2026-01-05 14:00")
    expect(writeup).to_contain_text("Waiting for a grade")
    expect(attempts.filter(has_text="Right flag")).to_have_count(1)
    expect(attempts.filter(has_text="Wrong flag")).to_have_count(1)
    expect(page.locator("#badges")).to_contain_text("Night Owl")
    expect(page.locator("#standing")).to_contain_text("Points100")
    check_page(page, "admin-roster-student", fit=FITS, folder=tmp_path)  # checked, not published

    writeup.get_by_role("link", name=re.compile("Grade it")).click()
    expect(page).to_have_url(re.compile(r"/admin/scoring/submission/\d+/change/"))
