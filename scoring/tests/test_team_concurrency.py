"""Teams under real concurrency: threads, each on its own connection, as the app role.

As scoring/tests/test_concurrency.py: every worker is a thread with its own database
connection, and the tests commit for real. Each service call runs as a request runs it,
in a transaction of the app role with only its class's rows (tenants.rls.tenant_context).
A refusal (a ScoringError) is an answer; anything else a thread meets (a deadlock, an
IntegrityError) fails the test.

A race is either left to the scheduler (a barrier, repeated) or made to happen in one
order: a gate (a lock held on a connection of its own) stops one call at a known step
while the other one starts, and opens once both wait (test_concurrency's gates). After
each race the team standings are checked three ways: the table as the services keep it,
a rebuild from the answers and a replay from the events alone (scoring.team_board), with
fresh competition ranks.
"""

import threading

import pytest
from django.db import connection, connections, transaction

from audit.models import EventStore
from challenges.factories import ProjectFactory
from challenges.models import Hint
from scoring import hints, services, team_board, teams
from scoring.models import HintUnlock, Leaderboard, Submission, Team, TeamLeaderboard, TeamMembership
from scoring.tests.test_concurrency import TIMEOUT, LeaderboardGate, ServiceWorkers, StudentRowGate
from tenants import rls
from tenants.factories import InstructorFactory, StudentFactory, TenantFactory
from tenants.models import TeamMode

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_hashing")]

FLAG = "FLAG{together}"
ROUNDS = 4


@pytest.fixture(autouse=True)
def _room_for_every_thread(pooled_connections_for):
    pooled_connections_for(20)


def in_class(tenant, service):
    """`service` as a request calls it: a transaction of the app role in which only the class's rows exist."""

    def run(**kwargs):
        with rls.tenant_context(tenant.pk):
            return service(**kwargs)

    return run


class AppWorkers(ServiceWorkers):
    def run(self, tenant, service, **kwargs):
        """(result, None) or (None, the refusal) of `service` called as the app role in the class."""
        return self.call(in_class(tenant, service), **kwargs)


class MembershipGate(StudentRowGate):
    """Holds a student's membership row FOR SHARE, as an answer of theirs in flight does, until `open()`."""

    def __init__(self, student):
        self.conn = connections.create_connection("default")
        self.cursor = self.conn.cursor()
        self.cursor.execute("BEGIN")
        self.cursor.execute("SELECT id FROM team_memberships WHERE user_id = %s FOR SHARE", [student.pk])


def run_in_order(gate, first, second):
    """`first` waits on the gate, then `second` starts and waits too (on the gate or on `first`); then the gate opens.

    Each is a callable a worker thread runs; returns what they answered, in that order.
    """
    answers = {}
    workers = AppWorkers()
    try:
        workers.start(lambda: answers.__setitem__("first", first(workers)))
        gate.wait_for(1)
        workers.start(lambda: answers.__setitem__("second", second(workers)))
        gate.wait_for(2)
    finally:
        gate.open()
        workers.join()  # re-raises a deadlock or any other error
    return answers["first"], answers["second"]


def team_class(slug, *, size=4, mode=TeamMode.OPTIONAL):
    return TenantFactory(slug=slug, domain=f"{slug}.localhost", team_mode=mode, team_size_max=size)


def team_of(name, members):
    """A team made by its first member, the others joined by its code (committed)."""
    team = teams.team_create(user=members[0], name=name)
    for member in members[1:]:
        teams.team_join(user=member, code=team.invite_code)
    return team


def team_rows(tenant) -> list[tuple]:
    return sorted(
        TeamLeaderboard.objects.filter(tenant=tenant).values_list("team_id", "points", "solves", "last_scored_at")
    )


def stale_team_ranks(tenant) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM (SELECT id, rank, rank() OVER (ORDER BY points DESC) AS fresh "
            "FROM team_leaderboards WHERE tenant_id = %s) r WHERE rank <> fresh",
            [tenant.pk],
        )
        return cursor.fetchall()


