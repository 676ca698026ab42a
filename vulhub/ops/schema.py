"""Whether the database's schema is one this code knows: checked before a web worker serves.

Migrations are a job of their own (`manage.py migrate`, Compose's `migrate` service), run
once before the new code starts. A web worker that finds migrations of its code missing
from the database refuses to start (vulhub/wsgi.py): its queries would fail on columns
and tables that are not there. The other way round is allowed: during a rolling deploy
the old code keeps serving on a schema the new code has already expanded
(docs/operations.md, "Deploying a new version").
"""

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor


def missing_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[str] | None:
    """The code's migrations the database has not applied ("app.name"); None when it cannot be read."""
    connection = connections[alias]
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except (DatabaseError, OSError):
        return None  # the database is down: the worker starts, /health/ says so, and it recovers
    finally:
        connection.close()
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def refusal(missing: list[str]) -> str:
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (
        f"VulHub will not start: the database lacks {len(missing)} migration(s) of this code ({shown}). "
        "Run the migrations first, once: `python manage.py migrate` (Compose: `docker compose run --rm migrate`)."
    )


def main() -> int:
    """`python -m vulhub.ops.schema`: gunicorn's master asks this before it starts a worker (gunicorn.conf.py).

    Exit 0 when the site may start (or the check is off, or the database cannot be read
    now), 3 with the one-line refusal on stderr when migrations are missing, 1 with one
    line when the settings do not load. In a process of its own, so the master never
    imports the site's code: workers still load it fresh, also after a reload (SIGHUP).
    """
    import os
    import sys

    import django
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"VulHub cannot start: {exc}\n")
        return 1
    if settings.SCHEMA_CHECK_AT_START and (missing := missing_migrations()):
        sys.stderr.write(refusal(missing) + "\n")
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
