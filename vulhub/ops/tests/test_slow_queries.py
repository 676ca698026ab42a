import logging

import psycopg
import pytest
from django.db import DataError, OperationalError, connection

from audit.context import acting_as
from vulhub.ops.slow_queries import MAX_SQL_CHARS, log_slow_query

LOGGER = "vulhub.slow_queries"


@pytest.fixture
def slow_log(caplog, settings):
    settings.SLOW_QUERY_MS = 20
    caplog.set_level(logging.WARNING, logger=LOGGER)
    return lambda: [record for record in caplog.records if record.name == LOGGER]


@pytest.mark.django_db
def test_it_is_installed_once_on_the_connection():
    connection.ensure_connection()

    assert connection.execute_wrappers.count(log_slow_query) == 1


@pytest.mark.django_db
def test_it_logs_a_slow_query_with_its_request_and_tenant(slow_log):
    with acting_as(None, request_id="req-slow-1", tenant_id=4242), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.05), 42")
        row = cursor.fetchone()

    assert row[1] == 42  # the result is untouched
    [record] = slow_log()
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "req-slow-1" in message
    assert "tenant_id=4242" in message
    assert "SELECT pg_sleep(0.05), 42" in message
    assert record.request_id == "req-slow-1"
    assert record.tenant_id == 4242
    assert 50 <= record.duration_ms < 5000


@pytest.mark.django_db
def test_it_logs_nothing_for_a_fast_query(slow_log):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")

    assert slow_log() == []


@pytest.mark.django_db
def test_it_is_off_when_the_threshold_is_zero(slow_log, settings):
    settings.SLOW_QUERY_MS = 0

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.05)")

    assert slow_log() == []


@pytest.mark.django_db
def test_it_cuts_long_sql(slow_log):
    padding = "x" * (MAX_SQL_CHARS * 2)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_sleep(0.03), '{padding}'")

    [record] = slow_log()
    assert len(record.sql) == MAX_SQL_CHARS + 1
    assert record.sql.endswith("…")
    assert padding not in record.getMessage()


@pytest.mark.django_db
def test_a_failing_slow_query_still_raises_and_is_logged(slow_log):
    with acting_as(None, request_id="req-timeout"), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 40")
        with pytest.raises(OperationalError) as raised:
            cursor.execute("SELECT pg_sleep(1)")

    assert isinstance(raised.value.__cause__, psycopg.errors.QueryCanceled)
    [record] = slow_log()
    assert "req-timeout" in record.getMessage()
    assert record.duration_ms >= 40


@pytest.mark.django_db
def test_a_failing_fast_query_raises_the_same_error_and_is_not_logged(slow_log):
    with connection.cursor() as cursor, pytest.raises(DataError) as raised:
        cursor.execute("SELECT 1 / 0")

    assert isinstance(raised.value.__cause__, psycopg.errors.DivisionByZero)
    assert slow_log() == []
