"""`manage.py dbstats --check` as a monitoring check: levels, exit codes 0/1/2/3, one line when it cannot judge.

Against the test database: real lock waits between two sessions, the real ages of the
server's databases, the real free space of the disks; the unreachable database is a
closed port, in this process (to read the mail) and in a subprocess (to read the exit
code as cron and Nagios see it).
"""

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from vulhub.ops import dbstats
from vulhub.ops.db_roles import connection_url
from vulhub.ops.tests.test_dbstats import (  # as_owner: autouse, the owner's view as `dbstats` runs
    GENEROUS,
    OPS,
    as_owner,  # noqa: F401
    dbstats_json,
    fake_backup,
    run_check,
    side_connection,
)

ROOT = Path(__file__).resolve().parents[3]


# --- Lock waits: two real sessions ------------------------------------------------------


@pytest.fixture
def lock_wait():
    """One session holds a row lock in an open transaction, a second one waits for it; their pids."""
    with side_connection(autocommit=True) as setup:
        setup.execute("CREATE TABLE dbstats_lock_probe (id int PRIMARY KEY, n int)")
        setup.execute("INSERT INTO dbstats_lock_probe VALUES (1, 0)")
    holder = side_connection()
    holder.execute("UPDATE dbstats_lock_probe SET n = n + 1 WHERE id = 1")
    waiter = side_connection(autocommit=True)
    waiter_pid = waiter.info.backend_pid
    thread = threading.Thread(
        target=waiter.execute, args=("UPDATE dbstats_lock_probe SET n = n + 10 WHERE id = 1 /* dbstats waiter */",)
    )
    thread.start()
    try:
        with side_connection(autocommit=True) as watcher:
            for _ in range(250):  # waitstart is filled in a moment after the wait began
                started = watcher.execute(
                    "SELECT waitstart FROM pg_locks WHERE pid = %s AND NOT granted AND waitstart IS NOT NULL",
                    [waiter_pid],
                ).fetchone()
                if started:
                    break
                time.sleep(0.02)
        assert started, "the second session never waited for the lock"
        time.sleep(0.05)  # a wait measurably above 0 s
        yield holder.info.backend_pid, waiter_pid
    finally:
        holder.rollback()
        thread.join(timeout=10)
        holder.close()
        waiter.close()
        with side_connection(autocommit=True) as cleanup:
            cleanup.execute("DROP TABLE dbstats_lock_probe")


@pytest.mark.django_db
@override_settings(ADMINS=OPS, DBSTATS_THRESHOLDS={**GENEROUS, "lock_wait_seconds": 0, "lock_wait_critical_seconds": 0})
def test_a_lock_wait_over_the_critical_level_is_critical_and_names_its_blocker(lock_wait):
    holder, waiter = lock_wait

    output, code = run_check()
    waits = dbstats_json()["lock_waits"]

    assert code == 2
    lines = output.splitlines()
    assert lines[0].startswith("DBSTATS CRITICAL - 1 critical | ")
    [line] = [line for line in lines if f"pid {waiter}," in line]
    assert line.startswith("CRITICAL Session waiting ")
    assert "for a lock (ShareLock on transactionid;" in line
    assert f"blocked by pid {holder} (idle in transaction, user " in line
    assert "UPDATE dbstats_lock_probe SET n = n + 10" in line
    [wait] = [row for row in waits if row["pid"] == waiter]
    assert wait["blocking_pids"] == [holder]
    assert wait["blockers"][0]["state"] == "idle in transaction"
    assert wait["waiting_seconds"] > 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.endswith("dbstats: CRITICAL - 1 critical")


@pytest.mark.django_db
def test_a_lock_wait_over_the_warning_level_only_is_a_warning(lock_wait):
    _holder, waiter = lock_wait
    thresholds = {**GENEROUS, "lock_wait_seconds": 0, "lock_wait_critical_seconds": 3600}

    with override_settings(DBSTATS_THRESHOLDS=thresholds):
        warned, warned_code = run_check()
    with override_settings(DBSTATS_THRESHOLDS=GENEROUS):
        calm, calm_code = run_check()

    assert warned_code == 1
    assert any(line.startswith("WARNING Session waiting") and f"pid {waiter}," in line for line in warned.splitlines())
    assert calm_code == 0 and "Session waiting" not in calm


@pytest.mark.django_db
def test_the_text_report_shows_the_lock_wait_and_its_blocker(lock_wait):
    holder, waiter = lock_wait
    out = StringIO()

    call_command("dbstats", stdout=out)

    section = out.getvalue().split("Lock waits (longest first)")[1].split("Replication")[0]
    assert str(waiter) in section and "ShareLock" in section and "transactionid" in section
    assert "Blocking sessions:" in section and str(holder) in section


