"""A student's whole visit, in a real browser: log in, browse, solve, write up, log out.

Every page is scanned with axe-core (no serious or critical violation) and saved as a
screenshot at desktop and phone widths into docs/screenshots/.
"""

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from challenges.models import Project
from scoring import services
from scoring.factories import BadgeFactory
from scoring.models import Submission
from tenants.factories import InstructorFactory, StudentFactory, TenantFactory

from .conftest import SIZES
from .pages import SCREENSHOTS

FLAG = "FLAG{browser_tested}"
PASSWORD = "correct-horse-battery"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # one live server, two tenants: "localhost" and "127.0.0.1" reach the same app
    alpha = TenantFactory(
        name="Alpha Academy", slug="alpha", domain="localhost", settings={"theme": "default", "accent": "#0f766e"}
    )
    beta = TenantFactory(name="Beta Bootcamp", slug="beta", domain="127.0.0.1")
    port = live_server.url.rsplit(":", 1)[1]
    student = StudentFactory(
        tenant=alpha, email="sam@alpha.test", first_name="Sam", last_name="Student", password=PASSWORD
    )
    rival = StudentFactory(tenant=alpha, first_name="Rita", last_name="Rival")
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
    ProjectFactory(
        tenant=alpha,
        name="Memory Lane",
        slug="memory-lane",
        category="Forensics",
        difficulty="ADVANCED",
        points=300,
        description="Find the injected thread in the dump.",
    )
    warmup = ProjectFactory(
        tenant=alpha,
        name="Warm-up",
        slug="warm-up",
        category="Web Security",
        difficulty="BEGINNER",
        points=100,
        flag="FLAG{warm}",
    )
    services.submission_create(user=rival, project=warmup, flag="FLAG{warm}")
    BadgeFactory(tenant=alpha, name="First Blood", slug="first-blood", rule_kind="FIRST_SOLVE")
    outsider = StudentFactory(tenant=beta, email="bo@beta.test", password=PASSWORD)
    return {
        "alpha": f"http://localhost:{port}",
        "beta": f"http://127.0.0.1:{port}",
        "student": student,
        "outsider": outsider,
    }


def check_page(page, name):
    """No serious or critical accessibility violation; a screenshot at both widths."""
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: " + "; ".join(f"{v['id']}: {v['help']}" for v in serious)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size(SIZES["desktop"])


def log_in(page, base, email):
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()


