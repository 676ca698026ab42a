"""Logging in and out, registering, the dashboard and the profile."""

import pytest
from django.core import mail
from django.test import Client

from challenges.factories import ProjectFactory
from scoring import services
from tenants.factories import StudentFactory
from tenants.models import Tenant, User

pytestmark = pytest.mark.usefixtures("fast_hashing")


def test_a_student_logs_in_with_email_and_lands_on_the_dashboard(tenant, student, password):
    client = Client(HTTP_HOST=tenant.domain)

    response = client.post("/accounts/login/", {"username": student.email, "password": password}, follow=True)

    assert response.redirect_chain[-1][0] == "/"
    assert response.context["user"] == student


def test_a_wrong_password_shows_the_form_again(tenant, student):
    response = Client(HTTP_HOST=tenant.domain).post("/accounts/login/", {"username": student.email, "password": "x"})

    assert response.status_code == 200
    assert "Please enter a correct" in response.content.decode()


def test_another_tenants_student_cannot_log_in_here(tenant, other_student, password):
    response = Client(HTTP_HOST=tenant.domain).post(
        "/accounts/login/", {"username": other_student.email, "password": password}
    )

    assert response.status_code == 200
    assert not response.context["user"].is_authenticated


def test_logging_out_takes_a_post(tenant, student, client_for):
    client = client_for(tenant, student)

    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302  # logged out: back to the login page


def test_the_dashboard_shows_my_points_rank_and_what_to_try(tenant, student, client_for):
    solved = ProjectFactory(tenant=tenant, name="Done Lab", points=120, flag="FLAG{d}")
    ProjectFactory(tenant=tenant, name="Next Lab")
    services.submission_create(user=student, project=solved, flag="FLAG{d}")

    response = client_for(tenant, student).get("/")
    content = response.content.decode()

    assert response.context["standing"].points == 120
    assert "Next Lab" in content
    assert "Done Lab" not in [p.name for p in response.context["to_try"]]


def test_open_registration_creates_a_student_and_logs_them_in(tenant):
    client = Client(HTTP_HOST=tenant.domain)

    response = client.post(
        "/accounts/register/",
        {"first_name": "Nia", "last_name": "Lee", "email": "nia@alpha.test", "password": "a-long-enough-pass"},
        follow=True,
    )

    user = User.objects.get(email="nia@alpha.test")
    assert (user.tenant, user.role) == (tenant, User.Role.STUDENT)
    assert response.context["user"] == user
    assert "Welcome to Alpha Academy" in response.content.decode()


def test_registration_refuses_a_taken_email_and_a_weak_password(tenant, student):
    response = Client(HTTP_HOST=tenant.domain).post(
        "/accounts/register/",
        {"first_name": "A", "last_name": "B", "email": student.email.upper(), "password": "123"},
    )

    assert response.status_code == 400
    content = response.content.decode()
    assert "already exists" in content
    assert "too short" in content


def test_invite_registration_needs_the_code(tenant):
    tenant.registration_mode = Tenant.RegistrationMode.INVITE
    tenant.settings = {"invite_code": "OWASP-2026"}
    tenant.save()
    data = {"first_name": "I", "last_name": "V", "email": "inv@alpha.test", "password": "a-long-enough-pass"}
    client = Client(HTTP_HOST=tenant.domain)

    assert client.post("/accounts/register/", {**data, "invite_code": "guess"}).status_code == 400
    assert client.post("/accounts/register/", {**data, "invite_code": "OWASP-2026"}).status_code == 302


def test_closed_registration_is_a_friendly_403(tenant):
    tenant.registration_mode = Tenant.RegistrationMode.CLOSED
    tenant.save()

    response = Client(HTTP_HOST=tenant.domain).get("/accounts/register/")

    assert response.status_code == 403
    assert "Registration is closed" in response.content.decode()


def test_the_profile_changes_my_name(tenant, student, client_for):
    client = client_for(tenant, student)

    response = client.post("/profile/", {"first_name": "Sam", "last_name": "Stone"}, follow=True)

    student.refresh_from_db()
    assert (student.first_name, student.last_name) == ("Sam", "Stone")
    assert "Your name is saved." in response.content.decode()


def test_a_password_reset_mails_only_this_tenants_account(tenant, other_tenant):
    StudentFactory(tenant=tenant, email="same@example.test")
    StudentFactory(tenant=other_tenant, email="same@example.test")

    response = Client(HTTP_HOST=tenant.domain).post("/accounts/password/reset/", {"email": "same@example.test"})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert f"http://{tenant.domain}/accounts/reset/" in mail.outbox[0].body
    assert "Alpha Academy" in mail.outbox[0].subject


def test_a_reset_link_of_another_tenants_account_does_not_work_here(tenant, other_tenant):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    foreign = StudentFactory(tenant=other_tenant)
    uid, token = urlsafe_base64_encode(force_bytes(foreign.pk)), default_token_generator.make_token(foreign)

    response = Client(HTTP_HOST=tenant.domain).get(f"/accounts/reset/{uid}/{token}/", follow=True)

    assert response.context["validlink"] is False


@pytest.mark.parametrize("path", ["/nothing-here/", "/challenges/nothing/"])
def test_a_missing_page_is_a_friendly_404(path, tenant, student, client_for):
    response = client_for(tenant, student).get(path)

    assert response.status_code == 404
    content = response.content.decode()
    assert "Page not found" in content
    assert "Alpha Academy" in content  # in the tenant's own layout


def test_a_server_error_page_needs_nothing_but_itself():
    from django.template.loader import render_to_string

    html = render_to_string("500.html")  # rendered with no request and no context

    assert "<h1>" in html