# --- Wraparound: the real ages of the server's databases ------------------------------------


@pytest.mark.django_db
def test_wraparound_age_of_every_database_is_reported_and_judged():
    name = connection.settings_dict["NAME"]
    section = dbstats_json()["wraparound"]
    ages = {row["name"]: row for row in section["databases"]}
    ours = ages[name]
    with override_settings(DBSTATS_THRESHOLDS={**GENEROUS, "xid_age_warning": 1}):
        warned, warned_code = run_check()
    with override_settings(DBSTATS_THRESHOLDS={**GENEROUS, "xid_age_warning": 1, "xid_age_critical": 1}):
        critical, critical_code = run_check()

    assert {"template0", "template1", name} <= set(ages)
    assert ours["xid_age"] > 1 and ours["mxid_age"] >= 0
    assert section["limit"] == 2**31
    assert section["autovacuum_freeze_max_age"] >= 100_000  # the server's floor
    assert warned_code == 1
    line = next(line for line in warned.splitlines() if f"Transaction IDs of database {name} are" in line)
    assert line.startswith("WARNING ")
    assert "% of the 2^31 wraparound limit), over 1;" in line
    # far below autovacuum_freeze_max_age: autovacuum has not been asked to freeze yet
    assert "still under autovacuum_freeze_max_age" in line
    assert critical_code == 2
    assert f"CRITICAL Transaction IDs of database {name} are" in critical


# --- Disk space ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_free_disk_under_the_data_directory_and_the_backup_folder_is_judged(tmp_path):
    backups = tmp_path / "backups"  # not made yet: its parent's disk is measured
    with override_settings(BACKUP_DIR=backups, BACKUP_STORAGE="", PITR_DIR=tmp_path / "pitr"):
        disk = dbstats_json()["disk"]
        with override_settings(DBSTATS_THRESHOLDS={**GENEROUS, "disk_free_min_pct": 100}):
            warned, warned_code = run_check()
        with override_settings(
            DBSTATS_THRESHOLDS={**GENEROUS, "disk_free_min_pct": 100, "disk_free_critical_pct": 100}
        ):
            critical, critical_code = run_check()

    folders = {folder["what"]: folder for folder in disk["folders"]}
    mine = folders["backups (manage.py backup)"]
    assert mine["path"] == str(backups) and mine["measured_at"] == str(tmp_path)
    assert 0 < mine["free_pct"] < 100 and 0 < mine["free_bytes"] < mine["total_bytes"]
    assert "backups (pgBackRest repository 1)" not in folders  # no PITR_DIR here
    data = connection.settings_dict
    server_here = data["ENGINE"] == "vulhub.ops.embedded_db" or data["HOST"] in ("127.0.0.1", "localhost", "::1")
    if server_here:  # the test server runs on this machine: its data directory is measured
        assert "data directory" in folders
    else:
        assert [row["what"] for row in disk["not_checked"]] == ["data directory"]
    assert warned_code == 1
    assert next(line for line in warned.splitlines() if str(backups) in line).startswith("WARNING Disk of the ")
    assert "under 100%." in warned
    assert critical_code == 2
    assert next(line for line in critical.splitlines() if str(backups) in line).startswith("CRITICAL Disk of the ")


def test_the_data_directory_counts_only_where_this_machine_sees_the_servers_own():
    here = {"data_directory": str(Path.cwd()), "system_identifier": None, "server_address": "127.0.0.1"}

    elsewhere = dbstats.disk_space({**here, "server_address": "192.0.2.10"})  # TEST-NET-1: not ours
    in_container = dbstats.disk_space({**here, "data_directory": "/nonexistent/pgdata", "server_address": None})
    hidden = dbstats.disk_space({**here, "data_directory": None})
    local = dbstats.disk_space(here)

    def reason(section):
        [row] = [row for row in section["not_checked"] if row["what"] == "data directory"]
        return row["reason"]

    assert "the server runs on another host (192.0.2.10)" in reason(elsewhere)
    assert "/nonexistent/pgdata is not visible on this machine" in reason(in_container)
    assert "may not read data_directory (grant it pg_read_all_settings or pg_monitor)" in reason(hidden)
    assert [folder["what"] for folder in local["folders"]][0] == "data directory"


