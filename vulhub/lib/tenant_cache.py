"""Caches of one tenant's pages and lists: versioned, and failing open.

Each tenant's entries of a cache live under a version number of their own, kept in
the cache. A write that changes what is cached bumps the version when its
transaction commits, so a stale entry is never read again (it expires on its own)
and tenants never share keys. A cache that cannot be reached is a miss: the page is
made from the database, and a write still commits without its bump (logged).
"""

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from prometheus_client import Counter

from . import metrics, replica

logger = logging.getLogger(__name__)


class TenantCache:
    """A named cache of per-tenant entries (`TenantCache("leaderboard")`)."""

    def __init__(self, name: str, seconds: int, *, counter: Counter | None = None):
        self.name = name
        self.seconds = seconds
        # counts reads by result (hit, miss): a metric of vulhub.lib.metrics
        self.counter = counter

    def version_key(self, tenant_id: int) -> str:
        return f"{self.name}:{tenant_id}:version"

    def version(self, tenant_id: int) -> int | None:
        """The tenant's current version; None when the cache cannot be reached."""
        try:
            return cache.get_or_set(self.version_key(tenant_id), 1, timeout=None)
        except Exception:
            logger.warning("%s cache unreachable", self.name, exc_info=True)
            return None

    def invalidate_on_commit(self, tenant_id: int) -> None:
        """After commit, move the tenant's entries to a new version (the old ones expire)."""

        def bump():
            key = self.version_key(tenant_id)
            try:
                try:
                    cache.incr(key)
                except ValueError:  # no version yet
                    cache.set(key, 2, timeout=None)
            except Exception:
                # The change is committed; a cache that is down must not turn it into an error.
                logger.warning("%s cache of tenant %s not invalidated", self.name, tenant_id, exc_info=True)

        transaction.on_commit(bump)

    def get_or_load(self, tenant_id: int, version: int | None, what: str, load: Callable[[], Any]) -> Any:
        """`load()`, kept under the tenant's `version` (read once per page with `version()`).

        Straight from `load()` when the version is None (the cache is down). A None from
        `load()` is not kept.
        """
        if version is None:
            return load()
        key = f"{self.name}:{tenant_id}:v{version}:{what}"
        # A page served from a replica (vulhub.lib.replica) reads what the primary stored,
        # else what a replica stored: that may predate the version's change by the replica's
        # lag, so it is kept apart, where the primary's readers (who may just have written)
        # never look, and only for REPLICA_MAX_LAG_SECONDS. Both in one round trip.
        from_replica = replica.reading_from_replica()
        keys = [key, f"{key}:replica"] if from_replica else [key]
        try:
            found = cache.get_many(keys) if from_replica else {key: cache.get(key)}
        except Exception:
            logger.warning("%s cache unreachable", self.name, exc_info=True)
            return load()  # and no write: it would only wait on the same cache
        value = next((found[k] for k in keys if found.get(k) is not None), None)
        if self.counter is not None:
            metrics.count(self.counter, result="miss" if value is None else "hit")
        if value is None:
            value = load()
            # the database cache is a table: a standby cannot write it (REDIS_URL unset)
            if value is not None and not (from_replica and not settings.REDIS_URL):
                seconds = max(1, int(settings.REPLICA_MAX_LAG_SECONDS)) if from_replica else self.seconds
                with contextlib.suppress(Exception):
                    cache.set(keys[-1], value, min(self.seconds, seconds))
        return value
