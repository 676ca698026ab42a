"""Point-in-time recovery: base backups plus archived WAL, restored to any moment in between.

PostgreSQL's own continuous archiving, with nothing between it and the files:

- The server archives each finished WAL file into `<PITR_DIR>/wal/` through its
  `archive_command` (`docker/postgres/archive_wal.sh`: copy, flush, then rename).
  `archive_timeout` bounds how long a commit waits in an unfinished file: with 60 s, a
  lost machine loses at most the last minute.
- `manage.py pitr backup` takes a base backup with `pg_basebackup` (tar, gzip, the WAL it
  needs included, a backup manifest) into `<PITR_DIR>/base/<UTC time>/`, with
  `vulhub.json` beside it: the server's clock when the backup began and ended, its
  timeline, WAL positions and version. The folder is written under a temporary name
  and renamed when whole.
- The recovery window runs from the end of the oldest base backup to the newest commit
  in the archive, as long as the WAL from that backup on has no gap (`pg_waldump` reads
  the commit times).
- A restore unpacks the newest base backup taken before the target into a new data
  directory, asks for recovery to the target time (`restore_command` reads the
  archive), starts it on a spare port, waits for it to be promoted, verifies it as
  `restore` does (row count and checksum of every table, recorded in `vulhub_restore.json`
  in the data directory; every audit chain walked) and stops it. It never touches the
  running server: the target directory must be new or empty.
- `ship` copies base backups and WAL to a second destination (a directory or any Django
  storage backend, `PITR_OFFSITE_STORAGE`); a restore can read from that copy alone.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import connections

from vulhub.ops import backups
from vulhub.ops.destinations import Destination, LocalDirectory, NameTaken, StorageDestination, write_whole
from vulhub.ops.pg_cluster import Cluster, ClusterError, conf_value, find_bin_dir, hand_over, run_as

META = "vulhub.json"
RESTORE_RECORD = "vulhub_restore.json"
SEGMENT = re.compile(r"^[0-9A-F]{24}$")
# "desc: COMMIT 2026-12-03 12:07:38.071842 UTC; inval msgs: ..." (what follows the zone varies)
COMMIT = re.compile(r"desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([\w/+-]+)")
STAMP = "%Y%m%dT%H%M%SZ"


class PitrError(Exception):
    """A step of point-in-time recovery failed or was refused; the message says why and what to do."""


# --- WAL file names ------------------------------------------------------------------------------


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    """The name of the WAL file that holds `lsn` (as pg_walfile_name gives it)."""
    per_id = 0x1_0000_0000 // segment_size
    number = lsn // segment_size
    return f"{timeline:08X}{number // per_id:08X}{number % per_id:08X}"


def segment_number(name: str, segment_size: int) -> int:
    return int(name[8:16], 16) * (0x1_0000_0000 // segment_size) + int(name[16:24], 16)


# --- The archive: base backups and WAL, in a directory or a storage ----------------------------
# An archive is a Destination (a local directory or a Django storage) that holds base
# backups, `base/<name>/...`, and WAL files, `wal/<file>`.


@dataclass
class BaseBackup:
    name: str  # the folder, a UTC time
    started_at: datetime
    finished_at: datetime
    timeline: int
    start_lsn: str
    end_lsn: str
    start_wal: str
    segment_size: int
    server_major: int
    system_identifier: str
    superuser: str
    database: str
    size: int = 0
    files: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> "BaseBackup":
        data = json.loads(text)
        for moment in ("started_at", "finished_at"):
            data[moment] = datetime.fromisoformat(data[moment])
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})

    def to_json(self) -> str:
        data = asdict(self)
        data["started_at"], data["finished_at"] = self.started_at.isoformat(), self.finished_at.isoformat()
        return json.dumps(data, indent=2) + "\n"


def base_backups(archive: Destination) -> list[BaseBackup]:
    """The complete base backups in `archive`, oldest first (a folder without its vulhub.json is not one)."""
    found = []
    for name in archive.folders("base"):
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            found.append(BaseBackup.from_json(archive.read_text(f"base/{name}/{META}")))
    return sorted(found, key=lambda backup: backup.finished_at)


def local_archive(path: str | Path | None = None) -> LocalDirectory:
    return LocalDirectory(Path(path or settings.PITR_DIR))


def offsite_archive(path: str | Path | None = None) -> StorageDestination:
    """--offsite DIR, else the "pitr_offsite" storage (PITR_OFFSITE_STORAGE)."""
    if path:
        return StorageDestination(FileSystemStorage(location=str(path)), str(path))
    if not settings.PITR_OFFSITE_STORAGE:
        raise PitrError("No off-site copy is configured: set PITR_OFFSITE_STORAGE, or give a directory.")
    return StorageDestination(*backups.configured_storage("pitr_offsite", "PITR_OFFSITE_STORAGE"))


# --- The server --------------------------------------------------------------------------------


def _server_facts(conn: psycopg.Connection) -> dict:
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int / 10000,"
        " (SELECT system_identifier::text FROM pg_control_system()),"
        " (SELECT rolname FROM pg_roles WHERE oid = 10),"
        " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),"
        " current_setting('archive_mode'), current_setting('wal_level'), current_database()"
    ).fetchone()
    keys = ("server_major", "system_identifier", "superuser", "segment_size", "archive_mode", "wal_level", "database")
    return dict(zip(keys, row, strict=True))


def _now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT clock_timestamp()").fetchone()[0].astimezone(UTC)


def take_base_backup(
    server: backups.Server, archive: LocalDirectory, steps: backups.Steps = backups.SILENT
) -> BaseBackup:
    """A base backup of `server`'s cluster into `archive`, complete or not at all."""
    with server.connect() as conn:
        facts = _server_facts(conn)
        if facts["wal_level"] == "minimal" or facts["archive_mode"] == "off":
            raise PitrError(
                f"The server does not archive its WAL (wal_level={facts['wal_level']}, archive_mode="
                f"{facts['archive_mode']}): a base backup alone cannot be recovered to a point in time. "
                "Set archive_mode and archive_command first (docs/operations.md, Point-in-time recovery)."
            )
        started_at = _now(conn)
    bin_dir = find_bin_dir(facts["server_major"])
    name = started_at.strftime(STAMP)
    base = archive.path / "base"
    base.mkdir(parents=True, exist_ok=True)
    (archive.path / "wal").mkdir(exist_ok=True)
    if (base / name).exists():
        raise PitrError(f"A base backup named {name} already exists in {archive.label}.")
    partial = base / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    argv = [
        str(bin_dir / "pg_basebackup"), f"--dbname={server.conninfo()}", f"--pgdata={partial}",
        "--format=tar", "--gzip", "--wal-method=fetch", "--checkpoint=fast", "--verbose",
        "--manifest-checksums=SHA256", f"--label=vulhub {name}", "--no-password",
    ]  # fmt: skip
    steps.start("base backup")
    done = subprocess.run(argv, env=server.env(), capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise PitrError(f"pg_basebackup failed: {error}")
    with server.connect() as conn:
        finished_at = _now(conn)
    manifest = json.loads((partial / "backup_manifest").read_text(encoding="utf-8"))
    wal_range = manifest["WAL-Ranges"][0]
    backup = BaseBackup(
        name=name,
        started_at=started_at,
        finished_at=finished_at,
        timeline=int(wal_range["Timeline"]),
        start_lsn=wal_range["Start-LSN"],
        end_lsn=wal_range["End-LSN"],
        start_wal=segment_name(int(wal_range["Timeline"]), parse_lsn(wal_range["Start-LSN"]), facts["segment_size"]),
        segment_size=facts["segment_size"],
        server_major=facts["server_major"],
        system_identifier=facts["system_identifier"],
        superuser=facts["superuser"],
        database=server.database,
        files=sorted(entry.name for entry in partial.iterdir()),
        size=sum(entry.stat().st_size for entry in partial.iterdir()),
    )
    write_whole(partial / META, backup.to_json())
    os.replace(partial, base / name)
    return backup


# --- The recovery window -----------------------------------------------------------------------


@dataclass
class Window:
    start: datetime | None
    end: datetime | None
    backups: list[BaseBackup]
    usable: list[BaseBackup]  # the backups from which WAL runs without a gap to the end
    wal_files: int
    gaps: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.start is None or self.end is None:
            return "no recovery window (no base backup with its WAL archived)"
        return f"{show_time(self.start)} to {show_time(self.end)}"


def show_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def last_commit(archive: Destination, names: list[str], bin_dir: Path) -> datetime | None:
    """The time of the newest commit in WAL files `names` (newest last), read by pg_waldump."""
    with tempfile.TemporaryDirectory(prefix="vulhub-waldump-") as scratch:
        for name in reversed(names[-8:]):  # a switch or an idle file holds no commit: look back a little
            path = archive.local_path(f"wal/{name}", Path(scratch))
            done = subprocess.run(  # noqa: S603  (our PostgreSQL tool, fixed arguments)
                [str(bin_dir / "pg_waldump"), "--rmgr=Transaction", str(path)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "TZ": "UTC"},
            )
            times = [_commit_time(*found.groups()) for found in COMMIT.finditer(done.stdout)]
            if times:
                return max(times)
    return None


def _commit_time(text: str, zone: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if zone != "UTC":
        raise PitrError(f"pg_waldump printed a time in {zone}, not UTC: {text}")
    return moment.replace(tzinfo=UTC)


def recovery_window(archive: Destination) -> Window:
    all_backups = base_backups(archive)
    wal = [name for name in archive.files("wal") if SEGMENT.match(name)]
    if not all_backups or not wal:
        return Window(None, None, all_backups, [], len(wal))
    newest = all_backups[-1]
    size = newest.segment_size
    timeline = [name for name in wal if int(name[:8], 16) == newest.timeline]
    numbers = [segment_number(name, size) for name in timeline]
    # the run of consecutive WAL files that ends with the newest one
    run_start = len(numbers) - 1
    while run_start > 0 and numbers[run_start - 1] == numbers[run_start] - 1:
        run_start -= 1
    gaps = [f"{timeline[i - 1]} .. {timeline[i]}" for i in range(1, len(numbers)) if numbers[i] != numbers[i - 1] + 1]
    first = numbers[run_start] if numbers else None
    usable = [
        backup
        for backup in all_backups
        if backup.timeline == newest.timeline and first is not None and segment_number(backup.start_wal, size) >= first
    ]
    end = last_commit(archive, timeline[run_start:], find_bin_dir(newest.server_major)) if usable else None
    usable = [backup for backup in usable if end is not None and backup.finished_at <= end]
    start = usable[0].finished_at if usable else None
    return Window(start, end if usable else None, all_backups, usable, len(wal), gaps)


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
        from zoneinfo import ZoneInfo

        moment = moment.replace(tzinfo=ZoneInfo(settings.TIME_ZONE))
    return moment.astimezone(UTC)


def choose_backup(window: Window, target: datetime | None) -> BaseBackup:
    if window.start is None:
        gaps = f" The archive has gaps: {', '.join(window.gaps[-3:])}." if window.gaps else ""
        raise PitrError(
            f"Nothing to recover from in the archive ({len(window.backups)} base backup(s), {window.wal_files} WAL "
            f"file(s)): take a base backup with `manage.py pitr backup` once archiving runs.{gaps}"
        )
    if target is None:
        return window.usable[-1]
    if not window.start <= target <= window.end:
        raise PitrError(
            f"{show_time(target)} is outside the recovery window, {window.describe()}. The window starts when the "
            "oldest usable base backup ended and ends at the newest commit archived so far (a commit still "
            "in the server's current WAL file is archived within archive_timeout; `SELECT pg_switch_wal()` "
            "on the server archives it now)."
        )
    return [backup for backup in window.usable if backup.finished_at <= target][-1]


# --- Restore ------------------------------------------------------------------------------------


@dataclass
class PitrRestore:
    datadir: Path
    target: datetime | None
    backup: BaseBackup
    verified: backups.RestoreResult
    seconds: float
    wal_replayed: int
    reached: datetime | None  # the newest change the restored database holds
    port: int  # where it listened while restoring (and listens on, when kept running)


def _ensure_new_datadir(path: Path, live: str | None) -> None:
    path = path.resolve()
    if live and Path(live).resolve() == path:
        raise PitrError(f"{path} is the running server's data directory: restore into a new one.")
    if (path / "postmaster.pid").exists() or (path / "PG_VERSION").exists():
        raise PitrError(f"{path} holds a PostgreSQL data directory: restore into a new or empty directory.")
    if path.exists() and any(path.iterdir()):
        raise PitrError(f"{path} is not empty: restore into a new or empty directory.")


def _unpack(tarball: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    hand_over(into)
    with tarball.open("rb") as source:  # read here: the cluster's account may not read the archive's files
        done = subprocess.run(  # noqa: S603
            ["tar", "-xzf", "-", "-C", str(into)],  # noqa: S607
            stdin=source,
            user=run_as(),
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise PitrError(f"Unpacking {tarball.name} failed: {done.stderr.strip()}")


def wal_after(backup: BaseBackup, names: list[str]) -> list[str]:
    """The WAL files of `names` that a restore from `backup` replays: its timeline, from its start on."""
    first = segment_number(backup.start_wal, backup.segment_size)
    return [
        name
        for name in names
        if SEGMENT.match(name)
        and int(name[:8], 16) == backup.timeline
        and segment_number(name, backup.segment_size) >= first
    ]


def _stage_from(archive: Destination, backup: BaseBackup, scratch: Path, steps: backups.Steps) -> LocalDirectory:
    """The base backup and the WAL after it, copied from a remote archive into `scratch`."""
    staged = LocalDirectory(scratch)
    (scratch / "base" / backup.name).mkdir(parents=True)
    (scratch / "wal").mkdir()
    names = archive.files("wal")
    wal = [name for name in names if name.endswith(".history")] + wal_after(backup, names)
    files = [f"base/{backup.name}/{name}" for name in [*backup.files, META]] + [f"wal/{name}" for name in wal]
    steps.start("fetch", total=len(files), unit="file")
    for name in files:
        archive.fetch(name, scratch / name)
        steps.advance()
    for entry in (scratch, scratch / "base", scratch / "base" / backup.name, scratch / "wal"):
        hand_over(entry)  # the cluster's account reads WAL from here
    return staged


def restore_to(
    archive: Destination,
    target: datetime | None,
    datadir: Path,
    *,
    live_datadir: str | None = None,
    keep_running: bool = False,
    port: int | None = None,
    steps: backups.Steps = backups.SILENT,
) -> PitrRestore:
    """Restore the archive's database to `target` (None: everything archived) into the new `datadir`."""
    started = time.monotonic()
    datadir = Path(datadir)
    _ensure_new_datadir(datadir, live_datadir)
    steps.start("recovery window")
    window = recovery_window(archive)
    backup = choose_backup(window, target)
    bin_dir = find_bin_dir(backup.server_major)
    with contextlib.ExitStack() as stack:
        if isinstance(archive, LocalDirectory):
            local = archive
        else:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vulhub-pitr-fetch-")))
            local = _stage_from(archive, backup, scratch, steps)
        folder = local.path / "base" / backup.name
        steps.start("unpack")
        _unpack(folder / "base.tar.gz", datadir)
        if (folder / "pg_wal.tar.gz").exists():
            _unpack(folder / "pg_wal.tar.gz", datadir / "pg_wal")
        # PostgreSQL stops at a target time when it meets the first commit after it: past the
        # newest archived commit there is none, so such a target replays all that is archived
        # (the same rows: nothing archived was committed after it).
        stop_at = target if target is not None and target < window.end else None
        cluster = _recovering_cluster(datadir, bin_dir, local, stop_at, port)
        steps.start("recovery")
        try:
            cluster.start(timeout=3600)
            _wait_for_promotion(cluster, backup.superuser)
            _finish_recovery_settings(cluster, backup.superuser)
            steps.start("verify")
            verified, reached = _verify(cluster, backup.superuser, backup.database, steps)
            _record(cluster, backup.superuser, backup.database, verified)
        except BaseException:
            cluster.stop("fast")
            raise
        if not keep_running:
            cluster.stop("fast")
        replayed = len(wal_after(backup, local.files("wal")))  # before a staged archive is deleted
    return PitrRestore(datadir, target, backup, verified, time.monotonic() - started, replayed, reached, cluster.port)


def _recovering_cluster(
    datadir: Path, bin_dir: Path, archive: LocalDirectory, target: datetime | None, port: int | None
) -> Cluster:
    """The unpacked base backup, set to recover from `archive` up to `target` and then be promoted.

    The recovery settings go to postgresql.auto.conf, which wins over postgresql.conf, and
    are reset once recovery is over. While the restore runs, the server takes only its
    owner, on its own socket (an hba_file of the restore's own).
    """
    for leftover in ("postmaster.pid", "postmaster.opts"):
        (datadir / leftover).unlink(missing_ok=True)
    cluster = Cluster(datadir, bin_dir=bin_dir, **({"port": port} if port else {}))
    cluster.options = _owner_only(cluster)
    written = []
    if not (datadir / "postgresql.conf").exists():  # Debian keeps it outside the data directory
        write_whole(
            datadir / "postgresql.conf", "# Written by `manage.py pitr restore`: the server's own was elsewhere.\n"
        )
        written.append(datadir / "postgresql.conf")
    if not (datadir / "pg_hba.conf").exists():
        write_whole(datadir / "pg_hba.conf", "local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n")
        written.append(datadir / "pg_hba.conf")
    recovery = {
        "restore_command": f"cp '{archive.path / 'wal'}/%f' '%p'",
        "recovery_target_action": "promote",
        "archive_mode": "off",  # the restored server must not write into the archive it came from
    }
    if target is not None:
        recovery["recovery_target_time"] = target.isoformat()
    with (datadir / "postgresql.auto.conf").open("a", encoding="utf-8") as auto:
        auto.write("".join(f"{name} = {conf_value(value)}\n" for name, value in recovery.items()))
    (datadir / "recovery.signal").touch()
    for path in [*written, datadir / "postgresql.auto.conf", datadir / "recovery.signal"]:
        hand_over(path)
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
    with (datadir / "PG_VERSION").open() as version:
        major = int(version.read().strip())
    cluster = Cluster(datadir, bin_dir=find_bin_dir(major))
    if cluster.running():
        raise PitrError(f"A server is running on {datadir}: stop it first, or verify a copy.")
    cluster.options = f"{_owner_only(cluster)} -c archive_mode=off"
    try:
        cluster.start()
        verified, _reached = _verify(cluster, record["user"], record["database"], steps, against=record)
    finally:
        cluster.stop("fast")
    return verified


# --- Off-site ------------------------------------------------------------------------------------


@dataclass
class Shipped:
    backups: int = 0
    wal: int = 0
    bytes: int = 0
    already: int = 0


def ship(local: LocalDirectory, offsite: Destination, steps: backups.Steps = backups.SILENT) -> Shipped:
    """Copy to `offsite` every archived file it lacks (or holds at another size); a base backup's vulhub.json last."""
    todo: list[str] = []
    for name in local.files("wal"):
        todo.append(f"wal/{name}")
    for backup in base_backups(local):
        todo += [f"base/{backup.name}/{file}" for file in backup.files] + [f"base/{backup.name}/{META}"]
    result = Shipped()
    steps.start("ship", total=len(todo), unit="file")
    for name in todo:
        source = local.path / name
        size, held = source.stat().st_size, offsite.size(name)
        if held == size:
            result.already += 1
        else:
            if held is not None:  # another size: an upload cut short, replaced
                offsite.delete(name)
            try:
                offsite.save(source, name)
            except NameTaken as taken:
                message = f"The off-site storage kept {name} as {taken.saved}; nothing was overwritten."
                raise PitrError(message) from None
            result.bytes += size
            if name.startswith("wal/"):
                result.wal += 1
            elif name.endswith(META):
                result.backups += 1
        steps.advance()
    return result


def live_data_directory(server: backups.Server) -> str | None:
    """The running server's data directory, when this role may read it (superuser, pg_read_all_settings)."""
    try:
        with server.connect() as conn:
            return conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
    except psycopg.Error:
        return None


__all__ = [
    "BaseBackup",
    "ClusterError",
    "PitrError",
    "Window",
    "base_backups",
    "choose_backup",
    "local_archive",
    "offsite_archive",
    "parse_target",
    "recovery_window",
    "restore_to",
    "ship",
    "take_base_backup",
    "verify_restored",
]
