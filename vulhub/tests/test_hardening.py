"""Defence in depth: deploy checks, Content-Security-Policy, Argon2, login throttling, client IPs."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.auth.hashers import make_password
from django.core.cache import caches
from django.template import engines
from django.test import Client, override_settings

from audit.models import AuditLog
from tenants.factories import StudentFactory, TenantFactory
from vulhub.checks import check_allowed_hosts
from vulhub.lib.client_ip import client_ip

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = ROOT / "templates"
LOGIN = "/accounts/login/"
NO_SERVER = "postgres://nobody@127.0.0.1:1/vulhub"  # nothing listens on port 1


# --- helpers --------------------------------------------------------------------------


def run(*args, **env):
    """`manage.py` or `python -c` in a fresh interpreter with only the given settings variables."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SECURE_", "LOGIN_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "BEHIND_PROXY"}
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


def production(**extra) -> dict:
    """What an operator sets in production: a real secret, the tenants' hosts, Redis."""
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "alpha.example.edu,beta.example.edu",
        "REDIS_URL": "redis://127.0.0.1:6379/11",  # `check` never connects to it
        **extra,
    }


def issue_ids(output: str) -> list[str]:
    return re.findall(r"\(([a-z_]+\.[WEIC]\d+)\)", output)


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def fail_login(client, email, times=1, **extra):
    responses = [client.post(LOGIN, {"username": email, "password": "not-the-password"}, **extra) for _ in range(times)]
    return responses[-1]


# --- check --deploy -----------------------------------------------------------------------


def test_it_passes_check_deploy_with_production_settings():
    # No database: `check` must not write to the test database (a command records its
    # row-level security bypass there), and the tenant half of the ALLOWED_HOSTS check
    # is tested below against real tenants.
    result = run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **production(DATABASE_URL=NO_SERVER))

    assert result.returncode == 0, result.stdout + result.stderr
    assert issue_ids(result.stdout + result.stderr) == ["vulhub.I010"]  # tenants not checked: no database


def test_production_defaults_to_https_everywhere():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SECURE_HSTS_PRELOAD, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, "
        "s.X_FRAME_OPTIONS]))"
    )
    settings_module = {"DJANGO_SETTINGS_MODULE": "vulhub.settings"}

    prod = run("-c", code, **production(), **settings_module)
    proxied = run("-c", code, **production(BEHIND_PROXY="true"), **settings_module)
    plain_http = run("-c", code, **production(SECURE_COOKIES="false"), **settings_module)
    dev = run("-c", code, DEBUG="true", **settings_module)

    assert json.loads(prod.stdout) == [True, 31_536_000, True, True, True, True, None, "DENY"], prod.stderr
    assert json.loads(proxied.stdout)[6] == ["HTTP_X_FORWARDED_PROTO", "https"]
    # docker-compose's local trial and the benchmarks serve plain http with DEBUG off
    assert json.loads(plain_http.stdout)[:2] == [False, 0]
    # local development on http://localhost:8000 is never redirected or pinned to https
    assert json.loads(dev.stdout)[:2] == [False, 0], dev.stderr


@pytest.mark.parametrize(
    "database_url",
    [
        NO_SERVER,
        "postgres://{user}@{host}:{port}/postgres",  # a server, but no VulHub tables
    ],
)
def test_check_deploy_survives_a_database_it_cannot_read(database_url):
    server = django_settings.DATABASES["default"]
    url = database_url.format(
        user=server.get("USER") or "postgres",
        host=quote(str(server.get("HOST") or "127.0.0.1"), safe=""),  # the embedded server's socket directory too
        port=server.get("PORT") or 5432,
    )

    result = run("manage.py", "check", "--deploy", **production(DATABASE_URL=url))

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "vulhub.I010" in result.stdout + result.stderr


# --- ALLOWED_HOSTS against the tenants -------------------------------------------------------


@pytest.mark.django_db
def test_it_warns_when_any_host_is_allowed():
    with override_settings(ALLOWED_HOSTS=["*"]):
        assert [issue.id for issue in check_allowed_hosts(None)] == ["vulhub.W010"]


@pytest.mark.django_db
def test_it_warns_about_active_tenants_whose_host_is_not_allowed():
    TenantFactory(slug="alpha", domain="Alpha.Example.edu")
    TenantFactory(slug="beta", domain="beta.example.edu")
    TenantFactory(slug="gamma", domain="gamma.example.edu", is_active=False)

    with override_settings(ALLOWED_HOSTS=["alpha.example.edu"]):
        issues = check_allowed_hosts(None)

    assert [issue.id for issue in issues] == ["vulhub.W011"]
    assert "beta.example.edu" in issues[0].msg
    assert "gamma" not in issues[0].msg  # inactive tenants are served nowhere


@pytest.mark.django_db
def test_a_leading_dot_covers_the_tenants_subdomains():
    TenantFactory(slug="alpha", domain="alpha.example.edu")
    TenantFactory(slug="beta", domain="beta.example.edu")

    with override_settings(ALLOWED_HOSTS=[".example.edu"]):
        assert check_allowed_hosts(None) == []


