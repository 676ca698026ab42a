"""manage.py dbstats against the test database, and pg_stat_statements on a throwaway server.

The test server may not ship pg_stat_statements (the embedded build) or not preload it
(the machine's PostgreSQL), so the tests at the end start a cluster of their own that
ships it, for this module only.
"""

import contextlib
import json
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from vulhub.ops import dbstats
from vulhub.ops.db_roles import use_role
from vulhub.ops.management.commands.dbstats import Command
from vulhub.ops.pg_cluster import Cluster, find_bin_dir, hand_over


@pytest.fixture(autouse=True)
def as_owner(request):
    """dbstats reads the server's settings and statistics: an operator's command, run as the owner."""
    if request.node.get_closest_marker("django_db") is None:
        yield
        return
    with use_role("owner"):
        yield


SECTIONS = {
    "database",
    "connections",
    "slow_queries",
    "table_sizes",
    "index_usage",
    "cache",
    "sessions",
    "dead_tuples",
    "archiving",
    "wraparound",
    "lock_waits",
    "replication",
    "backups",
    "pitr_backups",
    "disk",
}
HEADINGS = [
    "Connections",
    "Slow statements (pg_stat_statements)",
    "Table sizes (largest first)",
    "Unused indexes (never scanned)",
    "Tables read mostly by sequential scans",
    "Cache hit ratio",
    "Running queries (longest first)",
    "Sessions idle in transaction (longest first)",
    "Dead tuples",
    "WAL archiving (point-in-time recovery)",
    "Transaction ID wraparound (every database)",
    "Lock waits (longest first)",
    "Replication",
    "Backups (manage.py backup)",
    "Disk space",
]
# Nothing a healthy (or a test) database could cross.
GENEROUS = {
    "connections_used_pct": 1000,
    "connections_critical_pct": 1000,
    "cache_hit_ratio_min_pct": 0,
    "long_running_seconds": 10**9,
    "idle_in_transaction_seconds": 10**9,
    "dead_tuple_pct": 10**9,
    "slow_query_mean_ms": 10**9,
    "backup_age_hours": 0,
    "xid_age_warning": 2**31,
    "xid_age_critical": 2**31,
    "lock_wait_seconds": 10**9,
    "lock_wait_critical_seconds": 10**9,
    "replication_lag_seconds": 10**9,
    "replication_lag_critical_seconds": 10**9,
    "replication_lag_mb": 10**9,
    "replication_lag_critical_mb": 10**9,
    "disk_free_min_pct": 0,
    "disk_free_critical_pct": 0,
}
OPS = [("Ops", "ops@example.edu")]


def dbstats_json(*args) -> dict:
    out = StringIO()
    call_command("dbstats", "--json", "--limit", "500", *args, stdout=out)
    return json.loads(out.getvalue())


def run_check(*args) -> tuple[str, int]:
    """What `dbstats --check` printed and its exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""
    out = StringIO()
    try:
        call_command("dbstats", "--check", *args, stdout=out, stderr=StringIO())
    except SystemExit as exc:
        return out.getvalue(), exc.code
    return out.getvalue(), 0


def side_connection(**kwargs) -> psycopg.Connection:
    """A second session on the test database, outside the test's transaction."""
    return psycopg.connect(**connection.get_connection_params(), **kwargs)


@pytest.fixture
def idle_in_transaction():
    """A session that began a transaction, ran a query and sits there."""
    conn = side_connection()
    conn.execute("SELECT 'dbstats idle probe'")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def running_query():
    """A session busy in `SELECT pg_sleep(30)`, cancelled after the test."""
    conn = side_connection(autocommit=True)
    pid = conn.info.backend_pid
    thread = threading.Thread(target=_sleep_until_cancelled, args=(conn,))
    thread.start()
    with side_connection(autocommit=True) as watcher:
        for _ in range(100):
            state = watcher.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            if state == ("active",):
                break
            time.sleep(0.02)
    try:
        yield pid
    finally:
        conn.cancel_safe()
        thread.join(timeout=10)
        conn.close()


def _sleep_until_cancelled(conn):
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(30)")


@pytest.mark.django_db
def test_it_prints_every_section_of_the_text_report():
    out = StringIO()
    call_command("dbstats", stdout=out)

    report = out.getvalue()
    for heading in HEADINGS:
        assert heading in report
    assert f"Database {connection.settings_dict['NAME']}" in report


