"""System checks for configuration that is legal but wrong."""

from django.conf import settings
from django.core.checks import Warning, register


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
    if not settings.DEBUG and settings.DATABASES["default"]["ENGINE"] == "vulhub.embedded_db":
        errors.append(
            Warning(
                "Production is running on the embedded PostgreSQL.",
                hint="Set DATABASE_URL to a PostgreSQL server you back up.",
                id="vulhub.W002",
            )
        )
    return errors
