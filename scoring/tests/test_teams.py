"""Teams through the services: mode, create, join, leave, the size cap, instructors' changes, and team scoring."""

import pytest

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from challenges.models import Hint, Project
from scoring import hints, services, team_board, teams
from scoring.models import HintUnlock, Submission, Team, TeamLeaderboard, TeamMembership
from tenants.factories import StudentFactory
from tenants.models import TeamMode

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{team}"


@pytest.fixture
def team_tenant(tenant):
    tenant.team_mode = TeamMode.OPTIONAL
    tenant.team_size_max = 3
    tenant.save()
    return tenant


@pytest.fixture
def flag_project(team_tenant):
    return ProjectFactory(tenant=team_tenant, points=200, flag=FLAG)


def team_board_rows(tenant):
    return list(
        TeamLeaderboard.objects.for_tenant(tenant).ranked().values_list("team__name", "points", "solves", "rank")
    )


def test_a_student_creates_a_team_and_is_its_first_member(team_tenant, student):
    team = teams.team_create(user=student, name="  Red   Team ")

    assert team.name == "Red Team"
    assert len(team.invite_code) == 8
    assert list(TeamMembership.objects.filter(team=team).values_list("user_id", flat=True)) == [student.pk]
    kinds = list(EventStore.objects.filter(aggregate_type="Team").values_list("event_type", flat=True))
    assert kinds == ["TeamCreated", "TeamJoined"]
    assert team.invite_code not in str(list(AuditLog.objects.values_list("changes", flat=True)))


def test_teams_are_refused_where_the_class_plays_alone(tenant, student):
    with pytest.raises(services.NotAllowed, match="does not play in teams"):
        teams.team_create(user=student, name="Red")
    assert not Team.objects.exists()


def test_joining_with_the_code_and_the_size_cap(team_tenant, student):
    team = teams.team_create(user=student, name="Red")
    second, third, fourth = (StudentFactory(tenant=team_tenant) for _ in range(3))

    teams.team_join(user=second, code=teams.display_code(team.invite_code).lower())
    teams.team_join(user=third, code=team.invite_code)
    with pytest.raises(teams.TeamFull, match="at most 3 members"):
        teams.team_join(user=fourth, code=team.invite_code)
    assert TeamMembership.objects.filter(team=team).count() == 3


def test_a_wrong_a_stale_and_another_class_code_are_refused(team_tenant, student, other_tenant):
    team = teams.team_create(user=student, name="Red")
    old = team.invite_code
    teams.team_new_code(team=team, actor=student)
    joiner = StudentFactory(tenant=team_tenant)
    for code in ("NOPE-NOPE", old):
        with pytest.raises(teams.NoSuchCode, match="No team of this class has that invite code"):
            teams.team_join(user=joiner, code=code)
    other_tenant.team_mode = TeamMode.OPTIONAL
    other_tenant.save()
    stranger = StudentFactory(tenant=other_tenant)
    team.refresh_from_db()
    with pytest.raises(teams.NoSuchCode):
        teams.team_join(user=stranger, code=team.invite_code)
    assert TeamMembership.objects.filter(team=team).count() == 1


def test_a_duplicate_name_whatever_its_case_is_refused(team_tenant, student):
    teams.team_create(user=student, name="Red")
    with pytest.raises(services.InvalidAnswer, match="already called"):
        teams.team_create(user=StudentFactory(tenant=team_tenant), name="RED")
    assert Team.objects.count() == 1


def test_a_solve_counts_once_for_the_team_the_first_members(team_tenant, student, flag_project):
    team = teams.team_create(user=student, name="Red")
    mate = StudentFactory(tenant=team_tenant)
    teams.team_join(user=mate, code=team.invite_code)

    services.submission_create(user=student, project=flag_project, flag=FLAG)
    services.submission_create(user=mate, project=flag_project, flag=FLAG)

    assert team_board_rows(team_tenant) == [("Red", 200, 1, 1)]
    assert team_board.standings_from_events(team_tenant.pk) == team_board.standings_from_tables(team_tenant.pk)


def test_a_student_who_changes_team_takes_no_points_along(team_tenant, student, flag_project):
    red = teams.team_create(user=student, name="Red")
    services.submission_create(user=student, project=flag_project, flag=FLAG)
    teams.team_leave(user=student)
    blue = teams.team_create(user=student, name="Blue")

    assert team_board_rows(team_tenant) == [("Red", 200, 1, 1)]
    assert Team.objects.filter(pk=red.pk).exists()
    assert not TeamLeaderboard.objects.filter(team=blue).exists()


