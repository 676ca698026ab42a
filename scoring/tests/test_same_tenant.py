"""Rows that join a user, challenge or badge must all belong to one tenant (composite FKs)."""

import pytest
from django.db import IntegrityError, connection, transaction

from challenges.factories import ProjectFactory
from scoring.factories import BadgeFactory


def insert(sql, params):
    # The constraints are deferred to commit, like Django's own; check them now.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(sql, params)


SUBMISSION = (
    "INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, points_awarded, answer, link, "
    "feedback, submitted_at) VALUES (%s, %s, %s, 'WRITEUP', 'PENDING', 0, '', '', '', now())"
)


def test_a_submission_of_one_tenant_is_accepted(tenant, student, project):
    insert(SUBMISSION, [tenant.pk, student.pk, project.pk])


def test_a_submission_to_another_tenants_challenge_is_rejected(tenant, student, other_tenant):
    foreign = ProjectFactory(tenant=other_tenant)

    with pytest.raises(IntegrityError, match="fk_submissions_project_same_tenant"):
        insert(SUBMISSION, [tenant.pk, student.pk, foreign.pk])


def test_a_submission_by_another_tenants_student_is_rejected(tenant, other_student, project):
    with pytest.raises(IntegrityError, match="fk_submissions_user_same_tenant"):
        insert(SUBMISSION, [tenant.pk, other_student.pk, project.pk])


def test_a_badge_of_another_tenant_cannot_be_awarded(tenant, student, other_tenant):
    foreign = BadgeFactory(tenant=other_tenant)

    with pytest.raises(IntegrityError, match="fk_user_badges_badge_same_tenant"):
        insert(
            "INSERT INTO user_badges (tenant_id, user_id, badge_id, awarded_at) VALUES (%s, %s, %s, now())",
            [tenant.pk, student.pk, foreign.pk],
        )


def test_a_leaderboard_row_cannot_rank_another_tenants_student(tenant, other_student):
    with pytest.raises(IntegrityError, match="fk_leaderboards_user_same_tenant"):
        insert(
            "INSERT INTO leaderboards (tenant_id, user_id, points, solves, updated_at) VALUES (%s, %s, 0, 0, now())",
            [tenant.pk, other_student.pk],
        )


def test_moving_a_user_to_another_tenant_is_refused_while_their_rows_remain(student, project, other_tenant):
    insert(SUBMISSION, [student.tenant_id, student.pk, project.pk])

    with pytest.raises(IntegrityError, match="fk_submissions_user_same_tenant"):
        insert("UPDATE users SET tenant_id = %s WHERE id = %s", [other_tenant.pk, student.pk])
