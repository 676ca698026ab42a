"""The students' team pages: my team, a team's page, the team standings, the dashboard's card and the header's link.

Three personas as everywhere (a student and an instructor of Alpha, a student of Beta),
with the class playing in teams unless a test turns it off.
"""

import datetime
import html

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from challenges.factories import ProjectFactory
from scoring import services, teams
from scoring.models import Team, TeamMembership
from tenants.factories import StudentFactory
from tenants.models import TeamMode

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{teams}"


@pytest.fixture
def tenant(tenant):
    tenant.team_mode = TeamMode.OPTIONAL
    tenant.team_size_max = 3
    tenant.save()
    return tenant


@pytest.fixture
def client(tenant, student, client_for):
    return client_for(tenant, student)


@pytest.fixture
def red(student):
    return teams.team_create(user=student, name="Red")


def solve(user, points=100, name=None):
    project = ProjectFactory(tenant=user.tenant, points=points, flag=FLAG, **({"name": name} if name else {}))
    return services.submission_create(user=user, project=project, flag=FLAG)


def classmate(tenant, **fields):
    return StudentFactory(tenant=tenant, **fields)


def state():
    """Everything a refused change must leave as it was: the teams, their codes and their members."""
    return (
        sorted(Team.objects.values_list("pk", "name", "invite_code")),
        sorted(TeamMembership.objects.values_list("team_id", "user_id")),
    )


def alert_of(response) -> str:
    """The text of the page's first alert (a form's errors, or a refusal above the page)."""
    page = response.content.decode()
    start = page.index('role="alert"')
    return html.unescape(page[start : page.index("</div>", start)])


# --- Access ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/team/", "/teams/", "/teams/{pk}/"])
def test_it_needs_a_login(path, tenant, red):
    response = Client(HTTP_HOST=tenant.domain).get(path.format(pk=red.pk))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/team/"),
        ("get", "/teams/"),
        ("get", "/teams/{pk}/"),
        ("post", "/team/create/"),
        ("post", "/team/join/"),
        ("post", "/team/code/"),
        ("post", "/team/leave/"),
    ],
)
def test_it_is_a_404_while_the_class_plays_alone(method, path, client, tenant, red):
    tenant.team_mode = TeamMode.OFF
    tenant.save()
    before = state()

    response = getattr(client, method)(path.format(pk=red.pk), {"name": "Blue", "code": red.invite_code})

    assert response.status_code == 404
    assert state() == before


def test_a_team_of_another_class_is_a_404(client, other_tenant, other_student):
    other_tenant.team_mode = TeamMode.OPTIONAL
    other_tenant.save()
    theirs = teams.team_create(user=other_student, name="Beta Team")

    assert client.get(f"/teams/{theirs.pk}/").status_code == 404
    assert client.get("/teams/999999/").status_code == 404


@pytest.mark.parametrize("path", ["/team/create/", "/team/join/", "/team/code/", "/team/leave/"])
def test_a_get_of_a_change_is_a_405(path, client):
    assert client.get(path).status_code == 405


def test_a_change_without_the_csrf_token_is_refused(tenant, student):
    client = Client(HTTP_HOST=tenant.domain, enforce_csrf_checks=True)
    client.force_login(student)

    response = client.post("/team/create/", {"name": "Red"})

    assert response.status_code == 403
    assert not Team.objects.exists()


@pytest.mark.parametrize("path", ["/team/create/", "/team/join/", "/team/code/", "/team/leave/"])
def test_staff_are_told_only_students_join_teams(path, client_for, tenant, instructor, red):
    before = state()

    response = client_for(tenant, instructor).post(path, {"name": "Staff", "code": red.invite_code})

    assert response.status_code == 403
    assert "Only students join teams" in alert_of(response)
    assert state() == before


def test_a_superuser_is_told_so_too(client_for, tenant, superuser):
    response = client_for(tenant, superuser).post("/team/create/", {"name": "Root"})

    assert response.status_code == 403
    assert not Team.objects.exists()


# --- My team: create, join, new code, leave ------------------------------------------------------


