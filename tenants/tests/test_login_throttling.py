"""Failed logins are limited three ways within the cool-off (vulhub.security.login_lockout).

Per account and network (LOGIN_FAILURE_LIMIT), per account from anywhere
(LOGIN_ACCOUNT_FAILURE_LIMIT) and per network on any account (LOGIN_ADDRESS_FAILURE_LIMIT),
where a network is the client's address, or its /64 for IPv6. The attempt that reaches a
limit, and every attempt after it, gets a 429 page saying why and how long to wait; a
refused attempt checks no password and counts nothing.
"""

import threading
import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db import connections
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from tenants.factories import DEFAULT_PASSWORD, StudentFactory, TenantFactory
from vulhub import security

LOGIN = "/accounts/login/"
HOME = "198.51.100.7"
WRONG = "not-the-password"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 20
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 30
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.BEHIND_PROXY = False


def log_in(tenant, email, password=WRONG, address=HOME, **headers):
    client = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR=address)
    return client.post(LOGIN, {"username": email, "password": password}, **headers)


def counted(**filters) -> int:
    """Failures axes holds (refused attempts are not among them)."""
    return AccessAttempt.objects.filter(**filters).aggregate(total=Sum("failures_since_start"))["total"] or 0


def refused(response) -> bool:
    return response.status_code == 429 and "Too many failed log-ins" in response.content.decode()


# --- per account and network: an IPv6 client counts as its /64 -----------------------------


@pytest.mark.django_db
def test_an_ipv6_client_rotating_inside_its_64_is_locked_out(tenant, student):
    answers = [log_in(tenant, student.email, address=f"2001:db8:1:2::{n:x}") for n in range(1, 31)]

    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert all(refused(answer) for answer in answers[4:])
    assert AccessAttempt.objects.get().ip_address == "2001:db8:1:2::"
    assert counted() == 5  # the 25 refused attempts checked no password


@pytest.mark.django_db
def test_after_the_64_is_locked_out_the_right_password_works_only_from_another_network(tenant, student):
    for n in range(1, 31):
        log_in(tenant, student.email, address=f"2001:db8:1:2::{n:x}")

    from_the_same_64 = log_in(tenant, student.email, DEFAULT_PASSWORD, address="2001:db8:1:2:ffff:ffff:ffff:ffff")
    from_the_next_64 = log_in(tenant, student.email, DEFAULT_PASSWORD, address="2001:db8:1:3::1")

    assert refused(from_the_same_64)
    assert "to this account from your network" in from_the_same_64.content.decode()
    assert from_the_next_64.status_code == 302


@pytest.mark.django_db
def test_an_ipv4_client_is_counted_by_its_own_address(tenant, student):
    for _ in range(5):
        log_in(tenant, student.email, address="198.51.100.1")

    assert refused(log_in(tenant, student.email, DEFAULT_PASSWORD, address="198.51.100.1"))
    assert log_in(tenant, student.email, DEFAULT_PASSWORD, address="198.51.100.2").status_code == 302


def test_the_address_axes_counts_under(rf):
    def address(remote):
        return security.login_address(rf.post(LOGIN, REMOTE_ADDR=remote))

    assert address("2001:db8:1:2:aaaa::9") == "2001:db8:1:2::"
    assert address("[2001:DB8:1:2::1]:443") == "2001:db8:1:2::"
    assert address("::ffff:198.51.100.7") == "198.51.100.7"  # IPv4 on a dual-stack socket
    assert address("198.51.100.7") == "198.51.100.7"
    assert address("") is None


# --- per network on any account: password spraying -------------------------------------------


@pytest.mark.django_db
def test_spraying_15_accounts_with_4_passwords_each_is_refused_before_the_end(tenant):
    accounts = [StudentFactory(tenant=tenant, email=f"s{n}@alpha.test") for n in range(15)]

    answers = [log_in(tenant, account.email, f"Summer202{guess}!") for guess in range(4) for account in accounts]

    first_refusal = next(n for n, answer in enumerate(answers) if answer.status_code == 429)
    assert first_refusal == 29  # the 30th failure from the address
    assert [a.status_code for a in answers[:29]] == [200] * 29
    assert all(refused(answer) for answer in answers[29:])
    assert "from your network is paused after too many failed log-ins to several accounts" in (
        answers[-1].content.decode()
    )
    assert counted() == 30


