"""Issue 25, part 6: reset links from the tenant's domain, an operators-only /health/detail/,
and signed-in pages kept out of caches."""

import os
import re
import socket
import tempfile

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.db import connection
from django.test import Client

from tenants.factories import InstructorFactory, StudentFactory
from vulhub.tests.test_settings import PRODUCTION, manage

RESET = "/accounts/password/reset/"
DETAIL = "/health/detail/"
TOKEN = "health-detail-token-for-the-tests-0123456789"

pytestmark = pytest.mark.django_db


# --- Password-reset links ---------------------------------------------------------------


def reset_mail_body(tenant, host) -> str:
    StudentFactory(tenant=tenant, email="forgot@alpha.test")
    response = Client(HTTP_HOST=host).post(RESET, {"email": "forgot@alpha.test"})
    assert response.status_code == 302
    (message,) = mail.outbox
    return message.body


def test_it_links_a_reset_to_the_tenants_domain_whatever_port_the_host_header_names(tenant):
    body = reset_mail_body(tenant, f"{tenant.domain}:31337")

    assert f"http://{tenant.domain}/accounts/reset/" in body
    assert "31337" not in body


def test_it_links_a_reset_with_https_when_the_site_is_https(tenant, settings):
    settings.PUBLIC_SCHEME = "https"

    body = reset_mail_body(tenant, f"{tenant.domain}:31337")

    assert f"https://{tenant.domain}/accounts/reset/" in body


def test_it_links_a_reset_with_the_public_port_not_the_requests(tenant, settings):
    settings.PUBLIC_PORT = 8000

    body = reset_mail_body(tenant, f"{tenant.domain}:31337")

    assert f"http://{tenant.domain}:8000/accounts/reset/" in body
    assert "31337" not in body


def test_it_leaves_out_a_public_port_that_is_the_schemes_own(tenant, settings):
    settings.PUBLIC_SCHEME, settings.PUBLIC_PORT = "https", 443

    body = reset_mail_body(tenant, tenant.domain)

    assert f"https://{tenant.domain}/accounts/reset/" in body


def test_it_names_the_tenant_in_the_reset_mail(tenant):
    body = reset_mail_body(tenant, f"{tenant.domain}:31337")

    assert "on Alpha Academy." in body


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PUBLIC_PORT": "70000"}, "PUBLIC_PORT=70000 is not a port"),
        ({"PUBLIC_PORT": "eight"}, "PUBLIC_PORT='eight' is not a whole number"),
        ({"HEALTH_DETAIL_TOKEN": "short"}, "HEALTH_DETAIL_TOKEN is shorter than 32 characters"),
    ],
)
def test_a_bad_public_port_or_health_token_is_refused_with_a_clear_message(env, message):
    result = manage("check", **PRODUCTION, **env)

    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# --- /health/detail/ --------------------------------------------------------------------


@pytest.fixture
def detail_token(settings):
    settings.HEALTH_DETAIL_TOKEN = TOKEN
    return TOKEN


def page_text(response) -> str:
    """The page, its per-request CSP nonce left out."""
    return re.sub(r'nonce="[^"]*"', "", response.content.decode())


def not_found_page(host: str):
    """What any missing /health/ path answers on `host`: the page /health/detail/ must look like."""
    return Client(HTTP_HOST=host).get("/health/nothing-here/")


@pytest.mark.parametrize("host", ["alpha.localhost", "127.0.0.1", "nobody.example"])
def test_the_detail_page_is_a_plain_404_to_an_anonymous_visitor_on_any_host(host, tenant, detail_token):
    response = Client(HTTP_HOST=host).get(DETAIL)

    assert response.status_code == 404
    assert page_text(response) == page_text(not_found_page(host))


def test_the_detail_page_without_its_slash_is_a_404_not_a_redirect(tenant, detail_token):
    response = Client(HTTP_HOST=tenant.domain).get("/health/detail")

    assert response.status_code == 404  # /health/nothing is a 404 too: no redirect gives it away
    assert Client(HTTP_HOST=tenant.domain).get("/health/nothing").status_code == 404


@pytest.mark.parametrize("method", ["post", "head", "options"])
def test_the_detail_page_is_a_404_whatever_the_method(method, tenant, detail_token):
    response = getattr(Client(HTTP_HOST=tenant.domain), method)(DETAIL)

    assert response.status_code == 404  # not a 405 that would say something is there


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        f"Token {TOKEN}",
        f"Basic {TOKEN}",
        TOKEN,
    ],
)
def test_the_detail_page_is_a_404_with_a_wrong_token(authorization, tenant, detail_token):
    response = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION=authorization).get(DETAIL)

    assert response.status_code == 404


def test_no_token_opens_the_detail_page_while_none_is_set(tenant, settings):
    settings.HEALTH_DETAIL_TOKEN = ""

    response = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION="Bearer ").get(DETAIL)

    assert response.status_code == 404