def test_without_a_team_a_student_sees_how_to_create_or_join_one(client):
    response = client.get("/team/")
    html = response.content.decode()

    assert response.status_code == 200
    assert "Create a team" in html
    assert "Join a team" in html
    assert 'action="/team/create/"' in html
    assert 'action="/team/join/"' in html
    assert '<label for="id_name">Team name</label>' in html
    assert '<label for="id_code">Invite code</label>' in html


def test_a_class_that_requires_teams_says_so(client, tenant):
    tenant.team_mode = TeamMode.REQUIRED
    tenant.save()

    assert "Your answers are taken once you are in a team" in client.get("/team/").content.decode()


def test_staff_see_no_forms_on_my_team(client_for, tenant, instructor):
    response = client_for(tenant, instructor).get("/team/")

    assert response.status_code == 200
    assert 'action="/team/create/"' not in response.content.decode()
    assert "teams are managed in the admin" in response.content.decode()


def test_a_student_creates_a_team_and_sees_its_invite_code(client, student):
    response = client.post("/team/create/", {"name": "  Red   Team "})

    assert response.status_code == 302
    assert response["Location"] == "/team/"
    team = Team.objects.get()
    assert team.name == "Red Team"
    page = client.get("/team/")
    html = page.content.decode()
    assert "Team “Red Team” created" in html
    assert teams.display_code(team.invite_code) in html
    assert "New invite code" in html
    assert "Leave Red Team" in html
    assert "Are you sure?" in html and "leaving deletes Red Team" in html


def test_a_classmate_joins_with_the_code_as_typed(tenant, red, client_for):
    mate = classmate(tenant, first_name="Mia", last_name="Mate")
    client = client_for(tenant, mate)
    typed = teams.display_code(red.invite_code).lower().replace("-", " - ")

    response = client.post("/team/join/", {"code": typed})

    assert response.status_code == 302
    assert TeamMembership.objects.filter(team=red, user=mate).exists()
    html = client.get("/team/").content.decode()
    assert "You joined Red." in html
    assert "Mia Mate" in html
    assert teams.display_code(red.invite_code) in html


def test_a_new_code_makes_the_old_one_stale(client, tenant, red, client_for):
    old = red.invite_code

    response = client.post("/team/code/")

    red.refresh_from_db()
    assert response.status_code == 302
    assert red.invite_code != old
    assert f"new invite code is {teams.display_code(red.invite_code)}" in client.get("/team/").content.decode()
    joiner = client_for(tenant, classmate(tenant))
    refused = joiner.post("/team/join/", {"code": old})
    assert refused.status_code == 400
    assert "No team of this class has that invite code" in alert_of(refused)


def test_leaving_keeps_the_team_that_has_points(client, student, tenant, red):
    mate = classmate(tenant)
    teams.team_join(user=mate, code=red.invite_code)
    solve(student, 100)

    response = client.post("/team/leave/")

    assert response.status_code == 302
    assert not TeamMembership.objects.filter(user=student).exists()
    html = client.get("/team/").content.decode()
    assert "You left Red. Your answers so far keep scoring for it." in html
    assert "Create a team" in html
    assert Team.objects.filter(pk=red.pk).exists()


def test_the_last_member_leaving_a_team_without_points_deletes_it(client, red):
    response = client.post("/team/leave/", follow=True)

    assert "It had no other member and no points, so it is gone." in response.content.decode()
    assert not Team.objects.exists()


# --- Bad input: the page again, the reason in the form, what was typed kept, nothing changed ---------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("   ", "Give your team a name."),
        ("x" * 61, "at most 60 characters"),
        ("rED", "A team of this class is already called “rED”"),
    ],
)
def test_a_bad_team_name_is_refused_in_the_form(name, message, tenant, red, client_for):
    client = client_for(tenant, classmate(tenant))
    before = state()

    response = client.post("/team/create/", {"name": name})

    assert response.status_code == 400
    assert message in alert_of(response)
    assert 'aria-invalid="true"' in response.content.decode()
    if name.strip():
        assert f'value="{name}"' in response.content.decode()
    assert state() == before


