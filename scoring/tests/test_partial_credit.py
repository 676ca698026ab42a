"""Partial credit is honest: a grade below 100 is "partly solved", may be improved, and the best grade counts.

A student's state on a challenge (scoring.catalogue.ChallengeState) is solved (an
approved submission with 100, a right flag included), partly solved (an approved
write-up below 100), waiting for grading (a pending write-up) or tried (only
rejected ones). A better grade supersedes the earlier approval; the history stays.
"""

import pytest
from django.db import IntegrityError, connection, transaction

from audit.models import EventStore
from challenges.factories import ProjectFactory
from scoring import leaderboard, services
from scoring.catalogue import ChallengeState, challenge_state
from scoring.factories import BadgeFactory, SubmissionFactory
from scoring.models import Leaderboard, Submission, UserBadge
from scoring.replay import standings_from_events
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{partial}"


@pytest.fixture
def essay(tenant):
    return ProjectFactory(tenant=tenant, name="Memory Lane", slug="memory-lane", points=300, difficulty="ADVANCED")


@pytest.fixture
def flagged(tenant):
    return ProjectFactory(tenant=tenant, name="Cookie Jar", slug="cookie-jar", points=200, flag=FLAG)


def write_up(student, project, text="my write-up"):
    return services.submission_create(user=student, project=project, writeup=text)


def graded(student, project, score, grader, *, status="APPROVED", feedback=""):
    """A new write-up of `student`, graded."""
    return services.submission_grade(
        submission=write_up(student, project), status=status, score=score, grader=grader, feedback=feedback
    )


def board(tenant):
    return sorted(Leaderboard.objects.for_tenant(tenant).values_list("user_id", "points", "solves", "last_scored_at"))


def reloaded(*submissions):
    return [Submission.objects.get(pk=s.pk) for s in submissions]


# --- the state of a student on a challenge --------------------------------------------


@pytest.mark.parametrize(
    ("state", "progress", "label", "can_submit"),
    [
        (ChallengeState(), "new", "Not tried yet", True),
        (ChallengeState(score=100, points=300, attempts=1), "solved", "Solved", False),
        (ChallengeState(score=60, points=180, attempts=1), "partial", "Partly solved (60/100)", True),
        (ChallengeState(score=60, points=180, pending=True, attempts=2), "partial", "Partly solved (60/100)", False),
        (ChallengeState(pending=True, attempts=1), "pending", "Waiting for grading", False),
        (ChallengeState(attempts=3), "tried", "Tried", True),
    ],
)
def test_a_state_says_what_it_is_and_whether_a_new_answer_is_taken(state, progress, label, can_submit):
    assert (state.progress, state.label, state.can_submit) == (progress, label, can_submit)


def test_the_state_comes_from_the_students_own_submissions(student, tenant, essay, instructor):
    classmate = StudentFactory(tenant=tenant)
    graded(classmate, essay, 100, instructor)
    assert challenge_state(tenant.pk, student, essay) == ChallengeState()

    graded(student, essay, 0, instructor, status="REJECTED")
    assert challenge_state(tenant.pk, student, essay).tried
    graded(student, essay, 60, instructor)
    assert challenge_state(tenant.pk, student, essay) == ChallengeState(score=60, points=180, attempts=2)
    write_up(student, essay)
    assert challenge_state(tenant.pk, student, essay) == ChallengeState(score=60, points=180, pending=True, attempts=3)


# --- resubmitting ---------------------------------------------------------------------------


def test_a_write_up_graded_below_100_may_be_sent_again(student, essay, instructor):
    graded(student, essay, 60, instructor, feedback="Show how you found the thread.")

    again = write_up(student, essay, "Now with the pslist output.")

    assert again.status == "PENDING"
    assert Submission.objects.filter(user=student, project=essay).count() == 2


def test_a_rejected_write_up_may_be_sent_again(student, essay, instructor):
    graded(student, essay, 0, instructor, status="REJECTED")

    assert write_up(student, essay).status == "PENDING"


@pytest.mark.parametrize("earlier", ["none", "partial"])
def test_no_new_write_up_while_one_waits_for_grading(earlier, student, essay, instructor):
    if earlier == "partial":
        graded(student, essay, 60, instructor)
    write_up(student, essay)

    with pytest.raises(services.AwaitingGrading, match="waiting for an instructor"):
        write_up(student, essay, "a second try before the first is graded")

    assert Submission.objects.filter(user=student, project=essay, status="PENDING").count() == 1


@pytest.mark.parametrize("how", ["write-up graded 100", "right flag"])
def test_after_a_full_score_nothing_more_is_taken(how, student, essay, flagged, instructor):
    if how == "right flag":
        project = flagged
        services.submission_create(user=student, project=flagged, flag=FLAG)
    else:
        project = essay
        graded(student, essay, 100, instructor)

    with pytest.raises(services.AlreadySolved, match="already solved"):
        services.submission_create(user=student, project=project, flag=FLAG, writeup="more")


# --- the best grade counts --------------------------------------------------------------------


def test_a_better_grade_supersedes_the_earlier_one_and_the_history_stays(student, tenant, essay, instructor):
    first = graded(student, essay, 60, instructor, feedback="Half of it.")
    second = write_up(student, essay, "The whole of it.")

    services.submission_grade(submission=second, status="APPROVED", score=80, grader=instructor, feedback="Better.")

    first, second = reloaded(first, second)
    assert (first.status, first.score, first.points_awarded, first.feedback) == ("SUPERSEDED", 60, 0, "Half of it.")
    assert (second.status, second.score, second.points_awarded) == ("APPROVED", 80, 240)
    assert [(user, points, solves) for user, points, solves, _ in board(tenant)] == [(student.pk, 240, 1)]
    assert challenge_state(tenant.pk, student, essay).label == "Partly solved (80/100)"