# --- Content-Security-Policy ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", [LOGIN, "/accounts/register/", "/admin/login/", "/accounts/password/reset/"])
def test_pages_carry_a_policy_without_inline_script(tenant, path):
    response = Client(HTTP_HOST=tenant.domain).get(path)
    directives = csp_directives(response)

    assert response.status_code == 200
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_accent_colour_style_carries_the_nonce_of_its_response(tenant, student, client_for):
    tenant.settings = {"accent": "#123456"}
    tenant.save()
    client = client_for(tenant, student)

    first, second = client.get("/"), client.get("/")

    nonce = re.search(r'<style nonce="([^"]+)">:root \{ --accent: #123456; \}', first.content.decode())[1]
    assert f"'nonce-{nonce}'" in csp_directives(first)["style-src"]
    assert f"'nonce-{nonce}'" not in second["Content-Security-Policy"]  # a new nonce every response


@pytest.mark.django_db
def test_an_unknown_host_gets_the_policy_too():
    response = Client(HTTP_HOST="nobody.localhost").get("/")

    assert response.status_code == 404
    assert csp_directives(response)["script-src"] == ["'self'"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("logo", "allowed"),
    [
        ("https://cdn.example.edu/img/logo.png", "https://cdn.example.edu"),
        ("https://cdn.example.edu:8443/logo.png", "https://cdn.example.edu:8443"),
        ("https://x.example; script-src *", None),
        ("javascript:alert(1)", None),
        ("/static/logo.png", None),  # same origin already
    ],
)
def test_img_src_admits_the_tenants_logo_origin_and_nothing_else(tenant, logo, allowed):
    tenant.settings = {"logo": logo}
    tenant.save()

    directives = csp_directives(Client(HTTP_HOST=tenant.domain).get(LOGIN))

    assert directives["img-src"] == (["'self'", allowed] if allowed else ["'self'"])
    assert directives["script-src"] == ["'self'"]


def site_templates():
    """Every template the site can render, as the loaders resolve it (ours win over apps')."""
    engine = engines["django"].engine
    names = set()
    for loader in engine.template_loaders:
        for directory in loader.get_dirs():
            directory = Path(directory)
            names |= {str(path.relative_to(directory)) for path in directory.rglob("*.html")}
    return sorted({engine.get_template(name).origin.name for name in names})


INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I | re.S)
JAVASCRIPT_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def test_no_template_the_site_renders_has_inline_script():
    templates = site_templates()
    offenders = [
        f"{name}: {pattern.search(text)[0][:80]}"
        for name in templates
        for text in [Path(name).read_text()]
        for pattern in (INLINE_SCRIPT, EVENT_HANDLER, JAVASCRIPT_URL)
        if pattern.search(text)
    ]

    assert any(name.endswith("admin/change_form.html") for name in templates)  # the admin's are scanned too
    assert offenders == []


def test_our_templates_have_no_inline_style_but_the_nonced_accent():
    offenders = []
    for path in sorted(TEMPLATES_DIR.rglob("*.html")):
        text = path.read_text()
        offenders += [f"{path.name}: style attribute" for _ in re.finditer(r"\sstyle\s*=", text)]
        offenders += [
            f"{path.name}: {tag}" for tag in re.findall(r"<style\b[^>]*>", text) if "{{ request.csp_nonce }}" not in tag
        ]

    assert offenders == []


def test_the_scanner_catches_what_it_looks_for():
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert INLINE_SCRIPT.search('<script type="module">import "x"</script>')
    assert not INLINE_SCRIPT.search('<script src="/static/js/x.js" defer></script>')
    assert EVENT_HANDLER.search('<input type="checkbox"\n   onchange="toggle(event)">')
    assert not EVENT_HANDLER.search('<p class="online">on=</p>')
    assert JAVASCRIPT_URL.search('<a href="javascript:void(0)">')


# --- Argon2 ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_passwords_are_hashed_with_argon2(tenant):
    user = StudentFactory(tenant=tenant, password="a-new-password")

    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password("a-new-password")


@pytest.mark.django_db
def test_an_old_pbkdf2_hash_still_verifies_and_is_upgraded_at_login(tenant):
    user = StudentFactory(tenant=tenant, email="old@alpha.test")
    user.password = make_password("an-old-password", hasher="pbkdf2_sha256")
    user.save()

    response = Client(HTTP_HOST=tenant.domain).post(
        LOGIN, {"username": "old@alpha.test", "password": "an-old-password"}
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.password.startswith("argon2$")


# --- login throttling -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_locks_an_account_out_after_the_failure_limit(tenant, student, password):
    client = Client(HTTP_HOST=tenant.domain)
    limit = django_settings.AXES_FAILURE_LIMIT

    before = fail_login(client, student.email, times=limit - 1)
    locked = fail_login(client, student.email.upper())  # another letter case is the same account
    right_password = client.post(LOGIN, {"username": student.email, "password": password})

    assert before.status_code == 200
    assert b"Please enter a correct" in before.content or b"Please enter the correct" in before.content
    assert locked.status_code == 429
    assert "Too many failed log-ins" in locked.content.decode()
    assert int(locked["Retry-After"]) == django_settings.AXES_COOLOFF_TIME.total_seconds()
    assert right_password.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_lockout_is_stored_in_the_database(tenant, student):
    fail_login(Client(HTTP_HOST=tenant.domain), student.email, times=django_settings.AXES_FAILURE_LIMIT)

    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address) == (f"alpha:{student.email}", "127.0.0.1")
    assert attempt.failures_since_start == django_settings.AXES_FAILURE_LIMIT
    assert "not-the-password" not in attempt.post_data


