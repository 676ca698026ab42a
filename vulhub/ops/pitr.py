"""Point-in-time recovery on pgBackRest, with VulHub's configuration and checks around it.

pgBackRest (https://pgbackrest.org, Debian's `pgbackrest`) does the work, and this module
does not repeat any of it:

- the server archives every finished WAL file with `pgbackrest archive-push`
  (compressed with zstd, asynchronous, into every repository);
- `pgbackrest backup` takes full, differential and incremental backups, and after each
  one expires what retention no longer keeps: old backups and the WAL only they need;
- a second repository (`repo2-*` options: a folder, or an S3 bucket) holds a copy of
  both, so a lost machine loses nothing that was archived.

VulHub adds what a class's operator needs around it:

- `setup`: writes pgbackrest.conf (PITR_CONFIG) from the server's own facts (data
  directory, port, socket) and the PITR_* settings, points the server's archive_command
  at it, creates the stanza and checks that a WAL file reaches the repository;
- `window`: the backups, and the earliest and latest moments a restore can reach: from
  the end of the oldest backup (`pgbackrest info`) to the newest commit in the newest
  archived WAL file (read with pg_waldump);
- `restore --to TIME --into DIR`: pgBackRest restores into a new directory (never the
  running server's), the server recovers there on a spare port, and VulHub verifies the
  result as `restore` does (the rows and checksum of every table, recorded in the
  directory; every audit chain walked), then stops it;
- `verify DIR`: the same checks again, against that record.

pgBackRest runs as the account that owns the cluster (under root, the `postgres`
account, as the tests' clusters do), on the database's machine: it reads the data
directory itself.
"""

import configparser
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from django.conf import settings
from django.db import connections

from vulhub.ops import backups
from vulhub.ops.destinations import write_whole
from vulhub.ops.pg_cluster import Cluster, ClusterError, conf_value, find_bin_dir, hand_over, run_as

RESTORE_RECORD = "vulhub_restore.json"
SEGMENT = re.compile(r"^[0-9A-F]{24}$")
# "desc: COMMIT 2026-12-03 12:07:38.071842 UTC; inval msgs: ..." (what follows the zone varies)
COMMIT = re.compile(r"desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([\w/+-]+)")
# The newest PostgreSQL major each pgBackRest release supports (pgBackRest's release notes):
# Debian 12's 2.45 stops at 15, so the embedded server (16) is out of its reach.
SUPPORTED_MAJOR = ((2, 53, 17), (2, 47, 16), (2, 41, 15))
NOT_INSTALLED = (
    "pgBackRest is not installed: point-in-time recovery runs on it (Debian: apt install pgbackrest; "
    "`make test-deps` installs it; the Compose images have it)."
)


class PitrError(Exception):
    """A step of point-in-time recovery failed or was refused; the message says why and what to do."""


# --- pgBackRest itself ---------------------------------------------------------------------------


def executable() -> str:
    found = shutil.which("pgbackrest")
    if found is None:
        raise PitrError(NOT_INSTALLED)
    return found


def version() -> tuple[int, int]:
    done = subprocess.run([executable(), "version"], capture_output=True, text=True, check=False, timeout=30)  # noqa: S603
    found = re.search(r"pgBackRest (\d+)\.(\d+)", done.stdout)
    if not found:
        raise PitrError(f"`pgbackrest version` printed no version: {done.stdout.strip() or done.stderr.strip()}")
    return int(found.group(1)), int(found.group(2))


def newest_supported(release: tuple[int, int]) -> int:
    for major, minor, postgres in SUPPORTED_MAJOR:
        if release >= (major, minor):
            return postgres
    return 14


def refuse_unsupported(server_major: int, release: tuple[int, int] | None = None) -> None:
    """One line when this pgBackRest cannot work with a server of `server_major`."""
    release = release or version()
    newest = newest_supported(release)
    if server_major > newest:
        embedded = settings.DATABASES["default"]["ENGINE"].endswith("embedded_db")
        embedded = " (the embedded default's)" if embedded else ""
        raise PitrError(
            f"Point-in-time recovery needs a PostgreSQL server pgBackRest {release[0]}.{release[1]} supports "
            f"(up to {newest}); this one runs {server_major}{embedded}. Set DATABASE_URL and "
            f"MIGRATIONS_DATABASE_URL to a PostgreSQL {newest} server, or use docker compose (docs/operations.md); "
            "`manage.py backup` and `restore` work on any server."
        )


