"""Error paths that keep a student's work, and the phone-first fixes, in a real browser.

A tab left open across a logout and a login, a session that ends while a flag is being
typed, the menu on a phone with JavaScript off, a table at 390 px, the password rules.
DEBUG is off (pytest-django's live server). Every page is scanned with axe-core; the
screenshots go to docs/screenshots/ (errors-*.png, phone-*.png).
"""

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from challenges.models import Project
from scoring import services
from scoring.models import Submission
from tenants.factories import InstructorFactory, StudentFactory, TenantFactory

from .conftest import SIZES
from .pages import SCREENSHOTS

FLAG = "FLAG{kept_in_the_browser}"
PASSWORD = "correct-horse-battery"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    alpha = TenantFactory(name="Alpha Academy", slug="alpha", domain="localhost", settings={"accent": "#0f766e"})
    student = StudentFactory(
        tenant=alpha, email="sam@alpha.test", first_name="Sam", last_name="Student", password=PASSWORD
    )
    ProjectFactory(tenant=alpha, name="Cookie Jar", slug="cookie-jar", flag=FLAG, points=150, difficulty="BEGINNER")
    ProjectFactory(tenant=alpha, name="Memory Lane", slug="memory-lane", points=300, difficulty="ADVANCED")
    port = live_server.url.rsplit(":", 1)[1]
    return {"base": f"http://localhost:{port}", "student": student, "tenant": alpha}


def axe_clean(page, name):
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: " + "; ".join(f"{v['id']}: {v['help']}" for v in serious)


def check_page(page, name):
    """No serious or critical accessibility violation; a screenshot at both widths."""
    axe_clean(page, name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size(SIZES["desktop"])


def phone_shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page, base, email="sam@alpha.test"):
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_a_stale_tab_across_a_logout_and_a_login_resends_the_flag(school, page_at):
    base = school["base"]
    tab = page_at("desktop")
    log_in(tab, base)
    tab.goto(f"{base}/challenges/cookie-jar/")
    tab.get_by_label("Flag").fill(FLAG)  # typed, not sent yet

    other = tab.context.new_page()  # the same browser: a second tab logs out and in again
    other.goto(f"{base}/")
    other.get_by_role("button", name="Log out").click()
    expect(other).to_have_url(re.compile(r"/accounts/login/"))
    log_in(other, base)
    expect(other).to_have_url(f"{base}/")

    with tab.expect_response(f"{base}/challenges/cookie-jar/") as sent:
        tab.get_by_role("button", name=re.compile("submit", re.I)).click()
    assert sent.value.status == 403
    expect(tab.get_by_role("heading", level=1)).to_have_text("Your form was not sent")
    expect(tab.get_by_text("This form was opened before you last signed in or out")).to_be_visible()
    expect(tab.get_by_label("Flag")).to_have_value(FLAG)
    expect(tab.locator(".site-header")).to_be_visible()  # the site's look
    assert not Submission.objects.filter(user=school["student"]).exists()
    check_page(tab, "errors-csrf")

    tab.get_by_role("button", name="Send again").click()
    expect(tab).to_have_url(f"{base}/challenges/cookie-jar/")
    expect(tab.get_by_text("Correct! +150 points.")).to_be_visible()
    assert Submission.objects.get(user=school["student"]).status == Submission.Status.APPROVED


def test_a_stale_login_form_explains_and_shows_nothing_typed(school, page_at):
    base = school["base"]
    tab = page_at("phone")
    tab.goto(f"{base}/accounts/login/")
    other = tab.context.new_page()
    log_in(other, base)  # the token of the first tab's form is replaced
    # signed in there before the first tab is used: the page is left open (closing it while
    # its navigation is in flight can leave Chromium never answering), the context closes it
    expect(other).to_have_url(f"{base}/")

    tab.get_by_label("E-mail").fill("sam@alpha.test")
    tab.get_by_label("Password").fill("typed-in-the-stale-tab")
    tab.get_by_role("button", name="Log in").click()

    expect(tab.get_by_role("heading", level=1)).to_have_text("Your form was not sent")
    assert "typed-in-the-stale-tab" not in tab.content()
    expect(tab.get_by_role("link", name="Open the page again")).to_be_visible()
    check_page(tab, "errors-csrf-login")
    tab.get_by_role("link", name="Open the page again").click()
    expect(tab).to_have_url(f"{base}/")  # signed in by the other tab: the login page sends them on


