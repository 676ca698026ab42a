"""The embedded PostgreSQL: when it cannot start, one line says what to do, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vulhub.ops.embedded_db import server

ROOT = Path(__file__).resolve().parents[3]


def manage(*args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MIGRATIONS_DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_data_folder_that_cannot_be_made_is_one_line_saying_what_to_do(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder's parent should be")

    result = manage("migrate", EMBEDDED_PGDATA=str(blocker / "pgdata"))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"The embedded PostgreSQL in {blocker / 'pgdata'} did not start" in result.stderr
    assert "set DATABASE_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_without_useradd_root_is_told_how_to_make_the_account(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no useradd anywhere on the search path
    monkeypatch.setattr(server, "SBIN_DIRS", ())

    with pytest.raises(server.EmbeddedServerError) as refused:
        server.ensure_account("vulhub-test-no-such-account")

    message = str(refused.value)
    assert "`useradd` was not found" in message
    assert "useradd --system vulhub-test-no-such-account" in message
    assert "set DATABASE_URL" in message
    assert "\n" not in message


def test_an_account_that_exists_needs_no_useradd(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(server, "SBIN_DIRS", ())

    server.ensure_account("root")  # no error: nothing to create


def test_status_exits_3_when_the_server_is_stopped_and_0_when_it_runs(tmp_path):
    pgdata = str(tmp_path / "pgdata")

    stopped = manage("embedded_db", "status", EMBEDDED_PGDATA=pgdata)

    assert stopped.returncode == 3
    assert stopped.stdout.strip() == f"Embedded PostgreSQL stopped (data {pgdata})."
    try:
        assert manage("embedded_db", "start", EMBEDDED_PGDATA=pgdata).returncode == 0
        running = manage("embedded_db", "status", EMBEDDED_PGDATA=pgdata)
        assert running.returncode == 0
        assert running.stdout.strip() == f"Embedded PostgreSQL running (data {pgdata})."
    finally:
        manage("embedded_db", "stop", EMBEDDED_PGDATA=pgdata)