@pytest.mark.django_db
def test_a_data_directory_of_another_cluster_is_not_taken_for_the_servers():
    info = dbstats_json()["database"]
    control = Path(info["data_directory"]) / "global" / "pg_control"
    if not os.access(control, os.R_OK):
        pytest.fail(f"this test needs to read {control} (run as root or as the server's account)")

    theirs = dbstats.disk_space(info)
    other = dbstats.disk_space({**info, "system_identifier": "1"})

    assert "data directory" in [folder["what"] for folder in theirs["folders"]]
    [row] = [row for row in other["not_checked"] if row["what"] == "data directory"]
    assert row["reason"].endswith("belongs to another PostgreSQL cluster than the server's")


# --- Backups: over the maximum age a warning, over twice it critical ------------------------------


@pytest.mark.django_db
def test_a_backup_older_than_twice_the_maximum_age_is_critical(tmp_path):
    database = connection.settings_dict["NAME"]
    with override_settings(DBSTATS_THRESHOLDS={**GENEROUS, "backup_age_hours": 26}, BACKUP_DIR=tmp_path):
        old = fake_backup(tmp_path, datetime.now(UTC) - timedelta(hours=60))
        output, code = run_check()

    assert code == 2
    assert f"CRITICAL The newest backup of {database} ({old}) is 60 hours old, over 52 hours." in output


# --- The JSON document's verdict ------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(DBSTATS_THRESHOLDS={**GENEROUS, "xid_age_warning": 1, "disk_free_min_pct": 100})
def test_check_with_json_gives_status_exit_code_and_each_finding_with_its_level():
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("dbstats", "--check", "--json", stdout=out, stderr=StringIO())

    document = json.loads(out.getvalue())
    check = document["check"]
    assert exited.value.code == 1
    assert check["status"] == "WARNING" and check["exit_code"] == 1 and check["ok"] is False
    assert check["summary"].startswith("DBSTATS WARNING - ") and check["summary"].endswith(" warning")
    assert {finding["level"] for finding in check["findings"]} == {"warning"}
    assert {"wraparound", "disk"} <= {finding["check"] for finding in check["findings"]}
    assert check["problems"] == [finding["message"] for finding in check["findings"]]
    assert check["thresholds"]["xid_age_warning"] == 1
    assert check["thresholds"]["replication_lag_mb"] == GENEROUS["replication_lag_mb"]
    assert "replication: no replicas." in check["not_checked"]
    assert "xid_age=" in check["perfdata"] and ";1;" in check["perfdata"]
    assert document["replication"]["note"] == "no replicas"


@pytest.mark.django_db
@override_settings(DBSTATS_THRESHOLDS={"connections_used_pct": 1000, "connections_critical_pct": 1000})
def test_new_thresholds_missing_from_settings_take_their_defaults():
    document = dbstats_json("--check")  # exit 0 on a healthy test server: no SystemExit

    assert document["check"]["thresholds"]["xid_age_warning"] == dbstats.DEFAULT_THRESHOLDS["xid_age_warning"]
    assert document["check"]["thresholds"]["disk_free_critical_pct"] == 5
    assert document["check"]["exit_code"] == 0


# --- UNKNOWN: the check cannot judge ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("thresholds", "why"),
    [
        (
            {**GENEROUS, "connections_used_pct": 90, "connections_critical_pct": 50},
            "connections_critical_pct (50) is below its warning level connections_used_pct (90)",
        ),
        (
            {**GENEROUS, "disk_free_min_pct": 5, "disk_free_critical_pct": 15},
            "disk_free_critical_pct (15) is above its warning level disk_free_min_pct (5)",
        ),
        ({**GENEROUS, "lock_wait_seconds": "30s"}, "lock_wait_seconds must be a number of 0 or more, not '30s'"),
        ({**GENEROUS, "xid_age_warn": 5}, "unknown key(s) xid_age_warn"),
    ],
)
def test_invalid_thresholds_are_unknown_in_one_line(thresholds, why):
    with override_settings(DBSTATS_THRESHOLDS=thresholds, ADMINS=OPS):
        output, code = run_check()
        out = StringIO()
        with pytest.raises(SystemExit) as exited:
            call_command("dbstats", "--check", "--json", stdout=out, stderr=StringIO())

    assert code == 3
    assert output.splitlines() == [output.strip()]  # one line
    assert output.startswith("DBSTATS UNKNOWN - DBSTATS_THRESHOLDS: ")
    assert why in output
    check = json.loads(out.getvalue())["check"]
    assert exited.value.code == 3 and check["status"] == "UNKNOWN" and why in check["error"]
    assert len(mail.outbox) == 2  # the text and the JSON run each mailed ADMINS