@pytest.mark.parametrize("host", ["alpha.localhost", "127.0.0.1"])
def test_the_token_opens_the_detail_page_on_any_host(host, tenant, detail_token):
    response = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {detail_token}").get(DETAIL, {"format": "json"})

    assert response.status_code == 200
    assert {"Database", "Cache", "Migrations", "WalArchive", "Disk"} <= {name.split("(")[0] for name in response.json()}


@pytest.fixture
def elsewhere():
    """Run from a directory of its own: the disk check's default path is the working directory."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="vulhub-install-") as path:
        os.chdir(path)
        try:
            yield path
        finally:
            os.chdir(before)


@pytest.mark.parametrize("format", ["json", "text", "openmetrics", "atom", None])
def test_the_detail_page_shows_no_path_or_host_name(format, tenant, detail_token, elsewhere):
    client = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION=f"Bearer {detail_token}")

    response = client.get(DETAIL, {"format": format} if format else {})

    assert response.status_code == 200
    body = response.content.decode()
    assert "Disk" in body
    for secret in (elsewhere, str(django_settings.BASE_DIR), "/work", f"'{socket.gethostname()}'", "hostname"):
        assert secret not in body
    if format in ("json", "text"):
        assert socket.gethostname() not in body


def server_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_the_detail_page_gives_its_database_connections_back(tenant, detail_token):
    pool = django_settings.DATABASES["default"]["OPTIONS"].get("pool")
    probes = pool["max_size"] + 1 if isinstance(pool, dict) else 6
    client = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION=f"Bearer {detail_token}")
    client.get(DETAIL, {"format": "json"})  # a pool opens its connections on first use
    before = server_connections()

    # each probe ran its Migrations and WalArchive checks on connections it kept: the pool
    # ran dry after max_size / 2 probes and the next one timed out; without a pool every
    # probe left two more server connections open
    statuses = [client.get(DETAIL, {"format": "json"}).status_code for _ in range(probes)]

    assert set(statuses) == {200}
    assert server_connections() <= before


def test_the_tenants_staff_see_the_detail_page(tenant, instructor, client_for):
    response = client_for(tenant, instructor).get(DETAIL, {"format": "json"})

    assert response.status_code == 200
    assert set(response.json().values()) == {"OK"}


def test_a_platform_superuser_sees_the_detail_page(tenant, client_for, django_user_model):
    root = django_user_model.objects.create_superuser("root@vulhub.test", "x")

    response = client_for(tenant, root).get(DETAIL)

    assert response.status_code == 200


def test_a_student_gets_a_404_from_the_detail_page(tenant, student, client_for):
    response = client_for(tenant, student).get(DETAIL)

    assert response.status_code == 404


def test_another_tenants_staff_get_a_404_from_the_detail_page(tenant, other_tenant, client_for):
    outsider = InstructorFactory(tenant=other_tenant)
    client = Client(HTTP_HOST=tenant.domain)
    client.force_login(outsider)

    response = client.get(DETAIL)

    assert response.status_code == 404
    assert client_for(other_tenant, outsider).get(DETAIL).status_code == 200  # on their own host they may


def test_the_load_balancers_health_stays_public(tenant):
    response = Client(HTTP_HOST="10.20.30.40").get("/health/")

    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


# --- Cache-Control of signed-in pages -----------------------------------------------------


def cache_directives(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


def varies_on(response) -> set[str]:
    return {part.strip().lower() for part in response.get("Vary", "").split(",")}


@pytest.mark.parametrize("path", ["/", "/profile/", "/challenges/", "/nothing-here/"])
def test_a_signed_in_students_pages_are_private_and_never_stored(path, tenant, student, client_for):
    response = client_for(tenant, student).get(path)

    assert {"private", "no-store"} <= cache_directives(response)
    assert "cookie" in varies_on(response)


@pytest.mark.parametrize("path", ["/admin/", "/admin/scoring/submission/?status__exact=PENDING"])
def test_the_admins_pages_are_private_and_never_stored(path, tenant, instructor, client_for):
    response = client_for(tenant, instructor).get(path)

    assert response.status_code == 200
    directives = cache_directives(response)
    assert {"private", "no-store"} <= directives
    assert {"no-cache", "must-revalidate"} <= directives  # the admin's own never_cache is kept
    assert "cookie" in varies_on(response)


def test_a_signed_in_users_redirect_is_private_too(tenant, student, client_for):
    response = client_for(tenant, student).get("/accounts/login/")  # signed in already: sent on

    assert response.status_code == 302
    assert {"private", "no-store"} <= cache_directives(response)


def test_an_anonymous_public_page_is_left_cacheable(tenant):
    response = Client(HTTP_HOST=tenant.domain).get(RESET)

    assert response.status_code == 200
    assert not {"private", "no-store"} & cache_directives(response)