@pytest.mark.django_db
def test_the_lockout_survives_an_emptied_cache(tenant, student):
    client = Client(HTTP_HOST=tenant.domain)
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        caches["default"].clear()  # Redis restarted between attempts: the counts are in the database
        locked = fail_login(client, student.email)

    assert locked.status_code == 429


REDIS_DOWN = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


@pytest.mark.django_db
def test_the_lockout_holds_while_redis_is_down(tenant, student):
    client = Client(HTTP_HOST=tenant.domain)

    with override_settings(CACHES=REDIS_DOWN):
        locked = fail_login(client, student.email, times=django_settings.AXES_FAILURE_LIMIT)

    assert locked.status_code == 429


@pytest.mark.django_db
def test_failed_logins_are_still_audited(tenant, student):
    fail_login(Client(HTTP_HOST=tenant.domain), student.email, times=django_settings.AXES_FAILURE_LIMIT + 1)

    rows = AuditLog.objects.filter(action="login_failed", tenant_id=tenant.pk)
    # every attempt, the ones refused while locked out included
    assert rows.count() == django_settings.AXES_FAILURE_LIMIT + 1
    assert {row.object_text for row in rows} == {student.email}


@pytest.mark.django_db
def test_a_lockout_stays_with_its_tenant_and_its_address(tenant, other_tenant, student, password):
    namesake = StudentFactory(tenant=other_tenant, email=student.email, password=password)
    fail_login(Client(HTTP_HOST=tenant.domain), student.email, times=django_settings.AXES_FAILURE_LIMIT)

    same_email_elsewhere = Client(HTTP_HOST=other_tenant.domain).post(
        LOGIN, {"username": namesake.email, "password": password}
    )
    same_account_from_home = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="198.51.100.20").post(
        LOGIN, {"username": student.email, "password": password}
    )

    assert same_email_elsewhere.status_code == 302
    assert same_account_from_home.status_code == 302


@pytest.mark.django_db
def test_a_successful_login_clears_the_count(tenant, student, password):
    client = Client(HTTP_HOST=tenant.domain)
    fail_login(client, student.email, times=django_settings.AXES_FAILURE_LIMIT - 1)

    assert client.post(LOGIN, {"username": student.email, "password": password}).status_code == 302
    assert not AccessAttempt.objects.exists()


# --- the client's address ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behind_proxy", "proxies", "forwarded", "expected"),
    [
        (False, 1, "203.0.113.9", "10.0.0.2"),  # no proxy: anyone can send the header
        (True, 1, "", "10.0.0.2"),
        (True, 1, "203.0.113.9", "203.0.113.9"),
        (True, 1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client's own entry is ignored
        (True, 2, "6.6.6.6, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
        (True, 2, "203.0.113.9", "203.0.113.9"),  # fewer entries than proxies: all are ours
        (True, 1, "203.0.113.9:51234", "203.0.113.9"),
        (True, 1, "[2001:db8::1]:443", "2001:db8::1"),
        (True, 1, "garbage", "10.0.0.2"),
    ],
)
def test_the_client_address(rf, behind_proxy, proxies, forwarded, expected):
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

    with override_settings(BEHIND_PROXY=behind_proxy, PROXY_COUNT=proxies):
        assert client_ip(request) == expected


@pytest.mark.django_db
@override_settings(BEHIND_PROXY=True)
def test_behind_a_proxy_the_lockout_records_the_forwarded_address(tenant, student, password):
    proxy = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="10.0.0.2")
    fail_login(proxy, student.email, times=django_settings.AXES_FAILURE_LIMIT, HTTP_X_FORWARDED_FOR="203.0.113.9")

    other_client = proxy.post(
        LOGIN, {"username": student.email, "password": password}, HTTP_X_FORWARDED_FOR="198.51.100.20"
    )

    assert AccessAttempt.objects.get().ip_address == "203.0.113.9"
    assert other_client.status_code == 302  # another client behind the same proxy is not locked out


@pytest.mark.django_db
@override_settings(BEHIND_PROXY=False)
def test_without_a_proxy_a_forged_header_does_not_escape_the_lockout(tenant, student):
    client = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="203.0.113.9")
    for n in range(django_settings.AXES_FAILURE_LIMIT):
        last = fail_login(client, student.email, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")

    assert last.status_code == 429
    assert AccessAttempt.objects.get().ip_address == "203.0.113.9"