@pytest.mark.django_db
def test_the_report_without_check_ignores_the_thresholds():
    with override_settings(DBSTATS_THRESHOLDS={**GENEROUS, "lock_wait_seconds": "30s"}):
        out = StringIO()
        call_command("dbstats", stdout=out)  # exits 0: no SystemExit

    assert "Lock waits (longest first)" in out.getvalue()


# --- CRITICAL: the database unreachable -------------------------------------------------------------


def closed_port_roles() -> dict:
    """The owner's connection settings aimed at a port nothing listens on ("localhost": not the test login's host)."""
    return {**settings.DATABASE_ROLES, "owner": {**settings.DATABASE_ROLES["owner"], "HOST": "localhost", "PORT": 1}}


def test_the_database_unreachable_is_critical_in_one_line_and_mailed(django_db_blocker):
    name = connection.settings_dict["NAME"]
    with django_db_blocker.unblock(), override_settings(DATABASE_ROLES=closed_port_roles(), ADMINS=OPS):
        output, code = run_check()
        out = StringIO()
        with pytest.raises(SystemExit) as exited:
            call_command("dbstats", "--check", "--json", stdout=out, stderr=StringIO())

    assert code == 2
    assert output.splitlines() == [output.strip()]
    assert output.startswith(f"DBSTATS CRITICAL - database {name} unreachable: connection ")
    # TCP: refused; the embedded server's backend: no socket for that port
    refused = "Connection refused" if "Connection refused" in output else "No such file or directory"
    assert refused in output
    document = json.loads(out.getvalue())
    assert exited.value.code == 2
    assert document["database"]["reachable"] is False and refused in document["database"]["error"]
    assert document["check"]["status"] == "CRITICAL" and document["check"]["exit_code"] == 2
    assert document["check"]["findings"][0]["level"] == "critical"
    assert document["check"]["mail"] == "Mailed to 1 admin(s)."
    assert len(mail.outbox) == 2
    message = mail.outbox[0]
    assert message.to == ["ops@example.edu"]
    assert f"dbstats: CRITICAL - database {name} unreachable" in message.subject
    assert refused in message.body


def test_a_mail_server_down_does_not_change_the_verdict(django_db_blocker):
    mail_down = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
                 "EMAIL_PORT": 1, "EMAIL_TIMEOUT": 5}  # fmt: skip
    with (
        django_db_blocker.unblock(),
        override_settings(DATABASE_ROLES=closed_port_roles(), ADMINS=OPS, **mail_down),
    ):
        out, err = StringIO(), StringIO()
        with pytest.raises(SystemExit) as exited:
            call_command("dbstats", "--check", stdout=out, stderr=err)

    assert exited.value.code == 2
    assert out.getvalue().startswith("DBSTATS CRITICAL - database ")
    assert err.getvalue().startswith("Mailing ADMINS failed: ConnectionRefusedError: ")


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    environment.pop("ADMINS", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_the_database_unreachable_exits_2_from_manage_py_without_a_traceback():
    name = connection.settings_dict["NAME"]
    closed = {
        "DATABASE_URL": connection_url(user="vulhub_app", name=name, host="127.0.0.1", port=1),
        "MIGRATIONS_DATABASE_URL": connection_url(user="postgres", name=name, host="127.0.0.1", port=1),
    }

    text = manage("dbstats", "--check", env=closed)
    as_json = manage("dbstats", "--check", "--json", env=closed)
    report = manage("dbstats", env=closed)  # a person's report: the same line, the same code

    assert text.returncode == 2
    assert text.stdout.splitlines() == [text.stdout.strip()]
    assert text.stdout.startswith(f"DBSTATS CRITICAL - database {name} unreachable: connection failed: ")
    assert "Traceback" not in text.stderr
    assert text.stderr.strip() == "ADMINS is empty, no mail sent."
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["check"]["status"] == "CRITICAL"
    assert report.returncode == 2 and report.stdout.startswith("DBSTATS CRITICAL - ")
    assert "Traceback" not in report.stderr and report.stderr == ""  # no mail from a person's run


def test_a_usage_error_is_unknown_not_critical():
    """argparse exits 2 on a bad option; to a monitor 2 means CRITICAL, so dbstats says UNKNOWN (3)."""
    for args in (["--limit", "0"], ["--no-such-option"]):
        done = manage("dbstats", "--check", *args, env={})
        assert done.returncode == 3, (args, done.stderr)
        assert "DBSTATS UNKNOWN - " in done.stderr
        assert "Traceback" not in done.stderr
