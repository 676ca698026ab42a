"""Health endpoints.

`/health/` is the short answer load balancers and operators poll: it never raises,
answers on any host, is never cached, and is 200 exactly when the database answers.
`/health/detail/` is django-health-check's detailed page (database, cache,
migrations, WAL archive, disk), for operators only (HealthDetailView).
"""

import contextlib
import dataclasses
import hmac
import logging
import os
import pathlib
import secrets
import socket

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.core.cache import cache
from django.core.exceptions import DisallowedHost
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from health_check.base import HealthCheck
from health_check.contrib import psutil as psutil_checks
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from tenants import rls
from tenants.middleware import connection_was_lost, dead_connection_retries, enter_host, host_without_port
from vulhub.ops import dbstats

logger = logging.getLogger(__name__)


def database_is_up(alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the database answers `SELECT 1`.

    A connection the server dropped since it was opened (pooled, or persistent between
    checks: PostgreSQL restarted) says nothing about the database: it is given back and
    the next one tried, as the tenant lookup does for every page.
    """
    connection = connections[alias]
    retries = dead_connection_retries() if alias == DEFAULT_DB_ALIAS else 0
    while True:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone() == (1,)
        except Exception:
            lost = connection_was_lost()
            # Drop the broken connection so the next attempt (or request) starts afresh.
            with contextlib.suppress(Exception):
                connection.close()
            if not lost or not retries:
                logger.warning("health: database check failed", exc_info=True)
                return False
            retries -= 1


def cache_is_up() -> bool:
    key = f"health:{secrets.token_hex(8)}"
    try:
        cache.set(key, "ok", timeout=5)
        ok = cache.get(key) == "ok"
        cache.delete(key)
        return ok
    except Exception:
        logger.warning("health: cache check failed", exc_info=True)
        return False


def health(request):
    database_up = database_is_up()
    cache_up = cache_is_up()
    body = {
        "status": "healthy" if database_up else "unhealthy",
        "database": "connected" if database_up else "disconnected",
        "cache": "connected" if cache_up else "disconnected",
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
    }
    response = JsonResponse(body, status=200 if database_up else 503)
    add_never_cache_headers(response)
    return response


# The checks run in worker threads, each with a connection of its own (a pooled one when
# the pool is on): temporary_connection() gives it back when the check ends, as the
# package's Database check does. Kept open, every probe of the page held two of them.


@dataclasses.dataclass
class Migrations(HealthCheck):
    """Fails when the database lacks migrations the code has."""

    alias: str = DEFAULT_DB_ALIAS

    def run(self):
        try:
            with connections[self.alias].temporary_connection():
                executor = MigrationExecutor(connections[self.alias])
                plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception as exc:
            raise ServiceUnavailable("Could not read the migration state") from exc
        if plan:
            raise ServiceUnavailable(f"{len(plan)} migration(s) not applied")


@dataclasses.dataclass
class WalArchive(HealthCheck):
    """Fails while the server's WAL archiving fails (pg_stat_archiver): WAL then piles up until the disk is full."""

    alias: str = DEFAULT_DB_ALIAS

    def run(self):
        try:
            with connections[self.alias].temporary_connection() as cursor:
                archive = dbstats.archiving(cursor)
        except Exception as exc:
            raise ServiceUnavailable("Could not read the WAL archiver's state") from exc
        problem = dbstats.archive_problem(archive)
        if problem:
            raise ServiceUnavailable(problem)


@dataclasses.dataclass
class Disk(psutil_checks.Disk):
    """django-health-check's disk check, its path and the server's host name kept out of the report.

    The package names a check by its repr (and labels its metrics with the same fields):
    `Disk(path='/srv/vulhub', hostname='web-3')` told whoever read the page where the
    code is installed and what the machine is called.
    """

    path: pathlib.Path | str = dataclasses.field(default_factory=os.getcwd, repr=False)
    hostname: str = dataclasses.field(default_factory=socket.gethostname, init=False, repr=False)


def has_detail_token(request) -> bool:
    """Whether the request carries `Authorization: Bearer <settings.HEALTH_DETAIL_TOKEN>`."""
    return has_bearer_token(request, settings.HEALTH_DETAIL_TOKEN)


def has_bearer_token(request, expected: str) -> bool:
    """Whether the request carries `Authorization: Bearer <expected>` (never, when `expected` is empty).

    Compared in constant time, so the answer's timing does not spell the token out.
    """
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def is_staff_of_the_host(request) -> bool:
    """Whether the session's user is staff of the tenant served on the request's host.

    /health/ paths skip the tenant middleware (they answer on any host), so the tenant and
    the user are looked up here, as that middleware does for a page: in a transaction
    that sees only the host's tenant's rows (row-level security), which is where its
    users are. A platform superuser counts too. A request without a session cookie costs
    no query.
    """
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False
    try:
        host = host_without_port(request)
    except DisallowedHost:
        return False
    nested = connection.in_atomic_block  # a test's transaction: put its context back after
    with transaction.atomic():
        tenant, before = enter_host(host)  # as the tenant middleware starts a page
        user = auth.get_user(request) if tenant is not None else None
        if nested:
            rls.leave_request_role(before)
    if tenant is None:
        return False
    platform_superuser = user.is_superuser and user.tenant_id is None
    return user.is_active and user.is_staff and (user.tenant_id == tenant.pk or platform_superuser)


def may_see_detail(request) -> bool:
    return has_detail_token(request) or is_staff_of_the_host(request)


class HealthDetailView(HealthCheckView):
    """django-health-check's detailed page, for a tenant's staff and the operators' monitor.

    Anyone else gets the site's ordinary 404, whatever the method: the same answer as
    for a path that does not exist, so the page gives no hint it is there.
    """

    checks = (
        "health_check.checks.Database",
        "health_check.checks.Cache",
        Migrations,
        WalArchive,
        Disk,
    )

    async def dispatch(self, request, *args, **kwargs):
        if not await sync_to_async(may_see_detail)(request):
            raise Http404("No page here.")
        return await super().dispatch(request, *args, **kwargs)
