"""Teams, in a real browser: a student creates a team, a classmate joins it on a phone, both solve, the standings.

Every page state is scanned with axe-core at desktop and phone widths (no violation at
all), must fit a 390 px phone without scrolling sideways, and is saved as a screenshot
(docs/screenshots/team-*.png).
"""

import re

import pytest
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from scoring import services, teams
from scoring.models import Team
from tenants.factories import StudentFactory
from tenants.models import TeamMode

from . import pages
from .conftest import SIZES
from .pages import PASSWORD, alpha_academy, base_url, instructor_ines, log_in

pytestmark = pytest.mark.django_db(transaction=True)

COOKIE_FLAG = "FLAG{shared_cookie}"
PORT_FLAG = "FLAG{open_ports}"


@pytest.fixture
def school(live_server, settings):
    alpha = alpha_academy(settings, team_mode=TeamMode.OPTIONAL, team_size_max=3)
    ProjectFactory(
        tenant=alpha,
        name="Cookie Jar",
        slug="cookie-jar",
        category="Web Security",
        difficulty="BEGINNER",
        points=150,
        flag=COOKIE_FLAG,
    )
    ProjectFactory(
        tenant=alpha,
        name="Port Scan",
        slug="port-scan",
        category="Networks",
        difficulty="BEGINNER",
        points=100,
        flag=PORT_FLAG,
    )
    # a rival team already on the standings
    rival = StudentFactory(tenant=alpha, first_name="Rita", last_name="Rival")
    teams.team_create(user=rival, name="Blue Herons")
    services.submission_create(
        user=rival,
        project=ProjectFactory(tenant=alpha, name="Recon", points=120, flag="FLAG{recon}"),
        flag="FLAG{recon}",
    )
    return {
        "base": base_url(live_server),
        "tenant": alpha,
        "sam": StudentFactory(
            tenant=alpha, email="sam@alpha.test", first_name="Sam", last_name="Student", password=PASSWORD
        ),
        "mia": StudentFactory(
            tenant=alpha, email="mia@alpha.test", first_name="Mia", last_name="Mate", password=PASSWORD
        ),
        "ines": instructor_ines(alpha),
    }


def check_page(page, name, **options):
    """pages.check_page at page_at's sizes (a 1280 px desktop), failing on every axe violation, not only serious."""
    pages.check_page(page, name, sizes=SIZES, every_violation=True, **options)


def solve(page, base, slug, flag, points):
    page.goto(f"{base}/challenges/{slug}/")
    page.get_by_label("Flag").fill(flag)
    page.get_by_role("button", name=re.compile("submit", re.I)).click()
    expect(page.get_by_text(f"Correct! +{points} points.")).to_be_visible()