def assert_team_board_is_exact(tenant) -> dict[int, tuple]:
    """Table = rebuild from the answers = replay of the events, ranks fresh; returns team -> (points, solves)."""
    table = team_rows(tenant)
    assert table == team_board.standings_from_tables(tenant.pk), "the table differs from the answers"
    assert table == team_board.standings_from_events(tenant.pk), "the events differ from the answers"
    with transaction.atomic():
        assert team_board.rebuild(tenant.pk) == (len(table), 0, 0)  # nothing to correct
        assert team_board.replay(tenant.pk) == (len(table), 0, 0)
    assert stale_team_ranks(tenant) == []
    return {team: (points, solves) for team, points, solves, _ in table}


def refusals(outcomes) -> list:
    return [refusal for _, refusal in outcomes if refusal is not None]


# --- two members, one challenge, the same moment -------------------------------------------------


def test_members_answering_one_challenge_at_once_score_their_team_once():
    tenant = team_class("together")
    members = [StudentFactory(tenant=tenant) for _ in range(3)]
    red = team_of("Red", members)
    total = 0
    for round_ in range(ROUNDS):
        project = ProjectFactory(tenant=tenant, points=100 + 10 * round_, flag=FLAG)
        barrier = threading.Barrier(len(members))
        outcomes = []
        workers = AppWorkers()

        def answer(member, project=project, barrier=barrier, outcomes=outcomes, workers=workers):
            barrier.wait(TIMEOUT)
            outcomes.append(workers.run(tenant, services.submission_create, user=member, project=project, flag=FLAG))

        for member in members:
            workers.start(answer, member)
        workers.join()

        assert refusals(outcomes) == []
        approvals = Submission.objects.filter(project=project, status="APPROVED").order_by("graded_at", "pk")
        assert [a.team_id for a in approvals] == [red.pk] * len(members)  # each member's answer is the team's
        total += project.points
        row = TeamLeaderboard.objects.get(team=red)
        assert (row.points, row.solves, row.rank) == (total, round_ + 1, 1), round_
        assert row.last_scored_at == approvals[0].graded_at  # the first member's solve is the team's
        assert assert_team_board_is_exact(tenant) == {red.pk: (total, round_ + 1)}


def test_teams_and_a_student_alone_solving_a_dynamic_challenge_at_once_count_as_three_solvers():
    tenant = team_class("dynamic-teams")
    reds, blues = ([StudentFactory(tenant=tenant) for _ in range(3)] for _ in range(2))
    alone = StudentFactory(tenant=tenant)
    red, blue = team_of("Red", reds), team_of("Blue", blues)
    project = ProjectFactory(
        tenant=tenant, scoring="DYNAMIC", initial_points=500, minimum_points=100, decay=4, flag=FLAG
    )
    everyone = [*reds, *blues, alone]
    barrier = threading.Barrier(len(everyone))
    outcomes = []
    workers = AppWorkers()

    def answer(student):
        barrier.wait(TIMEOUT)
        outcomes.append(workers.run(tenant, services.submission_create, user=student, project=project, flag=FLAG))

    for student in everyone:
        workers.start(answer, student)
    workers.join()

    assert refusals(outcomes) == []
    project.refresh_from_db()
    assert project.points == project.value_with(3)  # two teams and one student
    approved = Submission.objects.filter(project=project, status="APPROVED")
    assert set(approved.values_list("points_awarded", flat=True)) == {project.points}
    assert assert_team_board_is_exact(tenant) == {red.pk: (project.points, 1), blue.pk: (project.points, 1)}


# --- a member leaves while their write-up is graded --------------------------------------------------


