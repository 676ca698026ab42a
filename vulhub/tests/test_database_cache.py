"""The database cache (REDIS_URL unset) without its table: every page still served, and `migrate` makes the table.

Run `migrate` and skip `createcachetable`: Django's DatabaseCache then fails its first
query of a request, which aborts the request's transaction, and the page answers 500.
VulHub's database cache (vulhub/cache.py) takes the failure as a miss, as it does when
Redis is down; `migrate` creates the table itself.
"""

import logging

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import Client

from challenges.factories import ProjectFactory
from scoring.factories import LeaderboardFactory
from vulhub.ops.db_roles import use_role

pytestmark = pytest.mark.django_db

DATABASE_CACHE = {
    "BACKEND": "vulhub.cache.MissingIsAMissDatabaseCache",
    "LOCATION": "cache_table",
    "KEY_PREFIX": "vulhub",
}
DJANGOS_OWN = {**DATABASE_CACHE, "BACKEND": "django.core.cache.backends.db.DatabaseCache"}
PAGES = ["/", "/challenges/", "/challenges/still-open/", "/leaderboard/", "/submissions/", "/badges/", "/profile/"]


def cache_table_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('cache_table') IS NOT NULL")
        return cursor.fetchone()[0]


def drop_cache_table() -> None:
    """The table gone (undone with the test's transaction), as when `createcachetable` was never run."""
    with use_role("owner"), connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS cache_table")


@pytest.fixture
def signed_in(tenant, student):
    LeaderboardFactory(tenant=tenant, user=student, points=40)
    ProjectFactory(tenant=tenant, slug="still-open", name="Still open")
    browser = Client(HTTP_HOST=tenant.domain)
    browser.raise_request_exception = False  # answer as a live server does
    browser.force_login(student)
    return browser


def test_every_page_is_served_without_the_cache_table_and_the_miss_is_logged(settings, signed_in, caplog):
    settings.CACHES = {"default": DATABASE_CACHE}
    drop_cache_table()

    with caplog.at_level(logging.WARNING, logger="vulhub.cache"):
        statuses = {page: signed_in.get(page).status_code for page in PAGES}

    assert statuses == dict.fromkeys(PAGES, 200)
    assert "served as a miss" in caplog.text
    assert "cache_table" in caplog.text


def test_the_control_djangos_own_database_cache_fails_those_pages(settings, signed_in):
    """Without VulHub's backend the same request breaks: the test above would notice a regression."""
    settings.CACHES = {"default": DJANGOS_OWN}
    drop_cache_table()

    assert signed_in.get("/challenges/").status_code == 500


def test_a_cache_failure_leaves_the_transaction_usable(settings, tenant):
    settings.CACHES = {"default": DATABASE_CACHE}
    drop_cache_table()
    cache = caches.create_connection("default")

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # the test's transaction is open: the failures below run in savepoints
        assert cache.get("missing", "default") == "default"
        assert cache.get_or_set("version", 1) == 1  # a miss, then a write that did not happen, then the default
        assert cache.add("key", "value") is False
        assert cache.has_key("key") is False
        cache.delete("key")
        cache.clear()
        cursor.execute("SELECT name FROM tenants WHERE id = %s", [tenant.id])
        assert cursor.fetchone() == (tenant.name,)


def test_the_cache_works_as_a_cache_when_its_table_is_there(settings):
    settings.CACHES = {"default": DATABASE_CACHE}
    call_command("createcachetable", verbosity=0)
    cache = caches.create_connection("default")

    cache.set("answer", 42)

    assert cache.get("answer") == 42
    assert cache.incr("answer") == 43


def test_migrate_creates_the_cache_table(settings):
    settings.CACHES = {"default": DATABASE_CACHE}
    drop_cache_table()
    assert not cache_table_exists()

    call_command("migrate", verbosity=0)

    assert cache_table_exists()