def test_a_team_is_created_joined_on_a_phone_and_scores_once(school, page_at):
    base = school["base"]

    # Sam, at a desk: no team yet, the header's "Team" link opens the two forms
    sam = page_at("desktop")
    log_in(sam, base, "sam@alpha.test")
    expect(sam.get_by_role("heading", name="Join or create a team")).to_be_visible()
    sam.get_by_role("navigation", name="Main").get_by_role("link", name="Team", exact=True).click()
    expect(sam).to_have_url(f"{base}/team/")
    expect(sam.get_by_role("heading", name="Create a team")).to_be_visible()
    expect(sam.get_by_role("heading", name="Join a team")).to_be_visible()
    check_page(sam, "team-none")

    # a name another team has is refused in the form, what was typed kept
    sam.get_by_label("Team name").fill("blue herons")
    sam.get_by_role("button", name="Create the team").click()
    expect(sam.get_by_role("alert")).to_contain_text("A team of this class is already called “blue herons”")
    expect(sam.get_by_label("Team name")).to_have_value("blue herons")
    check_page(sam, "team-create-refused")

    sam.get_by_label("Team name").fill("Red Foxes")
    sam.get_by_role("button", name="Create the team").click()
    expect(sam.get_by_text("Team “Red Foxes” created.")).to_be_visible()
    expect(sam.get_by_role("heading", level=1)).to_contain_text("Red Foxes")
    code = sam.locator(".invite-code code").inner_text()
    team = Team.objects.get(name="Red Foxes")
    assert code == teams.display_code(team.invite_code)
    check_page(sam, "team-mine")

    # Mia, on a phone: a wrong code first, then Sam's code as read out in class (lower case, no dash)
    mia = page_at("phone")
    log_in(mia, base, "mia@alpha.test")
    mia.goto(f"{base}/team/")
    mia.get_by_label("Invite code").fill("ZZZZ-ZZZZ")
    mia.get_by_role("button", name="Join the team").click()
    expect(mia.get_by_role("alert")).to_contain_text("No team of this class has that invite code")
    expect(mia.get_by_label("Invite code")).to_have_value("ZZZZ-ZZZZ")
    check_page(mia, "team-join-refused", restore_size=True)
    mia.get_by_label("Invite code").fill(code.replace("-", "").lower())
    mia.get_by_role("button", name="Join the team").click()
    expect(mia.get_by_text("You joined Red Foxes.")).to_be_visible()
    expect(mia.locator("main")).to_contain_text("Sam Student")
    expect(mia.locator("main")).to_contain_text("Mia Mate")
    check_page(mia, "team-joined", restore_size=True)

    # both solve the same challenge: it counts once for the team; Mia solves another too
    solve(sam, base, "cookie-jar", COOKIE_FLAG, 150)
    solve(mia, base, "cookie-jar", COOKIE_FLAG, 150)
    solve(mia, base, "port-scan", PORT_FLAG, 100)

    # the standings: the team once, with 250 points (150 once, plus 100), marked as Mia's
    mia.goto(f"{base}/teams/")
    rows = mia.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(mia.locator("tbody").get_by_text("Red Foxes")).to_have_count(1)
    expect(mia.locator("#me")).to_contain_text("Red Foxes")
    expect(mia.locator("#me")).to_contain_text("250")
    expect(mia.locator("#me")).to_contain_text("1")
    check_page(mia, "team-standings", restore_size=True)

    # the team's page: who solved each challenge first
    mia.locator("#me").get_by_role("link", name="Red Foxes").click()
    expect(mia.locator("main")).to_contain_text("Port Scan")
    solved_by = mia.get_by_role("row", name=re.compile("Cookie Jar"))
    expect(solved_by).to_contain_text("Sam Student")
    check_page(mia, "team-page", restore_size=True)

    # the students' leaderboard and the teams' switch between each other
    sam.goto(f"{base}/leaderboard/")
    sam.get_by_role("navigation", name="Standings").get_by_role("link", name="Teams").click()
    expect(sam).to_have_url(f"{base}/teams/")
    expect(sam.get_by_role("link", name="Teams", exact=True).last).to_have_attribute("aria-current", "page")

    # another team's page shows no invite code
    blue = Team.objects.get(name="Blue Herons")
    sam.goto(f"{base}/teams/{blue.pk}/")
    expect(sam.get_by_role("heading", level=1)).to_contain_text("Blue Herons")
    expect(sam.locator(".invite-code")).to_have_count(0)
    expect(sam.get_by_text(teams.display_code(blue.invite_code))).to_have_count(0)
    check_page(sam, "team-other")

    # the dashboard's card
    mia.goto(f"{base}/")
    card = mia.locator("section", has=mia.get_by_role("heading", name=re.compile("Your team")))
    expect(card).to_contain_text("Red Foxes")
    expect(card).to_contain_text("250")
    expect(card).to_contain_text("#1")
    check_page(mia, "team-dashboard", restore_size=True)


def test_a_student_leaves_after_a_confirmation_on_the_page(school, page_at):
    base, sam = school["base"], school["sam"]
    teams.team_create(user=sam, name="Solo")
    page = page_at("phone")
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/team/")
    leave = page.get_by_role("region", name="Leave the team")
    expect(leave).to_contain_text("Are you sure?")
    expect(leave).to_contain_text("leaving deletes Solo")
    leave.get_by_role("button", name="Leave Solo").click()
    expect(page.get_by_text("You left Solo.")).to_be_visible()
    expect(page.get_by_role("heading", name="Create a team")).to_be_visible()
    assert not Team.objects.filter(name="Solo").exists()


def test_an_instructor_sees_the_standings_and_a_teams_code(school, page_at):
    base, tenant = school["base"], school["tenant"]
    tenant.team_mode = TeamMode.REQUIRED
    tenant.save()
    red = teams.team_create(user=school["mia"], name="Red Foxes")
    page = page_at("desktop")
    log_in(page, base, "ines@alpha.test")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Teams", exact=True).click()
    expect(page).to_have_url(f"{base}/teams/")
    expect(page.locator("tbody")).to_contain_text("Blue Herons")
    page.goto(f"{base}/teams/{red.pk}/")
    expect(page.locator(".invite-code")).to_contain_text(teams.display_code(red.invite_code))
    expect(page.get_by_role("button", name="New invite code")).to_have_count(0)
    check_page(page, "team-instructor", shot=False)

    # a student without a team in a class that requires one is told so on the dashboard
    student = page_at("phone")
    log_in(student, base, "sam@alpha.test")
    expect(student.locator("main")).to_contain_text("your answers are taken once you are in a team")
    check_page(student, "team-required-dashboard", restore_size=True)