@pytest.mark.parametrize("alone", [False, True], ids=["with-a-teammate", "the-last-member"])
@pytest.mark.parametrize("leave_first", [True, False], ids=["leave-then-grade", "grade-then-leave"])
def test_a_grade_landing_while_its_author_leaves_counts_for_the_team_the_answer_was_made_for(leave_first, alone):
    tenant = team_class(f"leave-{leave_first:d}{alone:d}")
    author = StudentFactory(tenant=tenant)
    instructor = InstructorFactory(tenant=tenant)
    red = team_of("Red", [author] if alone else [author, StudentFactory(tenant=tenant)])
    project = ProjectFactory(tenant=tenant, points=150)
    pending = services.submission_create(user=author, project=project, writeup="How we did it.")

    def leave(workers):
        return workers.run(tenant, teams.team_leave, user=author)

    def grade(workers):
        return workers.run(
            tenant, services.submission_grade, submission=pending, status="APPROVED", score=80, grader=instructor
        )

    # both take the author's row first: they queue behind the gate in the order they came
    first, second = run_in_order(StudentRowGate(author), *((leave, grade) if leave_first else (grade, leave)))

    assert refusals([first, second]) == []
    pending.refresh_from_db()
    assert (pending.status, pending.points_awarded, pending.team_id) == ("APPROVED", 120, red.pk)
    assert not TeamMembership.objects.filter(user=author).exists()
    assert Team.objects.filter(pk=red.pk).exists()  # it has an answer: it stays, even with no member left
    assert assert_team_board_is_exact(tenant) == {red.pk: (120, 1)}
    kinds = list(
        EventStore.objects.filter(tenant=tenant, event_type__in=["TeamLeft", "SubmissionGraded"])
        .order_by("position")
        .values_list("event_type", flat=True)
    )
    assert kinds == (["TeamLeft", "SubmissionGraded"] if leave_first else ["SubmissionGraded", "TeamLeft"])


# --- a merge while a member of the merged team answers -----------------------------------------------


@pytest.fixture
def merging():
    """A class with Blue (two members; the first joined first) about to be merged into Red, and a flag."""
    tenant = team_class("merge")
    instructor = InstructorFactory(tenant=tenant)
    early, answering = StudentFactory(tenant=tenant), StudentFactory(tenant=tenant)
    red = team_of("Red", [StudentFactory(tenant=tenant)])
    blue = team_of("Blue", [early, answering])
    solved = ProjectFactory(tenant=tenant, points=40, flag="FLAG{solved}")
    services.submission_create(user=early, project=solved, flag="FLAG{solved}")  # Blue has a standings row
    project = ProjectFactory(tenant=tenant, points=100, flag=FLAG)
    return tenant, instructor, red, blue, early, answering, project


def _merge(tenant, instructor, blue, red):
    return lambda workers: workers.run(tenant, teams.team_merge, source=blue, into=red, actor=instructor)


def _answer(tenant, student, project):
    return lambda workers: workers.run(tenant, services.submission_create, user=student, project=project, flag=FLAG)


def assert_merged_with_the_answer(tenant, red, blue, answering, project):
    assert not Team.objects.filter(pk=blue.pk).exists()
    assert TeamMembership.objects.get(user=answering).team_id == red.pk
    answer = Submission.objects.get(user=answering, project=project)
    assert (answer.status, answer.team_id) == ("APPROVED", red.pk), "the answer went to no team"
    assert assert_team_board_is_exact(tenant) == {red.pk: (140, 2)}


def test_a_merge_waits_for_an_answer_in_flight_and_takes_it_along(merging):
    tenant, instructor, red, blue, _, answering, project = merging
    # the answer holds Blue (its team, FOR SHARE) and waits for the standings; the merge waits for Blue
    answered, merged = run_in_order(
        LeaderboardGate(tenant), _answer(tenant, answering, project), _merge(tenant, instructor, blue, red)
    )
    assert refusals([answered, merged]) == []
    assert answered[0].team_id == blue.pk  # made for Blue, then taken along into Red
    assert_merged_with_the_answer(tenant, red, blue, answering, project)


def test_an_answer_sent_while_a_merge_commits_scores_for_the_team_it_went_into(merging):
    tenant, instructor, red, blue, _, answering, project = merging
    # the merge has moved Blue's members and answers to Red and waits for the standings; the answer
    # waits for the membership row the merge changed, then finds its student in Red
    merged, answered = run_in_order(
        LeaderboardGate(tenant), _merge(tenant, instructor, blue, red), _answer(tenant, answering, project)
    )
    assert refusals([answered, merged]) == []
    assert_merged_with_the_answer(tenant, red, blue, answering, project)


def test_a_merge_that_has_locked_the_teams_and_an_answer_of_a_merged_member_do_not_deadlock(merging):
    tenant, instructor, red, blue, early, answering, project = merging
    # the merge locks both teams, then Blue's memberships in the order they joined: it waits on
    # the first (the gate) while the answer of the second member starts
    merged, answered = run_in_order(
        MembershipGate(early), _merge(tenant, instructor, blue, red), _answer(tenant, answering, project)
    )
    assert refusals([answered, merged]) == []
    assert_merged_with_the_answer(tenant, red, blue, answering, project)


