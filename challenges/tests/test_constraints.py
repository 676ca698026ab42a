"""Challenge rules PostgreSQL enforces by itself, proven with raw SQL."""

import pytest
from django.db import IntegrityError, connection, transaction

from challenges.models import Project

pytestmark = pytest.mark.django_db


def execute(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


def insert_project(tenant, slug, points=100):
    row = execute(
        """
        INSERT INTO projects (tenant_id, name, slug, description, category, difficulty, points,
                              flag_hash, is_published, created_at, updated_at)
        VALUES (%s, %s, %s, '', 'Web Security', 'BEGINNER', %s, '', true, now(), now())
        RETURNING id
        """,
        [tenant.pk, slug.replace("-", " ").title(), slug, points],
    )
    return row[0]


def test_project_slug_is_unique_within_a_tenant(project):
    with pytest.raises(IntegrityError, match="uniq_projects_tenant_slug"), transaction.atomic():
        insert_project(project.tenant, project.slug)

    assert Project.objects.filter(slug=project.slug).count() == 1


def test_same_project_slug_is_allowed_in_another_tenant(project, other_tenant):
    pk = insert_project(other_tenant, project.slug)

    assert Project.objects.get(pk=pk).tenant == other_tenant
    assert Project.objects.filter(slug=project.slug).count() == 2


def test_project_worth_zero_points_is_accepted(tenant):
    pk = insert_project(tenant, "warm-up", points=0)

    assert Project.objects.get(pk=pk).points == 0


def test_negative_points_are_rejected(tenant):
    with pytest.raises(IntegrityError, match="chk_points_positive"), transaction.atomic():
        insert_project(tenant, "broken", points=-1)


def test_negative_points_are_rejected_on_update(project):
    with pytest.raises(IntegrityError, match="chk_points_positive"), transaction.atomic():
        execute("UPDATE projects SET points = -100 WHERE id = %s", [project.pk])

    project.refresh_from_db()
    assert project.points == 100