def error_of(done: subprocess.CompletedProcess) -> str:
    """pgBackRest's ERROR line and its HINT, in one line (else the last line it printed)."""
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    picked = [line[line.index(word) :] for line in lines for word in ("ERROR:", "HINT:") if word in line]
    text = " ".join(picked or lines[-1:]) or f"exit {done.returncode}"
    return re.sub(r"\s+", " ", text)


def pgbackrest(
    config: Path, *args: str, stanza: str | None = None, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """`pgbackrest --config=config [--stanza=…] *args`, as the cluster's account; a failure is a PitrError.

    `timeout`: seconds it may take (None: as long as it takes); past them it is stopped, a PitrError.
    """
    argv = [executable(), f"--config={config}", *([f"--stanza={stanza}"] if stanza else []), *args]
    try:
        done = subprocess.run(  # noqa: S603
            argv, user=run_as(), capture_output=True, text=True, check=False, cwd="/", timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise PitrError(f"pgbackrest {args[0]} gave no answer within {timeout:g} s") from None
    if check and done.returncode != 0:
        raise PitrError(f"pgbackrest {args[0]} failed: {error_of(done)}")
    return done


# --- Configuration -------------------------------------------------------------------------------


@dataclass
class Config:
    """pgbackrest.conf as VulHub writes and reads it."""

    path: Path
    stanza: str

    @classmethod
    def of_settings(cls) -> "Config":
        if settings.PITR_PGBACKREST_OPTIONS_PROBLEM:
            raise PitrError(settings.PITR_PGBACKREST_OPTIONS_PROBLEM)
        return cls(Path(settings.PITR_CONFIG).absolute(), settings.PITR_STANZA)

    def read(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with self.path.open(encoding="utf-8") as source:
                parser.read_file(source)
        except FileNotFoundError:
            raise PitrError(
                f"No pgBackRest configuration at {self.path}: run `manage.py pitr setup` first (PITR_CONFIG)."
            ) from None
        except (OSError, configparser.Error) as error:
            raise PitrError(f"{self.path} cannot be read: {backups.one_line(error)}") from None
        return parser

    def option(self, name: str, default: str | None = None) -> str | None:
        parser = self.read()
        for section in (self.stanza, "global"):
            if parser.has_option(section, name):
                return parser.get(section, name)
        return default

    def repos(self) -> list[int]:
        """The repositories configured: 1, and 2 (…) when their options are there."""
        parser = self.read()
        found = {1}
        for section in parser.sections():
            for name in parser.options(section):
                if matched := re.match(r"^repo(\d+)-", name):
                    found.add(int(matched.group(1)))
        return sorted(found)

    def run(self, *args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
        if not self.path.exists():
            self.read()  # the one clear line
        return pgbackrest(self.path, *args, stanza=self.stanza, check=check, timeout=timeout)


@dataclass
class ServerFacts:
    major: int
    data_directory: Path
    port: int
    socket_dir: str
    user: str
    superuser: bool
    archive_mode: str
    wal_level: str
    archive_command: str


def server_facts(server: backups.Server) -> ServerFacts:
    try:
        with server.connect() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version_num')::int / 10000, current_setting('data_directory'),"
                " current_setting('port')::int, current_setting('unix_socket_directories'), current_user,"
                " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_setting('archive_mode'),"
                " current_setting('wal_level'), current_setting('archive_command')"
            ).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        raise PitrError(
            "Point-in-time recovery needs the server's superuser (it reads the data directory's place and "
            "starts backups): set MIGRATIONS_DATABASE_URL to a superuser's login for `manage.py pitr`."
        ) from None
    major, datadir, port, sockets, user, superuser, mode, level, command = row
    return ServerFacts(major, Path(datadir), port, sockets.split(",")[0].strip(), user, superuser, mode, level, command)


def local_server(server: backups.Server) -> ServerFacts:
    """The facts of a server pgBackRest can back up from here, or one line saying why it cannot."""
    executable()
    facts = server_facts(server)
    refuse_unsupported(facts.major)
    if not facts.superuser:
        raise PitrError(f"{facts.user} is not a superuser: `manage.py pitr` needs the server's superuser.")
    if not facts.data_directory.is_dir():
        raise PitrError(
            f"The server's data directory {facts.data_directory} is not on this machine: pgBackRest backs up where "
            "the database runs (docs/operations.md; in Compose, the pitr service does)."
        )
    return facts


def archive_command(config: Config) -> str:
    return f"{executable()} --config={config.path} --stanza={config.stanza} archive-push %p"


def config_text(config: Config, facts: ServerFacts) -> str:
    home = config.path.parent
    days = settings.PITR_RETENTION_FULL_DAYS
    repo_options = {
        "retention-full-type": "time" if days else "count",
        "retention-full": str(days or settings.PITR_RETENTION_FULL),
        "retention-diff": str(settings.PITR_RETENTION_DIFF),
    }
    options = {"repo1-path": str(Path(settings.PITR_DIR).absolute())}
    options.update({f"repo1-{name}": value for name, value in repo_options.items()})
    extra = {str(name): str(value) for name, value in settings.PITR_PGBACKREST_OPTIONS.items()}
    for repo in sorted({int(m.group(1)) for name in extra if (m := re.match(r"^repo(\d+)-", name))} - {1}):
        options.update({f"repo{repo}-{name}": value for name, value in repo_options.items()})
    options.update(
        {
            "compress-type": "zst",
            "archive-async": "y",  # archive-push hands WAL to a background process: the server waits less
            "spool-path": str(home / "spool"),
            "process-max": "2",
            "start-fast": "y",  # a backup starts with an immediate checkpoint
            "log-path": str(home / "log"),
            "lock-path": str(home / "lock"),
        }
    )
    options.update(extra)  # the operator's options win
    stanza = {
        "pg1-path": str(facts.data_directory),
        "pg1-port": str(facts.port),
        "pg1-socket-path": facts.socket_dir,
        "pg1-user": facts.user,
    }
    lines = ["# Written by `manage.py pitr setup` (PITR_* settings): run it again rather than editing.", "[global]"]
    lines += [f"{name}={value}" for name, value in options.items()]
    lines += ["", f"[{config.stanza}]"] + [f"{name}={value}" for name, value in stanza.items()]
    return "\n".join(lines) + "\n"


def _own_folder(path: Path, mode: int = 0o750) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    hand_over(path)


@dataclass
class SetupResult:
    config: Path
    archive_command: str
    changed_archive_command: bool


def setup(server: backups.Server, steps: backups.Steps = backups.SILENT) -> SetupResult:
    """pgbackrest.conf for `server`, its archive_command, the stanza, and a check that archiving works."""
    config = Config.of_settings()
    facts = local_server(server)
    steps.start("configure")
    _own_folder(config.path.parent)
    for folder in ("spool", "log", "lock"):
        _own_folder(config.path.parent / folder)
    _own_folder(Path(settings.PITR_DIR).absolute())
    write_whole(config.path, config_text(config, facts))
    config.path.chmod(0o640)  # it may hold a repository's keys; the server's account reads it
    hand_over(config.path)
    steps.start("stanza")
    config.run("stanza-create")  # before archiving into it: archive-push would hold the stanza's lock
    wanted = archive_command(config)
    changed = facts.archive_command != wanted
    with server.connect() as conn:
        if changed:
            conn.execute(f"ALTER SYSTEM SET archive_command = {conf_value(wanted)}")
        if facts.wal_level == "minimal":
            conn.execute("ALTER SYSTEM SET wal_level = 'replica'")
        if facts.archive_mode == "off":
            conn.execute("ALTER SYSTEM SET archive_mode = 'on'")
        if conn.execute("SELECT current_setting('archive_timeout')").fetchone()[0] in ("0", "0s"):
            conn.execute("ALTER SYSTEM SET archive_timeout = '60s'")  # a quiet server's commits wait a minute at most
        conn.execute("SELECT pg_reload_conf()")
    if facts.wal_level == "minimal" or facts.archive_mode == "off":
        raise PitrError(
            f"Archiving was off (wal_level={facts.wal_level}, archive_mode={facts.archive_mode}): it is now set "
            "on (ALTER SYSTEM). Restart the server, then run `manage.py pitr setup` again."
        )
    steps.start("check")
    config.run("check")
    return SetupResult(config.path, wanted, changed)


# --- Backups and the recovery window ------------------------------------------------------------


@dataclass
class Backup:
    label: str
    kind: str  # full, diff, incr
    repo: int
    started_at: datetime
    finished_at: datetime
    size: int  # the database's size
    stored: int  # what it takes in the repository (compressed; only the changes for diff and incr)
    wal_start: str
    wal_stop: str


@dataclass
class Info:
    backups: list[Backup]
    wal: dict[int, tuple[str, str]]  # repository: the oldest and newest archived WAL file
    major: int | None


def info(config: Config, repo: int | None = None, timeout: float | None = None) -> Info:
    """What pgBackRest knows of the stanza (`pgbackrest info --output=json`), oldest backup first."""
    done = config.run("info", "--output=json", *([f"--repo={repo}"] if repo else []), timeout=timeout)
    try:
        (stanza,) = json.loads(done.stdout)
    except ValueError:
        raise PitrError(f"`pgbackrest info` printed no JSON: {done.stdout[:200]}") from None
    if stanza.get("status", {}).get("code") not in (0, 2, 4):  # 2: no backup yet; 4: repositories differ
        raise PitrError(f"pgBackRest: stanza {config.stanza}: {stanza.get('status', {}).get('message')}")
    found = [
        Backup(
            label=entry["label"],
            kind=entry["type"],
            repo=entry["database"]["repo-key"],
            started_at=datetime.fromtimestamp(entry["timestamp"]["start"], UTC),
            finished_at=datetime.fromtimestamp(entry["timestamp"]["stop"], UTC),
            size=entry["info"]["size"],
            stored=entry["info"]["repository"]["delta"],
            wal_start=entry["archive"]["start"],
            wal_stop=entry["archive"]["stop"],
        )
        for entry in stanza.get("backup", [])
        if not entry.get("error")
    ]
    wal = {}
    for entry in stanza.get("archive", []):
        key = entry["database"]["repo-key"]
        if entry.get("min") and entry.get("max"):
            low, high = wal.get(key, (entry["min"], entry["max"]))
            wal[key] = (min(low, entry["min"]), max(high, entry["max"]))
    versions = [int(db["version"]) for db in stanza.get("db", []) if str(db.get("version", "")).isdigit()]
    return Info(sorted(found, key=lambda backup: backup.finished_at), wal, max(versions) if versions else None)


def take_backup(
    server: backups.Server, kind: str = "full", repos: list[int] | None = None, steps: backups.Steps = backups.SILENT
) -> list[Backup]:
    """A backup of `kind` into each of `repos` (default: every configured one), then pgBackRest's expiry."""
    config = Config.of_settings()
    facts = local_server(server)
    if facts.archive_mode == "off" or facts.wal_level == "minimal":
        raise PitrError(
            f"The server does not archive its WAL (wal_level={facts.wal_level}, archive_mode={facts.archive_mode}): "
            "run `manage.py pitr setup` first (docs/operations.md, Point-in-time recovery)."
        )
    taken = []
    for repo in repos or config.repos():
        steps.start(f"{kind} backup, repository {repo}")
        before = {backup.label for backup in info(config, repo).backups}
        config.run("backup", f"--type={kind}", f"--repo={repo}")
        taken += [backup for backup in info(config, repo).backups if backup.label not in before]
    return taken


@dataclass
class Window:
    start: datetime | None  # the earliest moment a restore reaches: just after the oldest backup ended
    end: datetime | None  # the newest commit archived
    backups: list[Backup]
    wal: dict[int, tuple[str, str]]
    major: int | None

    def describe(self) -> str:
        if self.start is None or self.end is None:
            return "no recovery window (no backup with its WAL archived)"
        return f"{show_time(self.start)} to {show_time(self.end)}"


def show_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _segments_before(name: str, count: int, size: int) -> list[str]:
    """`name` and up to `count - 1` WAL file names before it on its timeline, newest first."""
    per_id = 0x1_0000_0000 // size
    timeline, number = name[:8], int(name[8:16], 16) * per_id + int(name[16:24], 16)
    return [f"{timeline}{n // per_id:08X}{n % per_id:08X}" for n in range(number, max(number - count, -1), -1)]


def last_commit(config: Config, newest: str, oldest: str, major: int, repo: int | None = None) -> datetime | None:
    """The newest commit time in the archived WAL files up to `newest` (read with pg_waldump)."""
    waldump = find_bin_dir(major) / "pg_waldump"
    with tempfile.TemporaryDirectory(prefix="vulhub-waldump-") as scratch:
        hand_over(Path(scratch))
        size = None
        names = [newest]
        index = 0
        while index < len(names):  # a switch or an idle file holds no commit: look back a little
            name = names[index]
            index += 1
            if name < oldest:
                break
            path = Path(scratch) / name
            config.run("archive-get", "--no-archive-async", *([f"--repo={repo}"] if repo else []), name, str(path))
            if size is None:
                size = path.stat().st_size
                names = _segments_before(newest, 8, size)
            done = subprocess.run(  # noqa: S603  (our PostgreSQL tool, fixed arguments)
                [str(waldump), "--rmgr=Transaction", str(path)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "TZ": "UTC"},
            )
            path.unlink()
            times = [_commit_time(*found.groups()) for found in COMMIT.finditer(done.stdout)]
            if times:
                return max(times)
            if done.returncode != 0 and re.search(r"could not (open|read|find file)", done.stderr):
                raise PitrError(f"pg_waldump could not read {name}: {done.stderr.strip()[-300:]}")
    return None


def _commit_time(text: str, zone: str) -> datetime:
    if zone != "UTC":
        raise PitrError(f"pg_waldump printed a time in {zone}, not UTC: {text}")
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def recovery_window(config: Config, repo: int | None = None) -> Window:
    found = info(config, repo)
    complete = [backup for backup in found.backups if repo in (None, backup.repo)]
    wanted = [found.wal[key] for key in sorted(found.wal) if repo in (None, key)]
    if not complete or not wanted or found.major is None:
        return Window(None, None, complete, found.wal, found.major)
    oldest, newest = min(low for low, _ in wanted), max(high for _, high in wanted)
    end = last_commit(config, newest, oldest, found.major, repo)
    usable = [backup for backup in complete if end is not None and backup.finished_at < end]
    start = usable[0].finished_at + timedelta(seconds=1) if usable else None  # its stop time is in whole seconds
    return Window(start, end if usable else None, complete, found.wal, found.major)


def parse_target(text: str) -> datetime | None:
    """`--to`: an ISO 8601 time (no zone: the TIME_ZONE setting's), or "latest" (None)."""
    if text.strip().lower() == "latest":
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PitrError(
            f"{text!r} is not a time: give ISO 8601, e.g. 2026-12-03T14:02:00Z or '2026-12-03 14:02:00+01:00', "
            "or 'latest'."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.TIME_ZONE))
    return moment.astimezone(UTC)


def check_target(window: Window, target: datetime | None) -> None:
    if window.start is None or window.end is None:
        raise PitrError(
            f"Nothing to recover from ({len(window.backups)} backup(s); archived WAL: "
            f"{', '.join(f'repository {k}: {low} to {high}' for k, (low, high) in window.wal.items()) or 'none'}): "
            "take a backup with `manage.py pitr backup` once `pitr setup` has run."
        )
    if target is not None and not window.start <= target <= window.end:
        raise PitrError(
            f"{show_time(target)} is outside the recovery window, {window.describe()}. The window starts just after "
            "the oldest backup ended and ends at the newest commit archived so far (a commit still in the server's "
            "current WAL file is archived within archive_timeout; `SELECT pg_switch_wal()` on the server archives "
            "it now)."
        )


# --- Restore ------------------------------------------------------------------------------------


@dataclass
class PitrRestore:
    datadir: Path
    target: datetime | None
    backup: Backup
    verified: backups.RestoreResult
    seconds: float
    reached: datetime | None  # the newest change the restored database holds
    port: int  # where it listened while restoring (and listens on, when kept running)


def _ensure_new_datadir(path: Path, live: str | None) -> bool:
    """Refuse anything but a new or empty directory; whether it exists already."""
    path = path.resolve()
    if live and Path(live).resolve() == path:
        raise PitrError(f"{path} is the running server's data directory: restore into a new one.")
    if (path / "postmaster.pid").exists() or (path / "PG_VERSION").exists():
        raise PitrError(f"{path} holds a PostgreSQL data directory: restore into a new or empty directory.")
    if path.exists() and any(path.iterdir()):
        raise PitrError(f"{path} is not empty: restore into a new or empty directory.")
    if not path.parent.is_dir():
        raise PitrError(f"{path.parent} does not exist: restore into a directory whose parent exists.")
    return path.exists()


def _empty(path: Path, existed: bool) -> None:
    """Take back what a failed restore wrote into `path` (new or empty when it began)."""
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_dir():
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def restore_to(
    target: datetime | None,
    datadir: Path,
    *,
    database: str,
    repo: int | None = None,
    live_datadir: str | None = None,
    keep_running: bool = False,
    port: int | None = None,
    steps: backups.Steps = backups.SILENT,
) -> PitrRestore:
    """Restore the stanza to `target` (None: all that is archived) into the new `datadir`, and verify it.

    Any failure, an interrupt included, stops the server it started and takes back what
    it wrote: the directory is as new or empty as it was.
    """
    started = time.monotonic()
    config = Config.of_settings()
    datadir = Path(datadir).absolute()
    existed = _ensure_new_datadir(datadir, live_datadir)
    steps.start("recovery window")
    window = recovery_window(config, repo)
    check_target(window, target)
    backup = [b for b in window.backups if target is None or b.finished_at < target][-1]
    bin_dir = find_bin_dir(window.major)
    superuser = config.option("pg1-user", "postgres")
    # PostgreSQL stops at a target time when it meets the first commit after it: past the
    # newest archived commit there is none, so such a target replays all that is archived
    # (the same rows: nothing archived was committed after it).
    stop_at = target if target is not None and target < window.end else None
    cluster = None
    try:
        steps.start("restore")
        _own_folder(datadir, 0o700)
        kind = ["--type=default"]
        if stop_at is not None:
            moment = stop_at.strftime("%Y-%m-%d %H:%M:%S.%f+00")
            kind = ["--type=time", f"--target={moment}", "--target-action=promote"]
        config.run(
            "restore", f"--pg1-path={datadir}", "--archive-mode=off", *kind,
            *([f"--repo={repo}"] if repo else []),
        )  # fmt: skip
        cluster = _recovering_cluster(datadir, bin_dir, port)
        steps.start("recovery")
        cluster.start(timeout=3600)
        _wait_for_promotion(cluster, superuser)
        _finish_recovery_settings(cluster, superuser)
        steps.start("verify")
        verified, reached = _verify(cluster, superuser, database, steps)
        _record(cluster, superuser, database, verified)
        if not keep_running:
            cluster.release()
    except BaseException:
        if cluster is not None:
            with contextlib.suppress(ClusterError, OSError, subprocess.SubprocessError):
                cluster.release("immediate")
        _empty(datadir, existed)
        raise
    return PitrRestore(datadir, target, backup, verified, time.monotonic() - started, reached, cluster.port)


def _recovering_cluster(datadir: Path, bin_dir: Path, port: int | None) -> Cluster:
    """The restored directory, set to take only its owner while it recovers and is verified.

    pgBackRest wrote the recovery settings (restore_command, the target) into
    postgresql.auto.conf; a server whose configuration lived outside its data directory
    (Debian's) gets a minimal one.
    """
    cluster = Cluster(datadir, bin_dir=bin_dir, **({"port": port} if port else {}))
    cluster.options = _owner_only(cluster)
    if not (datadir / "postgresql.conf").exists():
        write_whole(datadir / "postgresql.conf", "# Written by `manage.py pitr restore`: the server's was elsewhere.\n")
        hand_over(datadir / "postgresql.conf")
    if not (datadir / "pg_hba.conf").exists():
        write_whole(datadir / "pg_hba.conf", "local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n")
        hand_over(datadir / "pg_hba.conf")
    return cluster


def _owner_only(cluster: Cluster) -> str:
    """Server options that let in only local connections on the cluster's own socket (an hba_file of ours)."""
    hba = cluster.socket_dir / "pg_hba.conf"
    write_whole(hba, "local all all trust\n")
    return f"-c hba_file={hba}"


def _wait_for_promotion(cluster: Cluster, superuser: str, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with cluster.connect(user=superuser) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
        except psycopg.OperationalError:
            if not cluster.running():
                raise PitrError(f"Recovery failed and the server stopped: {cluster.log_tail(8)}") from None
        time.sleep(0.3)
    raise PitrError(f"Recovery did not finish within {timeout:.0f} s: {cluster.log_tail(8)}")


def _finish_recovery_settings(cluster: Cluster, superuser: str) -> None:
    """Recovery is over: its settings go, and archiving stays off until the operator turns it on."""
    with cluster.connect(user=superuser) as conn:
        for name in ("restore_command", "recovery_target_action", "recovery_target_time"):
            conn.execute(f"ALTER SYSTEM RESET {name}")
        conn.execute("SELECT pg_reload_conf()")


@contextlib.contextmanager
def cluster_alias(cluster: Cluster, user: str, database: str) -> Iterator[str]:
    """A temporary Django alias for `database` on `cluster` (over its socket, as `user`)."""
    alias = f"pitr_{cluster.port}"
    base = connections.settings["default"]
    settings_dict = {
        **base,
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": user,
        "PASSWORD": "",
        "HOST": str(cluster.socket_dir),
        "PORT": str(cluster.port),
        "OPTIONS": {"connect_timeout": 10},
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TEST": {},
    }
    with backups.temporary_alias(alias, settings_dict):
        yield alias


def _verify(cluster: Cluster, user: str, database: str, steps, against: dict | None = None) -> tuple:
    """Check the database on `cluster` (against a restore record, when given): the result and its newest change."""
    with cluster.connect(user=user) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            raise PitrError(f"The restored cluster has no database {database}.")
    with cluster_alias(cluster, user, database) as alias:
        verified = backups.verify_database(against, database=database, steps=steps, alias=alias)
    with cluster.connect(database, user) as conn:
        reached = conn.execute(
            "SELECT greatest((SELECT max(submitted_at) FROM submissions), (SELECT max(created_at) FROM audit_logs))"
            if _has_tables(conn, "submissions", "audit_logs")
            else "SELECT NULL::timestamptz"
        ).fetchone()[0]
    return verified, reached


def _record(cluster: Cluster, user: str, database: str, verified: backups.RestoreResult) -> None:
    """What the restore verified, kept in the data directory for `pitr verify` to compare with later."""
    with cluster.connect(database, user) as conn:
        migrations = backups._migrations(conn.cursor())
    record = {"database": database, "user": user, "tables": verified.found, "migrations": migrations}
    write_whole(cluster.datadir / RESTORE_RECORD, json.dumps(record, indent=2))
    hand_over(cluster.datadir / RESTORE_RECORD)


def _has_tables(conn, *names: str) -> bool:
    return all(conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{n}"]).fetchone()[0] for n in names)


def _read_record(datadir: Path) -> dict | None:
    try:
        return json.loads((datadir / RESTORE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def verify_restored(datadir: Path, *, steps: backups.Steps = backups.SILENT) -> backups.RestoreResult:
    """Start a restored data directory on a spare port and check it against what its restore recorded."""
    datadir = Path(datadir)
    record = _read_record(datadir)
    if record is None:
        raise PitrError(f"{datadir} has no {RESTORE_RECORD}: it was not restored by `manage.py pitr restore`.")
    with (datadir / "PG_VERSION").open() as pg_version:
        major = int(pg_version.read().strip())
    cluster = Cluster(datadir, bin_dir=find_bin_dir(major))
    if cluster.running():
        raise PitrError(f"A server is running on {datadir}: stop it first, or verify a copy.")
    cluster.options = f"{_owner_only(cluster)} -c archive_mode=off"
    try:
        cluster.start()
        verified, _reached = _verify(cluster, record["user"], record["database"], steps, against=record)
    finally:
        cluster.release()
    return verified


def live_data_directory(server: backups.Server) -> str | None:
    """The running server's data directory, when this role may read it (superuser, pg_read_all_settings)."""
    try:
        with server.connect() as conn:
            return conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
    except psycopg.Error:
        return None


__all__ = [
    "Backup",
    "ClusterError",
    "Config",
    "PitrError",
    "Window",
    "check_target",
    "info",
    "parse_target",
    "recovery_window",
    "refuse_unsupported",
    "restore_to",
    "setup",
    "take_backup",
    "verify_restored",
]