def test_merges_and_answers_at_the_same_moment_lose_no_answer():
    tenant = team_class("merge-race", size=50)
    instructor = InstructorFactory(tenant=tenant)
    red = team_of("Red", [StudentFactory(tenant=tenant)])
    for round_ in range(ROUNDS):
        members = [StudentFactory(tenant=tenant) for _ in range(2)]
        source = team_of(f"Blue {round_}", members)
        project = ProjectFactory(tenant=tenant, points=10, flag=FLAG)
        barrier = threading.Barrier(3)
        outcomes = []
        workers = AppWorkers()

        def at_once(call, barrier=barrier, outcomes=outcomes, workers=workers):
            barrier.wait(TIMEOUT)
            outcomes.append(call(workers))

        workers.start(at_once, _merge(tenant, instructor, source, red))
        for member in members:
            workers.start(at_once, _answer(tenant, member, project))
        workers.join()

        assert refusals(outcomes) == [], round_
        answers = Submission.objects.filter(project=project, status="APPROVED")
        assert list(answers.values_list("team_id", flat=True)) == [red.pk, red.pk], round_
        assert assert_team_board_is_exact(tenant) == {red.pk: (10 * (round_ + 1), round_ + 1)}


def test_a_hint_unlocked_while_a_merge_commits_is_charged_to_the_team_it_went_into(merging):
    tenant, instructor, red, blue, _, answering, project = merging
    hint = Hint.objects.create(tenant=tenant, project=project, position=1, text="Look closer", cost=30)
    merged, unlocked = run_in_order(
        LeaderboardGate(tenant),
        _merge(tenant, instructor, blue, red),
        lambda workers: workers.run(tenant, hints.hint_unlock, user=answering, hint=hint),
    )
    assert refusals([merged, unlocked]) == []
    assert HintUnlock.objects.get(user=answering).team_id == red.pk, "the unlock was charged to no team"
    services.submission_create(user=answering, project=project, flag=FLAG)
    assert assert_team_board_is_exact(tenant) == {red.pk: (40 + 100 - 30, 2)}


# --- two members unlocking one hint at once ----------------------------------------------------------


def test_members_unlocking_one_hint_at_once_charge_their_team_once():
    tenant = team_class("hints")
    members = [StudentFactory(tenant=tenant) for _ in range(3)]
    red = team_of("Red", members)
    total = 0
    for round_ in range(ROUNDS):
        project = ProjectFactory(tenant=tenant, points=200, flag=FLAG)
        hint = Hint.objects.create(tenant=tenant, project=project, position=1, text="Look", cost=25 + round_)
        barrier = threading.Barrier(len(members))
        outcomes = []
        workers = AppWorkers()

        def unlock(member, hint=hint, barrier=barrier, outcomes=outcomes, workers=workers):
            barrier.wait(TIMEOUT)
            outcomes.append(workers.run(tenant, hints.hint_unlock, user=member, hint=hint))

        for member in members:
            workers.start(unlock, member)
        workers.join()

        assert refusals(outcomes) == []
        unlocks = HintUnlock.objects.filter(hint=hint)
        assert unlocks.count() == len(members)  # each member paid with their own points
        assert list(unlocks.exclude(team=None).values_list("team_id", flat=True)) == [red.pk]  # the team once
        services.submission_create(user=members[round_ % len(members)], project=project, flag=FLAG)
        total += 200 - hint.cost
        assert assert_team_board_is_exact(tenant) == {red.pk: (total, round_ + 1)}


# --- joining at the size cap -------------------------------------------------------------------------


@pytest.mark.parametrize("free", [1, 2])
def test_students_joining_a_team_with_free_places_at_once_fill_exactly_those(free):
    tenant = team_class(f"full-{free}", size=4)
    red = team_of("Red", [StudentFactory(tenant=tenant) for _ in range(4 - free)])
    joiners = [StudentFactory(tenant=tenant) for _ in range(8)]
    barrier = threading.Barrier(len(joiners))
    outcomes = []
    workers = AppWorkers()

    def join(student):
        barrier.wait(TIMEOUT)
        outcomes.append(workers.run(tenant, teams.team_join, user=student, code=red.invite_code))

    for student in joiners:
        workers.start(join, student)
    workers.join()

    assert workers.max_in_flight >= 4  # the joins did overlap
    assert len([team for team, _ in outcomes if team is not None]) == free
    assert [type(refusal) for refusal in refusals(outcomes)] == [teams.TeamFull] * (len(joiners) - free)
    assert TeamMembership.objects.filter(team=red).count() == 4


