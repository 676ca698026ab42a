"""Sessions in the database, read through Redis (vulhub.sessions): the database stays the record.

Each test runs a redis-server of its own, so stopping it touches nothing else.
"""

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from vulhub.sessions import SessionStore

from .servers import OwnRedis


@pytest.fixture
def own_redis(settings):
    server = OwnRedis()
    server.start()
    settings.SESSION_ENGINE = "vulhub.sessions"
    settings.CACHES = server.cache_settings()
    yield server
    server.stop()


def saved_session(**data) -> SessionStore:
    store = SessionStore()
    store.update(data)
    store.create()
    return store


def redis_of(server: OwnRedis):
    import redis

    return redis.Redis(port=server.port, socket_timeout=1)


@pytest.mark.django_db
def test_a_saved_session_is_in_the_database_and_read_from_the_cache_without_a_query(own_redis):
    store = saved_session(answer=42)

    assert Session.objects.filter(session_key=store.session_key).exists()
    with CaptureQueriesContext(connection) as queries:
        assert SessionStore(store.session_key).load() == {"answer": 42}
    assert len(queries) == 0


@pytest.mark.django_db
def test_a_session_the_cache_lost_is_read_from_the_database_and_cached_again(own_redis):
    store = saved_session(answer=42)
    redis_of(own_redis).flushall()  # a restarted Redis keeps nothing

    assert SessionStore(store.session_key).load() == {"answer": 42}
    with CaptureQueriesContext(connection) as queries:
        assert SessionStore(store.session_key).load() == {"answer": 42}
    assert len(queries) == 0


@pytest.mark.django_db
def test_a_cached_copy_lives_at_most_session_cache_seconds(own_redis, settings):
    settings.SESSION_CACHE_SECONDS = 30
    saved_session(answer=42)

    (key,) = own_redis.cached_keys("vulhub.session.")
    assert 0 < redis_of(own_redis).ttl(key) <= 30


@pytest.mark.django_db
def test_sessions_work_from_the_database_while_redis_is_down(own_redis):
    store = saved_session(answer=42)
    own_redis.stop()

    assert SessionStore(store.session_key).load() == {"answer": 42}
    other = saved_session(answer=7)  # written to the database, the cache's failure only logged
    assert SessionStore(other.session_key).load() == {"answer": 7}
    other.delete()
    assert not Session.objects.filter(session_key=other.session_key).exists()


@pytest.mark.django_db
def test_logging_out_removes_both_copies(own_redis, tenant, student, password, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    student.set_password(password)
    student.save()
    browser = Client(HTTP_HOST=tenant.domain)
    browser.force_login(student)
    key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert browser.get("/profile/").status_code == 200
    assert own_redis.cached_keys(f"vulhub.session.{key}")

    browser.post("/accounts/logout/")

    assert not Session.objects.filter(session_key=key).exists()
    assert not own_redis.cached_keys(f"vulhub.session.{key}")
    stale = Client(HTTP_HOST=tenant.domain)
    stale.cookies[settings.SESSION_COOKIE_NAME] = key
    assert stale.get("/profile/").status_code == 302  # to the login page


@pytest.mark.django_db
def test_a_key_free_in_the_database_is_free_whatever_the_cache_holds(own_redis):
    store = saved_session(answer=42)
    Session.objects.filter(session_key=store.session_key).delete()  # e.g. clearsessions

    assert not SessionStore().exists(store.session_key)
