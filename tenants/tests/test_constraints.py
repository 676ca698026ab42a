"""Tenant and account rules PostgreSQL enforces by itself, proven with raw SQL."""

import pytest
from django.db import IntegrityError, connection, transaction

from tenants.models import Tenant, User

pytestmark = pytest.mark.django_db


def execute(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


def insert_tenant(slug, domain):
    row = execute(
        """
        INSERT INTO tenants (name, slug, domain, settings, registration_mode, is_active, created_at, updated_at)
        VALUES (%s, %s, %s, '{}'::jsonb, 'OPEN', true, now(), now())
        RETURNING id
        """,
        [slug.title(), slug, domain],
    )
    return row[0]


def insert_user(tenant_id, email, is_superuser=False, role="STUDENT"):
    row = execute(
        """
        INSERT INTO users (tenant_id, password, is_superuser, email, first_name, last_name, role,
                           is_active, date_joined)
        VALUES (%s, '!', %s, %s, '', '', %s, true, now())
        RETURNING id
        """,
        [tenant_id, is_superuser, email, role],
    )
    return row[0]


# --- Tenants ----------------------------------------------------------------------


def test_tenant_slug_is_unique(tenant):
    with pytest.raises(IntegrityError, match="tenants_slug_key"), transaction.atomic():
        insert_tenant(tenant.slug, "elsewhere.localhost")


@pytest.mark.parametrize("domain", ["alpha.localhost", "ALPHA.localhost", "Alpha.LocalHost"])
def test_tenant_domain_is_unique_whatever_its_case(tenant, domain):
    with pytest.raises(IntegrityError, match="uniq_tenants_domain_ci"), transaction.atomic():
        insert_tenant("alpha-again", domain)

    assert Tenant.objects.filter(domain__iexact="alpha.localhost").count() == 1


def test_tenant_with_a_new_slug_and_domain_is_accepted(tenant):
    pk = insert_tenant("gamma", "gamma.localhost")

    assert Tenant.objects.get(pk=pk).domain == "gamma.localhost"


# --- Users of a tenant ----------------------------------------------------------------


@pytest.mark.parametrize("email", ["student@alpha.test", "Student@Alpha.TEST"])
def test_email_is_unique_within_a_tenant_whatever_its_case(student, email):
    with pytest.raises(IntegrityError, match="uniq_users_tenant_email_ci"), transaction.atomic():
        insert_user(student.tenant_id, email)

    assert User.objects.filter(email__iexact=student.email).count() == 1


def test_same_email_is_allowed_in_another_tenant(student, other_tenant):
    pk = insert_user(other_tenant.pk, "STUDENT@alpha.test")

    assert User.objects.get(pk=pk).tenant == other_tenant
    assert User.objects.filter(email__iexact=student.email).count() == 2


# --- Platform accounts (no tenant) -------------------------------------------------------


def test_platform_account_without_tenant_is_accepted_for_a_superuser(db):
    pk = insert_user(None, "root@vulhub.test", is_superuser=True, role="ADMIN")

    user = User.objects.get(pk=pk)
    assert user.tenant_id is None
    assert user.is_superuser


def test_platform_email_is_unique_whatever_its_case(db):
    """NULL tenants are distinct in uniq_users_tenant_email_ci; this one covers them."""
    insert_user(None, "root@vulhub.test", is_superuser=True, role="ADMIN")

    with pytest.raises(IntegrityError, match="uniq_users_platform_email_ci"), transaction.atomic():
        insert_user(None, "Root@VulHub.test", is_superuser=True, role="ADMIN")

    assert User.objects.filter(tenant__isnull=True).count() == 1


def test_platform_account_may_share_its_email_with_a_tenant_user(student):
    pk = insert_user(None, student.email, is_superuser=True, role="ADMIN")

    assert User.objects.filter(email=student.email).count() == 2
    assert User.objects.get(pk=pk).tenant_id is None


def test_user_without_tenant_must_be_a_superuser(db):
    with pytest.raises(IntegrityError, match="chk_users_tenant_unless_superuser"), transaction.atomic():
        insert_user(None, "drifter@vulhub.test", is_superuser=False)


def test_detaching_a_student_from_its_tenant_is_rejected(student):
    with pytest.raises(IntegrityError, match="chk_users_tenant_unless_superuser"), transaction.atomic():
        execute("UPDATE users SET tenant_id = NULL WHERE id = %s", [student.pk])

    student.refresh_from_db()
    assert student.tenant_id is not None
