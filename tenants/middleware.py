from django.contrib.auth.models import AnonymousUser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connection, transaction
from django.db.backends.postgresql.base import ServerBindingCursor
from django.http import HttpResponseNotFound
from django.template.loader import render_to_string

from vulhub.lib import replica

from . import rls
from .models import Tenant

# Paths that answer on any host, tenant or not.
TENANTLESS_PREFIXES = ("/health/", "/static/")


def host_without_port(request) -> str:
    host = request.get_host().lower()
    if host.startswith("["):  # IPv6 literal
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0]


def tenant_for_host(host: str) -> Tenant | None:
    """The active tenant served on `host`, entered for the transaction (row-level security).

    One statement: vulhub_enter_host() checks the app's proof, finds the tenant (as
    Tenant.objects.for_host() does) and seals it into the transaction. The proof travels
    as a bound parameter (server-side binding), so it never shows in pg_stat_activity,
    where another session of the app role could read it.
    """
    stamp, proof = rls.host_proof(host.lower())
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection._prepare_cursor(ServerBindingCursor(connection.connection))
    with cursor:
        cursor.execute("SELECT * FROM vulhub_enter_host(%s, %s, %s)", [host.lower(), stamp, proof])
        row = cursor.fetchone()
        if row is None:
            return None
        names = [column.name for column in cursor.description]
    values = dict(zip(names, row, strict=True))
    loaded = []
    for field in Tenant._meta.concrete_fields:
        value = values[field.column]
        if hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, connection)
        loaded.append(value)
    # always "default": on a page served from the replica, that is the replica's connection
    return Tenant.from_db(DEFAULT_DB_ALIAS, [field.attname for field in Tenant._meta.concrete_fields], loaded)


def enter_host(host: str) -> tuple[Tenant | None, tuple[str, str] | None]:
    """Start a request's work in the current transaction: the tenant served on `host`, entered.

    In tests the request also acts as the app role until the transaction ends; the second
    value is what rls.leave_request_role() puts back (None live).
    """
    before = None
    if rls.request_role:
        connection.ensure_connection()
        with connection.wrap_database_errors:
            before = rls.enter_request_role()
    return tenant_for_host(host), before


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
        # (row-level security, tenants/rls.py): the query that finds the tenant also enters
        # it for the transaction. A server error rolls the transaction back.
        nested = connection.in_atomic_block  # a test's transaction: put its settings back after
        if not nested and replica.serves(request):
            response = self._serve_from_replica(request)
            if response is not None:
                return response
        response = self._serve_from_primary(request, nested)
        if replica.configured():
            replica.pin_after_write(request, response)
        return response

    def _serve_from_replica(self, request):
        """A page that only reads, from the replica (vulhub/lib/replica.py); None: the primary serves it instead."""
        # the session comes from where it is written (the primary, or its cache), never a replica behind it
        request.session.get("_auth_user_id")
        try:
            with replica.serving_from_replica() as failures:
                response = self._serve(request, nested=False)
        except (DatabaseError, _LostConnection) as error:  # nothing of the page was sent
            self._replica_failed(error)
            return None
        if failures and response.status_code >= 500:
            # a query of the page failed there (the replica went away, a recovery conflict
            # cancelled it, the page wrote): these pages only read, so the primary serves it
            self._replica_failed(failures[-1])
            return None
        return response

    @staticmethod
    def _replica_failed(error: BaseException) -> None:
        """The primary serves the page again; a replica that failed (not one that refused a write) is left a while."""
        replica.retried()
        if not replica.wrote(error):
            replica.HEALTH.failed(error)

    def _serve_from_primary(self, request, nested: bool):
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
                tenant, before = enter_host(host_without_port(request))
            except OperationalError as error:
                if not connection_was_lost():
                    raise
                raise _LostConnection from error
            if tenant is None:
                response = HttpResponseNotFound(render_to_string("unknown_host.html", {"host": request.get_host()}))
            else:
                request.tenant = tenant
                user = getattr(request, "user", None)
                if user is not None and user.is_authenticated and not user.is_superuser and user.tenant_id != tenant.pk:
                    request.user = AnonymousUser()
                response = self.get_response(request)
                if response.status_code >= 500:
                    transaction.set_rollback(True)
            if nested and not connection.needs_rollback:
                rls.leave_request_role(before)
        return response
