"""When Redis or PostgreSQL fail, VulHub bends: pages from the database, a friendly 503, and back by itself.

- Redis: the test starts its own redis-server on a spare port, stops it in the middle and
  starts it again. Pages, sessions, login throttling and health keep working without it,
  and caching resumes by itself when it is back.
- PostgreSQL: a statement over `statement_timeout` (here: one stuck behind a lock) is
  cancelled and its request answered with the 503 page; the app's server connections
  killed under a running gunicorn (what a PostgreSQL restart does to them) cost no
  server error, and the requests after it succeed without restarting the app.
"""

from contextlib import contextmanager

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from challenges.factories import ProjectFactory
from scoring.factories import LeaderboardFactory
from scoring.models import Submission
from tenants.factories import DEFAULT_PASSWORD, StudentFactory, TenantFactory
from vulhub.ops.db_roles import app_role_name

from .servers import OwnRedis, app_database_url, fetch, gunicorn, owner_dsn, session_for

FLAG = "FLAG{still-counted}"


# --- Redis --------------------------------------------------------------------------


@pytest.fixture
def own_redis(settings):
    server = OwnRedis()
    server.start()
    settings.CACHES = server.cache_settings()
    yield server
    server.stop()


@pytest.fixture
def signed_in(tenant, student):
    LeaderboardFactory(tenant=tenant, user=student, points=40)
    ProjectFactory(tenant=tenant, slug="still-open", name="Still open", flag=FLAG)
    browser = Client(HTTP_HOST=tenant.domain)
    browser.force_login(student)
    return browser


@pytest.mark.django_db
def test_pages_sessions_and_health_keep_working_while_redis_is_down_and_caching_resumes(own_redis, signed_in, student):
    assert signed_in.get("/leaderboard/").status_code == 200
    assert own_redis.cached_keys("leaderboard:")  # the page was cached

    own_redis.stop()
    board = signed_in.get("/leaderboard/")
    catalogue = signed_in.get("/challenges/")
    solve = signed_in.post("/challenges/still-open/", {"flag": FLAG})
    health = Client().get("/health/")

    assert board.status_code == 200 and student.get_full_name() in board.content.decode()  # still signed in
    assert catalogue.status_code == 200 and "Still open" in catalogue.content.decode()
    assert solve.status_code == 302  # a write while the cache is down commits (its invalidation is logged)
    assert Submission.objects.filter(user=student, status=Submission.Status.APPROVED).count() == 1
    assert (health.status_code, health.json()["status"], health.json()["cache"]) == (200, "healthy", "disconnected")

    own_redis.start()  # empty, as a restarted Redis without persistence is
    assert signed_in.get("/leaderboard/").status_code == 200
    assert own_redis.cached_keys("leaderboard:")  # caching resumed, with no restart of the app
    assert Client().get("/health/").json()["cache"] == "connected"


@pytest.mark.django_db
def test_login_throttling_holds_while_redis_is_down(own_redis, tenant, student, settings):
    """django-axes counts failures in the database: no Redis, still locked out."""
    own_redis.stop()
    browser = Client(HTTP_HOST=tenant.domain, REMOTE_ADDR="203.0.113.9")
    credentials = {"username": student.email, "password": "not-the-password"}

    failures = [browser.post("/accounts/login/", credentials).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    right_password = browser.post("/accounts/login/", {**credentials, "password": DEFAULT_PASSWORD})

    assert failures[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert right_password.status_code == 429
    assert "_auth_user_id" not in browser.session


# --- PostgreSQL -----------------------------------------------------------------------


def test_the_app_connection_carries_the_statement_and_idle_timeouts(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')"
        )
        statement, idle = cursor.fetchone()
        cursor.execute(
            "SELECT setting::int FROM pg_settings WHERE name IN ('statement_timeout', "
            "'idle_in_transaction_session_timeout') ORDER BY name DESC"
        )
        in_ms = [row[0] for row in cursor.fetchall()]

    assert in_ms == [django_settings.DB_STATEMENT_TIMEOUT_MS, django_settings.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS]
    assert (statement, idle) != ("0", "0")  # PostgreSQL's own default: no limit


@contextmanager
def table_locked(table: str):
    """Another session holds an ACCESS EXCLUSIVE lock on `table` (even plain reads wait) until the block ends."""
    with psycopg.connect(owner_dsn()) as other:
        other.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # noqa: S608  (a constant of the test)
        yield
        other.rollback()


@pytest.mark.django_db(transaction=True)
def test_a_runaway_query_is_cancelled_and_answered_with_a_503_and_the_next_request_succeeds():
    tenant = TenantFactory(slug="alpha", domain="alpha.localhost")
    browser = Client(HTTP_HOST=tenant.domain)
    browser.raise_request_exception = False  # answer as a live server does
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '300ms'")  # the app's limit, made short for the test
    try:
        with table_locked("tenants"):  # the request's tenant lookup waits, then is cancelled
            stuck = browser.get("/accounts/login/")
        after = browser.get("/accounts/login/")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")

    assert stuck.status_code == 503
    assert stuck["Retry-After"].isdigit()
    assert "Back in a moment" in stuck.content.decode()
    assert after.status_code == 200  # the same connection serves the next request


def test_a_server_error_that_is_not_the_database_stays_a_500(rf):
    from vulhub.errors import server_error

    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(rf.get("/"))

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_killed_server_connections_cost_no_server_error_and_the_app_recovers_by_itself():
    """What a PostgreSQL restart does to the app's pooled connections, under a running gunicorn."""
    tenant = TenantFactory(slug="alpha", domain="alpha.localhost")
    ProjectFactory(tenant=tenant, name="Challenge of alpha")
    session = session_for(StudentFactory(tenant=tenant), tenant.domain)

    with gunicorn(app_database_url(), DB_POOL="true", DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="2") as port:
        before = [fetch(port, tenant.domain, "/challenges/", session)[0] for _ in range(4)]
        with psycopg.connect(owner_dsn(), autocommit=True) as other:
            killed = other.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE usename = %s AND datname = current_database()",
                [app_role_name()],
            ).fetchone()[0]
        after = [fetch(port, tenant.domain, "/challenges/", session) for _ in range(8)]

    assert before == [200] * 4
    assert killed >= 1  # the pool's connections were there, and are gone
    statuses = [status for status, _ in after]
    assert set(statuses) <= {200, 503}, statuses  # never a 500 or a traceback
    assert all("Back in a moment" in body for status, body in after if status == 503)
    assert statuses[-4:] == [200] * 4  # recovered, with no restart of the app
    assert all("Challenge of alpha" in body for status, body in after if status == 200)
