"""Request security the settings wire in: login throttling and the Content-Security-Policy.

- Login throttling on django-axes' table of failed logins: `login_username` and
  `login_address` say what a failure is counted under (the e-mail on this tenant's host;
  the client's address, or its /64 for IPv6), `LoginThrottleHandler` holds three limits on
  those counts (`login_lockout`), and `lockout_response` is what a locked-out visitor sees.
- `TenantCSPMiddleware`: django-csp's middleware, plus the origin of the tenant's logo in
  img-src, so a tenant may show a logo hosted elsewhere and nothing else from there. The
  policy is built once per logo origin, not on every response.
"""

import functools
import hashlib
import ipaddress
import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections, router
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.shortcuts import render
from django.utils import timezone

from tenants.rate_limits import address_key
from vulhub.lib import metrics
from vulhub.lib.client_ip import client_ip

# A host name or IPv4 address with an optional port: all an img-src origin may contain.
_HOST_AND_PORT = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def login_username(request, credentials: dict | None) -> str:
    """What axes counts failures against: the e-mail on this tenant's host.

    Trimmed and lower-cased, as TenantEmailBackend matches it, so changing the letter case
    does not start a fresh count; prefixed with the tenant's slug, because the same e-mail
    on two tenants is two accounts and one must not lock the other out.
    """
    if credentials is None:
        credentials = request.POST
    email = str(credentials.get("username") or credentials.get("email") or "").strip().lower()
    tenant = getattr(request, "tenant", None)
    name = f"{tenant.slug}:{email}" if tenant is not None else email
    return name[:255]  # axes' username column


def login_address(request) -> str | None:
    """What axes counts a client's failures under (AXES_CLIENT_IP_CALLABLE).

    The address of vulhub.lib.client_ip, or for IPv6 the first address of its /64
    (`2001:db8:1:2::`): one subscriber holds a whole /64 and may send from any address in
    it, so counting exact addresses let a client rotate through it for a fresh count each
    time. The network is tenants.rate_limits.address_key's, as for registration and
    password reset; axes' column holds an address, not a network, hence its first address.
    """
    address = client_ip(request)
    if address is None:
        return None
    return str(ipaddress.ip_network(address_key(address)).network_address)


# Lock class of the login counters' advisory locks ("VHLT"), apart from the rate limits' ("VHRL").
LOCK_CLASS = int.from_bytes(b"VHLT", "big")

ACCOUNT_FROM_NETWORK = (
    "Logging in to this account from your network is paused after too many wrong passwords, "
    "to protect it from guessing."
)
ACCOUNT = (
    "Logging in to this account is paused after too many wrong passwords from several places, "
    "to protect it from guessing."
)
NETWORK = (
    "Logging in from your network is paused after too many failed log-ins to several accounts, "
    "to protect them from guessing."
)


@dataclass(frozen=True)
class Lockout:
    """Why a login is refused, and when the count that refuses it falls under its limit."""

    message: str
    until: datetime

    def retry_after(self) -> int:
        """Whole seconds until then, at least 1 (the Retry-After header)."""
        return max(1, math.ceil((self.until - timezone.now()).total_seconds()))


