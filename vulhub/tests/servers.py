"""Real servers a test starts for itself on spare loopback ports: PgBouncer, redis-server, gunicorn.

Each runs in the foreground as a child of the test, with its output in a log file that
a failure to start quotes, and is stopped (SIGTERM, then SIGKILL) when the block ends.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from django.db import connection

from vulhub.db_roles import app_role_name

ROOT = Path(__file__).resolve().parents[2]
SBIN_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str) -> str:
    found = shutil.which(name, path=SBIN_PATH)
    assert found, f"{name} is not installed: `make test-deps` installs it (Debian's package)."
    return found


def wait_for(check, what: str, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (OSError, psycopg.OperationalError):  # not listening yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not start within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def running(command: list[str], *, what: str, ready, env: dict | None = None):
    """`command` running until the block ends, once `ready()` says it answers."""
    folder = Path(tempfile.mkdtemp(prefix=f"vulhub-test-{what}-"))
    log = folder / f"{what}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_for(ready, what, process, log)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def app_database_url(host: str | None = None, port: int | str | None = None) -> str:
    """The test database as the restricted app role sees it (local trust auth), directly or through `host:port`."""
    database = connection.settings_dict
    host = host or database["HOST"] or "127.0.0.1"
    port = port or database["PORT"] or 5432
    return f"postgres://{app_role_name()}@{quote(str(host), safe='')}:{port}/{database['NAME']}"


@contextmanager
def gunicorn(database_url: str, **env: str):
    """VulHub under gunicorn (two sync workers) on a free port, as the app role at `database_url`; yields the port."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "true",  # no collectstatic needed; the error pages are the production ones all the same
        "ALLOWED_HOSTS": ".localhost,localhost,127.0.0.1",
        "SLOW_QUERY_MS": "0",
        **env,
    }
    environment.pop("VULHUB_MANAGEMENT_COMMAND", None)
    command = [str(Path(sys.executable).with_name("gunicorn")), "vulhub.wsgi:application", "--workers", "2"]

    def healthy() -> bool:
        return fetch(port, "localhost", "/health/")[0] == 200

    with running([*command, "--bind", f"127.0.0.1:{port}"], what="gunicorn", ready=healthy, env=environment):
        yield port


def fetch(port: int, host: str, path: str, session: str = "") -> tuple[int, str]:
    """(status, body) of a GET on the server at `port` for `host`, errors included (never raises on a status)."""
    headers = {"Host": host, **({"Cookie": f"sessionid={session}"} if session else {})}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)  # noqa: S310  (loopback)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
