"""VulHub's queries for prometheus-postgres-exporter, run for real, and the exporters compose uses.

deploy/postgres-exporter/queries.yaml is SQL that nothing else runs, so these tests run
every query of it against the test server as a role made by the monitoring statements
of docker/postgres/init.sql (pg_monitor, no superuser): each must be valid, readable by
that role, and return exactly the columns the file declares, numbers where it declares a
metric. A lock wait staged between two sessions shows in the lock and transaction
queries. On a primary of the test's own with a real streaming standby and a
pg_receivewal beside it, the WAL senders count the standby, not the receiver, until the
standby stops. Then Debian's `prometheus-postgres-exporter` runs the file against the
test database as that role and its /metrics carries every VulHub metric; Debian's
`prometheus-redis-exporter` reads Redis from the REDIS_ADDR that compose sets.
"""

import os
import re
import secrets
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager

import psycopg
import pytest
import yaml
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from vulhub.ops.pg_cluster import free_port
from vulhub.tests.replica_servers import primary_and_standby, wait_until
from vulhub.tests.servers import ROOT, OwnRedis, binary, owner_dsn, running

QUERIES_FILE = ROOT / "deploy" / "postgres-exporter" / "queries.yaml"
QUERIES = yaml.safe_load(QUERIES_FILE.read_text())
INIT_SQL = (ROOT / "docker" / "postgres" / "init.sql").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# Queries that return a row whatever the server's state; the others (one row per standby)
# may return none. The table sizes need a table, and the test database has VulHub's.
ALWAYS_ROWS = {
    "vulhub_pg_wraparound",
    "vulhub_pg_archiver",
    "vulhub_pg_recovery",
    "vulhub_pg_wal_senders",
    "vulhub_pg_transactions",
    "vulhub_pg_locks",
    "vulhub_pg_connections",
    "vulhub_pg_table",
}
# The tests connect on their own, as the monitoring role; the mark has the test database made.
pytestmark = pytest.mark.django_db


def columns(namespace: str) -> dict[str, str]:
    """column -> usage (LABEL, GAUGE, COUNTER) as the queries file declares them, in order."""
    return {name: spec["usage"] for metric in QUERIES[namespace]["metrics"] for name, spec in metric.items()}


def metric_names(namespace: str) -> list[str]:
    return [f"{namespace}_{name}" for name, usage in columns(namespace).items() if usage != "LABEL"]


def monitoring_statements(name: str, password: str, database: str) -> list[str]:
    """init.sql's statements that make the exporter's role, for role `name` logging in to `database`."""
    assert re.fullmatch(r"\w+", database), database
    statements = [
        line.replace("'vulhub_monitor123'", f"'{password}'")
        .replace("vulhub_monitor", name)
        .replace("vulhub_dev", database)
        for line in INIT_SQL.splitlines()
        if "vulhub_monitor" in line and not line.startswith("--")
    ]
    assert len(statements) == 3, f"init.sql's monitoring statements changed: {statements}"
    return statements


@pytest.fixture(scope="module")
def monitor(django_db_setup):
    """A login role made by init.sql's monitoring statements (its names and password made the test's own).

    Yields the libpq key/value connection string of the test database as that role.
    """
    name = f"vulhub_test_monitor_{os.getpid()}"
    password = secrets.token_hex(16)
    database = connection.settings_dict["NAME"]
    with psycopg.connect(owner_dsn(), autocommit=True) as owner:
        for statement in monitoring_statements(name, password, database):
            owner.execute(statement)
    settings = connection.settings_dict
    where = {"host": settings["HOST"], "port": str(settings["PORT"] or "")}  # the embedded server: a socket folder
    dsn = psycopg.conninfo.make_conninfo(
        **{key: value for key, value in where.items() if value}, user=name, password=password, dbname=database
    )
    try:
        yield dsn
    finally:
        with psycopg.connect(owner_dsn(), autocommit=True) as owner:
            owner.execute(f'REVOKE CONNECT ON DATABASE "{database}" FROM "{name}"')
            owner.execute(f'DROP ROLE "{name}"')


