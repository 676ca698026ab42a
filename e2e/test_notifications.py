"""Notifications and announcements in a real browser (issue 27).

A student earns a badge and sees the count in the header; opening the notification
centre marks it read and the count goes. An instructor posts an announcement in the
admin; the student sees it on the dashboard, counted in the header and in the centre,
and turns on e-mail in their profile. Every page state is scanned with axe-core (no
serious or critical violation) at desktop and phone widths, must fit a 390 px phone, and
is saved as docs/screenshots/notifications-*.png.
"""

import re

import pytest
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from news.models import Reader
from scoring.factories import BadgeFactory
from tenants.factories import StudentFactory

from . import pages
from .pages import PASSWORD, alpha_academy, base_url, instructor_ines, log_in, open_page

FLAG = "FLAG{told_you_so}"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = False  # the e-mail is the command's (news/tests)
    alpha = alpha_academy(settings)
    ProjectFactory(
        tenant=alpha,
        name="Cookie Jar",
        slug="cookie-jar",
        category="Web Security",
        difficulty="BEGINNER",
        points=150,
        flag=FLAG,
        description="The session cookie is **signed** but not encrypted. Read it.",
    )
    BadgeFactory(
        tenant=alpha, name="First Blood", slug="first-blood", rule_kind="FIRST_SOLVE", description="First to solve one."
    )
    return {
        "base": base_url(live_server),
        # joined after the challenge was published: its opening is not news to them
        "sam": StudentFactory(
            tenant=alpha, email="sam@alpha.test", first_name="Sam", last_name="Student", password=PASSWORD
        ),
        "ines": instructor_ines(alpha),
    }


def check_page(page, name):
    """pages.check_page, saving docs/screenshots/notifications-<name>-<size>.png and keeping the page's size."""
    pages.check_page(page, f"notifications-{name}", restore_size=True)


def notifications_link(page):
    return page.get_by_role("link", name=re.compile(r"^Notifications"))


def test_a_student_is_told_of_their_badge_and_of_an_announcement(school, page_at):
    base = school["base"]
    student = open_page(page_at, "desktop")
    log_in(student, base, "sam@alpha.test")
    expect(notifications_link(student)).to_have_accessible_name("Notifications")  # nothing new yet

    # a right flag earns the badge: the header counts it
    student.goto(f"{base}/challenges/cookie-jar/")
    student.get_by_label("Flag").fill(FLAG)
    student.get_by_role("button", name=re.compile("submit", re.I)).click()
    expect(student.get_by_text("Correct! +150 points.")).to_be_visible()
    expect(notifications_link(student)).to_have_accessible_name("Notifications, 1 unread")
    check_page(student, "count")

    # the centre shows it as new; the count is gone at once and stays gone
    notifications_link(student).click()
    expect(student).to_have_url(f"{base}/news/")
    expect(student.get_by_role("heading", name="You earned the badge “First Blood”")).to_be_visible()
    expect(student.locator(".news-item--new")).to_have_count(1)
    expect(notifications_link(student)).to_have_accessible_name("Notifications")
    check_page(student, "centre")
    student.goto(f"{base}/leaderboard/")
    expect(notifications_link(student)).to_have_accessible_name("Notifications")

    # an instructor posts an announcement in the admin
    teacher = open_page(page_at, "desktop")
    log_in(teacher, base, "ines@alpha.test")
    teacher.goto(f"{base}/admin/news/announcement/add/")
    teacher.get_by_label("Title").fill("Lab closed on Friday")
    teacher.get_by_label("Body").fill("Work from home with the **VPN**: see the course page.")
    check_page(teacher, "admin-announcement")
    teacher.get_by_role("button", name="Save", exact=True).click()
    expect(teacher.locator(".messagelist")).to_contain_text("was added successfully")

    # the student sees it on the dashboard, counted in the header, and in the centre
    student.goto(f"{base}/")
    announcements = student.get_by_role("region", name="Announcements")
    expect(announcements.get_by_role("heading", name="Lab closed on Friday")).to_be_visible()
    expect(announcements.locator("strong")).to_have_text("VPN")
    expect(notifications_link(student)).to_have_accessible_name("Notifications, 1 unread")
    check_page(student, "dashboard-announcement")
    notifications_link(student).click()
    expect(student.locator(".news-item").first).to_contain_text("Lab closed on Friday")
    expect(student.locator(".news-item--new")).to_have_count(1)  # the badge was seen before
    expect(student.locator(".news-item")).to_have_count(3)  # and the challenge's opening

    # and asks for e-mail in their profile
    student.goto(f"{base}/profile/")
    student.get_by_label("E-mail me my notifications").check()
    student.get_by_role("button", name="Save e-mail choice").click()
    expect(student).to_have_url(f"{base}/profile/")
    expect(student.get_by_text("Your notifications will be e-mailed to sam@alpha.test too.")).to_be_visible()
    expect(student.get_by_label("E-mail me my notifications")).to_be_checked()
    check_page(student, "email-choice")
    assert Reader.objects.get(user=school["sam"]).email_enabled


def test_on_a_phone_the_menu_button_shows_the_count(school, page_at):
    base = school["base"]
    phone = open_page(page_at, "phone")
    log_in(phone, base, "sam@alpha.test")
    menu = phone.locator("summary.site-menu-toggle")
    expect(menu).to_have_text("Menu")  # the challenge was published before they joined: no news

    phone.goto(f"{base}/challenges/cookie-jar/")
    phone.get_by_label("Flag").fill(FLAG)
    phone.get_by_role("button", name=re.compile("submit", re.I)).click()
    expect(phone.get_by_text("Correct! +150 points.")).to_be_visible()
    expect(menu).to_contain_text("1 unread notification")  # seen with the menu closed
    check_page(phone, "phone-menu")

    menu.click()
    notifications_link(phone).click()
    items = phone.locator(".news-item")
    expect(items).to_have_count(2)
    expect(items.first.get_by_role("heading")).to_have_text("You earned the badge “First Blood”")
    expect(items.nth(1).get_by_role("link", name="Open “Cookie Jar”")).to_have_attribute(
        "href", "/challenges/cookie-jar/"
    )
    expect(menu).to_have_text("Menu")
    check_page(phone, "phone-centre")
