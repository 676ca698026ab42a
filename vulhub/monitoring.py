"""/metrics for Prometheus: who may read it, and what it shows (docs/monitoring.md).

Requests, statements and cache reads are counted under django-prometheus' names (by
RequestMetricsMiddleware here, vulhub/ops/postgresql and vulhub/cache.py); vulhub.lib.metrics
counts what classes do. Both are summed here over every gunicorn worker of the node when
PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it): prometheus_client's
multiprocess mode, one file per worker, kept after a worker dies so no count goes back.

A few gauges are read when Prometheus scrapes, not counted: the write-ups waiting per
class (kept in the cache METRICS_SCRAPE_CACHE_SECONDS) and the newest backups (5 minutes):
several workers, nodes or Prometheus servers scraping cost one read of each per period.

The page is not public. It answers a request with `Authorization: Bearer <METRICS_TOKEN>`
or from an address in METRICS_ALLOWED_NETWORKS; any other request goes on through the
site as if there were no such page (a 404), as does every request with METRICS_ENABLED off.
"""

import datetime
import logging
import os
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from scoring.selectors import pending_writeups_by_tenant
from vulhub.lib.client_ip import client_ip, parse_address

from .health import has_bearer_token
from .ops import dbstats

logger = logging.getLogger(__name__)

PATHS = ("/metrics", "/metrics/")
PENDING_KEY = "metrics:pending:v2"
BACKUPS_KEY = "metrics:backups:v2"
# Backups change daily: listing them (a folder, a bucket, `pgbackrest info`) every 5 minutes
# is plenty, and a scrape waits at most BACKUPS_WAIT_SECONDS for it.
BACKUPS_SECONDS = 300
BACKUPS_WAIT_SECONDS = 3
# A value older than its period is still served while one scrape reads it again.
STALE_SECONDS = 24 * 3600
EMPTY = {"pending": [], "backups": [], "backup_listing": [], "ok": {}}
# The label of the classes past METRICS_TENANT_LABEL_LIMIT, summed: a platform of
# thousands of classes still makes a bounded number of series.
OTHER_TENANTS = "(other classes)"  # no slug can be this


class MetricsMiddleware:
    """Answer GET /metrics for a monitor, before the host check and the tenant lookup.

    Prometheus scrapes each node by its address (`web:8000`), which is neither in
    ALLOWED_HOSTS nor a tenant's domain: like /health/, this page answers on any host.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            request.path_info in PATHS
            and request.method in ("GET", "HEAD")
            and settings.METRICS_ENABLED
            and may_read_metrics(request)
        ):
            return metrics_response()
        return self.get_response(request)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
UNNAMED_VIEW = "<unnamed view>"
REQUESTS = Counter(
    "django_http_requests_total_by_view_transport_method",
    "Requests, by the URL name of their view, http or https, and method.",
    ["view", "transport", "method"],
)
RESPONSES = Counter(
    "django_http_responses_total_by_status_view_method",
    "Responses, by status code, the URL name of their view, and method.",
    ["status", "view", "method"],
)
LATENCY = Histogram(
    "django_http_requests_latency_seconds_by_view_method",
    "Time from the request's arrival to its response, every middleware included, by view and method.",
    ["view", "method"],
    buckets=settings.PROMETHEUS_LATENCY_BUCKETS,
)


class RequestMetricsMiddleware:
    """Count every request and time it, first in and last out of the middleware.

    The three request metrics of django-prometheus' middleware, under its names (the
    alerts and dashboards written for it work unchanged), without the twenty other
    counters it updates for each request: with them a cached leaderboard page took about
    0.4 ms more CPU, 13 to 18% (docs/performance.md, scenario 16). Labels come from small sets only:
    the URL's name (never its path), the method (anything unknown is one label) and the
    status code. Each labelled child is looked up once per worker, then kept.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.children: dict[tuple, tuple] = {}

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        if settings.METRICS_ENABLED:
            match = getattr(request, "resolver_match", None)
            view = (match.view_name if match is not None else None) or UNNAMED_VIEW
            method = request.method if request.method in METHODS else "<invalid method>"
            key = (view, method, response.status_code, request.is_secure())
            children = self.children.get(key)
            if children is None:
                children = self.children[key] = (
                    REQUESTS.labels(view, "https" if key[3] else "http", method),
                    RESPONSES.labels(str(response.status_code), view, method),
                    LATENCY.labels(view, method),
                )
            children[0].inc()
            children[1].inc()
            children[2].observe(time.perf_counter() - started)
        return response


