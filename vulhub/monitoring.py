"""/metrics for Prometheus: who may read it, and what it shows (docs/monitoring.md).

django-prometheus counts requests, database and cache calls; vulhub.lib.metrics counts
what classes do. Both are summed here over every gunicorn worker of the node when
PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it): prometheus_client's
multiprocess mode, one file per worker, kept after a worker dies so no count goes back.

A few gauges are read when Prometheus scrapes, not counted: the write-ups waiting per
class, and the newest backups. They are kept in the cache for METRICS_SCRAPE_CACHE_SECONDS,
so several workers, nodes or Prometheus servers scraping cost one read of each per period.

The page is not public. It answers a request with `Authorization: Bearer <METRICS_TOKEN>`
or from an address in METRICS_ALLOWED_NETWORKS; any other request goes on through the
site as if there were no such page (a 404), as does every request with METRICS_ENABLED off.
"""

import datetime
import hmac
import logging
import os
import time

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from scoring.selectors import pending_writeups_by_tenant
from vulhub.lib.client_ip import client_ip, parse_address

from .ops import dbstats

logger = logging.getLogger(__name__)

PATHS = ("/metrics", "/metrics/")
SCRAPE_CACHE_KEY = "metrics:scrape:v1"
# The label of the classes past METRICS_TENANT_LABEL_LIMIT, summed: a platform of
# thousands of classes still makes a bounded number of series.
OTHER_TENANTS = "_other"


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
    counters it updates for each request: those cost about 0.1 ms a request, 4% of a
    cached page (docs/performance.md, scenario 16). Labels come from small sets only:
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
    expected = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if expected and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode()):
        return True
    networks = settings.METRICS_ALLOWED_NETWORKS
    if not networks:
        return False
    address = parse_address(client_ip(request) or "")
    return address is not None and any(address in network for network in networks)


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
    """The scrape-time values, from the cache while fresh; a cache that is down only costs the reads."""
    try:
        values = cache.get(SCRAPE_CACHE_KEY)
    except Exception:
        values = None
    if values is None:
        values = read_scrape_values()
        try:
            cache.set(SCRAPE_CACHE_KEY, values, settings.METRICS_SCRAPE_CACHE_SECONDS)
        except Exception:
            logger.warning("metrics: the cache could not keep the scrape-time gauges", exc_info=True)
    return values


def read_scrape_values() -> dict:
    now = time.time()
    values = {"pending": [], "backups": [], "backup_listing": [], "ok": {}}
    try:
        rows = pending_writeups_by_tenant()
    except DatabaseError:
        logger.warning("metrics: pending write-ups could not be read", exc_info=True)
        values["ok"]["pending_writeups"] = 0
    else:
        values["ok"]["pending_writeups"] = 1
        values["pending"] = bounded_by_tenant(rows, settings.METRICS_TENANT_LABEL_LIMIT, now)

    database = settings.DATABASES["default"]["NAME"]
    dump = dbstats.backup_freshness(database)
    values["backup_listing"].append(("dump", 0 if dump.get("error") else 1))
    if not dump.get("error"):
        values["backups"].append(("dump", "", _unix_time(dump.get("newest_taken_at"))))
    pitr = dbstats.pitr_freshness()
    if pitr is not None:
        values["backup_listing"].append(("pgbackrest", 0 if pitr.get("error") else 1))
        for repo, newest in pitr.get("repos", {}).items():
            age = newest.get("newest_age_hours")
            values["backups"].append(("pgbackrest", repo, 0.0 if age is None else round(now - age * 3600)))
    return values


def bounded_by_tenant(rows, limit: int, now: float) -> list[tuple[str, int, float]]:
    """(tenant, pending, oldest age) for the `limit` busiest classes; the rest summed as `_other`."""
    kept = [(row.tenant, row.pending, max(0.0, now - row.oldest.timestamp())) for row in rows[:limit]]
    rest = rows[limit:]
    if rest:
        oldest = min(row.oldest for row in rest)
        kept.append((OTHER_TENANTS, sum(row.pending for row in rest), max(0.0, now - oldest.timestamp())))
    return kept


def _unix_time(iso: str | None) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp() if iso else 0.0