@pytest.mark.django_db
def test_its_json_has_stable_sections_and_plausible_numbers():
    report = dbstats_json()

    assert set(report) == SECTIONS
    assert report["database"]["name"] == connection.settings_dict["NAME"]
    conn = report["connections"]
    assert 1 <= conn["this_database"] <= conn["in_use"] <= conn["max_connections"]
    assert sum(conn["by_state"].values()) == conn["in_use"]
    assert conn["by_state"].get("active", 0) >= 1  # this very query
    assert set(report["sessions"]) == {"active", "idle_in_transaction"}
    assert set(report["index_usage"]) == {"unused", "unused_enforcing", "seq_scan_heavy", "seq_scan_min_bytes"}


@pytest.mark.django_db
def test_it_lists_the_projects_tables_by_size():
    sizes = dbstats_json()["table_sizes"]

    tables = [row["table"] for row in sizes]
    assert {"submissions", "audit_logs", "projects", "users", "event_store"} <= set(tables)
    totals = [row["total_bytes"] for row in sizes]
    assert totals == sorted(totals, reverse=True)
    submissions = sizes[tables.index("submissions")]
    assert submissions["total_bytes"] == submissions["table_bytes"] + submissions["index_bytes"]
    assert submissions["index_bytes"] > 0


@pytest.mark.django_db
def test_it_limits_its_lists():
    sizes = dbstats_json("--limit", "3")["table_sizes"]

    assert len(sizes) == 3


@pytest.mark.django_db
def test_it_sets_indexes_that_enforce_a_rule_apart_from_unused_ones():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE dbstats_probe (id int PRIMARY KEY, code text UNIQUE, note text)")
        cursor.execute("CREATE INDEX dbstats_probe_note ON dbstats_probe (note)")
        cursor.execute("CREATE UNIQUE INDEX dbstats_probe_lower_code ON dbstats_probe (lower(code))")

    usage = dbstats_json()["index_usage"]

    unused = {row["index"] for row in usage["unused"] if row["table"] == "dbstats_probe"}
    enforcing = {row["index"] for row in usage["unused_enforcing"] if row["table"] == "dbstats_probe"}
    assert unused == {"dbstats_probe_note"}
    assert enforcing == {"dbstats_probe_pkey", "dbstats_probe_code_key", "dbstats_probe_lower_code"}


@pytest.mark.django_db
def test_it_shows_a_session_idle_in_transaction(idle_in_transaction):
    sessions = dbstats_json()["sessions"]

    [idle] = [row for row in sessions["idle_in_transaction"] if row["pid"] == idle_in_transaction.info.backend_pid]
    assert idle["state"] == "idle in transaction"
    assert idle["query"] == "SELECT 'dbstats idle probe'"
    assert idle["duration_seconds"] >= 0
    own_pid = connection.connection.info.backend_pid
    assert own_pid not in [row["pid"] for row in sessions["active"] + sessions["idle_in_transaction"]]


@pytest.mark.django_db
def test_a_second_run_in_the_same_transaction_sees_fresh_sessions():
    dbstats_json()  # PostgreSQL keeps the activity it read for the rest of the transaction

    with side_connection() as late:
        late.execute("SELECT 'dbstats late probe'")
        pids = [row["pid"] for row in dbstats_json()["sessions"]["idle_in_transaction"]]
        late_pid = late.info.backend_pid

    assert late_pid in pids


@pytest.mark.django_db
@override_settings(ADMINS=OPS, DBSTATS_THRESHOLDS={**GENEROUS, "idle_in_transaction_seconds": 0})
def test_check_reports_a_session_idle_in_transaction_too_long_and_mails_admins(idle_in_transaction):
    pid = idle_in_transaction.info.backend_pid

    output, code = run_check()

    assert code == 1  # a warning
    assert output.splitlines()[0].startswith("DBSTATS WARNING - 1 warning | connections=")
    assert "\nWARNING Session idle in transaction for" in output
    assert f"(pid {pid}," in output
    assert len(mail.outbox) == 1
    [message] = mail.outbox
    assert message.to == ["ops@example.edu"]
    assert "dbstats: WARNING - 1 warning" in message.subject
    assert f"(pid {pid}," in message.body
    assert "SELECT 'dbstats idle probe'" in message.body


@pytest.mark.django_db
@override_settings(ADMINS=OPS, DBSTATS_THRESHOLDS={**GENEROUS, "long_running_seconds": 0})
def test_check_reports_a_query_running_too_long(running_query):
    output, code = run_check()

    assert code == 1
    assert f"(pid {running_query}," in output
    assert "SELECT pg_sleep(30)" in output
    assert len(mail.outbox) == 1


