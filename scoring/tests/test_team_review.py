"""Review of teams (issue 31): each test here shows a bug (it fails until the bug is fixed)."""

import pytest
from django.contrib import admin
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone

from challenges.factories import ProjectFactory
from challenges.models import Hint
from scoring import hints, services, teams
from scoring.models import Submission, Team, TeamLeaderboard
from scoring.team_admin import TeamAdmin
from scoring.tests.test_concurrency import LeaderboardGate
from scoring.tests.test_team_concurrency import (
    assert_team_board_is_exact,
    in_class,
    refusals,
    run_in_order,
    team_class,
    team_of,
)
from tenants.factories import InstructorFactory, StudentFactory
from tenants.models import TeamMode

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{review}"
KELVIN = "\u212a"  # KELVIN SIGN: lower() is "k", upper() is itself


@pytest.fixture
def tenant(tenant):
    tenant.team_mode = TeamMode.OPTIONAL
    tenant.team_size_max = 4
    tenant.save()
    return tenant


# --- a merge charges the merged team twice for one hint ------------------------------------------------


def test_a_merged_team_pays_for_a_hint_once(tenant, instructor):
    red_lead, blue_lead = StudentFactory(tenant=tenant), StudentFactory(tenant=tenant)
    red = teams.team_create(user=red_lead, name="Red")
    blue = teams.team_create(user=blue_lead, name="Blue")
    project = ProjectFactory(tenant=tenant, points=100, flag=FLAG)
    hint = Hint.objects.create(tenant=tenant, project=project, position=1, text="Look closer", cost=30)
    hints.hint_unlock(user=red_lead, hint=hint)  # charged to Red
    hints.hint_unlock(user=blue_lead, hint=hint)  # charged to Blue

    teams.team_merge(source=blue, into=red, actor=instructor)
    services.submission_create(user=red_lead, project=project, flag=FLAG)

    # "Each hint is charged to a team once" (scoring.team_board): the merged team used one hint of 30
    row = TeamLeaderboard.objects.get(team=red)
    assert (row.points, row.solves) == (70, 1)


def test_team_rename_refuses_a_name_the_unique_index_refuses_with_a_message(tenant, instructor):
    teams.team_create_for(tenant=tenant, name="kilo", actor=instructor)
    blue = teams.team_create_for(tenant=tenant, name="Blue", actor=instructor)

    with pytest.raises(services.InvalidAnswer, match="already called"):
        teams.team_rename(team=blue, name=f"{KELVIN}ilo", actor=instructor)


# --- the frozen team standings are cached for an hour and a merge or dissolve does not reach them ---------


def frozen_board(client):
    return [(r.rank, r.name, r.points) for r in client.get("/teams/").context["board"].rows]


@pytest.mark.parametrize("change", ["merge", "dissolve"])
def test_a_merge_or_dissolve_during_a_freeze_shows_on_the_frozen_team_standings(
    change, tenant, student, instructor, client_for, django_capture_on_commit_callbacks
):

    mate = StudentFactory(tenant=tenant)
    red = teams.team_create(user=student, name="Red")
    blue = teams.team_create(user=mate, name="Blue")
    for who, points in ((student, 100), (mate, 300)):
        project = ProjectFactory(tenant=tenant, points=points, flag=FLAG)
        services.submission_create(user=who, project=project, flag=FLAG)
    tenant.scoreboard_freeze_at = timezone.now()
    tenant.save()
    client = client_for(tenant, student)
    assert frozen_board(client) == [(1, "Blue", 300), (2, "Red", 100)]

    with django_capture_on_commit_callbacks(execute=True):  # its cache bumps run, as after a commit
        if change == "merge":
            teams.team_merge(source=blue, into=red, actor=instructor)
        else:
            teams.team_dissolve(team=blue, actor=instructor)
    warm = frozen_board(client)
    cache.clear()
    cold = frozen_board(client)

    assert cold == ([(1, "Red", 400)] if change == "merge" else [(1, "Red", 100)])
    assert warm == cold, "the frozen team standings kept the teams as they were before the change"


