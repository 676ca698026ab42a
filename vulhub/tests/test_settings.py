"""Configuration mistakes get a clear message and a non-zero exit, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, **env):
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


REDIS = "redis://127.0.0.1:6379/0"
PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "a-real-secret-" + "x" * 40, "ALLOWED_HOSTS": "vulhub.example.edu"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**PRODUCTION, "SECRET_KEY": ""}, "SECRET_KEY is missing"),
        ({**PRODUCTION, "SECRET_KEY": "insecure-example-key-change-me"}, "SECRET_KEY is missing or is the example"),
        ({**PRODUCTION, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is empty"),
        ({**PRODUCTION, "DATABASE_URL": "mysql://root@localhost/vulhub"}, "must point to a PostgreSQL database"),
        ({**PRODUCTION, "DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({**PRODUCTION, "DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({**PRODUCTION, "DB_POOL": "true", "DB_POOL_MAX_SIZE": "lots"}, "DB_POOL_MAX_SIZE='lots' is not a whole"),
        ({**PRODUCTION, "DB_STATEMENT_TIMEOUT_MS": "-5"}, "DB_STATEMENT_TIMEOUT_MS=-5 must be at least 0"),
        ({**PRODUCTION, "REDIS_URL": REDIS, "REDIS_TIMEOUT": "soon"}, "REDIS_TIMEOUT='soon' is not a number"),
        ({**PRODUCTION, "REDIS_URL": REDIS, "REDIS_CONNECT_TIMEOUT": "0"}, "REDIS_CONNECT_TIMEOUT=0.0 must be"),
        ({**PRODUCTION, "REDIS_URL": REDIS, "REDIS_TIMEOUT": "nan"}, "REDIS_TIMEOUT=nan must be"),
        ({**PRODUCTION, "METRICS_TOKEN": "short"}, "METRICS_TOKEN is shorter than 32 characters"),
        ({**PRODUCTION, "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,intranet"}, "'intranet' is not an address"),
        ({**PRODUCTION, "PROMETHEUS_MULTIPROC_DIR": "/no/such/folder"}, "is not a folder this process may write"),
        ({**PRODUCTION, "PROMETHEUS_MULTIPROC_DIR": ""}, "PROMETHEUS_MULTIPROC_DIR='' is not a folder"),
    ],
)
def test_bad_configuration_is_refused_with_a_clear_message(env, message):
    result = manage("check", **env)

    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_production_settings_with_a_real_secret_pass_the_checks():
    # The settings alone: no database answers (the database's own checks, vulhub.E102 among
    # them, are tested against real ones in test_hardening and tenants/tests/test_middleware).
    no_database = {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/vulhub", "MIGRATIONS_DATABASE_URL": ""}
    result = manage("check", "--deploy", "--fail-level", "ERROR", **PRODUCTION, **no_database, DB_POOL="false")

    assert result.returncode == 0, result.stderr


def test_the_pool_is_configured_from_the_environment():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "d = s.DATABASES['default']; print(json.dumps([d['OPTIONS'].get('pool'), d['CONN_MAX_AGE'], "
        "d['CONN_HEALTH_CHECKS'], s.CACHES['default']['BACKEND']]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="vulhub.settings",
        DATABASE_URL="postgres://u:p@db.example:5432/vulhub",
        REDIS_URL="redis://cache.example:6379/0",
        DB_POOL="true",
        DB_POOL_MIN_SIZE="3",
        DB_POOL_MAX_SIZE="7",
        CONN_MAX_AGE="60",
        CONN_HEALTH_CHECKS="false",
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    pool, max_age, health_checks, cache = json.loads(result.stdout)
    assert pool == {"min_size": 3, "max_size": 7, "timeout": 10}
    assert max_age == 0  # a pool owns its connections
    assert health_checks is False
    # django-redis' backend, counting its reads for /metrics (metrics are on by default)
    assert cache == "vulhub.cache.CountedRedisCache"


def test_an_unreachable_database_is_reported_without_a_traceback():
    result = manage("migrate", **PRODUCTION, DATABASE_URL="postgres://vulhub@127.0.0.1:1/vulhub")

    assert result.returncode == 1
    assert "The database could not be reached" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_cookies_are_secure_and_http_only():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.X_FRAME_OPTIONS]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECURE_COOKIES"}}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="vulhub.settings")

    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, True, True, "DENY"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{not json", "BACKUP_STORAGE_OPTIONS is not valid JSON"),
        ('["bucket"]', "BACKUP_STORAGE_OPTIONS must be a JSON object"),
    ],
)
def test_bad_storage_options_stop_only_the_commands_that_use_the_storage(options, message):
    env = {"BACKUP_STORAGE": "django.core.files.storage.FileSystemStorage", "BACKUP_STORAGE_OPTIONS": options}

    site = manage("check", **env)
    backup = manage("backup", "--prune-only", "--keep", "1", "--no-progress", **env)

    assert site.returncode == 0, site.stderr  # the site starts
    assert backup.returncode == 1
    assert message in backup.stderr
    assert "Traceback" not in backup.stderr and len(backup.stderr.strip().splitlines()) == 1
