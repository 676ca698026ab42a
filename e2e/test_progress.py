"""Progress over time in a real browser: the first-visit greeting, the chart, the solves, public profiles.

Every page is scanned with axe-core (no violation at all) and saved at desktop and phone
widths as docs/screenshots/progress-*.png.
"""

import re
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from challenges.models import Hint
from scoring import leaderboard
from scoring.factories import BadgeFactory, SubmissionFactory
from scoring.models import HintUnlock, UserBadge
from tenants.factories import StudentFactory, TenantFactory

from .conftest import SIZES
from .pages import SCREENSHOTS

PASSWORD = "correct-horse-battery"
pytestmark = pytest.mark.django_db(transaction=True)
DAY = timedelta(days=1)


def graded(user, project, at, score=100, status="APPROVED"):
    SubmissionFactory(
        tenant=user.tenant,
        user=user,
        project=project,
        kind="FLAG" if score == 100 else "WRITEUP",
        status=status,
        score=score,
        points_awarded=(project.points * score + 50) // 100 if status == "APPROVED" else 0,
        submitted_at=at,
        graded_at=at,
    )


@pytest.fixture
def school(live_server, settings):
    """A class a week into its event: eleven students with a history, Sam among them; Nia just arrived."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    alpha = TenantFactory(name="Alpha Academy", slug="alpha", domain="localhost", settings={"accent": "#0f766e"})
    beta = TenantFactory(name="Beta Bootcamp", slug="beta", domain="127.0.0.1")
    port = live_server.url.rsplit(":", 1)[1]
    sam = StudentFactory(tenant=alpha, email="sam@alpha.test", first_name="Sam", last_name="Student", password=PASSWORD)
    StudentFactory(tenant=alpha, email="nia@alpha.test", first_name="Nia", last_name="New", password=PASSWORD)
    labs = [
        ProjectFactory(tenant=alpha, name=name, slug=slug, points=points, difficulty="BEGINNER")
        for name, slug, points in (
            ("Cookie Jar", "cookie-jar", 150),
            ("Memory Lane", "memory-lane", 300),
            ("Warm-up", "warm-up", 100),
            ("SQL Basics", "sql-basics", 200),
        )
    ]
    start = timezone.now() - 7 * DAY
    names = ["Ann Archer", "Bob Baker", "Cat Cole", "Dan Diaz", "Eve Evans", "Finn Ford", "Gus Gray", "Hal Hunt"]
    names += ["Ida Ivanova-Wolfeschlegelsteinhausen", "Jo <b>Jones</b>"]
    for n, name in enumerate(names):
        first, last = name.split(" ", 1)
        rival = StudentFactory(tenant=alpha, first_name=first, last_name=last)
        for k, lab in enumerate(labs[: 1 + (n * 7) % 4]):
            graded(rival, lab, start + (n % 5 + k * 1.3) * DAY / 2, score=100 if (n + k) % 3 else 70)
    graded(sam, labs[2], start + DAY)
    graded(sam, labs[1], start + 2 * DAY, score=60, status="SUPERSEDED")
    graded(sam, labs[1], start + 4 * DAY, score=90)
    graded(sam, labs[0], start + 5 * DAY)
    hint = Hint.objects.create(tenant=alpha, project=labs[0], position=1, text="Look at the cookie.", cost=30)
    HintUnlock.objects.create(tenant=alpha, user=sam, project=labs[0], hint=hint, cost=30, unlocked_at=start + 6 * DAY)
    UserBadge.objects.create(tenant=alpha, user=sam, badge=BadgeFactory(tenant=alpha, name="First Blood"))
    leaderboard.rebuild(alpha.pk)
    outsider = StudentFactory(tenant=beta, email="bo@beta.test", password=PASSWORD)
    return {
        "alpha": f"http://localhost:{port}",
        "beta": f"http://127.0.0.1:{port}",
        "tenant": alpha,
        "sam": sam,
        "outsider": outsider,
    }


def check_page(page, name):
    """No accessibility violation; a screenshot at both widths."""
    results = Axe().run(page)
    violations = results.response["violations"]
    assert violations == [], f"{name}: " + "; ".join(f"{v['id']} ({v['impact']}): {v['help']}" for v in violations)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size(SIZES["desktop"])


def log_in(page, base, email):
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    expect(page).to_have_url(f"{base}/")


def test_a_new_student_is_greeted_with_how_to_start(school, page_at):
    page = page_at("phone")
    log_in(page, school["alpha"], "nia@alpha.test")

    expect(page.locator(".lead")).to_contain_text("Welcome, Nia! Pick a challenge")
    expect(page.locator("main")).not_to_contain_text("Welcome back")
    chart = page.get_by_role("img", name="Points over time")
    expect(chart).to_be_visible()  # the top ten's lines, and Nia's at zero
    check_page(page, "progress-dashboard-new")


def test_the_dashboard_and_profile_chart_my_points_and_list_my_solves(school, page_at):
    page = page_at("desktop")
    base = school["alpha"]
    log_in(page, base, "sam@alpha.test")

    expect(page.locator(".lead")).to_have_text("Welcome back, Sam.")
    chart = page.get_by_role("img", name="Points over time")
    expect(chart).to_be_visible()
    expect(chart.locator("desc")).to_contain_text("You 490")  # 100 + 270 + 150 - 30
    expect(page.locator(".stat").first).to_contain_text("490")
    page.locator(".progress-chart__numbers > summary").click()
    you = page.locator(".progress-chart__numbers tr.me")
    expect(you.locator("th")).to_contain_text("You")
    expect(you.locator("td").last).to_have_text("490")
    check_page(page, "progress-dashboard")

    page.goto(f"{base}/profile/")
    solves = page.locator("table", has=page.get_by_text("Solved on"))
    expect(solves.locator("tbody tr")).to_have_count(3)
    expect(solves.locator("tbody tr").nth(1)).to_contain_text("Partly solved (90/100)")
    expect(solves.locator("tbody tr").first).to_contain_text("after 30 in hints")
    solves.get_by_role("link", name="Memory Lane").click()
    expect(page).to_have_url(f"{base}/challenges/memory-lane/")
    page.goto(f"{base}/profile/")
    check_page(page, "progress-profile")


def test_public_profiles_open_from_the_leaderboard_once_the_class_turns_them_on(school, page_at):
    page = page_at("phone")
    base, tenant = school["alpha"], school["tenant"]
    log_in(page, base, "sam@alpha.test")
    ann = tenant.users.get(first_name="Ann")

    page.goto(f"{base}/leaderboard/")
    expect(page.get_by_role("link", name="Ann Archer")).to_have_count(0)
    assert page.goto(f"{base}/students/{ann.pk}/").status == 404

    tenant.public_profiles = True
    tenant.save()
    page.goto(f"{base}/leaderboard/")
    check_page(page, "progress-leaderboard-links")
    page.get_by_role("link", name="Ann Archer").click()
    expect(page).to_have_url(f"{base}/students/{ann.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ann Archer")
    expect(page.get_by_role("img", name="Points over time")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text(ann.email)
    check_page(page, "progress-public-profile")

    # another tenant's student: as if there were none
    outsider = school["outsider"]
    assert page.goto(f"{base}/students/{outsider.pk}/").status == 404
