"""dbstats on a primary with a real streaming standby, and on a server where the statistics are locked away.

The module starts a throwaway primary and a standby made from it with pg_basebackup
(`-R`: it streams from the primary). Replay is paused on the standby to make it lag for
real; an unused replication slot keeps WAL the way a vanished replica's does.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from vulhub.ops import dbstats
from vulhub.ops.pg_cluster import Cluster, find_bin_dir, hand_over, run_as
from vulhub.ops.tests.test_dbstats import GENEROUS

ROOT = Path(__file__).resolve().parents[3]


def wait_for(probe, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


@pytest.fixture(scope="module")
def pair():
    """(primary, standby): a streaming standby of a throwaway primary, with a database `dbstats_repl`."""
    base = Path(tempfile.mkdtemp(prefix="vulhub-repl-"))  # short: it holds the sockets
    hand_over(base)
    bin_dir = find_bin_dir()
    primary = Cluster(base / "primary", bin_dir=bin_dir)
    primary.initdb({"fsync": "off", "max_connections": "20", "wal_level": "replica", "max_wal_senders": "5"})
    standby = Cluster(base / "standby", bin_dir=bin_dir)
    try:
        primary.start()
        with primary.connect() as conn:
            conn.execute("CREATE DATABASE dbstats_repl")
        done = subprocess.run(
            [str(bin_dir / "pg_basebackup"), "-h", str(primary.socket_dir), "-p", str(primary.port), "-U", "postgres",
             "-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast"],
            user=run_as(), capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        standby.start()
        with primary.connect() as conn:
            wait_for(
                lambda: conn.execute(
                    "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL"
                ).fetchone(),
                "the standby to stream",
            )
        yield primary, standby
    finally:
        standby.remove()
        primary.remove()
        shutil.rmtree(base, ignore_errors=True)


def collect(cluster: Cluster, dbname: str = "dbstats_repl") -> dict:
    with cluster.connect(dbname) as conn, conn.cursor() as cursor:
        return dbstats.collect(cursor)


def manage(cluster: Cluster, *args: str, user: str = "postgres", dbname: str = "dbstats_repl", tmp: Path):
    """`manage.py *args` against `cluster` as `user`, with backups and pgBackRest pointed at an empty folder."""
    url = cluster.url(dbname, user=user)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MIGRATIONS_DATABASE_URL": url,
        "BACKUP_DIR": str(tmp / "backups"),
        "PITR_DIR": str(tmp / "pitr"),
        "PITR_CONFIG": str(tmp / "pgbackrest.conf"),
        "DB_POOL": "false",
    }
    for name in ("ADMINS", "BACKUP_DATABASE_URL", "BACKUP_STORAGE"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_a_primary_lists_its_streaming_replica_and_finds_nothing_wrong(pair):
    primary, _standby = pair

    section = collect(primary)["replication"]

    assert section["role"] == "primary" and section["note"] == ""
    [replica] = section["replicas"]
    assert replica["state"] == "streaming" and replica["application_name"] == "walreceiver"
    assert replica["replay_lag_bytes"] is not None
    assert dbstats.findings({**collect(primary), "replication": section}, GENEROUS) == []


@pytest.fixture(scope="module")
def stuck_replay(pair):
    """The standby receives WAL but replays none of it (replay paused after a first commit)."""
    primary, standby = pair
    with primary.connect("dbstats_repl") as conn:
        conn.execute("CREATE TABLE writes (n int)")
        conn.execute("INSERT INTO writes VALUES (1)")
    with standby.connect("dbstats_repl") as conn:
        wait_for(lambda: conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()[0], "a replayed commit")
        conn.execute("SELECT pg_wal_replay_pause()")
        wait_for(lambda: conn.execute("SELECT pg_is_wal_replay_paused()").fetchone()[0], "replay to pause")
    with primary.connect("dbstats_repl") as conn:
        conn.execute("INSERT INTO writes SELECT generate_series(1, 20000)")
        wait_for(
            lambda: conn.execute(
                "SELECT 1 FROM pg_stat_replication WHERE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) > 0"
                " AND pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn) = 0"
            ).fetchone(),
            "the standby to receive what it does not replay",
        )
    time.sleep(0.05)  # the last replayed commit measurably in the past
    yield pair
    with standby.connect() as conn:
        conn.execute("SELECT pg_wal_replay_resume()")


def test_a_replica_behind_in_replay_is_a_warning_then_critical_on_the_primary(stuck_replay):
    primary, _standby = stuck_replay
    report = collect(primary)
    [replica] = report["replication"]["replicas"]

    warned = dbstats.findings(report, {**GENEROUS, "replication_lag_mb": 0})
    critical = dbstats.findings(report, {**GENEROUS, "replication_lag_mb": 0, "replication_lag_critical_mb": 0})

    # PostgreSQL's replay_lag stays where it was while replay is stuck: the WAL behind is what tells
    assert replica["replay_lag_bytes"] > 0
    [finding] = [f for f in warned if f.check == "replication"]
    assert finding.level == "warning" and dbstats.status(warned) == dbstats.WARNING
    assert finding.message.startswith("Replica walreceiver (local) is ")  # over the primary's socket
    assert finding.message.endswith(" MB of WAL not replayed yet, over 0 MB.")
    assert dbstats.status(critical) == dbstats.CRITICAL
    assert dbstats.findings(report, GENEROUS) == []


def test_a_standby_with_replay_paused_reports_its_delay_and_the_pause(stuck_replay):
    _primary, standby = stuck_replay
    report = collect(standby)
    section = report["replication"]

    tight = dbstats.findings(report, {**GENEROUS, "replication_lag_seconds": 0, "replication_lag_critical_seconds": 0})
    generous = dbstats.findings(report, GENEROUS)

    assert section["role"] == "standby"
    assert section["standby"]["replay_paused"] is True and section["standby"]["receiver_status"] == "streaming"
    assert section["standby"]["behind_bytes"] > 0 and section["standby"]["delay_seconds"] > 0
    messages = [f.message for f in tight if f.check == "replication"]
    assert any(m.startswith("This standby is ") and m.endswith(" s behind in replay, over 0 s.") for m in messages)
    assert dbstats.status(tight) == dbstats.CRITICAL
    # the pause alone is worth a warning, whatever the thresholds
    assert [f.message for f in generous] == ["This standby's replay is paused (SELECT pg_wal_replay_resume())."]
    assert dbstats.status(generous) == dbstats.WARNING


def test_the_command_on_the_standby_exits_1_and_says_why(stuck_replay, tmp_path):
    _primary, standby = stuck_replay

    done = manage(standby, "dbstats", "--check", tmp=tmp_path)
    report = manage(standby, "dbstats", tmp=tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("DBSTATS WARNING - ")
    assert "WARNING This standby's replay is paused (SELECT pg_wal_replay_resume())." in lines
    assert "this server is a standby of" in report.stdout and "replay PAUSED" in report.stdout


def test_an_unused_replication_slot_is_a_warning_and_the_command_exits_1(pair, tmp_path):
    primary, _standby = pair
    with primary.connect() as conn:
        conn.execute("SELECT pg_create_physical_replication_slot('dbstats_gone', true)")
    try:
        report = collect(primary)
        done = manage(primary, "dbstats", "--check", "--json", tmp=tmp_path)
        text = manage(primary, "dbstats", tmp=tmp_path)
    finally:
        with primary.connect() as conn:
            conn.execute("SELECT pg_drop_replication_slot('dbstats_gone')")

    [slot] = [s for s in report["replication"]["slots"] if s["slot_name"] == "dbstats_gone"]
    assert slot["active"] is False and slot["retained_bytes"] >= 0
    [finding] = [f for f in dbstats.findings(report, GENEROUS) if "dbstats_gone" in f.message]
    assert finding.level == "warning" and "inactive: no replica is using it" in finding.message
    assert done.returncode == 1, done.stdout + done.stderr
    check = json.loads(done.stdout)["check"]
    assert check["status"] == "WARNING"
    assert any("Replication slot dbstats_gone" in f["message"] and f["level"] == "warning" for f in check["findings"])
    assert "dbstats_gone" in text.stdout and "replicas of this primary:" in text.stdout


# --- UNKNOWN: statistics this role may not read --------------------------------------------------


def test_statistics_the_role_may_not_read_make_the_check_unknown_in_one_line(pair, tmp_path):
    """An owner role without access to pg_stat_archiver (revoked by a hardened server's DBA)."""
    primary, _standby = pair
    with primary.connect() as conn:
        conn.execute("CREATE DATABASE dbstats_locked")
        conn.execute("CREATE ROLE dbstats_plain LOGIN")
    with primary.connect("dbstats_locked") as conn:
        conn.execute("REVOKE SELECT ON pg_catalog.pg_stat_archiver FROM PUBLIC")

    text = manage(primary, "dbstats", "--check", user="dbstats_plain", dbname="dbstats_locked", tmp=tmp_path)
    as_json = manage(
        primary, "dbstats", "--check", "--json", user="dbstats_plain", dbname="dbstats_locked", tmp=tmp_path
    )

    assert text.returncode == 3, text.stdout + text.stderr
    assert text.stdout.splitlines() == [
        "DBSTATS UNKNOWN - the check could not judge database dbstats_locked: "
        "ProgrammingError: permission denied for view pg_stat_archiver"
    ]
    assert "Traceback" not in text.stderr
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["check"]["status"] == "UNKNOWN"
