"""Registration and password reset are limited per client address, and reset per e-mail too.

The attempts are rows of rate_limit_hits, so the limits hold without Redis. A refused
attempt is a 429 with a page saying how long to wait, and writes nothing: no user, no
e-mail, no counted attempt.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from tenants import rate_limits
from tenants.factories import StudentFactory, TenantFactory
from tenants.models import RateLimitHit, Tenant, User

REGISTER = "/accounts/register/"
RESET = "/accounts/password/reset/"
Scope = RateLimitHit.Scope


@pytest.fixture(autouse=True)
def _small_limits(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.REGISTRATION_LIMIT_PER_IP = 3
    settings.REGISTRATION_WINDOW_MINUTES = 10
    settings.PASSWORD_RESET_LIMIT_PER_IP = 4
    settings.PASSWORD_RESET_LIMIT_PER_EMAIL = 2
    settings.PASSWORD_RESET_WINDOW_MINUTES = 60


def client_from(tenant, address="198.51.100.7", **headers):
    return Client(HTTP_HOST=tenant.domain, REMOTE_ADDR=address, **headers)


def registration(n):
    return {"first_name": "Reg", "last_name": str(n), "email": f"reg{n}@alpha.test", "password": "a-long-enough-pass"}


def hits(tenant, scope=None):
    rows = RateLimitHit.objects.for_tenant(tenant)
    return rows.filter(scope=scope) if scope else rows


# --- Registration -------------------------------------------------------------------------


def test_it_registers_up_to_the_limit_then_refuses_with_a_429_and_creates_nobody(tenant):
    for n in range(3):
        assert client_from(tenant).post(REGISTER, registration(n)).status_code == 302

    response = client_from(tenant).post(REGISTER, registration(99))

    assert response.status_code == 429
    assert "Too many sign-up attempts from your network" in response.content.decode()
    assert 1 <= int(response["Retry-After"]) <= 10 * 60
    assert not User.objects.filter(email="reg99@alpha.test").exists()
    assert User.objects.for_tenant(tenant).count() == 3
    assert hits(tenant, Scope.REGISTRATION_IP).count() == 3, "the refused attempt is not counted"


def test_failed_registrations_count_too_so_invite_codes_cannot_be_guessed(tenant):
    tenant.registration_mode = Tenant.RegistrationMode.INVITE
    tenant.settings = {"invite_code": "OWASP-2026"}
    tenant.save()
    for guess in ("a", "b", "c"):
        assert client_from(tenant).post(REGISTER, {**registration(1), "invite_code": guess}).status_code == 400

    response = client_from(tenant).post(REGISTER, {**registration(1), "invite_code": "OWASP-2026"})

    assert response.status_code == 429
    assert not User.objects.filter(email="reg1@alpha.test").exists()


def test_looking_at_the_form_does_not_count(tenant):
    for _ in range(5):
        assert client_from(tenant).get(REGISTER).status_code == 200

    assert client_from(tenant).post(REGISTER, registration(1)).status_code == 302
    assert hits(tenant).count() == 1


def test_another_address_and_another_tenant_have_their_own_count(tenant, other_tenant):
    for n in range(3):
        client_from(tenant).post(REGISTER, registration(n))
    assert client_from(tenant).post(REGISTER, registration(10)).status_code == 429

    assert client_from(tenant, "198.51.100.8").post(REGISTER, registration(11)).status_code == 302
    assert client_from(other_tenant).post(REGISTER, registration(12)).status_code == 302


def test_attempts_older_than_the_window_no_longer_count(tenant):
    long_ago = timezone.now() - timedelta(minutes=11)
    RateLimitHit.objects.bulk_create(
        RateLimitHit(tenant=tenant, scope=Scope.REGISTRATION_IP, key="198.51.100.7", created_at=long_ago)
        for _ in range(3)
    )

    assert client_from(tenant).post(REGISTER, registration(1)).status_code == 302


def test_attempts_inside_the_window_count_even_when_stored_earlier(tenant):
    earlier = timezone.now() - timedelta(minutes=9)
    RateLimitHit.objects.bulk_create(
        RateLimitHit(tenant=tenant, scope=Scope.REGISTRATION_IP, key="198.51.100.7", created_at=earlier)
        for _ in range(3)
    )

    response = client_from(tenant).post(REGISTER, registration(1))

    assert response.status_code == 429
    # the oldest of the three leaves the window in about a minute
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "Try again in 1 minute." in response.content.decode()


def test_expired_attempts_are_pruned_as_new_ones_come(tenant, other_tenant):
    long_ago = timezone.now() - timedelta(minutes=61)  # older than every window
    for owner in (tenant, other_tenant):
        RateLimitHit.objects.create(tenant=owner, scope=Scope.PASSWORD_RESET_EMAIL, key="x", created_at=long_ago)

    client_from(tenant).post(REGISTER, registration(1))

    assert list(hits(tenant).values_list("scope", flat=True)) == [Scope.REGISTRATION_IP]
    assert hits(other_tenant).count() == 1, "only the tenant's own rows are pruned"


def test_behind_a_proxy_each_forwarded_client_has_its_own_count(settings, tenant):
    settings.BEHIND_PROXY = True
    settings.PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for n in range(3):
        client_from(tenant, proxy, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}, 192.0.2.10").post(REGISTER, registration(n))

    refused = client_from(tenant, proxy, HTTP_X_FORWARDED_FOR="203.0.113.99, 192.0.2.10")
    other = client_from(tenant, proxy, HTTP_X_FORWARDED_FOR="192.0.2.11")

    assert refused.post(REGISTER, registration(7)).status_code == 429, "the left-most entry is the client's word"
    assert other.post(REGISTER, registration(8)).status_code == 302
    assert set(hits(tenant).values_list("key", flat=True)) == {"192.0.2.10", "192.0.2.11"}


def test_without_a_proxy_x_forwarded_for_is_ignored(tenant):
    for n in range(3):
        client_from(tenant, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").post(REGISTER, registration(n))

    assert client_from(tenant, HTTP_X_FORWARDED_FOR="203.0.113.50").post(REGISTER, registration(9)).status_code == 429


def test_an_ipv6_client_is_counted_by_its_64_network(tenant):
    for n in range(3):
        client_from(tenant, f"2001:db8:1:2::{n + 1}").post(REGISTER, registration(n))

    assert client_from(tenant, "2001:db8:1:2:ffff::9").post(REGISTER, registration(9)).status_code == 429
    assert client_from(tenant, "2001:db8:1:3::1").post(REGISTER, registration(10)).status_code == 302


# --- Password reset -------------------------------------------------------------------------


def test_a_reset_over_the_address_limit_is_a_429_and_sends_nothing(tenant, student):
    for n in range(4):
        assert client_from(tenant).post(RESET, {"email": f"someone{n}@alpha.test"}).status_code == 302

    response = client_from(tenant).post(RESET, {"email": student.email})

    assert response.status_code == 429
    assert "Too many password reset requests from your network" in response.content.decode()
    assert mail.outbox == []  # the four addresses had no account; the student's got no mail either
    assert hits(tenant, Scope.PASSWORD_RESET_IP).count() == 4
    assert hits(tenant, Scope.PASSWORD_RESET_EMAIL).count() == 4, "the refused e-mail is not counted"


def test_one_address_gets_a_limited_number_of_reset_emails_from_anywhere(tenant, student):
    assert client_from(tenant, "198.51.100.1").post(RESET, {"email": student.email}).status_code == 302
    assert client_from(tenant, "198.51.100.2").post(RESET, {"email": student.email.upper()}).status_code == 302

    response = client_from(tenant, "198.51.100.3").post(RESET, {"email": f"  {student.email}  "})

    assert response.status_code == 429
    assert "Too many reset e-mails were asked for this address" in response.content.decode()
    assert len(mail.outbox) == 2
    assert hits(tenant, Scope.PASSWORD_RESET_IP).filter(key="198.51.100.3").count() == 0


def test_an_unknown_address_is_limited_like_a_known_one(tenant, student):
    """The refusal must not tell an attacker which addresses have accounts."""
    for email in (student.email, "nobody@alpha.test"):
        for _ in range(2):
            client_from(tenant, "198.51.100.1").post(RESET, {"email": email})

    known = client_from(tenant, "198.51.100.2").post(RESET, {"email": student.email})
    unknown = client_from(tenant, "198.51.100.2").post(RESET, {"email": "nobody@alpha.test"})

    assert (known.status_code, unknown.status_code) == (429, 429)
    assert known.context["message"] == unknown.context["message"]


def test_the_reset_email_limit_is_per_tenant(tenant, other_tenant):
    StudentFactory(tenant=tenant, email="same@example.test")
    StudentFactory(tenant=other_tenant, email="same@example.test")
    for _ in range(2):
        client_from(tenant).post(RESET, {"email": "same@example.test"})

    assert client_from(other_tenant).post(RESET, {"email": "same@example.test"}).status_code == 302
    assert f"http://{other_tenant.domain}/" in mail.outbox[-1].body


def test_an_invalid_reset_form_counts_nothing(tenant):
    assert client_from(tenant).post(RESET, {"email": "not an address"}).status_code == 200

    assert hits(tenant).count() == 0


def test_the_table_never_holds_an_email_address(tenant, student):
    client_from(tenant).post(RESET, {"email": student.email})

    keys = set(hits(tenant).values_list("key", flat=True))
    assert keys == {"198.51.100.7", rate_limits.email_key(student.email.upper())}
    assert not any("@" in key for key in keys)


# --- The database enforces its part ------------------------------------------------------


def test_the_table_has_row_level_security_like_every_tenant_table(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'rate_limit_hits'")
        assert cursor.fetchone() == (True, True)
        cursor.execute("SELECT count(*) FROM pg_policies WHERE tablename = 'rate_limit_hits'")
        assert cursor.fetchone() == (1,)


def test_an_unknown_scope_is_refused_by_the_database(tenant):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError, match="chk_rate_limit_hits_scope"), transaction.atomic():
        RateLimitHit.objects.create(tenant=tenant, scope="LOGIN_IP", key="192.0.2.1")


# --- Under concurrency --------------------------------------------------------------------


def advisory_lock_waiters() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND NOT granted",
            [rate_limits.LOCK_CLASS],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_attempts_at_once_counts_exactly_the_limit(pooled_connections_for):
    """Every attempt waits on the key's lock, held here; released, they go one by one."""
    attempts = 12
    pooled_connections_for(attempts + 2)
    tenant = TenantFactory(slug="burst", domain="burst.localhost")
    keys = {Scope.REGISTRATION_IP: "192.0.2.77"}
    outcomes, errors = [], []

    def attempt():
        try:
            rate_limits.rate_limit_attempt(tenant=tenant, keys=keys)
            outcomes.append("counted")
        except rate_limits.RateLimited:
            outcomes.append("refused")
        except BaseException as exc:  # re-raised below
            errors.append(exc)
        finally:
            connections.close_all()

    gate = connections.create_connection("default")  # its own session, holding the key's lock
    gate.set_autocommit(False)
    threads = [threading.Thread(target=attempt, daemon=True) for _ in range(attempts)]
    try:
        with gate.cursor() as cursor:
            key_lock = rate_limits.lock_id(tenant.pk, Scope.REGISTRATION_IP, "192.0.2.77")
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [rate_limits.LOCK_CLASS, key_lock])
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while advisory_lock_waiters() < attempts and time.monotonic() < deadline:
            time.sleep(0.01)
        assert advisory_lock_waiters() == attempts, "every attempt waits on the lock"
    finally:
        gate.rollback()
        gate.close()
        for thread in threads:
            thread.join(30)

    assert errors == []
    assert sorted(outcomes) == ["counted"] * 3 + ["refused"] * (attempts - 3)
    assert RateLimitHit.objects.filter(tenant=tenant).count() == 3