def test_creating_a_second_team_is_refused_above_the_team_page(client, red):
    before = state()

    response = client.post("/team/create/", {"name": "Blue"})

    assert response.status_code == 400
    assert "You are in a team already" in alert_of(response)
    assert "Leave Red" in response.content.decode()  # the page of the team they are in
    assert state() == before


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter the team's invite code."),
        ("ZZZZ-ZZZZ", "No team of this class has that invite code"),
        ("beta", "No team of this class has that invite code"),
    ],
)
def test_a_bad_invite_code_is_refused_in_the_form(typed, message, tenant, red, other_tenant, client_for):
    other_tenant.team_mode = TeamMode.OPTIONAL
    other_tenant.save()
    theirs = teams.team_create(user=StudentFactory(tenant=other_tenant), name="Beta Team")
    typed = theirs.invite_code if typed == "beta" else typed
    client = client_for(tenant, classmate(tenant))
    before = state()

    response = client.post("/team/join/", {"code": typed})

    assert response.status_code == 400
    assert message in alert_of(response)
    if typed:
        assert f'value="{typed}"' in response.content.decode()
    assert state() == before


def test_a_full_team_is_refused_with_a_400(tenant, red, client_for):
    for _ in range(2):
        teams.team_join(user=classmate(tenant), code=red.invite_code)
    client = client_for(tenant, classmate(tenant))
    before = state()

    response = client.post("/team/join/", {"code": red.invite_code})

    assert response.status_code == 400
    assert "Red is full: a team of this class has at most 3 members." in alert_of(response)
    assert f'value="{red.invite_code}"' in response.content.decode()
    assert state() == before


def test_joining_while_in_a_team_is_refused(client, tenant, red):
    other = teams.team_create(user=classmate(tenant), name="Blue")
    before = state()

    response = client.post("/team/join/", {"code": other.invite_code})

    assert response.status_code == 400
    assert "You are in Red: leave it before you join Blue." in alert_of(response)
    assert state() == before


@pytest.mark.parametrize("path", ["/team/code/", "/team/leave/"])
def test_a_new_code_or_leaving_without_a_team_is_refused(path, client):
    response = client.post(path)

    assert response.status_code == 400
    assert "You are not in a team." in alert_of(response)
    assert "Create a team" in response.content.decode()


# --- A team's page -------------------------------------------------------------------------------


def test_a_team_page_shows_members_points_rank_and_who_solved_first(client_for, tenant, student, red):
    mate = classmate(tenant, first_name="Mia", last_name="Mate")
    teams.team_join(user=mate, code=red.invite_code)
    project = ProjectFactory(tenant=tenant, name="Cookie Jar", points=150, flag=FLAG)
    services.submission_create(user=mate, project=project, flag=FLAG)
    services.submission_create(user=student, project=project, flag=FLAG)  # counts once, the first member's

    response = client_for(tenant, classmate(tenant)).get(f"/teams/{red.pk}/")
    html = response.content.decode()

    assert response.status_code == 200
    assert response.context["score"].points == 150
    assert response.context["score"].rank == 1
    assert [(s.project_name, s.solver) for s in response.context["solves"]] == [("Cookie Jar", "Mia Mate")]
    assert student.get_full_name() in html and "Mia Mate" in html


def test_the_invite_code_shows_to_members_and_staff_only(client, client_for, tenant, instructor, red):
    code = teams.display_code(red.invite_code)

    outsider = client_for(tenant, classmate(tenant)).get(f"/teams/{red.pk}/")

    assert code not in outsider.content.decode()
    assert red.invite_code not in outsider.content.decode()
    assert "New invite code" not in outsider.content.decode()
    assert "Leave Red" not in outsider.content.decode()
    assert code in client.get(f"/teams/{red.pk}/").content.decode()
    assert code in client_for(tenant, instructor).get(f"/teams/{red.pk}/").content.decode()


def test_members_link_to_profiles_only_where_the_class_has_them(client, tenant, student, red):
    link = f'href="/students/{student.pk}/"'
    assert link not in client.get(f"/teams/{red.pk}/").content.decode()

    tenant.public_profiles = True
    tenant.save()
    assert link in client.get(f"/teams/{red.pk}/").content.decode()


# --- The team standings ---------------------------------------------------------------------------