@pytest.mark.django_db
def test_a_sprayed_network_is_refused_any_account_while_other_networks_log_in(tenant, student):
    for n in range(30):
        log_in(tenant, f"nobody{n}@alpha.test")

    assert refused(log_in(tenant, student.email, DEFAULT_PASSWORD))
    assert log_in(tenant, student.email, DEFAULT_PASSWORD, address="203.0.113.5").status_code == 302


@pytest.mark.django_db
def test_logging_in_to_ones_own_account_does_not_clear_the_networks_count_on_others(tenant, student):
    """A success clears that account's failures from that network, and nothing else."""
    for _ in range(4):
        log_in(tenant, student.email)
    for n in range(25):
        log_in(tenant, f"victim{n}@alpha.test")

    assert log_in(tenant, student.email, DEFAULT_PASSWORD).status_code == 302
    assert counted() == 25
    more = [log_in(tenant, f"victim-b{n}@alpha.test") for n in range(5)]
    assert [a.status_code for a in more] == [200, 200, 200, 200, 429]


# --- per account from anywhere: many networks guessing one password ------------------------


@pytest.mark.django_db
def test_one_account_tried_from_20_networks_is_locked_out_everywhere(tenant, other_tenant, student):
    namesake = StudentFactory(tenant=other_tenant, email=student.email)
    neighbour = StudentFactory(tenant=tenant, email="neighbour@alpha.test")

    answers = [log_in(tenant, student.email, address=f"192.0.2.{n}") for n in range(1, 21)]
    from_a_new_network = log_in(tenant, student.email, DEFAULT_PASSWORD, address="203.0.113.5")

    assert [a.status_code for a in answers[:19]] == [200] * 19
    assert refused(answers[19])
    assert refused(from_a_new_network)
    assert "this account is paused after too many wrong passwords from several places" in (
        from_a_new_network.content.decode()
    )
    assert counted() == 20
    # the account only: another account from those networks, and the same e-mail on another tenant
    assert log_in(tenant, neighbour.email, DEFAULT_PASSWORD, address="192.0.2.1").status_code == 302
    assert log_in(other_tenant, namesake.email, DEFAULT_PASSWORD, address="192.0.2.1").status_code == 302


@pytest.mark.django_db
def test_the_account_count_ignores_the_letter_case_of_the_email(tenant, student):
    for n in range(1, 21):
        email = student.email.upper() if n % 2 else f"  {student.email}"
        log_in(tenant, email, address=f"192.0.2.{n}")

    assert refused(log_in(tenant, student.email, DEFAULT_PASSWORD, address="203.0.113.5"))


# --- forged X-Forwarded-For -------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_proxy_a_forged_x_forwarded_for_gets_no_fresh_count(tenant, student):
    forged = ["192.0.2.1", "2001:db8:ffff::1", "10.0.0.1", "203.0.113.200", "garbage"]
    answers = [log_in(tenant, student.email, HTTP_X_FORWARDED_FOR=header) for header in forged]

    assert refused(answers[-1])
    assert AccessAttempt.objects.get().ip_address == HOME


@pytest.mark.django_db
def test_without_a_proxy_a_forged_x_forwarded_for_does_not_escape_the_network_limit(tenant):
    answers = [log_in(tenant, f"nobody{n}@alpha.test", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}") for n in range(30)]

    assert refused(answers[-1])
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HOME}


@pytest.mark.django_db
def test_behind_a_proxy_entries_the_client_prepends_get_no_fresh_count(settings, tenant, student):
    settings.BEHIND_PROXY = True
    answers = [
        log_in(tenant, student.email, address="10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 2001:db8:5:6::{n}")
        for n in range(1, 6)
    ]

    assert refused(answers[-1])
    assert AccessAttempt.objects.get().ip_address == "2001:db8:5:6::"