def test_the_superseded_grade_is_an_event_of_its_own(student, essay, instructor):
    first = graded(student, essay, 60, instructor)
    second = write_up(student, essay)

    services.submission_grade(submission=second, status="APPROVED", score=100, grader=instructor)

    graded_events = EventStore.objects.filter(event_type="SubmissionGraded").order_by("position")
    superseded = [e for e in graded_events if e.payload["submission_id"] == first.pk][-1]
    assert superseded.payload["status"] == "SUPERSEDED"
    assert superseded.payload["points_awarded"] == 0
    assert (superseded.payload["previous_status"], superseded.payload["previous_score"]) == ("APPROVED", 60)
    assert superseded.payload["previous_points_awarded"] == 180
    assert superseded.metadata["actor_id"] == instructor.pk
    # recorded before the approval that replaces it, in the same transaction
    approval = graded_events.last()
    assert approval.payload["submission_id"] == second.pk
    assert superseded.position < approval.position


@pytest.mark.parametrize("score", [60, 40])
def test_a_grade_not_above_the_counting_one_is_refused(score, student, tenant, essay, instructor):
    first = graded(student, essay, 60, instructor)
    second = write_up(student, essay)
    before = board(tenant)

    with pytest.raises(services.InvalidAnswer, match=r"already has an approved submission .* with 60/100"):
        services.submission_grade(submission=second, status="APPROVED", score=score, grader=instructor)

    first, second = reloaded(first, second)
    assert (first.status, second.status) == ("APPROVED", "PENDING")
    assert board(tenant) == before
    # rejecting it is the way on, and the student may try again
    services.submission_grade(submission=second, status="REJECTED", score=score, grader=instructor)
    assert write_up(student, essay).status == "PENDING"


def test_a_superseded_submission_is_not_approved_again_while_another_counts(student, tenant, essay, instructor):
    first = graded(student, essay, 60, instructor)
    second = services.submission_grade(
        submission=write_up(student, essay), status="APPROVED", score=80, grader=instructor
    )

    with pytest.raises(services.InvalidAnswer, match="superseded"):
        services.submission_grade(submission=first, status="APPROVED", score=90, grader=instructor)

    # once the better one is rejected, the earlier one may count again
    services.submission_grade(submission=second, status="REJECTED", score=0, grader=instructor)
    services.submission_grade(submission=first, status="APPROVED", score=60, grader=instructor)
    assert [(s.status, s.points_awarded) for s in reloaded(first, second)] == [("APPROVED", 180), ("REJECTED", 0)]
    assert [(user, points) for user, points, _, _ in board(tenant)] == [(student.pk, 180)]


def test_a_right_flag_after_a_partial_grade_supersedes_it(student, tenant, flagged, instructor):
    right = services.submission_create(user=student, project=flagged, flag=FLAG)
    services.submission_grade(submission=right, status="APPROVED", score=50, grader=instructor, feedback="shared")

    again = services.submission_create(user=student, project=flagged, flag=FLAG)

    right, again = reloaded(right, again)
    assert (right.status, right.points_awarded) == ("SUPERSEDED", 0)
    assert (again.status, again.points_awarded) == ("APPROVED", 200)
    assert [(user, points) for user, points, _, _ in board(tenant)] == [(student.pk, 200)]


def test_badges_follow_the_better_grade(student, tenant, essay, instructor):
    rich = BadgeFactory(tenant=tenant, rule_kind="POINTS_AT_LEAST", rule_params={"n": 200})
    graded(student, essay, 60, instructor)  # 180 points
    assert not UserBadge.objects.filter(user=student, badge=rich).exists()

    services.submission_grade(submission=write_up(student, essay), status="APPROVED", score=70, grader=instructor)

    assert UserBadge.objects.filter(user=student, badge=rich).exists()  # 210 points


def test_after_supersedes_the_board_equals_a_rebuild_and_a_replay(tenant, essay, flagged, instructor):
    ada, bo, cy = (StudentFactory(tenant=tenant) for _ in range(3))
    graded(ada, essay, 50, instructor)
    graded(ada, essay, 90, instructor)  # supersedes 50
    services.submission_create(user=ada, project=flagged, flag=FLAG)
    graded(bo, essay, 70, instructor)
    later = write_up(bo, essay)
    with pytest.raises(services.InvalidAnswer):
        services.submission_grade(submission=later, status="APPROVED", score=65, grader=instructor)
    services.submission_grade(submission=later, status="REJECTED", score=65, grader=instructor)
    graded(cy, essay, 30, instructor)
    graded(cy, essay, 40, instructor)
    graded(cy, essay, 100, instructor)  # two supersedes in a row
    incremental = board(tenant)

    assert [(user, points, solves) for user, points, solves, _ in incremental] == sorted(
        [(ada.pk, 270 + 200, 2), (bo.pk, 210, 1), (cy.pk, 300, 1)]
    )
    assert leaderboard.rebuild(tenant.pk)[1:] == (0, 0)  # nothing to write, nothing to remove
    assert board(tenant) == incremental
    assert sorted(standings_from_events(tenant.pk)) == incremental


def test_the_database_takes_the_superseded_status(tenant, student, essay):
    submission = SubmissionFactory(tenant=tenant, user=student, project=essay, approved=True)

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE submissions SET status = 'SUPERSEDED' WHERE id = %s", [submission.pk])
    assert Submission.objects.get(pk=submission.pk).get_status_display() == "Superseded by a better grade"
    with (
        pytest.raises(IntegrityError, match="chk_submissions_status"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE submissions SET status = 'SUPERSEDE' WHERE id = %s", [submission.pk])