def test_the_standings_rank_teams_once_and_highlight_mine(client, tenant, student, red):
    mate = classmate(tenant)
    teams.team_join(user=mate, code=red.invite_code)
    blue_lead = classmate(tenant)
    blue = teams.team_create(user=blue_lead, name="Blue")
    project = ProjectFactory(tenant=tenant, points=200, flag=FLAG)
    services.submission_create(user=student, project=project, flag=FLAG)
    services.submission_create(user=mate, project=project, flag=FLAG)
    solve(blue_lead, 300)

    response = client.get("/teams/")
    html = response.content.decode()
    body = html[html.index("<tbody>") : html.index("</tbody>")]

    assert [(r.rank, r.name, r.members, r.points, r.solves) for r in response.context["board"].rows] == [
        (1, "Blue", 1, 300, 1),
        (2, "Red", 2, 200, 1),
    ]
    assert body.count('id="me"') == body.count("Your team") == 1
    mine = body[body.index('<tr class="me"') :]
    assert "Red" in mine[: mine.index("</tr>")]
    assert f'href="/teams/{blue.pk}/"' in body
    assert response.context["mine"].rank == 2


def test_team_names_are_escaped(client, tenant):
    lead = classmate(tenant)
    teams.team_create(user=lead, name="<script>alert(1)</script>")
    solve(lead)

    html = client.get("/teams/").content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_standings_are_paginated_and_open_on_my_teams_page(client, tenant, student, red, settings):
    for n in range(55):
        lead = classmate(tenant)
        teams.team_create(user=lead, name=f"Team {n:02}")
        solve(lead, 1000 - n)
    solve(student, 10)

    response = client.get("/teams/")

    assert response.context["my_page"] == 2
    assert response.context["board"].number == 2
    assert response.context["board"].pages == 2
    assert client.get("/teams/?page=1").context["board"].number == 1
    assert client.get("/teams/?page=99").context["board"].number == 2
    assert client.get("/teams/?page=x").status_code == 200


