import pytest
from django.test import Client


def test_it_sets_the_tenant_of_a_known_host(tenant, instructor, client_for, rf):
    from tenants.middleware import TenantMiddleware

    seen = {}

    def view(request):
        seen["tenant"] = request.tenant
        from django.http import HttpResponse

        return HttpResponse("ok")

    request = rf.get("/", HTTP_HOST="ALPHA.localhost:8000")
    request.user = instructor
    response = TenantMiddleware(view)(request)

    assert response.status_code == 200
    assert seen["tenant"] == tenant


def test_it_answers_an_unknown_host_with_a_plain_404(tenant):
    response = Client(HTTP_HOST="nobody.localhost").get("/admin/login/")

    assert response.status_code == 404
    assert b"No VulHub site is served on" in response.content
    assert tenant.name.encode() not in response.content


def test_it_answers_an_inactive_tenant_like_an_unknown_host(tenant):
    tenant.is_active = False
    tenant.save()

    response = Client(HTTP_HOST=tenant.domain).get("/admin/login/")

    assert response.status_code == 404


def test_it_serves_the_tenant_on_its_own_host(tenant):
    response = Client(HTTP_HOST=tenant.domain).get("/admin/login/")

    assert response.status_code == 200


def test_a_staff_user_of_tenant_a_is_signed_in_on_their_own_host(instructor, tenant, client_for):
    response = client_for(tenant, instructor).get("/admin/")

    assert response.status_code == 200


def test_a_user_of_tenant_a_is_nobody_on_tenant_b_host(instructor, other_tenant, client_for):
    # A session cookie of tenant A replayed on tenant B's host counts for nothing there.
    response = client_for(other_tenant, instructor).get("/admin/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_platform_superuser_is_signed_in_on_any_tenant_host(other_tenant, client_for, django_user_model):
    root = django_user_model.objects.create_superuser("root@vulhub.test", "x")

    response = client_for(other_tenant, root).get("/admin/")

    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/health/", "/health/detail/"])
def test_health_needs_no_tenant(path, db):
    response = Client(HTTP_HOST="127.0.0.1").get(path)

    assert response.status_code == 200