@pytest.mark.django_db
@override_settings(ADMINS=OPS, DBSTATS_THRESHOLDS={**GENEROUS, "connections_used_pct": 0})
def test_check_reports_connections_over_their_share():
    output, code = run_check()

    assert code == 1
    assert "WARNING Connections: " in output
    assert len(mail.outbox) == 1


@pytest.mark.django_db
@override_settings(ADMINS=OPS, DBSTATS_THRESHOLDS=GENEROUS)
def test_check_exits_0_and_mails_nobody_when_all_is_well(idle_in_transaction, running_query):
    output, code = run_check()

    assert code == 0
    assert output.splitlines()[0].startswith("DBSTATS OK - ")
    assert "OK Database " in output and "all within DBSTATS_THRESHOLDS" in output
    assert "WARNING" not in output and "CRITICAL" not in output
    assert mail.outbox == []


@pytest.mark.django_db
@override_settings(ADMINS=OPS, DBSTATS_THRESHOLDS={**GENEROUS, "idle_in_transaction_seconds": 0})
def test_check_with_json_prints_the_problems_in_the_document(idle_in_transaction):
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("dbstats", "--check", "--json", stdout=out, stderr=StringIO())

    check = json.loads(out.getvalue())["check"]
    assert exited.value.code == 1
    assert check["ok"] is False and check["status"] == "WARNING" and check["exit_code"] == 1
    assert any(f"(pid {idle_in_transaction.info.backend_pid}," in line for line in check["problems"])
    [finding] = [f for f in check["findings"] if f"(pid {idle_in_transaction.info.backend_pid}," in f["message"]]
    assert finding["level"] == "warning"
    assert check["mail"] == "Mailed to 1 admin(s)."
    assert len(mail.outbox) == 1


@pytest.fixture
def tables_with_dead_rows():
    """A big and a tiny table, each with half its rows deleted, autovacuum kept away."""
    with side_connection(autocommit=True) as conn:
        for name, rows in (("dbstats_big_dead", 2000), ("dbstats_tiny_dead", 10)):
            conn.execute(f"CREATE TABLE {name} (id int) WITH (autovacuum_enabled = false)")
            conn.execute(f"INSERT INTO {name} SELECT generate_series(1, {rows})")
            conn.execute(f"DELETE FROM {name} WHERE id % 2 = 0")
        # Publish this session's counters now, not within the next second.
        conn.execute("SELECT pg_stat_force_next_flush()")
    try:
        yield
    finally:
        with side_connection(autocommit=True) as conn:
            conn.execute("DROP TABLE dbstats_big_dead, dbstats_tiny_dead")


@pytest.mark.django_db
@override_settings(DBSTATS_THRESHOLDS={**GENEROUS, "dead_tuple_pct": 20})
def test_check_reports_dead_tuples_only_on_tables_big_enough_to_judge(tables_with_dead_rows):
    dead = {row["table"]: row for row in dbstats_json()["dead_tuples"]}
    output, code = run_check()

    assert dead["dbstats_big_dead"]["dead_rows"] == 1000
    assert dead["dbstats_big_dead"]["dead_pct"] == 50.0
    assert dead["dbstats_big_dead"]["judged"] is True
    assert dead["dbstats_tiny_dead"]["judged"] is False
    assert code == 1
    assert "WARNING Table public.dbstats_big_dead: 1000 dead rows (50.0% of all rows)" in output
    assert "dbstats_tiny_dead" not in output


@pytest.mark.django_db
def test_it_says_what_the_test_server_lacks_to_show_slow_statements():
    """The embedded build ships no pg_stat_statements at all; a server with it has it not created here."""
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS pg_stat_statements")  # a compose server's; undone with the test
        cursor.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'")
        available = cursor.fetchone()[0] == 1
    out = StringIO()
    call_command("dbstats", stdout=out)
    slow = dbstats_json()["slow_queries"]

    if available:
        assert slow["status"] == "not_created"
        assert "pg_stat_statements is not created in this database" in out.getvalue()
    else:
        assert slow["status"] == "not_installed"
        assert "pg_stat_statements is not installed on the database server" in out.getvalue()
        assert "postgresql-contrib" in slow["note"]
    assert "shared_preload_libraries = 'pg_stat_statements'" in out.getvalue()
    assert "CREATE EXTENSION pg_stat_statements;" in slow["note"]
    assert slow["by_mean"] == slow["by_total"] == []