def login_lockout(request, credentials: dict | None = None) -> Lockout | None:
    """The lockout a login attempt falls under, or None when it may try its password.

    Failures within the cool-off (LOGIN_COOLOFF_MINUTES), from axes' table, are counted
    three ways, each with its limit:
    - this account from this network (LOGIN_FAILURE_LIMIT): someone guessing from one place,
      while the owner elsewhere and the rest of a school behind one address still log in;
    - this account from anywhere (LOGIN_ACCOUNT_FAILURE_LIMIT): many networks guessing one
      password, a few tries each;
    - this network on any account (LOGIN_ADDRESS_FAILURE_LIMIT): one network trying a few
      common passwords on many accounts.
    When several are over their limit, the one that lasts longest is the answer.
    """
    AxesProxyHandler.update_request(request)  # the client's address and the attempt's time, once
    username = get_client_username(request, credentials)
    same_account = Q(username=username)
    same_network = Q(ip_address=request.axes_ip_address)
    rows = list(
        AccessAttempt.objects.filter(same_account | same_network, attempt_time__gte=get_cool_off_threshold(request))
        .annotate(
            account=ExpressionWrapper(same_account, output_field=BooleanField()),
            network=ExpressionWrapper(same_network, output_field=BooleanField()),
        )
        .order_by("-attempt_time")
        .values_list("attempt_time", "failures_since_start", "account", "network")
    )
    from_here = [(at, count) for at, count, account, network in rows if account and network]
    on_account = [(at, count) for at, count, account, _ in rows if account]
    on_network = [(at, count) for at, count, _, network in rows if network]
    cool_off = get_cool_off(request)
    lockouts = [
        Lockout(message=message, until=until)
        for message, failures, limit in (
            (ACCOUNT_FROM_NETWORK, from_here, get_failure_limit(request, credentials)),
            (ACCOUNT, on_account, settings.LOGIN_ACCOUNT_FAILURE_LIMIT),
            (NETWORK, on_network, settings.LOGIN_ADDRESS_FAILURE_LIMIT),
        )
        if (until := _under_limit_at(failures, limit, cool_off)) is not None
    ]
    return max(lockouts, key=lambda lockout: lockout.until, default=None)


def _under_limit_at(failures: list, limit: int, cool_off: timedelta) -> datetime | None:
    """When the newest-first `(attempt_time, failures)` rows fall under `limit`, or None if they are now.

    Rows leave the count oldest first, cool_off after their last failure: the count is
    under the limit once the row that brings the newest ones up to it has left.
    """
    total = 0
    for attempt_time, count in failures:
        total += count
        if total >= limit:
            return attempt_time + cool_off
    return None


def lock_id(kind: str, key: str | None) -> int:
    """The advisory lock of one counter (pg_advisory_xact_lock(LOCK_CLASS, lock_id))."""
    digest = hashlib.sha256(f"{kind}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


class LoginThrottleHandler(AxesDatabaseHandler):
    """axes' database handler with login_lockout's three limits instead of its one.

    axes itself counts the failures of this account from this network
    (AXES_LOCKOUT_PARAMETERS) and resets them when that login succeeds; a success never
    clears the account's count from elsewhere or the network's count on other accounts,
    which is why those two are extra limits here and not lockout parameter groups (axes
    deletes the rows of every group on success: one's own account would clear a spraying
    network's count).
    """

    def is_allowed(self, request, credentials: dict | None = None) -> bool:
        """Whether the login may check its password, its counters locked until the request ends.

        The account's and the network's advisory locks are held until the request's
        transaction (tenants.middleware) commits its failure, if any, so attempts at once
        are checked one after another and none slips in on a count that misses another's
        failure. Locked in a fixed order, so two attempts cannot wait on each other.
        """
        keys = sorted(
            {lock_id("account", get_client_username(request, credentials)), lock_id("network", request.axes_ip_address)}
        )
        with connections[router.db_for_write(AccessAttempt)].cursor() as cursor:
            for key in keys:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, key])
        return super().is_allowed(request, credentials)

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        return settings.AXES_LOCK_OUT_AT_FAILURE and login_lockout(request, credentials) is not None

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        """Count the failure (axes), and lock out when it brings any of the three counts to its limit.

        axes locks out only on its own count; the account's and the network's are checked here.
        """
        was_locked_out = getattr(request, "axes_locked_out", False)
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or self.is_whitelisted(request, credentials):
            return
        if request.axes_locked_out:
            if not was_locked_out:  # axes' own count reached its limit: a lockout begins
                metrics.count(metrics.LOGIN_LOCKOUTS)
            return
        if not self.is_locked(request, credentials):
            return
        request.axes_locked_out = True
        metrics.count(metrics.LOGIN_LOCKOUTS)  # not the attempts refused while it lasts
        request.axes_credentials = credentials
        user_locked_out.send(
            "axes",
            request=request,
            username=get_client_username(request, credentials),
            ip_address=request.axes_ip_address,
        )


