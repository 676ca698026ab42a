"""Abuse limits on registration and password reset.

Attempts are rows of `rate_limit_hits`, counted over a sliding window, as wrong flags are
counted from submissions: the limits live in the database, so they hold when Redis is
down. A refused attempt writes nothing. Limits and windows are settings
(REGISTRATION_LIMIT_PER_IP, PASSWORD_RESET_LIMIT_PER_IP, PASSWORD_RESET_LIMIT_PER_EMAIL, ...).
"""

import hashlib
import ipaddress
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.shortcuts import render
from django.utils import timezone
from django.utils.crypto import salted_hmac

from vulhub.lib.client_ip import client_ip, parse_address

from .models import RateLimitHit, Tenant

logger = logging.getLogger(__name__)

Scope = RateLimitHit.Scope

# The settings holding each scope's number of attempts and its window in minutes.
SETTINGS = {
    Scope.REGISTRATION_IP: ("REGISTRATION_LIMIT_PER_IP", "REGISTRATION_WINDOW_MINUTES"),
    Scope.PASSWORD_RESET_IP: ("PASSWORD_RESET_LIMIT_PER_IP", "PASSWORD_RESET_WINDOW_MINUTES"),
    Scope.PASSWORD_RESET_EMAIL: ("PASSWORD_RESET_LIMIT_PER_EMAIL", "PASSWORD_RESET_WINDOW_MINUTES"),
}
REFUSALS = {
    Scope.REGISTRATION_IP: "Too many sign-up attempts from your network. Try again in {wait}.",
    Scope.PASSWORD_RESET_IP: "Too many password reset requests from your network. Try again in {wait}.",
    Scope.PASSWORD_RESET_EMAIL: (
        "Too many reset e-mails were asked for this address. Look for the ones already sent "
        "(and in your spam folder), or try again in {wait}."
    ),
}
# Class of our advisory locks ("VHRL"), apart from the bigint keys other code locks.
LOCK_CLASS = int.from_bytes(b"VHRL", "big")
# Expired rows deleted per counted attempt: the table stays small without a cron job.
PRUNE_BATCH = 100


class RateLimited(Exception):
    """A refused attempt: a message for the person, and the seconds until one is allowed again."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    attempts: int
    window: timedelta

    @classmethod
    def for_scope(cls, scope: str) -> "Limit":
        attempts, minutes = SETTINGS[scope]
        return cls(attempts=getattr(settings, attempts), window=timedelta(minutes=getattr(settings, minutes)))


def address_key(address: str | None) -> str:
    """What a client address is counted under: the address, or for IPv6 its /64 (one subscriber)."""
    parsed = parse_address(address or "")
    if parsed is None:
        return "unknown"
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def email_key(email: str) -> str:
    """A keyed hash of an e-mail address in any letter case: the table never holds the address."""
    return salted_hmac("tenants.rate_limits.email", email.strip().lower(), algorithm="sha256").hexdigest()


@transaction.atomic
def rate_limit_attempt(*, tenant: Tenant, keys: Mapping[str, str]) -> None:
    """Count one attempt under each `{scope: key}` of `tenant`, or raise RateLimited and count none.

    Each key is locked (a transaction-level advisory lock, taken in a fixed order) until
    the outermost transaction ends (a request's: tenants.middleware), so the next attempt
    on the key counts only after this one's row is committed: concurrent attempts cannot
    all slip in under the limit.
    """
    now = timezone.now()
    ordered = sorted(keys.items())
    _lock(tenant.pk, ordered)
    for scope, key in ordered:
        limit = Limit.for_scope(scope)
        # the newest `attempts` hits in the window: when there are that many, the oldest
        # of them is the next to leave it
        recent = list(
            RateLimitHit.objects.for_tenant(tenant)
            .for_key(scope=scope, key=key)
            .since(now - limit.window)
            .order_by("-created_at")
            .values_list("created_at", flat=True)[: limit.attempts]
        )
        if len(recent) >= limit.attempts:
            retry_after = max(1, math.ceil((recent[-1] + limit.window - now).total_seconds()))
            logger.warning("rate limit %s reached on tenant %s for %s", scope, tenant.slug, key)
            raise RateLimited(REFUSALS[scope].format(wait=_minutes(retry_after)), retry_after=retry_after)
    RateLimitHit.objects.bulk_create(
        RateLimitHit(tenant=tenant, scope=scope, key=key, created_at=now) for scope, key in ordered
    )
    _prune(tenant, now)


def registration_attempt(request) -> None:
    """Count a registration attempt from the request's client, or raise RateLimited."""
    rate_limit_attempt(tenant=request.tenant, keys={Scope.REGISTRATION_IP: address_key(client_ip(request))})


def password_reset_attempt(request, email: str) -> None:
    """Count a reset request for `email` from the request's client, or raise RateLimited."""
    rate_limit_attempt(
        tenant=request.tenant,
        keys={
            Scope.PASSWORD_RESET_IP: address_key(client_ip(request)),
            Scope.PASSWORD_RESET_EMAIL: email_key(email),
        },
    )


def too_many_attempts(request, refusal: RateLimited):
    """The 429 page for a refused attempt, with Retry-After."""
    response = render(request, "429.html", {"message": str(refusal)}, status=429)
    response["Retry-After"] = str(refusal.retry_after)
    return response


def lock_id(tenant_id: int, scope: str, key: str) -> int:
    """The advisory lock of one key (pg_advisory_xact_lock(LOCK_CLASS, lock_id))."""
    digest = hashlib.sha256(f"{tenant_id}:{scope}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def _lock(tenant_id: int, ordered) -> None:
    with connection.cursor() as cursor:
        for scope, key in ordered:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, lock_id(tenant_id, scope, key)])


def _prune(tenant: Tenant, now) -> None:
    """Delete a batch of the tenant's rows older than every window (rows another attempt holds are skipped)."""
    oldest_needed = now - max(Limit.for_scope(scope).window for scope in SETTINGS)
    expired = list(
        RateLimitHit.objects.for_tenant(tenant)
        .filter(created_at__lt=oldest_needed)
        .order_by("created_at")
        .select_for_update(skip_locked=True)
        .values_list("pk", flat=True)[:PRUNE_BATCH]
    )
    if expired:
        RateLimitHit.objects.filter(pk__in=expired).delete()


def _minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"