# --- the refusal ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_refusal_says_how_long_to_wait_and_sends_retry_after(tenant, student):
    for _ in range(5):
        locked = log_in(tenant, student.email)

    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    assert "Try again in 15 minutes." in locked.content.decode()


@pytest.mark.django_db
def test_the_wait_counts_down_from_the_last_failure(tenant, student):
    for _ in range(5):
        log_in(tenant, student.email)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=10, seconds=30))

    refusal = log_in(tenant, student.email, DEFAULT_PASSWORD)

    assert refused(refusal)
    assert 265 <= int(refusal["Retry-After"]) <= 270
    assert "Try again in 5 minutes." in refusal.content.decode()
    assert counted() == 5  # asking again does not push the end of the pause back


@pytest.mark.django_db
def test_the_network_limit_lifts_when_enough_of_its_failures_are_old_enough(tenant):
    """30 failures, the 10 oldest 14 minutes ago: 1 minute on, only 20 count any more."""
    for n in range(30):
        log_in(tenant, f"nobody{n}@alpha.test")
    oldest = AccessAttempt.objects.order_by("attempt_time").values_list("pk", flat=True)[:10]
    AccessAttempt.objects.filter(pk__in=list(oldest)).update(attempt_time=timezone.now() - timedelta(minutes=14))

    refusal = log_in(tenant, "one-more@alpha.test")

    assert refused(refusal)
    assert 55 <= int(refusal["Retry-After"]) <= 60
    assert "Try again in 1 minute." in refusal.content.decode()


@pytest.mark.django_db
def test_failures_older_than_the_cool_off_no_longer_count(tenant, student):
    for _ in range(5):
        log_in(tenant, student.email)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))

    assert log_in(tenant, student.email, DEFAULT_PASSWORD).status_code == 302


# --- attempts at once -------------------------------------------------------------------------


def advisory_lock_waiters() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND NOT granted",
            [security.LOCK_CLASS],
        )
        return cursor.fetchone()[0]


def attempts_at_once(emails: list[str], *, domain: str) -> list[int]:
    """Post a wrong password for each e-mail from HOME, all at once: the status codes.

    The network's lock is held here until every attempt waits on a login counter's lock,
    so all of them arrive before any is answered, the worst case for a lost count.
    """
    statuses, errors = [], []

    def attempt(email):
        try:
            client = Client(HTTP_HOST=domain, REMOTE_ADDR=HOME)
            statuses.append(client.post(LOGIN, {"username": email, "password": WRONG}).status_code)
        except BaseException as exc:  # re-raised below
            errors.append(exc)
        finally:
            connections.close_all()

    gate = connections.create_connection("default")  # its own session, holding the network's lock
    gate.set_autocommit(False)
    threads = [threading.Thread(target=attempt, args=(email,), daemon=True) for email in emails]
    try:
        with gate.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [security.LOCK_CLASS, security.lock_id("network", HOME)]
            )
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while advisory_lock_waiters() < len(emails) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert advisory_lock_waiters() == len(emails), "every attempt waits on a counter's lock"
    finally:
        gate.rollback()
        gate.close()
        for thread in threads:
            thread.join(60)
    assert errors == []
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_30_attempts_at_once_on_one_account_check_5_passwords(pooled_connections_for):
    pooled_connections_for(32)
    tenant = TenantFactory(slug="burst", domain="burst.localhost")
    student = StudentFactory(tenant=tenant, email="target@burst.test")

    statuses = attempts_at_once([student.email] * 30, domain=tenant.domain)

    assert statuses == [200] * 4 + [429] * 26
    assert counted() == 5


@pytest.mark.django_db(transaction=True)
def test_30_attempts_at_once_on_30_accounts_stop_at_the_network_limit(settings, pooled_connections_for):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 10
    pooled_connections_for(32)
    tenant = TenantFactory(slug="spray", domain="spray.localhost")

    statuses = attempts_at_once([f"s{n}@spray.test" for n in range(30)], domain=tenant.domain)

    assert statuses == [200] * 9 + [429] * 21
    assert counted() == 10