def test_hints_are_charged_to_the_team_once(team_tenant, student, flag_project):
    hint = Hint.objects.create(tenant=team_tenant, project=flag_project, position=1, text="Look", cost=30)
    team = teams.team_create(user=student, name="Red")
    mate = StudentFactory(tenant=team_tenant)
    teams.team_join(user=mate, code=team.invite_code)
    hints.hint_unlock(user=student, hint=hint)
    hints.hint_unlock(user=mate, hint=hint)

    services.submission_create(user=mate, project=flag_project, flag=FLAG)

    assert team_board_rows(team_tenant) == [("Red", 170, 1, 1)]
    assert team_board.standings_from_events(team_tenant.pk) == team_board.standings_from_tables(team_tenant.pk)


def test_merge_and_dissolve_replay_as_the_table_says(team_tenant, student, flag_project, instructor):
    other = ProjectFactory(tenant=team_tenant, points=100, flag="FLAG{two}")
    red = teams.team_create(user=student, name="Red")
    mate = StudentFactory(tenant=team_tenant)
    blue = teams.team_create(user=mate, name="Blue")
    services.submission_create(user=student, project=flag_project, flag=FLAG)
    services.submission_create(user=mate, project=flag_project, flag=FLAG)
    services.submission_create(user=mate, project=other, flag="FLAG{two}")

    teams.team_merge(source=blue, into=red, actor=instructor)

    assert team_board_rows(team_tenant) == [("Red", 300, 2, 1)]
    assert team_board.standings_from_events(team_tenant.pk) == team_board.standings_from_tables(team_tenant.pk)
    teams.team_dissolve(team=red, actor=instructor)
    assert team_board_rows(team_tenant) == []
    assert team_board.standings_from_events(team_tenant.pk) == []
    assert Submission.objects.filter(team__isnull=False).count() == 0


def test_required_mode_refuses_an_answer_without_a_team(team_tenant, student, flag_project):
    team_tenant.team_mode = TeamMode.REQUIRED
    team_tenant.save()
    flag_project.tenant.refresh_from_db()
    with pytest.raises(services.NotAllowed, match="plays in teams"):
        services.submission_create(user=student, project=flag_project, flag=FLAG)


def test_a_dynamic_challenge_counts_a_team_as_one_solver(team_tenant, student):
    project = ProjectFactory(
        tenant=team_tenant, flag=FLAG, scoring="DYNAMIC", initial_points=500, minimum_points=100, decay=5
    )
    team = teams.team_create(user=student, name="Red")
    mate = StudentFactory(tenant=team_tenant)
    teams.team_join(user=mate, code=team.invite_code)
    services.submission_create(user=student, project=project, flag=FLAG)
    after_one = Project.objects.get(pk=project.pk).points
    services.submission_create(user=mate, project=project, flag=FLAG)

    assert Project.objects.get(pk=project.pk).points == after_one
    assert team_board_rows(team_tenant) == [("Red", after_one, 1, 1)]


def test_the_challenge_page_asks_for_a_team_where_teams_are_required(team_tenant, student, flag_project, client_for):
    team_tenant.team_mode = TeamMode.REQUIRED
    team_tenant.save()
    client = client_for(team_tenant, student)
    url = f"/challenges/{flag_project.slug}/"

    page = client.get(url).content.decode()
    assert "Join a team to answer" in page
    assert 'name="flag"' not in page
    refused = client.post(url, {"flag": FLAG})
    assert refused.status_code == 403
    assert "plays in teams" in refused.content.decode()
    assert not Submission.objects.exists()

    teams.team_create(user=student, name="Red")
    assert 'name="flag"' in client.get(url).content.decode()


def test_required_mode_refuses_a_hint_without_a_team(team_tenant, student, flag_project):
    hint = Hint.objects.create(tenant=team_tenant, project=flag_project, position=1, text="Look", cost=30)
    team_tenant.team_mode = TeamMode.REQUIRED
    team_tenant.save()
    with pytest.raises(services.NotAllowed, match="plays in teams"):
        hints.hint_unlock(user=student, hint=hint)
    assert not HintUnlock.objects.exists()


def test_an_instructor_moves_nobody_into_a_team_while_the_class_plays_alone(team_tenant, student, instructor):
    team = teams.team_create_for(tenant=team_tenant, name="Red", actor=instructor)
    team_tenant.team_mode = TeamMode.OFF
    team_tenant.save()
    with pytest.raises(services.NotAllowed, match="does not play in teams"):
        teams.team_move(user=student, team=team, actor=instructor)
    assert not TeamMembership.objects.exists()


def test_a_dissolve_audits_each_answer_it_takes_off_the_team(team_tenant, student, flag_project, instructor):
    team = teams.team_create(user=student, name="Red")
    answer = services.submission_create(user=student, project=flag_project, flag=FLAG)

    teams.team_dissolve(team=team, actor=instructor)

    rows = AuditLog.objects.filter(action="update", object_type="scoring.submission", object_id=str(answer.pk))
    assert [row.changes.get("team") or row.changes.get("team_id") for row in rows] == [[team.pk, None]]
