"""Start (once) and describe the embedded PostgreSQL server."""

import os
import pwd
import shutil
import subprocess
import threading
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from django.db import OperationalError

_lock = threading.Lock()


class EmbeddedServerError(OperationalError):
    """The embedded server could not be started; the message says what to do, in one line."""


# where useradd lives, though an ordinary user's PATH (or `env -i`) often lacks them
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])


def ensure_account(name: str) -> None:
    """Create the system account `name` (root only) for a server that refuses to run as root."""
    if _account_exists(name):
        return
    useradd = shutil.which("useradd", path=_sbin_path())
    if useradd is None:
        raise EmbeddedServerError(
            f"Running as root, PostgreSQL needs a system account '{name}' to run as, and `useradd` was not "
            f"found to create it: create it yourself (useradd --system {name}), run as an ordinary user, "
            "or set DATABASE_URL to a PostgreSQL server."
        )
    done = subprocess.run(  # noqa: S603  (fixed argv)
        [useradd, "--system", "--shell", "/bin/false", name], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 and not _account_exists(name):  # another process may have made it meanwhile
        raise EmbeddedServerError(
            f"Could not create the system account '{name}' PostgreSQL runs as under root "
            f"({(done.stderr or done.stdout).strip()}): create it yourself, or set DATABASE_URL."
        )


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _start(pgdata: str | Path):
    """pgserver's server for `pgdata`, started if it is not running; EmbeddedServerError if that fails."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        ensure_account("pgserver")  # pgserver runs the server as this account under root
    try:
        Path(pgdata).parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); harmless
            warnings.simplefilter("ignore")
            import pgserver  # imported lazily: only the embedded mode needs it

            # cleanup_mode=None: the server outlives this process, so the next
            # command finds it running instead of paying for a start.
            return pgserver.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # pgserver raises whatever its subprocesses and file system raise
        reason = _last_line(getattr(exc, "stderr", None) or str(exc) or type(exc).__name__)
        log = Path(pgdata) / "log"
        raise EmbeddedServerError(
            f"The embedded PostgreSQL in {pgdata} did not start ({reason}). "
            + (f"Its log is {log}. " if log.exists() else "")
            + "Check free disk space and that the folder is writable, or set DATABASE_URL to a PostgreSQL server."
        ) from exc


def _last_line(text) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


_socket_dirs: dict[str, str] = {}


_databases: set[tuple[str, str]] = set()


def ensure_running(pgdata: str | Path, database: str | None = None) -> str:
    """Start the server for `pgdata` if needed, create `database`, return its socket dir."""
    key = str(pgdata)
    with _lock:
        if key not in _socket_dirs:
            server = _start(pgdata)
            _socket_dirs[key] = parse_qs(urlparse(server.get_uri()).query)["host"][0]
            _ensure_roles(_socket_dirs[key])
        host = _socket_dirs[key]
        if database and (key, database) not in _databases:
            import psycopg

            with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
                if not found:
                    conn.execute(f'CREATE DATABASE "{database}"')
            _databases.add((key, database))
        return host


# The embedded server runs the app as a restricted role, as production does
# (vulhub/ops/db_roles.py); "postgres" owns the schema.
EMBEDDED_ROLES = {
    "vulhub_app": "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT",
    "vulhub_backup": "LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE",
}


def _ensure_roles(host: str) -> None:
    import psycopg

    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        for role, attributes in EMBEDDED_ROLES.items():
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                conn.execute(f'CREATE ROLE "{role}" {attributes}')
        conn.execute('GRANT pg_read_all_data TO "vulhub_backup"')


def is_running(pgdata: str | Path) -> bool:
    pid_file = Path(pgdata) / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:  # alive, owned by another account
        return True
    return True


def stop(pgdata: str | Path) -> bool:
    """Stop the server for `pgdata` (fast shutdown); False when none was running."""
    if not is_running(pgdata):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    # pgserver runs the server as its own "pgserver" account when started by root
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    subprocess.run(  # noqa: S603  (fixed argv: our own pg_ctl)
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
        user=user,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _socket_dirs.pop(str(pgdata), None)
    _databases.difference_update({k for k in _databases if k[0] == str(pgdata)})
    return True