def test_a_student_solves_a_challenge_and_sees_it_count(school, page_at):
    page = page_at("desktop")
    base = school["alpha"]

    page.goto(f"{base}/accounts/login/")
    check_page(page, "login")
    log_in(page, base, "sam@alpha.test")
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    check_page(page, "dashboard-before")

    # browse and filter
    page.get_by_role("link", name="Challenges").first.click()
    expect(page.get_by_text("Cookie Jar")).to_be_visible()
    page.get_by_label("Category").select_option("Forensics")
    page.get_by_role("button", name=re.compile("filter|search|apply", re.I)).click()
    expect(page.get_by_text("Memory Lane")).to_be_visible()
    expect(page.get_by_text("Cookie Jar")).to_have_count(0)
    check_page(page, "catalogue")

    # a wrong flag, then the right one
    page.goto(f"{base}/challenges/cookie-jar/")
    check_page(page, "challenge")
    page.get_by_label("Flag").fill("FLAG{guess}")
    page.get_by_role("button", name=re.compile("submit", re.I)).click()
    expect(page.get_by_text("That is not the flag")).to_be_visible()
    page.get_by_label("Flag").fill(FLAG)
    page.get_by_role("button", name=re.compile("submit", re.I)).click()
    expect(page.get_by_text("Correct! +150 points.")).to_be_visible()
    check_page(page, "challenge-solved")

    # points, rank and the new badge show on the dashboard and the leaderboard
    page.goto(f"{base}/")
    expect(page.locator("main")).to_contain_text("150")
    expect(page.locator("main")).to_contain_text("First Blood")
    check_page(page, "dashboard-after")
    page.goto(f"{base}/leaderboard/")
    expect(page.locator("#me")).to_contain_text("150")
    expect(page.locator("#me")).to_contain_text("1")
    check_page(page, "leaderboard")
    page.goto(f"{base}/badges/")
    expect(page.locator("main")).to_contain_text("Earned")
    check_page(page, "badges")

    # a write-up waits for grading
    page.goto(f"{base}/challenges/memory-lane/")
    page.get_by_label("Your write-up").fill("I used volatility's malfind on the dump.")
    page.get_by_role("button", name=re.compile("submit", re.I)).click()
    expect(page.get_by_text("waiting for an instructor")).to_be_visible()
    page.goto(f"{base}/submissions/")
    expect(page.locator("main")).to_contain_text("Pending")
    check_page(page, "submissions")
    page.goto(f"{base}/profile/")
    check_page(page, "profile")

    # log out
    page.get_by_role("button", name=re.compile("log out", re.I)).click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_a_partly_solved_write_up_is_improved_and_the_best_grade_counts(school, page_at):
    student = school["student"]
    teacher = InstructorFactory(tenant=student.tenant)
    essay = Project.objects.get(tenant=student.tenant, slug="memory-lane")
    first = services.submission_create(user=student, project=essay, writeup="I ran strings on the dump.")
    services.submission_grade(
        submission=first, status="APPROVED", score=60, grader=teacher, feedback="Show how you found the thread."
    )
    page = page_at("phone")
    base = school["alpha"]
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/challenges/")
    expect(page.get_by_text("Partly solved (60/100)")).to_be_visible()
    check_page(page, "catalogue-partly-solved")

    page.goto(f"{base}/challenges/memory-lane/")
    expect(page.get_by_text("Your best grade is 60/100: 180 of 300 points count.")).to_be_visible()
    expect(page.get_by_text("Show how you found the thread.")).to_be_visible()
    check_page(page, "challenge-partly-solved")
    page.get_by_label("Your write-up").fill("malfind on the dump, then pslist to name the injected thread.")
    page.get_by_role("button", name="Submit improved write-up").click()
    expect(page.get_by_text("Write-up submitted. It is waiting for an instructor")).to_be_visible()
    expect(page.get_by_role("heading", name="Waiting for grading")).to_be_visible()
    expect(page.get_by_label("Your write-up")).to_have_count(0)
    check_page(page, "challenge-waiting")

    better = Submission.objects.get(user=student, project=essay, status="PENDING")
    services.submission_grade(submission=better, status="APPROVED", score=90, grader=teacher)
    page.goto(f"{base}/challenges/memory-lane/")
    expect(page.locator("main")).to_contain_text("Partly solved (90/100)")
    expect(page.locator("main")).to_contain_text("Superseded by a better grade")
    page.goto(f"{base}/")
    expect(page.locator("main")).to_contain_text("270")  # 90% of 300: the earlier 180 no longer counts
    expect(page.locator(".progress-summary")).to_contain_text("1 partly solved")
    check_page(page, "dashboard-progress")


def test_a_student_of_another_tenant_gets_404s(school, page_at):
    page = page_at("desktop")
    base = school["beta"]
    log_in(page, base, "bo@beta.test")
    expect(page).to_have_url(f"{base}/")

    for path in ("/challenges/cookie-jar/", "/challenges/memory-lane/"):
        response = page.goto(f"{base}{path}")
        assert response.status == 404
    check_page(page, "not-found")
    page.goto(f"{base}/challenges/")
    expect(page.get_by_text("Cookie Jar")).to_have_count(0)


def test_registration_page(school, page_at):
    page = page_at("desktop")
    page.goto(f"{school['alpha']}/accounts/register/")
    check_page(page, "register")
    page.get_by_label("First name").fill("Nia")
    page.get_by_label("Last name").fill("Lee")
    page.get_by_label("E-mail").fill("nia@alpha.test")
    page.get_by_label("Password").fill("a-long-enough-pass")
    page.get_by_role("button", name=re.compile("register|create|sign up", re.I)).click()
    expect(page.get_by_text("Welcome to Alpha Academy")).to_be_visible()