def test_the_standings_are_cached_until_a_solve(
    client, tenant, student, red, settings, django_assert_num_queries, django_capture_on_commit_callbacks
):
    # a cache outside the database (the embedded default's is a table: each read a query)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with django_capture_on_commit_callbacks(execute=True):
        solve(student, 100)
    assert client.get("/teams/").status_code == 200  # fills the cache

    # 1. SAVEPOINT (the request's transaction, inside the test's)
    # 2. vulhub_enter_host(): the tenant and its context
    # 3. the session, where it is kept in the database (the embedded default; Redis keeps it otherwise)
    # 4. the user
    # 5. RELEASE SAVEPOINT
    # the cache's version, the page, the student's team and its place are cache reads: no team query
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/teams/")
    sent = [query["sql"] for query in queries.captured_queries]
    assert len(sent) == 5 if "vulhub_session_load" in " ".join(sent) else len(sent) == 4, sent
    assert not [sql for sql in sent if "team" in sql]
    assert [(row.name, row.points) for row in response.context["board"].rows] == [("Red", 100)]

    lead = classmate(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        teams.team_create(user=lead, name="Blue")
        solve(lead, 300)  # bumps the version on commit

    fresh = client.get("/teams/")
    assert [(row.name, row.points) for row in fresh.context["board"].rows] == [("Blue", 300), ("Red", 100)]
    assert fresh.context["mine"].rank == 2


def test_the_standings_cost_the_same_queries_for_more_teams(client, tenant, student, red):
    from django.core.cache import cache

    solve(student, 50)

    def cold():
        cache.clear()
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/teams/").status_code == 200
        return len(queries)

    small = cold()
    for n in range(20):
        lead = classmate(tenant)
        teams.team_create(user=lead, name=f"Team {n}")
        solve(lead, 10 + n)

    assert cold() == small


# --- The scoreboard freeze ---------------------------------------------------------------------------


@pytest.fixture
def frozen_after_red_solved(tenant, student, red):
    """Red solved 100 before the freeze, Blue 300 after it."""
    solve(student, 100, name="Before")
    tenant.scoreboard_freeze_at = timezone.now()
    tenant.save()
    lead = classmate(tenant)
    teams.team_create(user=lead, name="Blue")
    solve(lead, 300)
    solve(student, 50, name="After")
    return tenant


def test_a_student_sees_the_team_standings_as_of_the_freeze(client, frozen_after_red_solved, red):
    response = client.get("/teams/")

    assert [(r.rank, r.name, r.points) for r in response.context["board"].rows] == [(1, "Red", 100)]
    assert response.context["frozen_at"] is not None
    assert "The scoreboard is frozen." in response.content.decode()
    page = client.get(f"/teams/{red.pk}/")
    assert page.context["score"].points == 100
    assert [s.project_name for s in page.context["solves"]] == ["Before"]
    assert client.get("/").context["team"]["score"].points == 100


def test_staff_see_the_live_team_standings_during_a_freeze(client_for, frozen_after_red_solved, instructor, red):
    response = client_for(frozen_after_red_solved, instructor).get("/teams/")

    assert [(r.rank, r.name, r.points) for r in response.context["board"].rows] == [(1, "Blue", 300), (2, "Red", 150)]
    assert "Live standings." in response.content.decode()
    page = client_for(frozen_after_red_solved, instructor).get(f"/teams/{red.pk}/")
    assert page.context["score"].points == 150
    assert {s.project_name for s in page.context["solves"]} == {"Before", "After"}


def test_a_freeze_in_the_future_changes_nothing(client, tenant, student, red):
    solve(student, 100)
    tenant.scoreboard_freeze_at = timezone.now() + datetime.timedelta(hours=1)
    tenant.save()

    assert client.get("/teams/").context["frozen_at"] is None


# --- The dashboard, the header and the leaderboard's switch ------------------------------------------


def test_the_dashboard_shows_my_team(client, tenant, student, red):
    mate = classmate(tenant, first_name="Mia", last_name="Mate")
    teams.team_join(user=mate, code=red.invite_code)
    solve(mate, 120)

    response = client.get("/")
    html = response.content.decode()

    assert response.context["team"]["score"].points == 120
    assert f'<a href="/teams/{red.pk}/">Red</a>' in html
    assert "Mia Mate" in html
    assert "#1" in html


def test_the_dashboard_invites_a_student_without_a_team(client, tenant):
    html = client.get("/").content.decode()

    assert "Join or create a team" in html
    assert 'href="/team/"' in html
    assert "your answers are taken once you are in a team" not in html

    tenant.team_mode = TeamMode.REQUIRED
    tenant.save()
    assert "your answers are taken once you are in a team" in client.get("/").content.decode()


def test_the_dashboard_has_no_team_card_while_the_class_plays_alone(client, tenant):
    tenant.team_mode = TeamMode.OFF
    tenant.save()

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")

    assert response.context["team"] is None
    assert "Join or create a team" not in response.content.decode()
    assert not any("team_memberships" in q["sql"] for q in queries.captured_queries)


def test_the_dashboard_reads_the_team_in_one_query(client, tenant, student, red):
    solve(student, 50)
    client.get("/")  # the standings cached

    with CaptureQueriesContext(connection) as queries:
        client.get("/")

    assert sum("team_memberships" in q["sql"] for q in queries.captured_queries) == 1
    assert not any("team_leaderboards" in q["sql"] for q in queries.captured_queries)


def test_the_header_links_to_my_team_while_the_class_plays_in_teams(client, client_for, tenant, instructor):
    assert '<a href="/team/">Team</a>' in client.get("/badges/").content.decode()
    assert '<a href="/teams/">Teams</a>' in client_for(tenant, instructor).get("/badges/").content.decode()

    tenant.team_mode = TeamMode.OFF
    tenant.save()
    html = client.get("/badges/").content.decode()
    assert 'href="/team/"' not in html


def test_the_leaderboard_and_the_team_standings_link_to_each_other(client, tenant):
    leaderboard = client.get("/leaderboard/").content.decode()
    standings = client.get("/teams/").content.decode()

    assert '<a href="/teams/">Teams</a>' in leaderboard
    assert '<a href="/leaderboard/" aria-current="page">Students</a>' in leaderboard
    assert '<a href="/teams/" aria-current="page">Teams</a>' in standings

    tenant.team_mode = TeamMode.OFF
    tenant.save()
    assert 'href="/teams/"' not in client.get("/leaderboard/").content.decode()
