"""A web worker refuses to start on a database that lacks migrations of its code (vulhub/ops/schema.py).

The database is the test's own, as the app role, in a subprocess as gunicorn loads it. A
migration "not applied" is its row taken out of django_migrations for the test (as the
owner), and put back after.
"""

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db.migrations.loader import MigrationLoader

from .servers import app_database_url, fetch, free_port, owner_dsn, production_environment, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def one_migration_missing(transactional_db):
    """The code's newest scoring migration, recorded as not applied while the test runs."""
    from django.db import connection

    loader = MigrationLoader(connection)
    name = max(name for app, name in loader.graph.leaf_nodes() if app == "scoring")
    with psycopg.connect(owner_dsn(), autocommit=True) as owner:
        (row,) = owner.execute(
            "DELETE FROM django_migrations WHERE app = 'scoring' AND name = %s RETURNING applied", [name]
        ).fetchall()
    try:
        yield f"scoring.{name}"
    finally:
        with psycopg.connect(owner_dsn(), autocommit=True) as owner:
            owner.execute(
                "INSERT INTO django_migrations (app, name, applied) VALUES ('scoring', %s, %s)", [name, row[0]]
            )


def load_the_site(**env) -> subprocess.CompletedProcess:
    """What a gunicorn worker does first: import vulhub.wsgi."""
    return subprocess.run(
        [sys.executable, "-c", "import vulhub.wsgi"],
        cwd=ROOT,
        env=production_environment(app_database_url(), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_the_site_loads_on_the_schema_of_its_code():
    done = load_the_site()
    assert done.returncode == 0, done.stderr


def test_a_schema_without_a_migration_of_the_code_is_refused_in_one_line(one_migration_missing):
    done = load_the_site()

    assert done.returncode == 3  # gunicorn's "Worker failed to boot": the server stops
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("VulHub will not start: the database lacks 1 migration(s) of this code")
    assert one_migration_missing in done.stderr
    assert "manage.py migrate" in done.stderr
    assert "Traceback" not in done.stderr


def test_gunicorn_stops_instead_of_serving_on_the_old_schema(one_migration_missing):
    port = free_port()
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "vulhub.wsgi:application",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=production_environment(app_database_url()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    # asked once by the master (gunicorn.conf.py), before any worker: one line, no worker booted
    assert done.stderr.count("VulHub will not start: the database lacks 1 migration(s)") == 1, done.stderr
    assert "Booting worker" not in done.stderr
    assert "Traceback" not in done.stderr


def test_the_check_can_be_turned_off(one_migration_missing):
    done = load_the_site(SCHEMA_CHECK_AT_START="false")
    assert done.returncode == 0, done.stderr


def test_another_application_served_from_this_folder_is_not_asked_about_vulhubs_schema(one_migration_missing):
    """gunicorn reads ./gunicorn.conf.py for any app: the tests' S3 stand-in starts whatever the database lacks."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "vulhub.tests.moto_app:app",
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    environment = production_environment(app_database_url())
    with running(
        command, what="gunicorn", ready=lambda: fetch(port, "localhost", "/moto-api/")[0] != 0, env=environment
    ):
        assert fetch(port, "localhost", "/moto-api/")[0] == 200
