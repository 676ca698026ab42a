"""Request security the settings wire in: login throttling and the Content-Security-Policy.

- `login_username` and `lockout_response`: what django-axes counts failed logins against
  (the e-mail on this tenant's host) and what a locked-out visitor sees. The client's
  address it counts them from is vulhub.lib.client_ip (AXES_CLIENT_IP_CALLABLE).
- `TenantCSPMiddleware`: django-csp's middleware, plus the origin of the tenant's logo in
  img-src, so a tenant may show a logo hosted elsewhere and nothing else from there.
"""

import math
import re
from urllib.parse import urlsplit

from axes.helpers import get_cool_off
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.shortcuts import render

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


def lockout_response(request, original_response=None, credentials=None):
    """The page a locked-out visitor gets: 429 Too Many Requests, saying how long to wait."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    response = render(
        request,
        "registration/locked_out.html",
        {"cool_off_minutes": math.ceil(seconds / 60)},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
    if seconds:
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


class TenantCSPMiddleware(CSPMiddleware):
    """django-csp's policy (settings.CONTENT_SECURITY_POLICY) plus the tenant's logo origin in img-src."""

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        origin = logo_origin(getattr(request, "tenant", None))
        if origin:
            update = dict(parts.update or {})
            existing = update.get("img-src") or []
            update["img-src"] = [*([existing] if isinstance(existing, str) else existing), origin]
            parts.update = update
        return parts