def run(dsn: str, namespace: str) -> tuple[list[str], list[tuple]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(QUERIES[namespace]["query"])
        return [column.name for column in cursor.description], cursor.fetchall()


def test_it_runs_as_a_role_with_pg_monitor_and_no_more(monitor):
    with psycopg.connect(monitor) as conn:
        superuser, bypassrls, monitoring = conn.execute(
            "SELECT rolsuper, rolbypassrls, pg_has_role(current_user, 'pg_monitor', 'USAGE')"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert (superuser, bypassrls, monitoring) == (False, False, True)


@pytest.mark.parametrize("namespace", sorted(QUERIES))
def test_each_query_returns_the_columns_the_file_declares(monitor, namespace):
    declared = columns(namespace)
    assert set(declared.values()) <= {"LABEL", "GAUGE", "COUNTER"}
    for column, usage in declared.items():
        assert (usage == "COUNTER") == column.endswith("_total"), (
            f"{namespace}_{column}: counters, and only they, end in _total"
        )
    names, rows = run(monitor, namespace)
    assert names == list(declared), f"{namespace}: the query returns {names}, the file declares {list(declared)}"
    if namespace in ALWAYS_ROWS:
        assert rows, f"{namespace} returned no row"
    for row in rows:
        for (column, usage), value in zip(declared.items(), row, strict=True):
            if usage == "LABEL":
                assert isinstance(value, str), (namespace, column, value)
            else:
                assert isinstance(value, float) and value >= 0, (namespace, column, value)


def test_the_wraparound_ages_cover_every_database_and_the_test_database_has_one(monitor):
    with psycopg.connect(monitor) as conn:
        databases = {name for (name,) in conn.execute("SELECT datname FROM pg_database")}
        (before,) = conn.execute(
            "SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    names, rows = run(monitor, "vulhub_pg_wraparound")
    ages = {row[0]: dict(zip(names, row, strict=True)) for row in rows}
    assert set(ages) == databases
    mine = ages[connection.settings_dict["NAME"]]
    assert mine["xid_age"] >= before > 0  # an age only grows (until a freeze)
    assert mine["autovacuum_freeze_max_age"] > 0


def test_the_replication_rows_match_the_count_of_standbys(monitor):
    _, standbys = run(monitor, "vulhub_pg_replication")
    names, (recovery,) = run(monitor, "vulhub_pg_recovery")
    recovery = dict(zip(names, recovery, strict=True))
    assert recovery["standbys"] == len(standbys)
    assert recovery["is_standby"] == 0 and recovery["replay_delay_seconds"] == 0  # the test server is a primary


def test_the_connection_limit_is_the_servers(monitor):
    names, (row,) = run(monitor, "vulhub_pg_connections")
    values = dict(zip(names, row, strict=True))
    with psycopg.connect(monitor) as conn:
        (limit,) = conn.execute("SHOW max_connections").fetchone()
    assert values["max_connections"] == int(limit)
    assert 1 <= values["clients"] <= values["max_connections"]


def test_the_largest_tables_of_the_database_come_first_with_their_index_sizes(monitor):
    names, rows = run(monitor, "vulhub_pg_table")
    tables = [dict(zip(names, row, strict=True)) for row in rows]
    with psycopg.connect(monitor) as conn:
        every = {name for (name,) in conn.execute("SELECT relname FROM pg_stat_user_tables")}
    assert len(tables) == min(20, len(every))
    assert {table["relname"] for table in tables} <= every
    sizes = [table["table_bytes"] + table["index_bytes"] for table in tables]  # pg_total_relation_size
    assert sizes == sorted(sizes, reverse=True)
    assert any(table["index_bytes"] > 0 for table in tables)  # primary keys at least


def test_a_lock_wait_and_the_transaction_holding_it_show(monitor):
    """One session holds an advisory lock inside its transaction; a second waits for it."""
    key = secrets.randbelow(2**31)
    with psycopg.connect(owner_dsn()) as holder, psycopg.connect(owner_dsn(), autocommit=True) as waiter:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", [key])  # the transaction stays open
        waiting = threading.Thread(target=waiter.execute, args=("SELECT pg_advisory_lock(%s)", [key]))
        waiting.start()
        try:
            locks = wait_for_lock_wait(monitor)
            names, (row,) = run(monitor, "vulhub_pg_transactions")
            transactions = dict(zip(names, row, strict=True))
        finally:
            holder.rollback()  # releases the lock: the waiter gets it and returns
            waiting.join(timeout=30)
        waiter.execute("SELECT pg_advisory_unlock(%s)", [key])
    assert locks["waiting_sessions"] >= 1 and locks["longest_wait_seconds"] > 0
    assert transactions["oldest_age_seconds"] > 0


def wait_for_lock_wait(dsn: str) -> dict[str, float]:
    """The lock query's row once it sees a session waiting (its wait start is set a moment after the wait)."""
    for _ in range(200):
        names, (row,) = run(dsn, "vulhub_pg_locks")
        values = dict(zip(names, row, strict=True))
        if values["waiting_sessions"] >= 1 and values["longest_wait_seconds"] > 0:
            return values
        time.sleep(0.05)
    raise AssertionError(f"the lock query never saw the waiting session: {values}")


def wal_senders(dsn: str) -> dict[str, dict[str, float]]:
    """state -> {"standbys": n, "other_clients": n}, as the WAL senders query counts them."""
    names, rows = run(dsn, "vulhub_pg_wal_senders")
    return {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in rows}


def every_wal_sender(dsn: str) -> float:
    """The older count, of every row of pg_stat_replication (vulhub_pg_recovery_standbys)."""
    names, (row,) = run(dsn, "vulhub_pg_recovery")
    return dict(zip(names, row, strict=True))["standbys"]


def test_the_wal_senders_have_a_row_for_every_state_even_an_empty_one(monitor):
    """So the streaming count reads 0, not nothing, when the last standby goes (StandbyMissing compares it)."""
    counts = wal_senders(monitor)
    assert set(counts) == {"startup", "catchup", "streaming", "backup", "stopping"}
    assert sum(count["standbys"] + count["other_clients"] for count in counts.values()) == every_wal_sender(monitor)


@contextmanager
def receiving_wal(cluster):
    """pg_receivewal streaming `cluster`'s WAL into a folder of its own: a WAL client that replays nothing."""
    streaming = "SELECT 1 FROM pg_stat_replication WHERE application_name = 'pg_receivewal' AND state = 'streaming'"
    with tempfile.TemporaryDirectory(prefix="vulhub-test-receivewal-") as folder, cluster.connect() as conn:
        command = [str(cluster.bin_dir / "pg_receivewal"), "-h", str(cluster.socket_dir), "-p", str(cluster.port),
                   "-U", "postgres", "-D", folder, "--no-loop"]  # fmt: skip
        with running(command, what="pg_receivewal", ready=lambda: conn.execute(streaming).fetchone()):
            yield


def test_the_wal_senders_count_a_streaming_standby_not_a_wal_receiver_until_it_stops(django_db_setup):
    """A primary of the test's own, its hot standby (pg_basebackup -R) and a pg_receivewal, read as pg_monitor.

    The streaming standby counts as one, in the query and in the series the exporter
    serves to StandbyMissing; pg_receivewal, which replays nothing, is another client
    (the older count of every WAL sender, vulhub_pg_recovery_standbys, has both). Once
    the standby stops, the streaming count reads 0 and its series stays.
    """
    name, password = "vulhub_monitor", secrets.token_hex(16)
    with primary_and_standby() as pair, receiving_wal(pair.primary):
        with pair.primary.connect(pair.name) as owner:
            for statement in monitoring_statements(name, password, pair.name):
                owner.execute(statement)
        dsn = psycopg.conninfo.make_conninfo(
            host=str(pair.primary.socket_dir), port=str(pair.primary.port), user=name, password=password,
            dbname=pair.name,
        )  # fmt: skip
        both, every_sender = wal_senders(dsn), every_wal_sender(dsn)
        with postgres_exporter(dsn) as port:
            served_with_the_standby = streaming_standbys(scrape(port))
            pair.standby.stop("fast")
            wait_until(lambda: every_wal_sender(dsn) == 1, "the standby's WAL sender to end")
            served_without = streaming_standbys(scrape(port))
        after = wal_senders(dsn)
    assert both["streaming"] == {"standbys": 1, "other_clients": 1}
    assert sum(count["standbys"] + count["other_clients"] for count in both.values()) == every_sender == 2
    assert served_with_the_standby == 1
    assert after["streaming"] == {"standbys": 0, "other_clients": 1}
    assert served_without == 0


def streaming_standbys(metrics: dict[str, list]) -> float:
    """The value of the one series StandbyMissing reads from the exporter."""
    (sample,) = [s for s in metrics["vulhub_pg_wal_senders_standbys"] if s.labels["state"] == "streaming"]
    return sample.value


# --- The exporters themselves -------------------------------------------------------------


def scrape(port: int) -> dict[str, list]:
    """sample name -> its samples, from the exporter's /metrics on `port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:  # noqa: S310  (loopback)
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def answers(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):  # noqa: S310
        return True


@contextmanager
def postgres_exporter(dsn: str):
    """Debian's exporter running VulHub's queries file against `dsn`; yields the port of its /metrics."""
    port = free_port()
    environment = {"PATH": os.environ.get("PATH", ""), "DATA_SOURCE_NAME": f"{dsn} sslmode=disable"}
    command = [
        binary("prometheus-postgres-exporter"),
        f"--extend.query-path={QUERIES_FILE}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(command, what="postgres-exporter", ready=lambda: answers(port), env=environment):
        yield port


def test_the_postgres_exporter_serves_every_vulhub_metric_from_the_queries_file(monitor):
    with postgres_exporter(monitor) as port:
        metrics = scrape(port)
    up = [sample.value for sample in metrics.get("pg_up", [])]
    assert up == [1], f"the exporter could not query the test database as the monitoring role (pg_up: {up})"
    (load_error,) = metrics["pg_exporter_user_queries_load_error"]
    assert load_error.value == 0 and load_error.labels["filename"] == str(QUERIES_FILE)
    expected = {name for namespace in ALWAYS_ROWS for name in metric_names(namespace)}
    missing = expected - set(metrics)
    assert not missing, f"the exporter did not serve {sorted(missing)}"
    ages = {sample.labels["datname"]: sample.value for sample in metrics["vulhub_pg_wraparound_xid_age"]}
    assert ages[connection.settings_dict["NAME"]] > 0
    with psycopg.connect(monitor) as conn:
        (limit,) = conn.execute("SHOW max_connections").fetchone()
    assert [sample.value for sample in metrics["vulhub_pg_connections_max_connections"]] == [int(limit)]
    tables = {sample.labels["relname"] for sample in metrics["vulhub_pg_table_index_bytes"]}
    assert 1 <= len(tables) <= 20


def test_the_redis_exporter_reads_the_address_compose_gives_it():
    address = COMPOSE["services"]["redis-exporter"]["environment"]["REDIS_ADDR"]
    assert address == "redis://redis:6379"
    redis = OwnRedis()
    redis.start()
    try:
        port = free_port()
        environment = {"PATH": os.environ.get("PATH", ""), "REDIS_ADDR": f"redis://127.0.0.1:{redis.port}"}
        command = [binary("prometheus-redis-exporter"), f"--web.listen-address=127.0.0.1:{port}"]
        with running(command, what="redis-exporter", ready=lambda: answers(port), env=environment):
            metrics = scrape(port)
    finally:
        redis.stop()
    assert [sample.value for sample in metrics["redis_up"]] == [1]