# --- a dissolve while a member answers ---------------------------------------------------------------


@pytest.fixture
def dissolving():
    tenant = team_class("dissolve")
    instructor = InstructorFactory(tenant=tenant)
    answering = StudentFactory(tenant=tenant)
    red = team_of("Red", [answering, StudentFactory(tenant=tenant)])
    project = ProjectFactory(tenant=tenant, points=100, flag=FLAG)
    return tenant, instructor, red, answering, project


def _dissolve(tenant, instructor, team):
    return lambda workers: workers.run(tenant, teams.team_dissolve, team=team, actor=instructor)


def assert_dissolved_with_the_answer(tenant, red, answering, project):
    assert not Team.objects.filter(pk=red.pk).exists()
    assert not TeamMembership.objects.filter(user=answering).exists()
    answer = Submission.objects.get(user=answering, project=project)
    assert (answer.status, answer.points_awarded, answer.team_id) == ("APPROVED", 100, None)
    assert assert_team_board_is_exact(tenant) == {}
    assert Leaderboard.objects.get(user=answering).points == 100  # the student keeps their own points


def test_a_dissolve_waits_for_an_answer_in_flight(dissolving):
    tenant, instructor, red, answering, project = dissolving
    answered, dissolved = run_in_order(
        LeaderboardGate(tenant), _answer(tenant, answering, project), _dissolve(tenant, instructor, red)
    )
    assert refusals([answered, dissolved]) == []
    assert answered[0].team_id == red.pk  # made for Red, which then went
    assert_dissolved_with_the_answer(tenant, red, answering, project)


def test_an_answer_sent_while_a_dissolve_commits_scores_for_no_team(dissolving):
    tenant, instructor, red, answering, project = dissolving
    # the dissolve holds Red and waits for the standings before it deletes the memberships;
    # the answer waits for Red: it must not hold its membership row meanwhile
    dissolved, answered = run_in_order(
        LeaderboardGate(tenant), _dissolve(tenant, instructor, red), _answer(tenant, answering, project)
    )
    assert refusals([answered, dissolved]) == []
    assert_dissolved_with_the_answer(tenant, red, answering, project)


def test_an_answer_sent_while_a_dissolve_commits_is_refused_where_teams_are_required(dissolving):
    tenant, instructor, red, answering, project = dissolving
    tenant.team_mode = TeamMode.REQUIRED
    tenant.save()
    project.tenant = tenant
    dissolved, answered = run_in_order(
        LeaderboardGate(tenant), _dissolve(tenant, instructor, red), _answer(tenant, answering, project)
    )
    assert dissolved[1] is None
    assert isinstance(answered[1], services.NotAllowed)  # a clear refusal: join a team first
    assert "plays in teams" in str(answered[1])
    assert not Submission.objects.filter(user=answering).exists()


def test_dissolves_and_answers_at_the_same_moment_lose_nothing():
    tenant = team_class("dissolve-race")
    instructor = InstructorFactory(tenant=tenant)
    for round_ in range(ROUNDS):
        members = [StudentFactory(tenant=tenant) for _ in range(2)]
        red = team_of(f"Red {round_}", members)
        project = ProjectFactory(tenant=tenant, points=10, flag=FLAG)
        barrier = threading.Barrier(3)
        outcomes = []
        workers = AppWorkers()

        def at_once(call, barrier=barrier, outcomes=outcomes, workers=workers):
            barrier.wait(TIMEOUT)
            outcomes.append(call(workers))

        workers.start(at_once, _dissolve(tenant, instructor, red))
        for member in members:
            workers.start(at_once, _answer(tenant, member, project))
        workers.join()

        assert refusals(outcomes) == [], round_
        assert not Team.objects.filter(pk=red.pk).exists()
        assert list(Submission.objects.filter(project=project).values_list("team_id", flat=True)) == [None, None]
        assert assert_team_board_is_exact(tenant) == {}
