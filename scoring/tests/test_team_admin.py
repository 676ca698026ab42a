"""The instructors' team admin: lists, filters and search, and every change through scoring.teams.

An instructor of Alpha Academy (the app role, under row-level security, as live) adds,
renames, merges and dissolves teams and moves students; each change is audited and an
event, each refusal an error message with nothing changed. Beta Bootcamp's teams are
missing to them (404).
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from scoring import services, teams
from scoring.models import Leaderboard, Team, TeamLeaderboard, TeamMembership
from tenants.factories import StudentFactory
from tenants.models import TeamMode

pytestmark = pytest.mark.usefixtures("fast_hashing")

TEAMS = "/admin/scoring/team/"
MEMBERS = "/admin/scoring/teammembership/"
STANDINGS = "/admin/scoring/teamleaderboard/"
FLAG = "FLAG{teams}"


@pytest.fixture
def team_tenant(tenant):
    tenant.team_mode = TeamMode.OPTIONAL
    tenant.team_size_max = 3
    tenant.save()
    return tenant


@pytest.fixture
def client(team_tenant, instructor, client_for):
    return client_for(team_tenant, instructor)


@pytest.fixture
def people(team_tenant):
    """Alice, Bob, Carol, Dan and Erin, students of Alpha Academy."""
    names = [("Alice", "Anderson"), ("Bob", "Brown"), ("Carol", "Clark"), ("Dan", "Dunn"), ("Erin", "Evans")]
    return {
        first.lower(): StudentFactory(
            tenant=team_tenant, first_name=first, last_name=last, email=f"{first.lower()}@alpha.test"
        )
        for first, last in names
    }


@pytest.fixture
def red(team_tenant, instructor, people):
    """Red: Alice and Bob."""
    team = teams.team_create_for(tenant=team_tenant, name="Red", actor=instructor)
    for who in ("alice", "bob"):
        teams.team_move(user=people[who], team=team, actor=instructor)
    return team


@pytest.fixture
def blue(team_tenant, instructor, people):
    """Blue: Carol."""
    team = teams.team_create_for(tenant=team_tenant, name="Blue", actor=instructor)
    teams.team_move(user=people["carol"], team=team, actor=instructor)
    return team


@pytest.fixture
def green(team_tenant, instructor):
    """Green: nobody yet."""
    return teams.team_create_for(tenant=team_tenant, name="Green", actor=instructor)


@pytest.fixture
def foreign_team(other_tenant, other_student):
    other_tenant.team_mode = TeamMode.OPTIONAL
    other_tenant.save()
    return teams.team_create(user=other_student, name="Beta Team")


def solve(user, points=100):
    project = ProjectFactory(tenant=user.tenant, points=points, flag=FLAG)
    services.submission_create(user=user, project=project, flag=FLAG)


def names_listed(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return [team.name for team in response.context["cl"].result_list]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def members_of(team) -> list[str]:
    return sorted(TeamMembership.objects.filter(team_id=team.pk).values_list("user__first_name", flat=True))


def events(kind) -> list[EventStore]:
    return list(EventStore.objects.filter(aggregate_type="Team", event_type=kind))


def audited(model, pk) -> list[str]:
    return list(
        AuditLog.objects.filter(object_type=f"scoring.{model}", object_id=str(pk))
        .order_by("pk")
        .values_list("action", flat=True)
    )


def action(client, url, name, objects, **data):
    return client.post(url, {"action": name, "_selected_action": [o.pk for o in objects], **data}, follow=True)


# --- the list -------------------------------------------------------------------------------


def test_the_list_shows_members_points_and_rank(client, red, blue, green, people):
    solve(people["alice"], points=100)
    solve(people["carol"], points=50)

    response = client.get(TEAMS)

    rows = {t.name: (t.member_count, t.team_points, t.team_rank) for t in response.context["cl"].result_list}
    assert rows == {"Blue": (1, 50, 2), "Green": (0, 0, None), "Red": (2, 100, 1)}
    html = response.content.decode()
    assert f'href="{MEMBERS}?team__id__exact={red.pk}"' in html


def test_the_list_costs_the_same_for_any_number_of_teams(client, team_tenant, instructor, red):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(TEAMS).status_code == 200
        return len(captured)

    few = queries()
    for i in range(20):
        teams.team_create_for(tenant=team_tenant, name=f"Team {i:02d}", actor=instructor)

    # members, points and rank are subqueries of the page's one statement: no query per row
    assert queries() == few


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"members": "some"}, ["Blue", "Red"]),
        ({"members": "none"}, ["Green"]),
        ({"scored": "yes"}, ["Red"]),
        ({"scored": "no"}, ["Blue", "Green"]),
        ({"room": "full"}, ["Red"]),
        ({"room": "room"}, ["Blue", "Green"]),
        ({"members": "some", "room": "room"}, ["Blue"]),
    ],
)
def test_the_list_filters(client, team_tenant, red, blue, green, people, query, expected):
    team_tenant.team_size_max = 2
    team_tenant.save()
    solve(people["bob"])

    assert names_listed(client.get(TEAMS, query)) == expected


@pytest.mark.parametrize("query", [{"members": "many"}, {"room": "\x00"}, {"scored": "maybe"}])
def test_a_filter_value_that_is_no_choice_is_an_invalid_filter_not_a_500(client, red, query):
    response = client.get(TEAMS, query)

    assert response.status_code == 302 and response["Location"].endswith("?e=1")


@pytest.mark.parametrize(
    ("term", "expected"), [("red", ["Red"]), ("clark", ["Blue"]), ("alice@alpha", ["Red"]), ("a", ["Blue", "Red"])]
)
def test_the_search_finds_a_team_by_its_name_or_a_members_name_or_email(client, red, blue, green, term, expected):
    assert names_listed(client.get(TEAMS, {"q": term})) == expected


def test_the_list_holds_the_class_s_teams_only(client, red, foreign_team):
    assert names_listed(client.get(TEAMS)) == ["Red"]


def test_a_student_never_reaches_the_team_admin(team_tenant, student, client_for):
    response = client_for(team_tenant, student).get(TEAMS)

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- adding and renaming ---------------------------------------------------------------------


def test_adding_a_team_is_team_create_for(client, team_tenant, instructor):
    response = client.post(f"{TEAMS}add/", {"name": "  Purple   Rain "})

    assert response.status_code == 302
    team = Team.objects.get(tenant=team_tenant)
    assert (team.name, team.created_by) == ("Purple Rain", instructor)
    assert len(team.invite_code) == teams.CODE_LENGTH
    assert audited("team", team.pk) == ["create"]
    [created] = events("TeamCreated")
    assert (created.payload["team_id"], created.payload["name"]) == (team.pk, "Purple Rain")
    assert created.metadata["actor_id"] == instructor.pk


def test_the_add_form_asks_for_a_name_only(client):
    form = client.get(f"{TEAMS}add/").context["adminform"].form

    assert list(form.fields) == ["name"]


def test_a_name_the_class_has_already_is_refused_whatever_its_case(client, red):
    response = client.post(f"{TEAMS}add/", {"name": "RED"})

    assert response.status_code == 200
    assert "A team of this class already has this name." in response.content.decode()
    assert Team.objects.count() == 1


def test_a_name_the_service_refuses_is_an_error_message_with_the_name_kept(client, red):
    teams.team_create_for(tenant=red.tenant, name="Blue Team", actor=red.created_by)

    # spaces inside: the form's check lets it by, the service (one space between words) refuses it
    response = client.post(f"{TEAMS}add/", {"name": "blue   team"}, follow=True)

    assert messages_of(response) == ["A team of this class is already called “blue team”. Choose another name."]
    assert response.context["adminform"].form["name"].value() == "blue   team"
    assert sorted(Team.objects.values_list("name", flat=True)) == ["Blue Team", "Red"]


def test_renaming_is_team_rename(client, red):
    response = client.post(f"{TEAMS}{red.pk}/change/", {"name": "Crimson"})

    assert response.status_code == 302
    red.refresh_from_db()
    assert red.name == "Crimson"
    assert audited("team", red.pk) == ["create", "update"]
    [renamed] = events("TeamRenamed")
    assert renamed.payload["previous_name"] == "Red"


def test_renaming_to_a_taken_name_is_refused_with_a_message(client, red, blue):
    response = client.post(f"{TEAMS}{red.pk}/change/", {"name": "  BLUE "})
    assert response.status_code == 200
    assert "A team of this class already has this name." in response.content.decode()

    teams.team_rename(team=blue, name="Blue Team", actor=blue.created_by)
    response = client.post(f"{TEAMS}{red.pk}/change/", {"name": "blue   team"}, follow=True)

    assert messages_of(response) == ["A team of this class is already called “blue team”. Choose another name."]
    assert Team.objects.get(pk=red.pk).name == "Red"
    assert [e.payload["previous_name"] for e in events("TeamRenamed")] == ["Blue"]  # the setup's rename only


def test_the_team_page_shows_the_code_and_links_its_members(client, red, people):
    html = client.get(f"{TEAMS}{red.pk}/change/").content.decode()

    assert teams.display_code(red.invite_code) in html
    assert f'href="/admin/tenants/user/{people["alice"].pk}/change/"' in html
    assert "Alice Anderson (alice@alpha.test)" in html and "Bob Brown (bob@alpha.test)" in html
    assert f'href="{TEAMS}{red.pk}/new-code/"' in html


# --- invite codes ---------------------------------------------------------------------------


def test_the_new_code_page_asks_first(client, red):
    response = client.get(f"{TEAMS}{red.pk}/new-code/")

    assert response.status_code == 200
    assert "can no longer join" in response.content.decode()
    assert Team.objects.get(pk=red.pk).invite_code == red.invite_code


def test_a_new_code_is_team_new_code(client, red):
    response = client.post(f"{TEAMS}{red.pk}/new-code/", follow=True)

    fresh = Team.objects.get(pk=red.pk).invite_code
    assert fresh != red.invite_code
    assert messages_of(response) == [
        f"Red’s new invite code is {teams.display_code(fresh)}: the old one no longer works."
    ]
    assert len(events("TeamCodeChanged")) == 1
    assert audited("team", red.pk) == ["create", "update"]


def test_the_action_makes_new_codes_for_the_selected_teams(client, red, blue):
    response = action(client, TEAMS, "new_codes", [red, blue])

    assert messages_of(response) == ["New invite codes for Blue, Red: the old ones no longer work."]
    assert Team.objects.get(pk=red.pk).invite_code != red.invite_code
    assert Team.objects.get(pk=blue.pk).invite_code != blue.invite_code
    assert len(events("TeamCodeChanged")) == 2


# --- merging ---------------------------------------------------------------------------------


def test_the_merge_action_asks_for_the_team_to_merge_into(client, red, blue, green, foreign_team):
    response = action(client, TEAMS, "merge_selected", [blue, green])

    html = response.content.decode()
    assert "Blue: 1 member" in html and "Green: 0 members" in html
    choices = [label for _, label in response.context["form"].fields["into"].choices]
    assert choices == ["---------", "Blue", "Green", "Red"]  # the class's teams, never Beta's
    assert Team.objects.filter(tenant=red.tenant).count() == 3


def test_merging_is_team_merge_for_each_selected_team(client, team_tenant, red, blue, green, people):
    team_tenant.team_size_max = 4
    team_tenant.save()
    solve(people["carol"])

    response = action(client, TEAMS, "merge_selected", [blue, green, red], post="yes", into=red.pk)

    assert messages_of(response) == ["Merged Blue, Green into Red."]
    assert list(Team.objects.values_list("name", flat=True)) == ["Red"]
    assert members_of(red) == ["Alice", "Bob", "Carol"]
    assert TeamLeaderboard.objects.get(team=red).points == 100  # Carol's solve came along
    assert sorted(e.payload["into_team_id"] for e in events("TeamMerged")) == [red.pk, red.pk]
    assert audited("team", blue.pk) == ["create", "delete"]


def test_a_merge_over_the_team_size_is_refused_and_nothing_is_merged(client, red, blue, green, people):
    teams.team_move(user=people["dan"], team=green, actor=red.created_by)
    # Blue (Carol) goes into Red first and fits; then Green (Dan) does not: Blue's merge is undone too
    response = action(client, TEAMS, "merge_selected", [green, blue], post="yes", into=red.pk)

    assert messages_of(response) == ["Red is full: a team of this class has at most 3 members. Nothing was changed."]
    assert sorted(Team.objects.values_list("name", flat=True)) == ["Blue", "Green", "Red"]
    assert (members_of(red), members_of(blue), members_of(green)) == (["Alice", "Bob"], ["Carol"], ["Dan"])
    assert not events("TeamMerged")


def test_merging_a_team_into_itself_alone_is_refused(client, red):
    response = action(client, TEAMS, "merge_selected", [red], post="yes", into=red.pk)

    assert messages_of(response) == ["Select the teams to merge besides the one they go into."]
    assert Team.objects.filter(pk=red.pk).exists()


def test_a_merge_into_another_class_s_team_is_a_form_error(client, blue, foreign_team):
    response = action(client, TEAMS, "merge_selected", [blue], post="yes", into=foreign_team.pk)

    assert "Choose a team of the list." in response.content.decode()
    assert Team.objects.filter(pk=blue.pk).exists() and Team.objects.filter(pk=foreign_team.pk).exists()


# --- dissolving ------------------------------------------------------------------------------


def test_the_dissolve_action_says_what_happens(client, red, people):
    solve(people["alice"])

    response = action(client, TEAMS, "dissolve_selected", [red])

    html = response.content.decode()
    assert "Red: 2 members, 100 points" in html
    assert "Their members leave and are in no team" in html
    assert "row leaves the team standings" in html and "The students keep their own points" in html
    assert Team.objects.filter(pk=red.pk).exists()


def test_dissolving_is_team_dissolve(client, red, blue, people):
    solve(people["alice"])
    before = Leaderboard.objects.get(user=people["alice"]).points

    response = action(client, TEAMS, "dissolve_selected", [red, blue], post="yes")

    assert messages_of(response) == ["Dissolved Blue, Red."]
    assert not Team.objects.exists() and not TeamMembership.objects.exists()
    assert not TeamLeaderboard.objects.exists()
    assert Leaderboard.objects.get(user=people["alice"]).points == before == 100
    assert sorted(e.payload["members"] for e in events("TeamDissolved")) == sorted(
        [sorted([people["alice"].pk, people["bob"].pk]), [people["carol"].pk]]
    )
    assert audited("team", red.pk) == ["create", "delete"]


def test_the_delete_page_dissolves(client, red):
    page = client.get(f"{TEAMS}{red.pk}/delete/")
    assert "This team is dissolved:" in page.content.decode()

    response = client.post(f"{TEAMS}{red.pk}/delete/", follow=True)

    assert messages_of(response) == ["Dissolved Red."]
    assert not Team.objects.exists()
    assert len(events("TeamDissolved")) == 1


def test_there_is_no_delete_selected_action(client, red):
    actions = [name for name, _ in client.get(TEAMS).context["action_form"].fields["action"].choices]

    assert actions == ["", "merge_selected", "dissolve_selected", "new_codes"]


# --- another class's teams -------------------------------------------------------------------


@pytest.mark.parametrize("page", ["change/", "new-code/", "delete/"])
def test_another_class_s_team_is_missing(client, foreign_team, page):
    assert client.get(f"{TEAMS}{foreign_team.pk}/{page}").status_code == 404
    assert client.post(f"{TEAMS}{foreign_team.pk}/{page}", {"name": "Taken"}).status_code == 404
    assert Team.objects.get(pk=foreign_team.pk).name == "Beta Team"


def test_an_action_never_reaches_another_class_s_team(client, foreign_team):
    action(client, TEAMS, "dissolve_selected", [foreign_team], post="yes")

    assert Team.objects.filter(pk=foreign_team.pk).exists()
    assert not events("TeamDissolved")


# --- team members: moving students -----------------------------------------------------------


def test_the_members_list_names_the_students_and_their_teams(client, red, blue, foreign_team):
    response = client.get(MEMBERS)

    rows = [(m.user.first_name, m.team.name) for m in response.context["cl"].result_list]
    assert rows == [("Carol", "Blue"), ("Alice", "Red"), ("Bob", "Red")]
    assert names_listed_members(client.get(MEMBERS, {"team__id__exact": red.pk})) == ["Alice", "Bob"]
    assert names_listed_members(client.get(MEMBERS, {"q": "clark"})) == ["Carol"]


def names_listed_members(response) -> list[str]:
    assert response.status_code == 200
    return [m.user.first_name for m in response.context["cl"].result_list]


def test_the_move_action_asks_for_a_team_or_no_team(client, red, blue):
    members = list(TeamMembership.objects.filter(team=red))

    response = action(client, MEMBERS, "move_selected", members)

    html = response.content.decode()
    assert "Alice Anderson (alice@alpha.test), in Red" in html
    labels = [label for _, label in response.context["form"].fields["team"].choices]
    assert labels == ["Choose…", "No team", "Blue", "Red"]


def test_moving_is_team_move_for_each_student(client, red, blue, green, people):
    members = list(TeamMembership.objects.filter(team=red))

    response = action(client, MEMBERS, "move_selected", members, post="yes", team=green.pk)

    assert messages_of(response) == ["Moved Alice Anderson, Bob Brown to Green."]
    assert (members_of(red), members_of(green)) == ([], ["Alice", "Bob"])
    assert [e.payload["how"] for e in events("TeamLeft")] == ["moved", "moved"]
    assert len([e for e in events("TeamJoined") if e.payload["how"] == "moved"]) == 2 + 3  # the fixtures' moves too
    alice = people["alice"].pk
    assert AuditLog.objects.filter(object_type="scoring.teammembership", action="delete").count() == 2
    assert TeamMembership.objects.get(user_id=alice).team_id == green.pk


def test_moving_to_no_team_takes_the_students_out(client, red, people):
    response = action(
        client, MEMBERS, "move_selected", [TeamMembership.objects.get(user=people["bob"])], post="yes", team="none"
    )

    assert messages_of(response) == ["Moved Bob Brown to no team."]
    assert members_of(red) == ["Alice"]


def test_moving_into_a_full_team_is_refused_and_nobody_moves(client, red, blue, people):
    teams.team_move(user=people["dan"], team=blue, actor=red.created_by)
    members = list(TeamMembership.objects.filter(team=blue))  # Carol and Dan: Red has room for one

    response = action(client, MEMBERS, "move_selected", members, post="yes", team=red.pk)

    assert messages_of(response) == ["Red is full: a team of this class has at most 3 members. Nothing was changed."]
    assert (members_of(red), members_of(blue)) == (["Alice", "Bob"], ["Carol", "Dan"])


def test_adding_a_member_puts_a_student_in_no_team_into_a_team(client, team_tenant, red, blue, people, other_student):
    form = client.get(f"{MEMBERS}add/").context["adminform"].form
    students = [label for _, label in form.fields["user"].choices][1:]
    assert students == ["Dan Dunn (dan@alpha.test)", "Erin Evans (erin@alpha.test)"]  # nobody in a team, no staff

    response = client.post(f"{MEMBERS}add/", {"user": people["dan"].pk, "team": blue.pk})

    assert response.status_code == 302
    assert members_of(blue) == ["Carol", "Dan"]
    joined = events("TeamJoined")[-1]
    assert (joined.payload["team_id"], joined.payload["user_id"], joined.payload["how"]) == (
        blue.pk,
        people["dan"].pk,
        "moved",
    )
    assert audited("teammembership", TeamMembership.objects.get(user=people["dan"]).pk) == ["create"]


def test_adding_to_a_full_team_is_an_error_message(client, red, people):
    teams.team_move(user=people["carol"], team=red, actor=red.created_by)

    response = client.post(f"{MEMBERS}add/", {"user": people["dan"].pk, "team": red.pk}, follow=True)

    assert messages_of(response) == ["Red is full: a team of this class has at most 3 members."]
    assert not TeamMembership.objects.filter(user=people["dan"]).exists()


def test_a_membership_is_never_deleted_nor_edited_in_the_admin(client, red, people):
    membership = TeamMembership.objects.get(user=people["alice"])

    assert client.post(f"{MEMBERS}{membership.pk}/delete/").status_code == 403
    assert client.get(f"{MEMBERS}{membership.pk}/change/").status_code == 200  # read-only
    assert client.post(f"{MEMBERS}{membership.pk}/change/", {"team": red.pk}).status_code == 403


def test_another_class_s_membership_is_missing(client, foreign_team):
    membership = TeamMembership.objects.get(team=foreign_team)

    assert client.get(f"{MEMBERS}{membership.pk}/change/").status_code == 404


# --- the team standings ----------------------------------------------------------------------


def test_the_team_standings_are_read_only(client, red, blue, people, foreign_team):
    solve(people["carol"], points=50)
    solve(people["alice"], points=100)

    response = client.get(STANDINGS)

    assert [(r.rank, r.team.name, r.points) for r in response.context["cl"].result_list] == [
        (1, "Red", 100),
        (2, "Blue", 50),
    ]
    assert client.get(f"{STANDINGS}add/").status_code == 403


# --- the class settings ----------------------------------------------------------------------


def test_the_class_settings_have_a_teams_section(team_tenant, tenant_admin, client_for):
    page = client_for(team_tenant, tenant_admin).get(f"/admin/tenants/tenant/{team_tenant.pk}/change/")

    sections = [(fieldset.name, list(fieldset.fields)) for fieldset in page.context["adminform"]]
    assert ("Teams", ["team_mode", "team_size_max"]) in sections
    html = page.content.decode()
    assert "Required: a student answers only as a team member" in html
    assert "The most members a team may have (1 to 50)." in html


def test_the_class_settings_save_the_team_mode_and_size(team_tenant, tenant_admin, client_for):
    form = {"name": team_tenant.name, "registration_mode": team_tenant.registration_mode}
    client = client_for(team_tenant, tenant_admin)
    url = f"/admin/tenants/tenant/{team_tenant.pk}/change/"

    assert client.post(url, {**form, "team_mode": "REQUIRED", "team_size_max": "5"}).status_code == 302
    team_tenant.refresh_from_db()
    assert (team_tenant.team_mode, team_tenant.team_size_max) == ("REQUIRED", 5)

    assert client.post(url, form).status_code == 302  # left out: kept
    team_tenant.refresh_from_db()
    assert (team_tenant.team_mode, team_tenant.team_size_max) == ("REQUIRED", 5)

    refused = client.post(url, {**form, "team_size_max": "51"})
    assert refused.status_code == 200 and "A team has 1 to 50 members." in refused.content.decode()
