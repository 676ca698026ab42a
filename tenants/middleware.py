import functools

from django.contrib.auth.models import AnonymousUser
from django.db import OperationalError, connection, transaction
from django.http import HttpResponseNotFound
from django.template.loader import render_to_string

from . import rls
from .models import Tenant

# Paths that answer on any host, tenant or not.
TENANTLESS_PREFIXES = ("/health/", "/static/")


def host_without_port(request) -> str:
    host = request.get_host().lower()
    if host.startswith("["):  # IPv6 literal
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0]


HOST_PLACEHOLDER = "host.placeholder.invalid"


@functools.cache
def _lookup_sql() -> tuple[str, tuple, int]:
    """The tenant lookup, compiled by the ORM once per process: (SQL, parameters, the host's index).

    Tenant.objects.for_host() stays its one definition; every request then runs the
    compiled statement with its own host instead of building the query again.
    """
    query = Tenant.objects.for_host(HOST_PLACEHOLDER).extra(select=rls.BEFORE_AND_SET).order_by()[:1]  # noqa: S610
    sql, params = query.query.sql_with_params()
    return sql, tuple(params), params.index(HOST_PLACEHOLDER)


def tenant_for_host(host: str) -> Tenant | None:
    """The active tenant served on `host`, its id set for the transaction (row-level security)."""
    sql, params, at = _lookup_sql()
    found = list(Tenant.objects.raw(sql, [*params[:at], host.lower(), *params[at + 1 :]]))
    return found[0] if found else None


class _LostConnection(Exception):
    """The request's first query found its connection dead (the server restarted since it was opened)."""


def connection_was_lost() -> bool:
    """Whether the connection the last query ran on was open and is now closed by the server."""
    return connection.connection is not None and connection.connection.closed


def dead_connection_retries() -> int:
    """How many dead connections one request may replace: each pooled connection at most once."""
    pool = connection.settings_dict["OPTIONS"].get("pool")
    return pool.get("max_size", 4) if isinstance(pool, dict) else 1


class TenantMiddleware:
    """Find the request's tenant from its host name and set `request.tenant`.

    An unknown (or inactive) host gets a plain 404, never another tenant's site.
    A session belonging to another tenant's user counts as anonymous here, so a
    user of tenant A is nobody on tenant B's host.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        if request.path_info.startswith(TENANTLESS_PREFIXES):
            return self.get_response(request)
        # The rest of the request is one transaction that sees the tenant's rows only
        # (row-level security, tenants/rls.py): the query that finds the tenant also sets
        # it for the transaction. A server error rolls the transaction back.
        nested = connection.in_atomic_block  # a test's transaction: put its settings back after
        retries = 0 if nested else dead_connection_retries()
        while True:
            try:
                return self._serve(request, nested)
            except _LostConnection as lost:
                # A connection kept from before a PostgreSQL restart (pooled, or persistent
                # between checks) fails on its first use. Nothing of the request has run yet,
                # and the dead connection was given back and dropped: try the next one.
                if not retries:
                    raise lost.__cause__ from None  # the database error: answered 503
                retries -= 1

    def _serve(self, request, nested: bool):
        with transaction.atomic():
            try:
                tenant = tenant_for_host(host_without_port(request))
            except OperationalError as error:
                if not connection_was_lost():
                    raise
                raise _LostConnection from error
            if tenant is None:
                return HttpResponseNotFound(render_to_string("unknown_host.html", {"host": request.get_host()}))
            request.tenant = tenant
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated and not user.is_superuser and user.tenant_id != tenant.pk:
                request.user = AnonymousUser()
            response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True)
            elif nested:
                rls.restore((tenant._rls_tenant_before, tenant._rls_bypass_before))
        return response


class PlatformBypassMiddleware:
    """A platform superuser's request sees every tenant's rows, and says so in the audit log.

    Runs after the audit context is bound, so the audit row names the request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            getattr(request, "tenant", None) is not None
            and user is not None
            and user.is_authenticated
            and user.is_superuser
            and user.tenant_id is None
        ):
            rls.bypass(f"platform superuser: {request.method} {request.path}"[:255], actor=user)
        return self.get_response(request)
