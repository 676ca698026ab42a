"""Health endpoints.

`/health/` is the short answer load balancers and operators poll: it never raises,
answers on any host, is never cached, and is 200 exactly when the database answers.
`/health/detail/` is django-health-check's detailed page (database, cache,
migrations, disk).
"""

import contextlib
import dataclasses
import logging
import secrets

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from tenants.middleware import connection_was_lost, dead_connection_retries
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


@dataclasses.dataclass
class Migrations(HealthCheck):
    """Fails when the database lacks migrations the code has."""

    alias: str = DEFAULT_DB_ALIAS

    def run(self):
        try:
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
            with connections[self.alias].cursor() as cursor:
                archive = dbstats.archiving(cursor)
        except Exception as exc:
            raise ServiceUnavailable("Could not read the WAL archiver's state") from exc
        problem = dbstats.archive_problem(archive)
        if problem:
            raise ServiceUnavailable(problem)