# --- pg_stat_statements on a throwaway server that ships it ---------------------------
# The test server may lack the extension (the embedded build) or not preload it (the
# machine's PostgreSQL): a cluster of the module's own, from server binaries that ship
# pg_stat_statements (Debian's postgresql package, `make test-deps`), is started first
# without the library preloaded, then with it.


@pytest.fixture(scope="module")
def pgss_cluster():
    base = Path(tempfile.mkdtemp(prefix="vulhub-pgss-"))  # short: it holds the socket
    hand_over(base)
    cluster = Cluster(base / "data", bin_dir=find_bin_dir(library="pg_stat_statements"))
    cluster.initdb({"fsync": "off", "max_connections": "10"})
    try:
        yield cluster
    finally:
        cluster.remove()
        shutil.rmtree(base, ignore_errors=True)


def started(cluster, *, preload: bool):
    """`cluster` running, with pg_stat_statements in shared_preload_libraries or not."""
    options = "-c shared_preload_libraries=pg_stat_statements" if preload else ""
    if cluster.running() and cluster.options == options:
        return cluster
    cluster.stop()
    cluster.options = options
    cluster.start()
    return cluster


def test_it_explains_how_to_create_and_preload_pg_stat_statements_on_a_server_that_ships_it(pgss_cluster):
    with started(pgss_cluster, preload=False).connect() as conn, conn.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
        not_created = dbstats.slow_queries(cursor)
        cursor.execute("CREATE EXTENSION pg_stat_statements")
        conn.autocommit = False  # the probe's savepoint needs a transaction
        report = dbstats.collect(cursor)
        not_loaded = report["slow_queries"]
        # The failed probe ran in a savepoint: the transaction still works.
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
        conn.rollback()

    assert not_created["status"] == "not_created"
    assert "pg_stat_statements is not created in this database" in not_created["note"]
    assert "CREATE EXTENSION pg_stat_statements;" in not_created["note"]
    assert not_loaded["status"] == "not_loaded"
    assert "pg_stat_statements is created but cannot be read" in not_loaded["note"]
    assert "must be loaded via" in not_loaded["note"]
    assert "shared_preload_libraries = 'pg_stat_statements'" in not_loaded["note"]
    out = StringIO()
    Command(stdout=out)._write_report(report)
    assert "pg_stat_statements is created but cannot be read" in out.getvalue()


@pytest.fixture
def preloaded_cursor(pgss_cluster):
    """A cursor on the throwaway server with pg_stat_statements loaded, a few slow-ish statements on record."""
    with started(pgss_cluster, preload=True).connect() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cursor.execute("SELECT pg_stat_statements_reset()")
        for _ in range(3):
            cursor.execute("SELECT pg_sleep(0.06)")
        cursor.execute("SELECT pg_sleep(0.005) FROM generate_series(1, 2)")  # ~10 ms: far below
        cursor.execute("SELECT count(*) FROM generate_series(1, 100)")
        yield cursor


def test_it_reports_the_slowest_statements_when_pg_stat_statements_is_loaded(preloaded_cursor):
    slow = dbstats.slow_queries(preloaded_cursor, limit=2)

    assert slow["status"] == "available"
    assert slow["note"] == ""
    assert len(slow["by_mean"]) == 2
    sleep = slow["by_mean"][0]
    assert sleep["query"] == "SELECT pg_sleep($1)"
    assert sleep["calls"] == 3
    assert sleep["rows"] == 3
    assert 60 <= sleep["mean_ms"] < 1000
    assert sleep["total_ms"] >= 180
    assert slow["by_total"][0]["query"] == "SELECT pg_sleep($1)"
    assert "generate_series" in slow["by_mean"][1]["query"]
    assert slow["by_mean"][1]["rows"] == 2


def test_check_reports_statements_slower_on_average_than_the_threshold(preloaded_cursor):
    report = dbstats.collect(preloaded_cursor)

    found = dbstats.problems(report, {**GENEROUS, "slow_query_mean_ms": 40})

    assert found == [
        f"Statement averaging {report['slow_queries']['by_mean'][0]['mean_ms']} ms over 3 calls, "
        "over 40 ms: SELECT pg_sleep($1)"
    ]
    assert dbstats.problems(report, GENEROUS) == []


