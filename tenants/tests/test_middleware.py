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
def test_health_needs_no_tenant(path, db, settings):
    settings.HEALTH_DETAIL_TOKEN = token = "a-monitors-token-of-at-least-32-characters"  # /health/detail/'s

    response = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}").get(path)

    assert response.status_code == 200


def _kill_the_connection_of_this_thread():
    """The server ends this thread's open connection, as a PostgreSQL restart would; Django does not know yet."""
    import time

    import psycopg
    from django.db import connection

    from vulhub.tests.servers import owner_dsn

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(owner_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.05)
    return pid


def test_a_connection_the_server_ended_is_replaced_before_the_request_runs(transactional_db, tenant, rf):
    """The first query of a request finds its kept connection dead: a new one serves the request, once."""
    from django.db import connection
    from django.http import HttpResponse

    from tenants.middleware import TenantMiddleware

    served = []

    def view(request):
        served.append((request.tenant, connection.connection.info.backend_pid))
        return HttpResponse("ok")

    dead = _kill_the_connection_of_this_thread()
    response = TenantMiddleware(view)(rf.get("/", HTTP_HOST="alpha.localhost"))

    assert response.status_code == 200
    assert len(served) == 1  # the view ran once
    assert served[0][0] == tenant
    assert served[0][1] != dead  # on a new connection


def test_a_dead_connection_inside_an_open_transaction_is_not_retried(tenant, db, rf):
    """Inside a transaction already begun (here, the test's), a lost connection is an error, never a silent retry."""
    from django.db import OperationalError

    from tenants.middleware import TenantMiddleware

    _kill_the_connection_of_this_thread()
    with pytest.raises(OperationalError):
        TenantMiddleware(lambda request: None)(rf.get("/", HTTP_HOST="alpha.localhost"))


def test_a_secret_key_migrate_never_installed_is_a_503_and_a_deploy_error(tenant, settings):
    """Servers started with a new SECRET_KEY before `migrate` installed it: a clear error, not a 500 trace."""
    from django.test import Client

    from vulhub.ops.role_checks import tenant_context_key_is_installed

    assert tenant_context_key_is_installed() == []
    settings.SECRET_KEY = "a-key-that-migrate-never-installed-" + "x" * 30
    settings.SECRET_KEY_FALLBACKS = []

    response = Client(HTTP_HOST=tenant.domain, raise_request_exception=False).get("/accounts/login/")

    assert response.status_code == 503 and response["Retry-After"]
    [error] = tenant_context_key_is_installed()
    assert error.id == "vulhub.E102" and "migrate" in error.hint


def test_a_tenant_context_shows_its_tenants_rows_only_and_puts_everything_back(tenant, other_tenant):
    from challenges.factories import ProjectFactory
    from challenges.models import Project
    from tenants import rls

    ProjectFactory(tenant=tenant)
    ProjectFactory(tenant=other_tenant)
    assert Project.objects.count() == 2  # the tests' own view: every tenant

    with rls.tenant_context(tenant.pk):
        assert set(Project.objects.values_list("tenant_id", flat=True)) == {tenant.pk}
        assert rls.current_tenant() == tenant.pk
    with rls.tenant_context(None):
        assert not Project.objects.exists()

    assert Project.objects.count() == 2 and rls.current_tenant() is None