def lockout_response(request, original_response=None, credentials=None):
    """The page a locked-out visitor gets: 429 Too Many Requests, saying why and how long to wait."""
    lockout = login_lockout(request, credentials) or Lockout(
        message=ACCOUNT_FROM_NETWORK, until=timezone.now() + get_cool_off(request)
    )
    seconds = lockout.retry_after()
    response = render(
        request,
        "registration/locked_out.html",
        {"reason": lockout.message, "cool_off_minutes": math.ceil(seconds / 60)},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
    response["Retry-After"] = str(seconds)
    return response


def logo_origin(tenant) -> str | None:
    """`scheme://host[:port]` of the tenant's logo URL, when it is an http(s) URL elsewhere."""
    options = tenant.settings if tenant is not None else None
    logo = str(options.get("logo") or "") if isinstance(options, dict) else ""
    if not logo:
        return None
    try:
        parts = urlsplit(logo)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not _HOST_AND_PORT.match(parts.netloc):
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def with_logo_origin(parts: PolicyParts, origin: str | None) -> PolicyParts:
    """`parts` with `origin` added to img-src (nothing added for None)."""
    if origin:
        update = dict(parts.update or {})
        existing = update.get("img-src") or []
        update["img-src"] = [*([existing] if isinstance(existing, str) else existing), origin]
        parts.update = update
    return parts


# Stands for the response's nonce in a policy built once: a base64 nonce never contains it.
NONCE_MARK = "\x00nonce\x00"
# What a view's django-csp decorators leave on its response: such a policy is built for it alone.
OWN_POLICY_ATTRIBUTES = tuple(f"_csp_{kind}{ro}" for kind in ("config", "update", "replace") for ro in ("", "_ro"))


@functools.lru_cache(maxsize=256)
def site_policy(origin: str | None, nonced: bool, report_only: bool) -> str:
    """The policy header (or the report-only one) of a tenant whose logo comes from `origin`.

    django-csp's own build_policy, from the settings: once per origin, not per response
    (about 0.035 ms of CPU a response, bench/profile_page.py). `nonced`: with NONCE_MARK where
    the response's nonce goes; without, the nonce source is left out, as django-csp
    does when a page asked for none.
    """
    parts = with_logo_origin(PolicyParts(nonce=NONCE_MARK if nonced else None), origin)
    return build_policy(**asdict(parts), report_only=report_only)


def _forget_policies(*, setting, **kwargs) -> None:
    """A test that changes the policy's settings gets policies built from them."""
    if setting in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY"):
        site_policy.cache_clear()


setting_changed.connect(_forget_policies)


class TenantCSPMiddleware(CSPMiddleware):
    """django-csp's policy (settings.CONTENT_SECURITY_POLICY) plus the tenant's logo origin in img-src.

    The site's own responses get the policy built once per logo origin (site_policy) with
    the response's nonce put in; a response whose view set a policy of its own (django-csp's
    decorators), and every response while DEBUG is on, go through django-csp's own
    process_response, which builds it for that response.
    """

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        return with_logo_origin(parts, logo_origin(getattr(request, "tenant", None)))

    def process_response(self, request, response):
        if settings.DEBUG or any(getattr(response, name, None) is not None for name in OWN_POLICY_ATTRIBUTES):
            return super().process_response(request, response)
        origin = logo_origin(getattr(request, "tenant", None))
        nonce = getattr(request, "_csp_nonce", None)
        for header, setting, exempt, report_only in (
            (HEADER, "CONTENT_SECURITY_POLICY", "_csp_exempt", False),
            (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", "_csp_exempt_ro", True),
        ):
            policy = site_policy(origin, nonce is not None, report_only)
            if policy and header not in response and getattr(response, exempt, False) is False:
                prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
                if not request.path_info.startswith(tuple(prefixes)):
                    response[header] = policy.replace(NONCE_MARK, nonce) if nonce is not None else policy
        if nonce is None:
            # as django-csp does: a nonce asked for after the header is written is an error, not a silent gap
            request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