def test_a_flag_sent_after_the_session_ended_survives_the_login(school, page_at):
    base = school["base"]
    page = page_at("phone")
    log_in(page, base)
    page.goto(f"{base}/challenges/cookie-jar/")
    page.get_by_label("Flag").fill(FLAG)
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)  # the session ended meanwhile

    page.get_by_role("button", name=re.compile("submit", re.I)).click()

    expect(page).to_have_url(f"{base}/accounts/login/?next=/challenges/cookie-jar/")
    expect(
        page.get_by_text("Your session had ended. Sign in and your answer will be back in the form.")
    ).to_be_visible()
    check_page(page, "errors-session-ended")
    page.get_by_label("E-mail").fill("sam@alpha.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(f"{base}/challenges/cookie-jar/")
    assert not Submission.objects.filter(user=school["student"]).exists()  # nothing sent unasked
    expect(page.get_by_label("Flag")).to_have_value(FLAG)  # scoring.challenge_views takes the draft
    check_page(page, "errors-session-ended-back")
    page.get_by_role("button", name=re.compile("submit", re.I)).click()
    expect(page.get_by_text("Correct! +150 points.")).to_be_visible()


def test_the_phone_menu_opens_and_closes_without_javascript(school, browser):
    base = school["base"]
    context = browser.new_context(viewport=SIZES["phone"], java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, base)
        expect(page).to_have_url(f"{base}/")
        menu = page.locator("summary", has_text="Menu")
        header = page.locator(".site-header")
        leaderboard = header.get_by_role("link", name="Leaderboard", exact=True)

        expect(menu).to_be_visible()
        expect(leaderboard).to_be_hidden()
        assert page.locator(".site-header").bounding_box()["height"] < 80  # was about 230 px
        phone_shot(page, "phone-menu-closed")

        menu.click()
        expect(leaderboard).to_be_visible()
        expect(header.get_by_role("button", name="Log out")).to_be_visible()
        phone_shot(page, "phone-menu-open")  # axe needs JavaScript: it checks the open menu below
        menu.click()
        expect(leaderboard).to_be_hidden()

        menu.click()
        leaderboard.click()
        expect(page).to_have_url(f"{base}/leaderboard/")
        expect(leaderboard).to_be_hidden()  # a new page starts closed

        page.set_viewport_size(SIZES["desktop"])  # the full row, no button
        expect(menu).to_be_hidden()
        expect(header.get_by_role("link", name="Badges", exact=True)).to_be_visible()
    finally:
        context.close()


def test_the_menu_takes_one_more_item(school, page_at):
    """Room for "Notifications 3" and a staff user's Admin link: one row at desktop width, a longer grid on a phone."""
    InstructorFactory(tenant=school["tenant"], email="ina@alpha.test", password=PASSWORD)
    base = school["base"]
    page = page_at("desktop")
    log_in(page, base, "ina@alpha.test")
    expect(page).to_have_url(re.compile(rf"^{base}/"))
    page.goto(f"{base}/")
    page.evaluate(
        """() => {
          const profile = document.querySelector('.nav-account');
          const item = document.createElement('li');
          item.innerHTML = '<a href="/">Notifications <span class="nav-count">3</span></a>';
          profile.before(item);
        }"""
    )
    tops = [item.bounding_box()["y"] for item in page.locator(".nav > li").all()]
    assert len(tops) == 9 and max(tops) - min(tops) < 10, f"the menu wraps at 1280 px: items at {tops}"
    assert page.locator(".site-header").bounding_box()["height"] < 80  # one row, the name beside the links
    axe_clean(page, "the full menu")

    page.set_viewport_size(SIZES["phone"])
    expect(page.get_by_role("link", name=re.compile("Notifications"))).to_be_hidden()
    page.locator("summary", has_text="Menu").click()
    expect(page.get_by_role("link", name=re.compile("Notifications"))).to_be_visible()
    nav = page.locator(".site-nav").bounding_box()
    assert nav["x"] >= 0 and nav["x"] + nav["width"] <= SIZES["phone"]["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= SIZES["phone"]["width"]
    axe_clean(page, "the phone menu, open")


def test_a_table_at_390_px_is_a_stack_of_cards(school, page_at):
    student, teacher = school["student"], InstructorFactory(tenant=school["tenant"])
    essay = Project.objects.get(tenant=school["tenant"], slug="memory-lane")
    sent = services.submission_create(user=student, project=essay, writeup="I ran strings on the dump.")
    services.submission_grade(
        submission=sent,
        status="APPROVED",
        score=60,
        grader=teacher,
        feedback="Show how you found the injected thread: which plugin, which process, which address.",
    )
    base = school["base"]
    page = page_at("phone")
    log_in(page, base)
    page.goto(f"{base}/submissions/")

    table = page.locator("table.table--cards")
    expect(table).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= SIZES["phone"]["width"]  # nothing off screen
    assert table.locator("thead").bounding_box()["height"] <= 1  # the names moved into the cells
    row = table.locator("tbody tr").first
    assert row.evaluate("tr => getComputedStyle(tr).display") == "block"
    feedback = row.locator("td[data-label='Feedback']")
    assert feedback.evaluate("td => getComputedStyle(td, '::before').content") == '"Feedback"'
    box = feedback.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= SIZES["phone"]["width"]
    expect(feedback).to_contain_text("which plugin")
    axe_clean(page, "submissions as cards")
    phone_shot(page, "phone-submissions-cards")

    page.set_viewport_size(SIZES["desktop"])  # a table again at desktop width
    assert row.evaluate("tr => getComputedStyle(tr).display") == "table-row"


def test_the_password_rules_show_before_any_try(school, page_at):
    base = school["base"]
    page = page_at("phone")
    page.goto(f"{base}/accounts/register/")

    password = page.get_by_label("Password")
    expect(page.get_by_text("Your password must contain at least 8 characters.")).to_be_visible()
    expect(page.get_by_text("Your password can’t be entirely numeric.")).to_be_visible()
    assert "id_password_helptext" in password.get_attribute("aria-describedby")
    expect(page.locator(".field-errors")).to_have_count(0)  # nothing has failed yet
    axe_clean(page, "register")
    phone_shot(page, "phone-register-rules")

    log_in(page, base)
    page.goto(f"{base}/accounts/password/change/")
    expect(page.get_by_text("Your password must contain at least 8 characters.")).to_be_visible()
    axe_clean(page, "password change")
    phone_shot(page, "phone-password-change-rules")
