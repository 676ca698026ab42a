"""The 403 page tells each reader who can give them access: students their instructor, staff whom to ask."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.views.defaults import permission_denied

IMPORT = "/admin/tenants/user/import/"  # the roster import: tenant admins only
GROUPS = "/admin/auth/group/"  # the role groups: platform superusers only


def test_it_tells_an_instructor_to_ask_a_tenant_admin_and_links_the_admin_home(tenant, instructor, client_for):
    response = client_for(tenant, instructor).get(IMPORT)

    assert response.status_code == 403
    html = response.content.decode()
    assert "ask a tenant admin of your class" in html
    assert "instructor of Alpha Academy" in html
    assert 'href="/admin/"' in html and "Go to the admin home" in html
    assert "ask your instructor" not in html


def test_it_tells_a_tenant_admin_to_ask_the_platform_operator(tenant, tenant_admin, client_for):
    response = client_for(tenant, tenant_admin).get(GROUPS)

    assert response.status_code == 403
    html = response.content.decode()
    assert "ask the platform operator" in html
    assert "tenant admin of Alpha Academy" in html
    assert 'href="/admin/"' in html
    assert "ask your instructor" not in html and "ask a tenant admin" not in html


def test_a_student_is_still_told_to_ask_their_instructor(tenant, student):
    request = RequestFactory().get("/somewhere/", HTTP_HOST=tenant.domain)
    request.user, request.tenant = student, tenant

    response = permission_denied(request, PermissionDenied())

    assert response.status_code == 403
    html = response.content.decode()
    assert "ask your instructor" in html
    assert "admin home" not in html and 'href="/admin/"' not in html


def test_a_visitor_who_is_not_logged_in_gets_the_students_words_and_a_login_link(tenant):
    request = RequestFactory().get("/somewhere/", HTTP_HOST=tenant.domain)
    request.user, request.tenant = AnonymousUser(), tenant

    html = permission_denied(request, PermissionDenied()).content.decode()

    assert "ask your instructor" in html and "Log in" in html
    assert "admin home" not in html


@pytest.mark.parametrize("path", [IMPORT, GROUPS])
def test_the_admins_own_refusals_use_the_same_page(tenant, instructor, client_for, path):
    response = client_for(tenant, instructor).get(path)

    assert response.status_code == 403
    assert "You can't open this page" in response.content.decode()
