"""A PostgreSQL cluster of VulHub's own: a data directory it starts, stops and connects to.

Point-in-time recovery starts a restored data directory on a spare port to finish its
recovery and verify it, and the outage and recovery drills run throwaway clusters. All
of it goes through the server's own tools (`initdb`, `pg_ctl`), from the first of:

- `PG_BIN_DIR` (environment), when set;
- the directory of the `pg_ctl` on PATH (Debian's `postgresql` package, a source build);
- `/usr/lib/postgresql/<major>/bin`, newest first;
- the embedded server's (pgserver's) own binaries, which every install of VulHub has.

When a major version is asked for (a base backup can only be started by the `postgres`
of the version that wrote it), the first directory of that version wins.

PostgreSQL refuses to run as root: under root the cluster runs as the `postgres`
account when there is one, else as the account the embedded server uses (`pgserver`).
"""

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from vulhub.ops.embedded_db.server import ensure_account

VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class ClusterError(Exception):
    """A cluster could not be made, started or stopped; the message says why."""


def _embedded_bin_dir() -> Path | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns without XDG_RUNTIME_DIR
        try:
            import pgserver
        except ImportError:
            return None
    return Path(pgserver.__file__).resolve().parent / "pginstall" / "bin"


def _candidates() -> Iterator[Path]:
    if os.environ.get("PG_BIN_DIR"):
        yield Path(os.environ["PG_BIN_DIR"])
    on_path = shutil.which("pg_ctl")
    if on_path:
        yield Path(on_path).resolve().parent
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [entry for entry in debian.iterdir() if entry.name.isdigit()]
        for entry in sorted(versions, key=lambda entry: int(entry.name), reverse=True):
            yield entry / "bin"
    embedded = _embedded_bin_dir()
    if embedded is not None:
        yield embedded


def server_major(bin_dir: Path) -> int | None:
    """The major version of the `postgres` in `bin_dir`, None when there is none that runs."""
    postgres = bin_dir / "postgres"
    if not os.access(postgres, os.X_OK):
        return None
    out = subprocess.run([str(postgres), "--version"], capture_output=True, text=True, check=False, timeout=30)  # noqa: S603
    found = VERSION.search(out.stdout)
    return int(found.group(1)) if out.returncode == 0 and found else None


def has_library(bin_dir: Path, library: str) -> bool:
    """Whether the server of `bin_dir` ships the shared library `library` (an extension's module)."""
    pg_config = bin_dir / "pg_config"
    if not os.access(pg_config, os.X_OK):
        return False
    out = subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False, timeout=30)  # noqa: S603
    return out.returncode == 0 and (Path(out.stdout.strip()) / f"{library}.so").exists()


def find_bin_dir(major: int | None = None, *, library: str | None = None) -> Path:
    """The directory of `initdb`, `pg_ctl` and `postgres` to run a cluster of `major` (any: None).

    With `library`, only a server that ships that extension module will do (the embedded
    build, for one, has no pg_stat_statements).
    """
    seen = {}
    for candidate in _candidates():
        if candidate in seen:
            continue
        seen[candidate] = server_major(candidate)
        if seen[candidate] is None or major not in (None, seen[candidate]):
            continue
        if library is None or has_library(candidate, library):
            return candidate
    found = ", ".join(f"{path} ({version or 'no server'})" for path, version in seen.items()) or "none"
    wanted = f"PostgreSQL {major}" if major else "a PostgreSQL server"
    if library:
        wanted += f" with {library}"
    raise ClusterError(
        f"No binaries of {wanted} found (looked at: {found}). Install the server package "
        f"(postgresql-{major or 15}; `make test-deps` does) or set PG_BIN_DIR to its bin directory."
    )


def run_as() -> str | None:
    """The account a cluster runs as: None (this one) unless this process is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    ensure_account("pgserver")
    return "pgserver"


def hand_over(path: Path) -> None:
    """Give `path` (a directory of ours) to the account the cluster runs as."""
    account = run_as()
    if account is not None:
        entry = pwd.getpwnam(account)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def conf_value(value: str) -> str:
    """`value` quoted for a PostgreSQL configuration file (a quote inside is doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """A data directory, the port it listens on (loopback only) and the binaries that run it.

    It also listens on a Unix socket in `socket_dir`, a short directory of its own, which
    is how the cluster's owner connects (trust, local only).
    """

    datadir: Path
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=find_bin_dir)
    socket_dir: Path | None = None
    options: str = ""  # more server options for each start ("-c name=value ..."), over both config files

    def __post_init__(self):
        self.datadir = Path(self.datadir)
        if self.socket_dir is None:
            self.socket_dir = Path(tempfile.mkdtemp(prefix="vulhub-pg-"))
            hand_over(self.socket_dir)

    @property
    def log(self) -> Path:
        return self.socket_dir / "server.log"

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603  (our own PostgreSQL tools, fixed arguments)
            [str(self.bin_dir / argv[0]), *argv[1:]],
            user=run_as(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            cwd="/",
        )

    def initdb(self, settings: dict[str, str] | None = None) -> "Cluster":
        """Create the cluster (superuser `postgres`, trust on loopback) with `settings` in postgresql.conf."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        hand_over(self.datadir)
        done = self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise ClusterError(f"initdb {self.datadir} failed: {(done.stderr or done.stdout).strip()}")
        self.configure(settings or {})
        return self

    def configure(self, settings: dict[str, str]) -> None:
        """Append `settings` to postgresql.conf (a later line wins over an earlier one)."""
        lines = [f"{name} = {conf_value(value)}" for name, value in settings.items()]
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# VulHub\n" + "\n".join(lines) + "\n")

    def start(self, timeout: float = 120) -> None:
        """Start the server and wait until it accepts connections (or recovery ends with a shutdown)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.socket_dir}"
            f" -c unix_socket_permissions=0777 {self.options}"
        )
        wait = ("-w", "-t", str(int(timeout)))
        done = self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-o", options, *wait, "start",
                         timeout=timeout + 30)  # fmt: skip
        if done.returncode != 0:
            raise ClusterError(f"PostgreSQL in {self.datadir} did not start: {self.log_tail() or done.stderr.strip()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (roll back sessions, checkpoint) or `immediate` (as a crash would)."""
        if not self.running():
            return
        done = self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop", timeout=90)
        if done.returncode != 0 and self.running():
            raise ClusterError(f"PostgreSQL in {self.datadir} did not stop: {done.stderr.strip()}")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.datadir), "status").returncode == 0

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """Its owner's way in: the cluster's own socket."""
        return make_conninfo(host=str(self.socket_dir), port=str(self.port), user=user, dbname=dbname)

    def url(self, dbname: str, user: str = "postgres") -> str:
        """A DATABASE_URL for the app (over TCP on loopback)."""
        return f"postgres://{user}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", user: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname, user), autocommit=True, connect_timeout=10)

    def release(self, mode: str = "fast") -> None:
        """Stop the server and delete its socket directory; the data directory stays."""
        try:
            self.stop(mode)
        finally:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def remove(self) -> None:
        """Stop the server (immediately) and delete the data directory and the socket directory."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)
            shutil.rmtree(self.socket_dir, ignore_errors=True)
