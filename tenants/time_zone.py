"""The tenant's time zone: every time on its site and in its admin is shown in it.

A class in Paris reads "closes at 17:00 CET", not a time in UTC it has to convert.
The zone is a tenant setting (Tenant.time_zone, an IANA name such as Europe/Paris);
the middleware activates it for each request of the tenant, so templates, forms and
the admin's date widgets all show and read times in it.
"""

import logging
import zoneinfo
from datetime import datetime
from functools import lru_cache

from django import forms
from django.utils import dateformat, timezone

logger = logging.getLogger(__name__)

UTC = zoneinfo.ZoneInfo("UTC")


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """The IANA zone names this machine knows, sorted (the choices of the tenant's setting)."""
    return tuple(sorted(zoneinfo.available_timezones()))


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def zone_of(tenant) -> zoneinfo.ZoneInfo:
    """The tenant's zone; UTC when it has none or its name is unknown (a bad row must not break every page)."""
    name = getattr(tenant, "time_zone", "") or "UTC"
    try:
        return _zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        logger.warning("tenant %s has an unknown time zone %r: showing times in UTC", getattr(tenant, "pk", None), name)
        return UTC


def when(moment: datetime, zone=None) -> str:
    """A moment as the site writes it: "9 Dec 2025 at 14:00 CET" (in `zone`, by default the active one)."""
    local = timezone.localtime(moment, zone)
    return f"{dateformat.format(local, 'j M Y')} at {dateformat.format(local, 'H:i T')}"


class LocalDateTimeInput(forms.DateTimeInput):
    """The browser's own date and time picker: one labelled box, no script, read in the active zone.

    The admin's own split date and time boxes carry no label of their own and their
    calendar pop-up sets inline styles the site's Content-Security-Policy refuses.
    """

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs={"step": "1", **(attrs or {})}, format="%Y-%m-%dT%H:%M:%S")


# ModelAdmin.formfield_overrides for models.DateTimeField: times typed and shown in the tenant's zone
ADMIN_DATETIME = {"form_class": forms.DateTimeField, "widget": LocalDateTimeInput}


class TenantTimeZoneMiddleware:
    """Activate the request's tenant's zone (after tenants.middleware.TenantMiddleware sets the tenant).

    Requests without a tenant (health checks, unknown hosts) keep the default, UTC. The
    zone is put back afterwards: a worker thread serves other tenants next.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return self.get_response(request)
        timezone.activate(zone_of(tenant))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
