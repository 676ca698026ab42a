"""System checks for configuration that is legal but wrong."""

import fnmatch

from django.conf import settings
from django.core.checks import Info, Warning, register
from django.db import DatabaseError
from django.http.request import validate_host
from django.urls import URLPattern, URLResolver, get_resolver

from tenants.models import Tenant


@register("vulhub")
def check_cache_backend(app_configs, **kwargs):
    errors = []
    if not settings.DEBUG and not getattr(settings, "REDIS_URL", ""):
        errors.append(
            Warning(
                "Production is running on the database cache.",
                hint="Set REDIS_URL to a Redis server; hot pages are cached there.",
                id="vulhub.W001",
            )
        )
    if not settings.DEBUG and settings.DATABASES["default"]["ENGINE"] == "vulhub.ops.embedded_db":
        errors.append(
            Warning(
                "Production is running on the embedded PostgreSQL.",
                hint="Set DATABASE_URL to a PostgreSQL server you back up.",
                id="vulhub.W002",
            )
        )
    return errors


@register("vulhub", deploy=True)
def check_allowed_hosts(app_configs, **kwargs):
    """ALLOWED_HOSTS should name every active tenant's domain, and nothing as broad as "*".

    Reading the tenants needs the database: when it is unreachable or not migrated yet
    (a build step, a first deploy) the tenant half is skipped with a note, never a crash.
    """
    if "*" in settings.ALLOWED_HOSTS:
        return [
            Warning(
                'ALLOWED_HOSTS is "*": any Host header is accepted.',
                hint="Set ALLOWED_HOSTS to the tenants' domains (Tenant.domain), comma-separated.",
                id="vulhub.W010",
            )
        ]
    try:
        domains = list(Tenant.objects.active().order_by("domain").values_list("domain", flat=True))
    except (DatabaseError, OSError) as exc:  # unreachable, not migrated, embedded server down
        return [
            Info(
                "Tenant domains were not checked against ALLOWED_HOSTS: the database could not be read "
                f"({type(exc).__name__}).",
                hint="Run `manage.py check --deploy` again where the migrated database is reachable.",
                id="vulhub.I010",
            )
        ]
    missing = [domain for domain in domains if not validate_host(domain.lower(), settings.ALLOWED_HOSTS)]
    if not missing:
        return []
    return [
        Warning(
            f"Active tenants are served on hosts ALLOWED_HOSTS refuses: {', '.join(missing)}.",
            hint="Add these domains to ALLOWED_HOSTS, or deactivate the tenants.",
            id="vulhub.W011",
        )
    ]


# docker-compose.yml's local-trial defaults: anyone who reads the repository knows them.
TRIAL_SECRET_PREFIX = "docker-compose-local-only"


@register("vulhub", deploy=True)
def check_metrics_token(app_configs, **kwargs):
    """/metrics behind docker-compose's published trial token is /metrics for anyone."""
    if settings.METRICS_ENABLED and settings.METRICS_TOKEN.startswith(TRIAL_SECRET_PREFIX):
        return [
            Warning(
                "METRICS_TOKEN is docker-compose's local-trial default: anyone can read /metrics with it.",
                hint="Set METRICS_TOKEN to a secret of your own: `openssl rand -base64 48`.",
                id="vulhub.W020",
            )
        ]
    return []


def _url_names(patterns=None, prefix: str = "") -> set[str]:
    """Every URL name of the site, namespaced as resolve() reports it ("scoring:leaderboard")."""
    names = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            space = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            names |= _url_names(pattern.url_patterns, space)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(f"{prefix}{pattern.name}")
    return names


@register("vulhub")
def check_replica_views(app_configs, **kwargs):
    """A REPLICA_VIEWS entry that names no page (a typo) silently leaves that page on the primary."""
    if not settings.REPLICA_DATABASE_URL:
        return []
    names = _url_names()
    unknown = [p for p in settings.REPLICA_VIEWS if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if not unknown:
        return []
    return [
        Warning(
            f"REPLICA_VIEWS names no page for: {', '.join(unknown)}.",
            hint="Use URL names as resolve() gives them, with their namespace: 'scoring:leaderboard', "
            "'admin:*_changelist' (docs/configuration.md).",
            id="vulhub.W030",
        )
    ]


@register("vulhub")
def check_read_your_writes(app_configs, **kwargs):
    """Once the pin ends a browser reads a replica up to the lag limit behind, and cache entries filled from it."""
    floor = 2 * settings.REPLICA_MAX_LAG_SECONDS + settings.REPLICA_CHECK_SECONDS
    if not settings.REPLICA_DATABASE_URL or floor < settings.READ_YOUR_WRITES_SECONDS:
        return []
    return [
        Warning(
            f"READ_YOUR_WRITES_SECONDS ({settings.READ_YOUR_WRITES_SECONDS}) should exceed "
            f"2 x REPLICA_MAX_LAG_SECONDS + REPLICA_CHECK_SECONDS ({floor:g}).",
            hint="Otherwise a student who just wrote may read a replica that does not have it yet.",
            id="vulhub.W031",
        )
    ]
