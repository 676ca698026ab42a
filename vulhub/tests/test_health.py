import pytest
from django.db import connection
from django.test import Client

HEALTH_KEYS = {"status", "database", "cache", "timestamp"}


@pytest.mark.django_db
def test_it_reports_healthy_when_the_database_answers():
    response = Client().get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == HEALTH_KEYS
    assert body["status"] == "healthy"
    assert body["database"] == "connected"
    assert body["cache"] == "connected"
    assert body["timestamp"].endswith("Z")
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_it_answers_on_any_host(settings):
    settings.ALLOWED_HOSTS = ["localhost"]  # not the host below, and no tenant has it

    response = Client(HTTP_HOST="10.20.30.40:8080").get("/health/")

    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


@pytest.fixture
def database_down():
    """Point the default connection at a port where nothing listens."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.pool:
        connection.close_pool()
    connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    connection.settings_dict["OPTIONS"] = {k: v for k, v in connection.settings_dict["OPTIONS"].items() if k != "pool"}
    connection.settings_dict["ENGINE"] = "django.db.backends.postgresql"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
def test_it_reports_unhealthy_with_503_when_the_database_is_down(database_down, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    response = Client().get("/health/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database"] == "disconnected"
    assert body["cache"] == "connected"


@pytest.mark.django_db(transaction=True)
def test_it_reports_the_database_cache_down_with_the_database(database_down, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache_table"}}

    body = Client().get("/health/").json()

    assert body["database"] == "disconnected"
    assert body["cache"] == "disconnected"


@pytest.mark.django_db
def test_it_reports_the_cache_down_but_stays_healthy(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }

    response = Client().get("/health/")

    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["database"], body["cache"]) == ("healthy", "connected", "disconnected")


@pytest.mark.django_db
def test_the_detail_page_runs_database_cache_migrations_wal_archive_and_disk_checks(tenant, settings):
    settings.HEALTH_DETAIL_TOKEN = token = "a-monitors-token-of-at-least-32-characters"
    client = Client(HTTP_HOST=tenant.domain, HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.get("/health/detail/?format=json")

    assert response.status_code == 200
    checks = response.json()
    names = " ".join(checks)
    for check in ("Database", "Cache", "Migrations", "WalArchive", "Disk"):
        assert check in names
    assert set(checks.values()) == {"OK"}


@pytest.mark.django_db
def test_the_detail_page_is_a_404_without_the_token(tenant, settings):
    settings.HEALTH_DETAIL_TOKEN = "a-monitors-token-of-at-least-32-characters"

    response = Client(HTTP_HOST=tenant.domain).get("/health/detail/?format=json")

    assert response.status_code == 404