def may_read_metrics(request) -> bool:
    """The bearer token (compared in constant time), or an address of an allowed network."""
    if has_bearer_token(request, settings.METRICS_TOKEN):
        return True
    networks = settings.METRICS_ALLOWED_NETWORKS
    if not networks:
        return False
    if settings.BEHIND_PROXY and not _forwarded_client_readable(request):
        return False  # client_ip() would fall back to REMOTE_ADDR: our proxy's, maybe allowed
    address = parse_address(client_ip(request) or "")
    return address is not None and any(address in network for network in networks)


def _forwarded_client_readable(request) -> bool:
    """Behind our proxies: no X-Forwarded-For (a direct scrape), or one whose client entry is an address."""
    entries = [entry for entry in request.headers.get("X-Forwarded-For", "").split(",") if entry.strip()]
    if not entries:
        return True
    return parse_address(entries[-min(settings.PROXY_COUNT, len(entries))]) is not None


def metrics_response() -> HttpResponse:
    # the classic text format, which every Prometheus reads (2.x included)
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
    response["Cache-Control"] = "no-store"
    return response


def exposition() -> bytes:
    """Every metric in Prometheus' text format: the counted ones, then the scraped gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    try:
        scraped = generate_latest(SCRAPED)
    except Exception:  # the counted metrics are still worth serving
        logger.exception("metrics: the scrape-time gauges failed")
        scraped = b""
    return generate_latest(counted) + scraped


class ScrapeTimeCollector:
    """Gauges read when Prometheus scrapes (kept in the cache a short while)."""

    def collect(self):
        values = scrape_values()
        pending = GaugeMetricFamily(
            "vulhub_pending_writeups", "Write-ups waiting for grading, per class.", labels=["tenant"]
        )
        oldest = GaugeMetricFamily(
            "vulhub_pending_writeup_oldest_age_seconds",
            "Age of the oldest write-up waiting for grading, per class (0: none waiting).",
            labels=["tenant"],
        )
        for tenant, count, age in values["pending"]:
            pending.add_metric([tenant], count)
            oldest.add_metric([tenant], age)
        yield pending
        yield oldest
        newest = GaugeMetricFamily(
            "vulhub_backup_newest_timestamp_seconds",
            "When the newest backup was taken, as a Unix time (0: there is none).",
            labels=["tool", "repo"],
        )
        listed = GaugeMetricFamily(
            "vulhub_backup_listing_ok",
            "1 when the backups could be listed, 0 when listing them failed.",
            labels=["tool"],
        )
        for tool, repo, stamp in values["backups"]:
            newest.add_metric([tool, repo], stamp)
        for tool, ok in values["backup_listing"]:
            listed.add_metric([tool], ok)
        yield newest
        yield listed
        collected = GaugeMetricFamily(
            "vulhub_scrape_collect_ok",
            "1 when this part of the scrape-time gauges could be read, 0 when it failed (see the log).",
            labels=["part"],
        )
        for part, ok in values["ok"].items():
            collected.add_metric([part], ok)
        yield collected


SCRAPED = CollectorRegistry(auto_describe=False)
SCRAPED.register(ScrapeTimeCollector())


def scrape_values() -> dict:
    """The scrape-time values: each part from the cache while fresh, else read again by one worker."""
    pending = fresh(PENDING_KEY, settings.METRICS_SCRAPE_CACHE_SECONDS, read_pending)
    backups = fresh(BACKUPS_KEY, BACKUPS_SECONDS, read_backups, wait=BACKUPS_WAIT_SECONDS)
    return {**EMPTY, **(pending or {}), **(backups or {}), "ok": {**(pending or {}).get("ok", {})}}


def forget_scrape_values() -> None:
    """Drop the cached scrape-time values (the next scrape reads them again)."""
    cache.delete_many([PENDING_KEY, BACKUPS_KEY, f"{PENDING_KEY}:refreshing", f"{BACKUPS_KEY}:refreshing"])


def fresh(key: str, seconds: int, read, *, wait: float | None = None):
    """`read()`'s value, kept `seconds` in the cache; None when there is none yet.

    Stale, it is read again by one scrape only (the others serve the old value meanwhile);
    with `wait`, that scrape waits at most so long and leaves the read to finish in the
    background, its value for the next scrape: a slow backup store never holds a worker
    past Prometheus' scrape timeout. A cache that is down costs a read each scrape.
    """
    entry = _quietly(cache.get, key)
    if entry is not None and time.time() - entry[0] < seconds:
        return entry[1]
    if _quietly(cache.add, f"{key}:refreshing", 1, 60) is False:  # another scrape is reading it
        return entry[1] if entry is not None else None
    result = {}

    def refresh():
        try:
            result["value"] = read()
            _quietly(cache.set, key, (time.time(), result["value"]), STALE_SECONDS)
        finally:
            _quietly(cache.delete, f"{key}:refreshing")
            if wait is not None:  # a thread of its own: its database connection (the cache's) goes with it
                connection.close()

    if wait is None:
        refresh()
    else:
        reader = threading.Thread(target=refresh, name=f"metrics {key}", daemon=True)
        reader.start()
        reader.join(wait)
    if "value" in result:
        return result["value"]
    return entry[1] if entry is not None else None


def _quietly(call, *args):
    try:
        return call(*args)
    except Exception:
        logger.warning("metrics: the cache failed", exc_info=True)
        return None


def read_pending() -> dict:
    """The write-ups waiting, per class (bounded), and whether they could be read."""
    try:
        rows = pending_writeups_by_tenant()
    except DatabaseError:
        logger.warning("metrics: pending write-ups could not be read", exc_info=True)
        return {"pending": [], "ok": {"pending_writeups": 0}}
    return {
        "pending": bounded_by_tenant(rows, settings.METRICS_TENANT_LABEL_LIMIT, time.time()),
        "ok": {"pending_writeups": 1},
    }


def read_backups() -> dict:
    """The newest backup of each tool that is set up here, and whether its backups could be listed.

    `manage.py backup`'s where backups are scheduled (DBSTATS_MAX_BACKUP_AGE_HOURS set, as
    `dbstats --check` judges them), pgBackRest's where `pitr setup` wrote PITR_CONFIG.
    """
    now = time.time()
    values = {"backups": [], "backup_listing": []}
    if settings.DBSTATS_THRESHOLDS.get("backup_age_hours"):
        dump = dbstats.backup_freshness(settings.DATABASES["default"]["NAME"])
        values["backup_listing"].append(("dump", 0 if dump.get("error") else 1))
        if not dump.get("error"):
            values["backups"].append(("dump", "", _unix_time(dump.get("newest_taken_at"))))
    pitr = dbstats.pitr_freshness(timeout=BACKUPS_WAIT_SECONDS * 4)
    if pitr is not None:
        values["backup_listing"].append(("pgbackrest", 0 if pitr.get("error") else 1))
        for repo, newest in pitr.get("repos", {}).items():
            age = newest.get("newest_age_hours")
            values["backups"].append(("pgbackrest", repo, 0.0 if age is None else round(now - age * 3600)))
    return values


def bounded_by_tenant(rows, limit: int, now: float) -> list[tuple[str, int, float]]:
    """(tenant, pending, oldest age) for the `limit` busiest classes; the rest summed as OTHER_TENANTS."""
    kept = [(row.tenant, row.pending, max(0.0, now - row.oldest.timestamp())) for row in rows[:limit]]
    rest = rows[limit:]
    if rest:
        oldest = min(row.oldest for row in rest)
        kept.append((OTHER_TENANTS, sum(row.pending for row in rest), max(0.0, now - oldest.timestamp())))
    return kept


def _unix_time(iso: str | None) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp() if iso else 0.0
