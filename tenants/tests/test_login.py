import pytest
from django.contrib.auth import authenticate
from django.test import Client

from tenants.factories import StudentFactory


def login(tenant, email, password):
    client = Client(HTTP_HOST=tenant.domain)
    response = client.post("/admin/login/", {"username": email, "password": password})
    return client, response


def test_it_logs_a_staff_user_in_on_their_own_host(tenant, instructor, password):
    client, response = login(tenant, instructor.email, password)

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_it_matches_the_email_case_insensitively(tenant, instructor, password):
    _, response = login(tenant, instructor.email.upper(), password)

    assert response.status_code == 302


def test_it_refuses_a_user_on_another_tenants_host(other_tenant, instructor, password):
    _, response = login(other_tenant, instructor.email, password)

    assert response.status_code == 200  # the form again, with an error
    assert b"Please enter the correct" in response.content


def test_it_refuses_a_wrong_password(tenant, instructor):
    _, response = login(tenant, instructor.email, "wrong-password")

    assert response.status_code == 200
    assert b"Please enter the correct" in response.content


def test_it_refuses_an_inactive_user(tenant, instructor, password):
    instructor.is_active = False
    instructor.save()

    _, response = login(tenant, instructor.email, password)

    assert response.status_code == 200


def test_the_same_email_in_two_tenants_is_two_accounts(tenant, other_tenant, rf):
    alpha = StudentFactory(tenant=tenant, email="sam@example.test", password="alpha-secret")
    beta = StudentFactory(tenant=other_tenant, email="SAM@example.test", password="beta-secret")

    request = rf.get("/")
    request.tenant = other_tenant

    assert authenticate(request, username="sam@example.test", password="beta-secret") == beta
    assert authenticate(request, username="sam@example.test", password="alpha-secret") is None
    request.tenant = tenant
    assert authenticate(request, username="sam@example.test", password="alpha-secret") == alpha


def test_a_student_never_reaches_the_admin(tenant, student, password):
    client, response = login(tenant, student.email, password)

    assert response.status_code == 200  # the admin login form refuses non-staff
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    ("persona", "can", "cannot"),
    [
        ("instructor", ["challenges.change_project", "scoring.change_submission"], ["tenants.change_user"]),
        ("tenant_admin", ["tenants.change_user", "tenants.change_tenant"], ["tenants.delete_tenant"]),
        ("student", [], ["challenges.view_project", "scoring.change_submission"]),
    ],
)
def test_permissions_come_from_the_group_of_the_role(persona, can, cannot, request):
    user = request.getfixturevalue(persona)

    for permission in can:
        assert user.has_perm(permission), permission
    for permission in cannot:
        assert not user.has_perm(permission), permission


def test_staff_status_follows_the_role(student, instructor, tenant_admin):
    assert not student.is_staff
    assert instructor.is_staff
    assert tenant_admin.is_staff
