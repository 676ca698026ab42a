"""The cache backends: reads counted for /metrics, and the database cache failing like Redis.

With METRICS_ENABLED every get() is counted under django-prometheus' names
(django_cache_get_total, _hits_total, _misses_total, _fail_total; label backend "redis"
or "database"), each labelled counter looked up once, not per read.

The database cache (REDIS_URL unset) fails the way Redis fails: as a miss.

Django's DatabaseCache runs its statements on the request's own connection. When one
fails (the cache table is missing because `createcachetable` was never run, or the
table is locked away), PostgreSQL aborts the whole transaction the request runs in,
so every later query of the page fails too and the page answers 500. Here each cache
statement runs in a savepoint of its own when a transaction is open: a failure rolls
back only the savepoint, is logged, and the caller sees a miss (get), a write that did
not happen (set, add, delete) or an empty cache, exactly as with Redis down.
"""

import logging

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache
from django.db import DatabaseError, connections, router, transaction
from django_prometheus.cache import metrics
from django_redis.cache import RedisCache

from vulhub.lib import replica

_MISSING = object()

logger = logging.getLogger(__name__)


class CountedReads:
    """The four read counters of one backend label."""

    def __init__(self, backend: str):
        self.total = metrics.django_cache_get_total.labels(backend=backend)
        self.hits = metrics.django_cache_hits_total.labels(backend=backend)
        self.misses = metrics.django_cache_misses_total.labels(backend=backend)
        self.failures = metrics.django_cache_get_fail_total.labels(backend=backend)

    def get(self, read, default):
        """`read(_MISSING)` counted: a hit, a miss (then `default`), or a failure (raised)."""
        self.total.inc()
        try:
            value = read(_MISSING)
        except Exception:
            self.failures.inc()
            raise
        if value is _MISSING:
            self.misses.inc()
            return default
        self.hits.inc()
        return value


class CountedRedisCache(RedisCache):
    """django-redis' cache, its reads counted when METRICS_ENABLED (REDIS_URL set)."""

    reads = None

    def get(self, key, default=None, version=None, client=None):
        if not settings.METRICS_ENABLED:
            return super().get(key, default, version, client)
        if self.reads is None:
            CountedRedisCache.reads = CountedReads("redis")
        base = super().get
        return self.reads.get(lambda missing: base(key, missing, version, client), default)


class MissingIsAMissDatabaseCache(DatabaseCache):
    """Django's DatabaseCache whose database errors are misses, never a broken transaction."""

    def _attempt(self, operation: str, write: bool, call, fallback):
        """`call()`, in a savepoint when a transaction is open; `fallback` when the database fails it."""
        db = (router.db_for_write if write else router.db_for_read)(self.cache_model_class)
        try:
            if connections[db].in_atomic_block:
                with transaction.atomic(using=db, savepoint=True):
                    return call()
            return call()
        except DatabaseError as exc:
            if operation == "read" and settings.METRICS_ENABLED:
                self._reads().failures.inc()
            logger.warning(
                "database cache %s failed (%s): served as a miss; is the table %s there? `manage.py migrate` makes it",
                operation,
                str(exc).strip().split("\n", 1)[0] or type(exc).__name__,
                self._table,
            )
            return fallback

    reads = None

    def _reads(self) -> CountedReads:
        if self.reads is None:
            MissingIsAMissDatabaseCache.reads = CountedReads("database")
        return self.reads

    def get(self, key, default=None, version=None):
        if not settings.METRICS_ENABLED:
            return super().get(key, default, version)
        # a failed read is a miss here (counted as a failure too, in _attempt)
        base = super().get
        return self._reads().get(lambda missing: base(key, missing, version), default)

    def get_many(self, keys, version=None):
        base = super().get_many
        return self._attempt("read", False, lambda: base(keys, version), {})

    def has_key(self, key, version=None):
        base = super().has_key
        return self._attempt("read", False, lambda: base(key, version), False)

    def _base_set(self, mode, key, value, timeout=DEFAULT_TIMEOUT):
        if replica.reading_from_replica():
            return False  # the table is on the primary: a standby refuses the write (vulhub/lib/replica.py)
        base = super()._base_set
        return self._attempt("write", True, lambda: base(mode, key, value, timeout), False)

    def _base_delete_many(self, keys):
        if replica.reading_from_replica():
            return False
        base = super()._base_delete_many
        return self._attempt("delete", True, lambda: base(keys), False)

    def clear(self):
        return self._attempt("clear", True, super().clear, None)
