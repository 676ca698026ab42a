"""Teams in the admin, in a real browser (issue 31): an instructor merges two teams and moves a student.

Ines selects Blue and Green, picks "Merge selected teams into…", chooses Blue on the page
that says what a merge does, and merges; then she moves Alice from Red into Blue, and a
second student into the now full Blue is refused with a message, nothing moved. Every
page is scanned with axe-core (no serious or critical violation), fits a 390 px phone
and runs under the site's Content-Security-Policy (page_at). The teams list, the merge
page, a team's page and the move page are saved as docs/screenshots/admin-teams*-{desktop,phone}.png.
"""

import re

import pytest
from playwright.sync_api import expect

from audit.models import EventStore
from scoring import teams
from scoring.models import Team, TeamMembership
from tenants.factories import StudentFactory
from tenants.models import TeamMode

from .pages import PASSWORD, admin_log_in, alpha_academy, base_url, check_page, instructor_ines, open_page

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    alpha = alpha_academy(settings, team_mode=TeamMode.OPTIONAL, team_size_max=3)
    ines = instructor_ines(alpha)
    people = {
        first: StudentFactory(
            tenant=alpha, first_name=first, last_name="Student", email=f"{first.lower()}@alpha.test", password=PASSWORD
        )
        for first in ("Alice", "Bob", "Carol", "Dan")
    }
    lineup = {"Red": ["Alice", "Bob"], "Blue": ["Carol"], "Green": ["Dan"]}
    made = {}
    for name, members in lineup.items():
        made[name] = teams.team_create_for(tenant=alpha, name=name, actor=ines)
        for first in members:
            teams.team_move(user=people[first], team=made[name], actor=ines)
    return {"base": base_url(live_server), "people": people, "teams": made}


def select_rows(page, *texts):
    for text in texts:
        row = page.locator("#result_list tbody tr", has=page.get_by_role("link", name=text, exact=True))
        row.locator("input.action-select").check()


def run_action(page, label):
    page.locator("select[name=action]").select_option(label=label)
    page.get_by_role("button", name="Go").click()


def members_of(team) -> list[str]:
    return sorted(TeamMembership.objects.filter(team_id=team.pk).values_list("user__first_name", flat=True))


def test_an_instructor_merges_two_teams_and_moves_a_student(school, page_at):
    base, people, made = school["base"], school["people"], school["teams"]
    page = open_page(page_at, "desktop")
    admin_log_in(page, base, "ines@alpha.test")

    page.goto(f"{base}/admin/scoring/team/")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    check_page(page, "admin-teams")

    # merge Green into Blue
    select_rows(page, "Blue", "Green")
    run_action(page, "Merge selected teams into…")
    expect(page).to_have_title(re.compile("^Merge 2 teams"))
    expect(page.locator("#content-main")).to_contain_text("Green: 1 member")
    check_page(page, "admin-teams-merge")
    page.get_by_label("Merge into").select_option(label="Blue")
    page.get_by_role("button", name="Merge", exact=True).click()

    expect(page.locator(".messagelist")).to_contain_text("Merged Green into Blue.")
    assert sorted(Team.objects.values_list("name", flat=True)) == ["Blue", "Red"]
    assert members_of(made["Blue"]) == ["Carol", "Dan"]
    assert EventStore.objects.filter(event_type="TeamMerged").count() == 1
    check_page(page, "admin-teams-merged", shot=False)
    page.get_by_role("link", name="Blue", exact=True).click()
    expect(page.locator(".field-members_list")).to_contain_text("Dan Student (dan@alpha.test)")
    check_page(page, "admin-teams-team")

    # move Alice from Red into Blue: Blue is full then
    page.goto(f"{base}/admin/scoring/teammembership/")
    select_rows(page, "Alice Student")
    run_action(page, "Move to team…")
    expect(page.locator("#content-main")).to_contain_text("Alice Student (alice@alpha.test), in Red")
    check_page(page, "admin-teams-move")
    page.get_by_label("Move to").select_option(label="Blue")
    page.get_by_role("button", name="Move", exact=True).click()

    expect(page.locator(".messagelist")).to_contain_text("Moved Alice Student to Blue.")
    assert (members_of(made["Red"]), members_of(made["Blue"])) == (["Bob"], ["Alice", "Carol", "Dan"])

    # Bob into the full Blue: refused, nobody moves
    select_rows(page, "Bob Student")
    run_action(page, "Move to team…")
    page.get_by_label("Move to").select_option(label="Blue")
    page.get_by_role("button", name="Move", exact=True).click()

    expect(page.locator(".messagelist .error")).to_have_text(
        "Blue is full: a team of this class has at most 3 members. Nothing was changed."
    )
    assert TeamMembership.objects.get(user=people["Bob"]).team_id == made["Red"].pk
    check_page(page, "admin-teams-move-refused", shot=False)
