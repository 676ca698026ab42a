"""Scoring rules PostgreSQL enforces by itself, whatever the code above it does.

Every statement is raw SQL so that no model validation stands in the way: what
is rejected here is rejected by the database.
"""

import pytest
from django.db import IntegrityError, connection, transaction

from scoring.factories import BadgeFactory, SubmissionFactory
from scoring.models import Badge, Leaderboard, Submission, UserBadge
from tenants.factories import StudentFactory

pytestmark = pytest.mark.django_db


def execute(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


def insert_submission(user, project, status="PENDING", score=None, points_awarded=0):
    row = execute(
        """
        INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, score, points_awarded,
                                 answer, link, feedback, submitted_at)
        VALUES (%s, %s, %s, 'WRITEUP', %s, %s, %s, '', '', '', now())
        RETURNING id
        """,
        [user.tenant_id, user.pk, project.pk, status, score, points_awarded],
    )
    return row[0]


def insert_leaderboard_row(user, points=0, solves=0):
    row = execute(
        """
        INSERT INTO leaderboards (tenant_id, user_id, points, solves, updated_at)
        VALUES (%s, %s, %s, %s, now())
        RETURNING id
        """,
        [user.tenant_id, user.pk, points, solves],
    )
    return row[0]


def insert_badge(tenant, slug):
    row = execute(
        """
        INSERT INTO badges (tenant_id, name, slug, description, icon, rule_kind, rule_params, created_at)
        VALUES (%s, %s, %s, '', 'star', '', '{}'::jsonb, now())
        RETURNING id
        """,
        [tenant.pk, slug.title(), slug],
    )
    return row[0]


def insert_user_badge(user, badge_id):
    row = execute(
        """
        INSERT INTO user_badges (tenant_id, user_id, badge_id, awarded_at)
        VALUES (%s, %s, %s, now())
        RETURNING id
        """,
        [user.tenant_id, user.pk, badge_id],
    )
    return row[0]


# --- Submissions: score ---------------------------------------------------------


@pytest.mark.parametrize("score", [0, 100])
def test_score_bounds_0_and_100_are_accepted(student, project, score):
    pk = insert_submission(student, project, status="APPROVED", score=score)

    assert Submission.objects.get(pk=pk).score == score


@pytest.mark.parametrize("score", [-1, 101])
def test_score_outside_0_to_100_is_rejected(student, project, score):
    with pytest.raises(IntegrityError, match="chk_score_positive"), transaction.atomic():
        insert_submission(student, project, status="PENDING", score=score)


def test_score_outside_0_to_100_is_rejected_on_update(student, project):
    submission = SubmissionFactory(tenant=student.tenant, user=student, project=project, approved=True)

    with pytest.raises(IntegrityError, match="chk_score_positive"), transaction.atomic():
        execute("UPDATE submissions SET score = 250 WHERE id = %s", [submission.pk])

    submission.refresh_from_db()
    assert submission.score == 100


def test_pending_submission_may_have_no_score(student, project):
    pk = insert_submission(student, project, status="PENDING", score=None)

    assert Submission.objects.get(pk=pk).score is None


@pytest.mark.parametrize("status", ["APPROVED", "REJECTED"])
def test_graded_submission_without_score_is_rejected(student, project, status):
    with pytest.raises(IntegrityError, match="chk_score_required_when_graded"), transaction.atomic():
        insert_submission(student, project, status=status, score=None)


def test_grading_a_pending_submission_without_score_is_rejected(student, project):
    pk = insert_submission(student, project, status="PENDING")

    with pytest.raises(IntegrityError, match="chk_score_required_when_graded"), transaction.atomic():
        execute("UPDATE submissions SET status = 'REJECTED' WHERE id = %s", [pk])

    assert Submission.objects.get(pk=pk).status == Submission.Status.PENDING


# --- Submissions: points awarded ------------------------------------------------------


def test_zero_points_awarded_is_accepted(student, project):
    pk = insert_submission(student, project, status="REJECTED", score=0, points_awarded=0)

    assert Submission.objects.get(pk=pk).points_awarded == 0


def test_negative_points_awarded_are_rejected(student, project):
    with pytest.raises(IntegrityError, match="chk_submissions_points_awarded_positive"), transaction.atomic():
        insert_submission(student, project, status="APPROVED", score=100, points_awarded=-1)


# --- Submissions: one approval per student and challenge --------------------------------


def test_second_approved_submission_for_the_same_challenge_is_rejected(student, project):
    insert_submission(student, project, status="APPROVED", score=100, points_awarded=100)

    with pytest.raises(IntegrityError, match="uniq_submissions_one_approved"), transaction.atomic():
        insert_submission(student, project, status="APPROVED", score=90, points_awarded=100)

    assert Submission.objects.filter(user=student, status="APPROVED").count() == 1


def test_approving_another_attempt_of_a_solved_challenge_is_rejected(student, project):
    """Two graders approving two attempts at once: the second commit loses."""
    insert_submission(student, project, status="APPROVED", score=100)
    second = insert_submission(student, project, status="PENDING")

    with pytest.raises(IntegrityError, match="uniq_submissions_one_approved"), transaction.atomic():
        execute("UPDATE submissions SET status = 'APPROVED', score = 100 WHERE id = %s", [second])


def test_rejected_and_pending_attempts_may_repeat_beside_one_approval(student, project):
    for _ in range(2):
        insert_submission(student, project, status="REJECTED", score=0)
        insert_submission(student, project, status="PENDING")
    insert_submission(student, project, status="APPROVED", score=100)

    statuses = sorted(Submission.objects.filter(user=student, project=project).values_list("status", flat=True))
    assert statuses == ["APPROVED", "PENDING", "PENDING", "REJECTED", "REJECTED"]


def test_other_students_may_each_have_an_approval_for_the_same_challenge(student, project):
    classmate = StudentFactory(tenant=student.tenant)
    insert_submission(student, project, status="APPROVED", score=100)
    insert_submission(classmate, project, status="APPROVED", score=100)

    assert Submission.objects.filter(project=project, status="APPROVED").count() == 2


# --- Leaderboards -----------------------------------------------------------------------


def test_leaderboard_row_with_zero_totals_is_accepted(student):
    pk = insert_leaderboard_row(student, points=0, solves=0)

    row = Leaderboard.objects.get(pk=pk)
    assert (row.points, row.solves) == (0, 0)


def test_a_rank_below_one_is_rejected(student):
    """The operators' plan's chk_rank_positive: a rank is 1 or more (the database keeps it, scoring 0012)."""
    pk = insert_leaderboard_row(student)
    assert Leaderboard.objects.get(pk=pk).rank == 1
    for rank in (0, -3):
        with pytest.raises(IntegrityError, match="chk_rank_positive"), transaction.atomic():
            execute("UPDATE leaderboards SET rank = %s WHERE id = %s", [rank, pk])


@pytest.mark.parametrize(("points", "solves"), [(-1, 0), (0, -1)])
def test_negative_leaderboard_totals_are_rejected(student, points, solves):
    with pytest.raises(IntegrityError, match="chk_leaderboards_totals_positive"), transaction.atomic():
        insert_leaderboard_row(student, points=points, solves=solves)


def test_student_has_at_most_one_leaderboard_row_per_tenant(student):
    insert_leaderboard_row(student)

    with pytest.raises(IntegrityError, match="uniq_leaderboards_tenant_user"), transaction.atomic():
        insert_leaderboard_row(student)

    assert Leaderboard.objects.filter(user=student).count() == 1


def test_each_student_has_own_leaderboard_row(student):
    classmate = StudentFactory(tenant=student.tenant)
    insert_leaderboard_row(student)
    insert_leaderboard_row(classmate)

    assert Leaderboard.objects.filter(tenant=student.tenant).count() == 2


# --- Badges ---------------------------------------------------------------------------


def test_badge_slug_is_unique_within_a_tenant(tenant):
    insert_badge(tenant, "first-blood")

    with pytest.raises(IntegrityError, match="uniq_badges_tenant_slug"), transaction.atomic():
        insert_badge(tenant, "first-blood")


def test_same_badge_slug_is_allowed_in_another_tenant(tenant, other_tenant):
    insert_badge(tenant, "first-blood")
    insert_badge(other_tenant, "first-blood")

    assert Badge.objects.filter(slug="first-blood").count() == 2


def test_badge_is_awarded_at_most_once_per_student(student):
    badge = BadgeFactory(tenant=student.tenant)
    insert_user_badge(student, badge.pk)

    with pytest.raises(IntegrityError, match="uniq_user_badges_user_badge"), transaction.atomic():
        insert_user_badge(student, badge.pk)

    assert UserBadge.objects.filter(user=student).count() == 1


def test_student_may_hold_several_badges_and_share_them_with_classmates(student):
    classmate = StudentFactory(tenant=student.tenant)
    first, second = BadgeFactory.create_batch(2, tenant=student.tenant)
    insert_user_badge(student, first.pk)
    insert_user_badge(student, second.pk)
    insert_user_badge(classmate, first.pk)

    assert UserBadge.objects.filter(user=student).count() == 2
    assert UserBadge.objects.filter(badge=first).count() == 2