def test_the_text_report_lists_the_slowest_statements(preloaded_cursor):
    out = StringIO()
    Command(stdout=out)._write_report(dbstats.collect(preloaded_cursor, limit=3))

    report = out.getvalue()
    assert "by mean time" in report
    assert "by total time" in report
    assert "SELECT pg_sleep($1)" in report
    assert "not created" not in report


# --- backups and WAL archiving ------------------------------------------------------------


def fake_backup(folder, taken_at):
    """The two files of a backup, as `manage.py backup` names them (the listing reads names only)."""
    stem = f"vulhub-{connection.settings_dict['NAME']}-{taken_at:%Y%m%dT%H%M%SZ}"
    for suffix in (".dump", ".manifest.json"):
        (folder / f"{stem}{suffix}").write_text("{}")
    return f"{stem}.dump"


@pytest.mark.django_db
def test_check_reports_a_missing_or_old_backup_when_a_maximum_age_is_set(tmp_path):
    database = connection.settings_dict["NAME"]
    thresholds = {**GENEROUS, "backup_age_hours": 26}
    with override_settings(DBSTATS_THRESHOLDS=thresholds, BACKUP_DIR=tmp_path, BACKUP_STORAGE=""):
        none_output, none_code = run_check()
        old = fake_backup(tmp_path, datetime.now(UTC) - timedelta(hours=40))
        old_output, old_code = run_check()
        fresh = fake_backup(tmp_path, datetime.now(UTC) - timedelta(hours=1))
        fresh_output, fresh_code = run_check()
        report = dbstats_json()
    with override_settings(DBSTATS_THRESHOLDS=GENEROUS, BACKUP_DIR=tmp_path / "empty", BACKUP_STORAGE=""):
        _unchecked_output, unchecked_code = run_check()  # 0: not checked

    assert none_code == 2 and f"CRITICAL No backup of {database} in {tmp_path}." in none_output
    assert old_code == 1  # over the maximum age, within twice it
    assert f"WARNING The newest backup of {database} ({old}) is 40 hours old, over 26 hours." in old_output
    assert fresh_code == 0 and "WARNING" not in fresh_output
    assert report["backups"]["newest"] == fresh and report["backups"]["count"] == 2
    assert 0.9 < report["backups"]["newest_age_hours"] < 1.1
    assert unchecked_code == 0


@pytest.fixture(scope="module")
def archiving_cluster():
    """A throwaway server archiving its WAL with a command that fails until the test fixes it."""
    base = Path(tempfile.mkdtemp(prefix="vulhub-arch-"))  # short: it holds the socket
    hand_over(base)
    cluster = Cluster(base / "data", bin_dir=find_bin_dir())
    cluster.initdb(
        {
            "fsync": "off",
            "max_connections": "10",
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": "false",
        }
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()
        shutil.rmtree(base, ignore_errors=True)


def archive_report(conn, until, timeout=30.0):
    """dbstats' archiving section once `until(section)` holds (the archiver works in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            section = dbstats.archiving(cursor)
        if until(section) or time.monotonic() > deadline:
            return section
        time.sleep(0.2)


def test_a_failing_wal_archive_is_a_problem_until_archiving_works_again(archiving_cluster):
    with archiving_cluster.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS writes (n int)")
        conn.execute("INSERT INTO writes VALUES (1)")
        conn.execute("SELECT pg_switch_wal()")
        failing = archive_report(conn, lambda a: a["failing"])
        conn.autocommit = False  # collect's probes need a transaction
        with conn.cursor() as cursor:
            found = dbstats.problems(dbstats.collect(cursor), GENEROUS)
        conn.rollback()
        conn.autocommit = True
        conn.execute("ALTER SYSTEM SET archive_command = 'true'")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("INSERT INTO writes VALUES (2)")
        conn.execute("SELECT pg_switch_wal()")
        working = archive_report(conn, lambda a: not a["failing"] and a["archived_count"] > 0)

    assert failing["enabled"] and failing["failing"] and failing["failed_count"] >= 1
    (problem,) = [line for line in found if line.startswith("WAL archiving is failing")]
    assert f"the last for {failing['last_failed_wal']}" in problem
    assert "last success: never" in problem
    assert working["archived_count"] >= 1 and not working["failing"]
    # what /health/detail/'s WalArchive check says, from the same function
    assert dbstats.archive_problem(failing).startswith(
        f"WAL archiving is failing: {failing['failed_count']} failure(s), the last for {failing['last_failed_wal']} "
    )
    assert dbstats.archive_problem(working) is None