# --- lock order: a dissolve takes the leaderboard lock before it detaches the team's answers ------------
# (threads on their own connections, committing for real: scoring/tests/test_team_concurrency.py)


@pytest.mark.django_db(transaction=True)
def test_a_grading_queued_behind_a_dissolve_does_not_deadlock_it(pooled_connections_for):

    pooled_connections_for(10)
    tenant = team_class("review-dissolve-grade")
    instructor = InstructorFactory(tenant=tenant)
    author = StudentFactory(tenant=tenant)
    red = team_of("Red", [author, StudentFactory(tenant=tenant)])
    project = ProjectFactory(tenant=tenant, points=100)  # a write-up
    pending = services.submission_create(user=author, project=project, writeup="How we did it.")

    def dissolve(workers):
        return workers.run(tenant, teams.team_dissolve, team=red, actor=instructor)

    def grade(workers):
        return workers.run(
            tenant, services.submission_grade, submission=pending, status="APPROVED", score=100, grader=instructor
        )

    # 1. the dissolve locks Red and queues for the leaderboard lock (the gate holds it);
    # 2. the grading locks the answer's row, saves it, and queues for the leaderboard lock too;
    # 3. the gate opens: the dissolve takes the leaderboard lock, then sets the answer's team_id
    #    to NULL (the team's delete): it waits for the grading's row lock, the grading for the
    #    dissolve's leaderboard lock: a deadlock (one of them fails with DeadlockDetected)
    dissolved, graded = run_in_order(LeaderboardGate(tenant), dissolve, grade)

    assert refusals([dissolved, graded]) == []
    assert not Team.objects.filter(pk=red.pk).exists()
    assert Submission.objects.get(pk=pending.pk).status == "APPROVED"
    assert assert_team_board_is_exact(tenant) == {}


@pytest.mark.django_db(transaction=True)
def test_dissolving_two_selected_teams_while_a_member_of_the_second_answers_does_not_deadlock(
    pooled_connections_for,
):

    pooled_connections_for(10)
    tenant = team_class("review-dissolve-two")
    instructor = InstructorFactory(tenant=tenant)
    amber = team_of("Amber", [StudentFactory(tenant=tenant)])
    answering = StudentFactory(tenant=tenant)
    blue = team_of("Blue", [answering])
    project = ProjectFactory(tenant=tenant, points=100, flag=FLAG)
    request = RequestFactory().post("/admin/scoring/team/")
    request.user = instructor
    model_admin = TeamAdmin(Team, admin.site)

    def dissolve_selected(workers):
        # what "Dissolve selected teams" does with Amber and Blue: both in one transaction (run_all)
        work = in_class(
            tenant,
            lambda: model_admin.run_all(
                request, model_admin.dissolver(request), [amber, blue], team_ids=[amber.pk, blue.pk]
            ),
        )
        return workers.call(work)

    def answer(workers):
        return workers.run(tenant, services.submission_create, user=answering, project=project, flag=FLAG)

    # 1. the action locks Amber and queues for the leaderboard lock (the gate holds it);
    # 2. Blue's member answers: their row, Blue FOR SHARE, then the leaderboard lock: queued;
    # 3. the gate opens: the action dissolves Amber holding the leaderboard lock, then asks for
    #    Blue FOR UPDATE: it waits for the answer, the answer for its leaderboard lock: a deadlock
    dissolved, answered = run_in_order(LeaderboardGate(tenant), dissolve_selected, answer)

    assert refusals([dissolved, answered]) == []
    assert dissolved[0] is True
    assert not Team.objects.filter(pk__in=[amber.pk, blue.pk]).exists()
    assert Submission.objects.get(user=answering).status == "APPROVED"
    assert assert_team_board_is_exact(tenant) == {}
