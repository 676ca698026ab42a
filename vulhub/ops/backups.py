"""Backups of the default database, and restores that prove they hold what was backed up.

A backup is a pair of files, in BACKUP_DIR or in the storage named "backups":

- `vulhub-<db>-<YYYYmmddTHHMMSSZ>.dump`: `pg_dump --format=custom` of the database;
- `vulhub-<db>-<YYYYmmddTHHMMSSZ>.manifest.json`: what the dump holds (every public
  table's row count and checksum, the applied migrations, the versions of the server and
  the tools) and the dump's size and sha256.

The manifest is written last, so a backup without one was interrupted: listings ignore
it and report it.

Challenge files are not in the dump: their rows are (name, size, sha256, the key of the
stored object), their bytes stay in the attachments storage (the folder ATTACHMENTS_DIR,
or the bucket of ATTACHMENT_STORAGE). A stored object never changes once written (a new
upload gets a new key; the old object is deleted after the change commits), so copying
the folder with rsync, or a bucket's versioning or replication, backs them up
incrementally, which repeating every file in every dump would not. The manifest lists
the objects the snapshot refers to, with their sizes and sha256 ("attachments"), and a
restore says which of them its storage lacks. Counts and checksums are taken in the very snapshot that pg_dump
dumps (a REPEATABLE READ transaction exports it, pg_dump imports it with --snapshot
while that transaction stays open), so a restore can prove, table by table, that it
holds exactly what was backed up.

A table's checksum is the sum, as numeric, of hash_record_extended(row, 0) over its
rows: PostgreSQL's own 64-bit hash of every column, by each type's hash function (the
ones hash partitioning relies on, so they are stable across servers and versions). A sum
does not depend on row order, so it is one sequential pass with no sort: 1.3M audit rows
take ~1.8 s, where md5(row::text) took ~7.5 s, most of it turning rows into text. (Every
column type must have a hash function: json, xml and point have none; use jsonb.)
Backups taken with md5(row::text) name that method in their manifest and are checked
with it, under the settings that shape a row's text (TEXT_SETTINGS, pinned on both
sides).
"""

import argparse
import contextlib
import copy
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
import tomllib
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django
import psycopg
from django.conf import settings
from django.core.files.storage import InvalidStorageError, storages
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql
from psycopg.conninfo import make_conninfo
from tqdm import tqdm

from audit.api import chain_keys, chain_sizes, verify_chains
from challenges.models import ChallengeFile
from vulhub.ops.destinations import COPY_CHUNK, Destination, LocalDirectory, NameTaken, StorageDestination

EMBEDDED_ENGINE = "vulhub.ops.embedded_db"
NAME_PATTERN = re.compile(r"^vulhub-(?P<database>.+)-(?P<stamp>\d{8}T\d{6}Z)\.(?P<kind>dump|manifest\.json)$")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
DUMP_SUFFIX = ".dump"
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_VERSION = 1
# How a table's checksum is computed, by the name a manifest records. New backups use the
# first; a restore checks with the method its manifest names.
HASH_RECORD = "sum of hash_record_extended(row, 0), as numeric"
MD5_TEXT = "sum of the first 64 bits of md5(row::text), as numeric"
CHECKSUM_METHODS = {
    # t.* is the whole row even when the table has a column named t (a bare t would be that column)
    HASH_RECORD: "SELECT count(*), coalesce(sum(hash_record_extended(t.*, 0)), 0)::text FROM {} AS t",
    MD5_TEXT: (
        "SELECT count(*), coalesce(sum(('x' || left(md5((t.*)::text), 16))::bit(64)::bigint::numeric), 0)::text"
        " FROM {} AS t"
    ),
}
CHECKSUM_METHOD = HASH_RECORD
# Settings that shape row::text, pinned the same way when a backup is taken and checked.
# row_security off: an error rather than a silently filtered table, as in pg_dump.
TEXT_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "row_security": "off",
}


class BackupError(Exception):
    """A backup or restore problem, told in one line for the operator."""


# --- Progress -----------------------------------------------------------------------


class Steps:
    """One progress bar walking through a command's steps: "checksums 4/19", "restore 12/19"...

    Silent unless a command asks for it (tqdm's disable=None: only on a terminal).
    """

    def __init__(self, *, disable: bool | None = True, file=None):
        # delay: steps that finish within half a second never draw a bar
        self._bar = tqdm(total=None, disable=disable, file=file, leave=False, dynamic_ncols=True, delay=0.5)

    def start(self, name: str, total: int | None = None, *, unit: str = "it", scale: bool = False) -> None:
        self._bar.set_description_str(name, refresh=False)
        self._bar.total, self._bar.unit, self._bar.unit_scale = total, unit, scale
        self._bar.reset()  # draws the new step once

    def advance(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


SILENT = Steps()


# --- The server and its tools ---------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    path: str
    version: str
    major: int


def _major(version: str) -> int | None:
    found = re.search(r"\(PostgreSQL\)\s+(\d+)", version) or re.search(r"(\d+)(?:\.\d+)", version)
    return int(found.group(1)) if found else None


def _libpq_keywords() -> set[str]:
    return {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}


def _embedded_bin_dir() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns without XDG_RUNTIME_DIR
        import pgserver
    return Path(pgserver.__file__).resolve().parent / "pginstall" / "bin"


@dataclass(frozen=True)
class Server:
    """How to reach the PostgreSQL server of a Django database alias, and its client tools.

    The password never goes on a command line: client tools get it as PGPASSWORD.
    """

    params: dict[str, str]  # libpq keywords, password excluded
    password: str | None
    bin_dir: Path | None  # the embedded server's own tools; None: the tools on PATH

    @classmethod
    def of(cls, alias: str = DEFAULT_DB_ALIAS) -> "Server":
        settings_dict = connections[alias].settings_dict
        options = settings_dict.get("OPTIONS") or {}
        keywords = _libpq_keywords() - {"password"}
        params = {key: str(value) for key, value in options.items() if key in keywords and value not in (None, "")}
        host, bin_dir = settings_dict.get("HOST"), None
        if settings_dict["ENGINE"] == EMBEDDED_ENGINE:
            from vulhub.ops.embedded_db.server import ensure_running

            host, bin_dir = ensure_running(settings_dict["PGDATA"]), _embedded_bin_dir()
        for key, value in (
            ("host", host),
            ("port", settings_dict.get("PORT")),
            ("user", settings_dict.get("USER")),
            ("dbname", settings_dict.get("NAME")),
        ):
            if value:
                params[key] = str(value)
        if not params.get("dbname"):
            raise BackupError(f"The {alias!r} database has no NAME: nothing to back up.")
        return cls(params, settings_dict.get("PASSWORD") or options.get("password") or None, bin_dir)

    @property
    def database(self) -> str:
        return self.params["dbname"]

    def on(self, database: str) -> "Server":
        return replace(self, params={**self.params, "dbname": database})

    def conninfo(self) -> str:
        return make_conninfo(**self.params)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(), password=self.password, autocommit=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def tool(self, name: str) -> Tool:
        if self.bin_dir is not None:
            path = str(self.bin_dir / name)
            if not os.access(path, os.X_OK):
                raise BackupError(f"{name} of the embedded PostgreSQL is missing ({path}): reinstall pgserver.")
        else:
            found = shutil.which(name)
            if found is None:
                raise BackupError(f"{name} is not on PATH: install the PostgreSQL client tools (postgresql-client).")
            path = found
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False, timeout=60)  # noqa: S603
        major = _major(out.stdout)
        if out.returncode != 0 or major is None:
            raise BackupError(f"Could not tell the version of {path}: {(out.stderr or out.stdout).strip()}")
        return Tool(path, out.stdout.strip(), major)


def _tool_newer_than_server(tool: Tool, server_major: int) -> None:
    if tool.major < server_major:
        raise BackupError(
            f"{tool.path} is version {tool.major} but the server runs PostgreSQL {server_major}: "
            f"{Path(tool.path).name} must be at least as new as the server. Install the "
            f"PostgreSQL {server_major} client tools (postgresql-client-{server_major}) first on PATH."
        )


class _Running:
    """A pg_dump or pg_restore at work: stderr read on a thread, progress lines counted."""

    def __init__(self, argv: list[str], env: dict[str, str], progress: re.Pattern):
        self.argv0 = Path(argv[0]).name
        self._progress = progress
        self.lines: list[str] = []
        self.done = 0
        self.proc = subprocess.Popen(  # noqa: S603  (our own argv, no shell)
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if self._progress.search(line):
                self.done += 1

    def wait(self, on_progress: Callable[[int], None], limit: int) -> int:
        """Wait for the tool, reporting progress (at most `limit` units); return its exit code."""
        reported = 0
        while True:
            try:
                code = self.proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                self._reader.join()
            reported += self.report(on_progress, reported, limit)
            if code is not None:
                return code

    def report(self, on_progress: Callable[[int], None], reported: int, limit: int) -> int:
        new = min(self.done, limit) - reported
        if new > 0:
            on_progress(new)
        return max(new, 0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)

    def error(self) -> str:
        """The tool's first error line, without its "pg_dump: error: " prefix."""
        errors = [line for line in self.lines if ": error:" in line or line.startswith("ERROR:")]
        line = (errors or self.lines or ["no message"])[0]
        return re.sub(rf"^{re.escape(self.argv0)}: (error: )?", "", line).strip()


# --- Snapshot facts: tables, checksums, migrations -------------------------------------------


def _pin_text_output(cursor) -> None:
    for name, value in TEXT_SETTINGS.items():
        cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def public_tables(cursor) -> list[str]:
    """Tables of the public schema, extension members excluded (pg_dump leaves them out too)."""
    cursor.execute(
        """
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY c.relname
        """
    )
    return [row[0] for row in cursor.fetchall()]


def table_checksum(cursor, table: str, method: str = CHECKSUM_METHOD) -> dict:
    cursor.execute(sql.SQL(CHECKSUM_METHODS[method]).format(sql.Identifier("public", table)))
    rows, checksum = cursor.fetchone()
    return {"rows": rows, "checksum": checksum}


def _migrations(cursor) -> list[dict]:
    cursor.execute("SELECT to_regclass('public.django_migrations') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return []
    cursor.execute("SELECT app, name FROM public.django_migrations ORDER BY id")
    return [{"app": app, "name": name} for app, name in cursor.fetchall()]


def table_checksums(server: Server, steps: Steps = SILENT, method: str = CHECKSUM_METHOD) -> dict[str, dict]:
    """Row count and checksum of every public table of `server`'s database, in one snapshot."""
    with server.connect() as conn:
        conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
        with conn.transaction(), conn.cursor() as cursor:
            _pin_text_output(cursor)
            tables = public_tables(cursor)
            steps.start("checksums", total=len(tables), unit="table")
            found = {}
            for table in tables:
                found[table] = table_checksum(cursor, table, method)
                steps.advance()
    return found


# --- Destinations: a local directory or a Django storage -------------------------------------


def destination(dest: str | Path | None = None) -> Destination:
    """--dest DIR, else the "backups" storage when BACKUP_STORAGE is set, else BACKUP_DIR."""
    if dest:
        return LocalDirectory(Path(dest), private=True)
    if settings.BACKUP_STORAGE:
        return StorageDestination(*configured_storage("backups", "BACKUP_STORAGE"))
    return LocalDirectory(Path(settings.BACKUP_DIR), private=True)


def configured_storage(alias: str, setting: str) -> tuple[object, str]:
    """The storage `alias` of STORAGES (which `setting` configures) and a label naming it."""
    problem = getattr(settings, f"{setting}_PROBLEM", "")
    if problem:
        raise BackupError(problem)
    try:
        storage = storages[alias]
    except InvalidStorageError as exc:
        raise BackupError(f"{setting} is set but the {alias} storage is unusable: {exc}") from exc
    backend = type(storage).__name__
    location = getattr(storage, "location", "") or getattr(storage, "bucket_name", "")
    return storage, f"storage '{alias}' ({backend}{' ' + str(location) if location else ''})"


# --- Listing and retention ------------------------------------------------------------------


def _file_safe(database: str) -> str:
    return re.sub(r"[^\w.-]", "_", database)


@dataclass(frozen=True)
class Backup:
    stem: str
    taken_at: datetime

    @property
    def dump_name(self) -> str:
        return self.stem + DUMP_SUFFIX

    @property
    def manifest_name(self) -> str:
        return self.stem + MANIFEST_SUFFIX


@dataclass
class Listing:
    backups: list[Backup]  # complete pairs, newest first
    orphans: list[str]  # backup-named files without their other half (an interrupted backup)


def list_backups(dest: Destination, database: str) -> Listing:
    halves: dict[str, set[str]] = {}
    for name in dest.files():
        match = NAME_PATTERN.match(name)
        if match and match["database"] == _file_safe(database):
            halves.setdefault(name[: match.start("kind") - 1], set()).add(match["kind"])
    backups, orphans = [], []
    for stem, kinds in halves.items():
        if kinds == {"dump", "manifest.json"}:
            stamp = datetime.strptime(stem.rsplit("-", 1)[1], STAMP_FORMAT).replace(tzinfo=UTC)
            backups.append(Backup(stem, stamp))
        else:
            orphans.extend(f"{stem}.{kind}" for kind in sorted(kinds))
    backups.sort(key=lambda backup: backup.taken_at, reverse=True)
    return Listing(backups, sorted(orphans))


def plan_retention(backups: list[Backup], *, keep: int | None, keep_days: float | None, now: datetime) -> list[Backup]:
    """Backups (newest first) that --keep or --keep-days lets go. The newest one always stays."""
    doomed = []
    for index, backup in enumerate(backups[1:], start=1):
        beyond_count = keep is not None and index >= keep
        too_old = keep_days is not None and backup.taken_at < now - timedelta(days=keep_days)
        if beyond_count or too_old:
            doomed.append(backup)
    return doomed


@dataclass
class Retention:
    deleted: list[Backup]
    kept: int
    orphans: list[str]


def apply_retention(
    dest: Destination,
    database: str,
    *,
    keep: int | None,
    keep_days: float | None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Retention:
    listing = list_backups(dest, database)
    doomed = plan_retention(listing.backups, keep=keep, keep_days=keep_days, now=now or datetime.now(UTC))
    if not dry_run:
        for backup in doomed:
            # Manifest first: should we stop halfway, the dump is left as an orphan, never
            # a manifest that points to nothing.
            dest.delete(backup.manifest_name)
            dest.delete(backup.dump_name)
    return Retention(doomed, len(listing.backups) - len(doomed), listing.orphans)


# --- Taking a backup ----------------------------------------------------------------------------


@dataclass
class BackupResult:
    destination: str
    dump_name: str
    manifest_name: str
    size: int
    sha256: str
    tables: int
    rows: int
    seconds: float
    attachments: dict = field(default_factory=dict)  # the manifest's "attachments"

    @property
    def attachments_note(self) -> str:
        """Where the challenge files are, which the dump does not hold (a line for the operator)."""
        return attachments_note(self.attachments)


def _sha256(path: Path, steps: Steps, name: str = "sha256") -> str:
    digest = hashlib.sha256()
    steps.start(name, total=path.stat().st_size, unit="B", scale=True)
    with path.open("rb") as source:
        while chunk := source.read(COPY_CHUNK):
            digest.update(chunk)
            steps.advance(len(chunk))
    return digest.hexdigest()


def _vulhub_version() -> str:
    try:
        with (Path(settings.BASE_DIR) / "pyproject.toml").open("rb") as source:
            return tomllib.load(source)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def _new_stem(dest: Destination, database: str) -> str:
    """A backup name not taken yet (two backups in one second: the second waits a moment)."""
    for _attempt in range(3):
        stamp = datetime.now(UTC).strftime(STAMP_FORMAT)
        stem = f"vulhub-{_file_safe(database)}-{stamp}"
        if not dest.exists(stem + DUMP_SUFFIX) and not dest.exists(stem + MANIFEST_SUFFIX):
            return stem
        time.sleep(1.01 - datetime.now(UTC).microsecond / 1_000_000)
    raise BackupError(f"Backups named {stem}.* keep appearing in {dest.label}: is another backup running?")


DUMPING = re.compile(r"dumping contents of table")


def _dump_in_snapshot(server: Server, pg_dump: Tool, dump_path: Path, compress: str | None, steps: Steps) -> dict:
    """Run pg_dump on an exported snapshot; checksum every table in that same snapshot meanwhile."""
    with server.connect() as conn:
        _tool_newer_than_server(pg_dump, conn.info.server_version // 10000)
        conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
        with conn.transaction(), conn.cursor() as cursor:
            _pin_text_output(cursor)
            cursor.execute(
                """
                SELECT pg_export_snapshot(), now(), current_setting('server_version'),
                       pg_encoding_to_char(encoding), datcollate, datctype
                FROM pg_database WHERE datname = current_database()
                """
            )
            snapshot, taken_at, server_version, encoding, collate, ctype = cursor.fetchone()
            argv = [pg_dump.path, "--format=custom", "--verbose", f"--snapshot={snapshot}", f"--file={dump_path}"]
            if compress is not None:
                argv.append(f"--compress={compress}")
            argv.append(f"--dbname={server.conninfo()}")
            dump = _Running(argv, server.env(), DUMPING)
            try:
                tables = public_tables(cursor)
                steps.start("dump + checksums", total=2 * len(tables), unit="table")
                checksums, dumped = {}, 0
                for table in tables:  # pg_dump works on the same snapshot meanwhile
                    checksums[table] = table_checksum(cursor, table)
                    steps.advance()
                    dumped += dump.report(steps.advance, dumped, len(tables))
                migrations = _migrations(cursor)
                attachments = _attachments_in_snapshot(cursor)
                steps.start("dump", total=len(tables), unit="table")
                code = dump.wait(steps.advance, len(tables))
            finally:
                dump.stop()  # the snapshot must outlive pg_dump: the transaction ends below
    if code != 0:
        raise BackupError(f"pg_dump failed: {dump.error()}")
    return {
        "created_at": taken_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "server_version": server_version,
        "database_settings": {"encoding": encoding, "collate": collate, "ctype": ctype},
        "migrations": migrations,
        "tables": checksums,
        "attachments": attachments,
    }


def take_backup(
    *, dest: Destination, compress: str | None = None, steps: Steps = SILENT, alias: str = DEFAULT_DB_ALIAS
) -> BackupResult:
    started = time.monotonic()
    server = Server.of(alias)
    pg_dump = server.tool("pg_dump")
    stem = _new_stem(dest, server.database)
    dump_name, manifest_name = stem + DUMP_SUFFIX, stem + MANIFEST_SUFFIX
    with tempfile.TemporaryDirectory(prefix="vulhub-backup-") as scratch:
        dump_path = dest.write_path(dump_name, Path(scratch))
        # Is the dump at the destination ours to clean up? pg_dump writes a local one in place.
        dump_at_destination = isinstance(dest, LocalDirectory)
        try:
            facts = _dump_in_snapshot(server, pg_dump, dump_path, compress, steps)
            size, sha256 = dump_path.stat().st_size, _sha256(dump_path, steps)
            manifest = {
                "manifest_version": MANIFEST_VERSION,
                "created_at": facts["created_at"],
                "database": server.database,
                "server_version": facts["server_version"],
                "database_settings": facts["database_settings"],
                "tools": {
                    "pg_dump": pg_dump.version,
                    "vulhub": _vulhub_version(),
                    "django": django.get_version(),
                    "python": platform.python_version(),
                },
                "migrations": facts["migrations"],
                "checksum": {"method": CHECKSUM_METHOD, "settings": TEXT_SETTINGS},
                "tables": facts["tables"],
                "attachments": facts["attachments"],
                "dump": {"file": dump_name, "format": "custom", "compress": compress, "size": size, "sha256": sha256},
            }
            steps.start("save", total=2, unit="file")
            try:
                dest.save(dump_path, dump_name)
                dump_at_destination = True
                steps.advance()
                dest.save_text(manifest_name, json.dumps(manifest, indent=2) + "\n")  # last: the backup is complete
            except NameTaken as taken:  # another backup by that name appeared meanwhile
                raise BackupError(f"The backups storage already holds {taken.name}; nothing was overwritten.") from None
            steps.advance()
        except BaseException:
            if dump_at_destination:  # never leave a half-written dump behind
                with contextlib.suppress(Exception):  # the original error matters more
                    dest.delete(dump_name)
            raise
    tables = facts["tables"]
    return BackupResult(
        destination=dest.label,
        dump_name=dump_name,
        manifest_name=manifest_name,
        size=size,
        sha256=sha256,
        tables=len(tables),
        rows=sum(table["rows"] for table in tables.values()),
        seconds=time.monotonic() - started,
        attachments=facts["attachments"],
    )


# --- Challenge files: where they are, what a backup refers to ------------------------------------


def attachment_storage():
    """The storage the app keeps challenge files in (that of ChallengeFile.file)."""
    return ChallengeFile._meta.get_field("file").storage


def attachment_storage_label(storage=None) -> str:
    """ "the folder /srv/vulhub/var/attachments", "S3Storage bucket vulhub-files", ..."""
    storage = storage or attachment_storage()
    bucket = getattr(storage, "bucket_name", "")
    if bucket:
        return f"{type(storage).__name__} bucket {bucket}"
    location = getattr(storage, "location", "")
    if type(storage).__name__ == "FileSystemStorage":
        return f"the folder {location}"
    return f"{type(storage).__name__} {location}".strip()


def _attachments_in_snapshot(cursor) -> dict:
    """The stored objects of the challenge files the snapshot refers to, and where they live."""
    cursor.execute("SELECT to_regclass('public.challenge_files') IS NOT NULL")
    rows = []
    if cursor.fetchone()[0]:
        cursor.execute("SELECT file, size, sha256 FROM public.challenge_files ORDER BY id")
        rows = cursor.fetchall()
    return {
        "storage": attachment_storage_label(),
        "files": len(rows),
        "bytes": sum(size for _key, size, _sha256 in rows),
        "objects": [{"key": key, "size": size, "sha256": sha256} for key, size, sha256 in rows],
    }


def attachments_note(attachments: dict) -> str:
    if not attachments:
        return "Challenge files: this backup does not list them (taken by an older version)."
    where = attachments.get("storage") or attachment_storage_label()
    if not attachments.get("files"):
        return f"Challenge files: none yet. They will live in {where}, not in the dump: back that up too."
    return (
        f"Challenge files are not in the dump: {attachments['files']} file(s), {human_size(attachments['bytes'])}, "
        f"live in {where}; back that up too (the manifest lists each object and its sha256)."
    )


def missing_attachments(attachments: dict, storage=None) -> list[str]:
    """The objects a backup refers to that the storage lacks (or holds at another size)."""
    storage = storage or attachment_storage()
    missing = []
    for item in attachments.get("objects") or []:
        try:
            present = storage.exists(item["key"]) and storage.size(item["key"]) == item["size"]
        except OSError:
            present = False
        if not present:
            missing.append(item["key"])
    return missing


# --- Checking a backup before a restore ----------------------------------------------------------


@dataclass
class CheckedBackup:
    dump: Path
    manifest: dict
    data_entries: int  # TABLE DATA entries of the archive: the steps of pg_restore


def backup_files(path: Path) -> tuple[Path, Path]:
    """The dump and the manifest of a backup, given either."""
    name = path.name
    if name.endswith(MANIFEST_SUFFIX):
        stem = name[: -len(MANIFEST_SUFFIX)]
    elif name.endswith(DUMP_SUFFIX):
        stem = name[: -len(DUMP_SUFFIX)]
    else:
        raise BackupError(f"{path} is neither a backup dump (.dump) nor its manifest (.manifest.json).")
    return path.with_name(stem + DUMP_SUFFIX), path.with_name(stem + MANIFEST_SUFFIX)


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"The manifest {path.name} is not valid JSON ({exc}); nothing was restored.") from exc

    def bad(what: str) -> BackupError:
        return BackupError(f"The manifest {path.name} is not a VulHub backup manifest ({what}); nothing was restored.")

    if not isinstance(manifest, dict) or manifest.get("manifest_version") != MANIFEST_VERSION:
        raise bad(f"manifest_version is not {MANIFEST_VERSION}")
    dump, tables = manifest.get("dump"), manifest.get("tables")
    if not isinstance(dump, dict) or not all(isinstance(dump.get(key), kind) for key, kind in DUMP_FIELDS.items()):
        raise bad("its dump entry lacks file, size or sha256")
    if not isinstance(tables, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("rows"), int) and isinstance(entry.get("checksum"), str)
        for entry in tables.values()
    ):
        raise bad("its tables entry lacks row counts or checksums")
    if not isinstance(manifest.get("migrations"), list):
        raise bad("no migrations list")
    if manifest_checksum_method(manifest) not in CHECKSUM_METHODS:
        raise bad(f"its checksum method {manifest_checksum_method(manifest)!r} is not one this version knows")
    return manifest


DUMP_FIELDS = {"file": str, "size": int, "sha256": str}


def manifest_checksum_method(manifest: dict) -> str | None:
    checksum = manifest.get("checksum")
    return checksum.get("method") if isinstance(checksum, dict) else None


def check_backup(path: str | Path, *, server: Server, steps: Steps = SILENT) -> CheckedBackup:
    """Everything a restore checks before touching a database: manifest, size, sha256, archive."""
    dump, manifest_path = backup_files(Path(path))
    if not Path(path).is_file():
        raise BackupError(f"{path} does not exist; nothing was restored.")
    if not dump.is_file():
        raise BackupError(f"No dump {dump.name} beside {manifest_path}; nothing was restored.")
    if not manifest_path.is_file():
        raise BackupError(
            f"No manifest {manifest_path.name} beside {dump}: the backup is incomplete (interrupted?) "
            "or not a VulHub backup; nothing was restored."
        )
    manifest = _read_manifest(manifest_path)
    expected = manifest["dump"]
    if expected["file"] != dump.name:
        raise BackupError(f"The manifest {manifest_path.name} describes {expected['file']}, not {dump.name}.")
    size = dump.stat().st_size
    if size != expected["size"]:
        raise BackupError(
            f"{dump.name} is {size} bytes but its manifest says {expected['size']}: the file is truncated "
            "or was changed; nothing was restored."
        )
    if _sha256(dump, steps, "sha256 check") != expected["sha256"]:
        raise BackupError(f"{dump.name} is corrupted: its sha256 differs from its manifest's; nothing was restored.")
    pg_restore = server.tool("pg_restore")
    dumped_by = _major(str(manifest.get("tools", {}).get("pg_dump", "")))
    if dumped_by is not None and pg_restore.major < dumped_by:
        raise BackupError(
            f"{dump.name} was written by pg_dump {dumped_by} but {pg_restore.path} is version "
            f"{pg_restore.major}: use the PostgreSQL {dumped_by} client tools; nothing was restored."
        )
    steps.start("archive check")
    listed = subprocess.run(  # noqa: S603
        [pg_restore.path, "--list", str(dump)], capture_output=True, text=True, errors="replace", check=False
    )
    if listed.returncode != 0 or not re.search(r"^;\s+Format: CUSTOM", listed.stdout, re.MULTILINE):
        reason = listed.stderr.strip().splitlines()[-1] if listed.stderr.strip() else "not the custom format"
        reason = re.sub(r"^pg_restore: (error: )?", "", reason)
        raise BackupError(f"{dump.name} is not a PostgreSQL custom-format dump ({reason}); nothing was restored.")
    entries = len(re.findall(r"^\d+; \d+ \d+ TABLE DATA ", listed.stdout, re.MULTILINE))
    return CheckedBackup(dump=dump, manifest=manifest, data_entries=entries)


# --- Restoring ------------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    database: str
    tables: int
    rows: int
    seconds: float
    mismatches: list[str] = field(default_factory=list)
    audit_chains: int = 0
    audit_rows: int = 0
    audit_breaks: list[str] = field(default_factory=list)
    audit_checked: bool = True
    migrations_missing: list[str] = field(default_factory=list)  # in the code, not in the backup
    migrations_unknown: list[str] = field(default_factory=list)  # in the backup, not in the code
    found: dict[str, dict] = field(default_factory=dict)  # table: its rows and checksum, as verified
    leftovers: list[str] = field(default_factory=list)  # scratch databases of interrupted runs, dropped
    attachments_missing: list[str] = field(default_factory=list)  # stored objects the restored rows lack
    attachments_problem: str = ""  # why they could not be checked

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.audit_breaks

    def problems(self) -> list[str]:
        return [f"MISMATCH {line}" for line in self.mismatches] + [f"BROKEN audit {line}" for line in self.audit_breaks]

    def failure(self) -> str:
        return (
            f"{len(self.mismatches)} table(s) differ from the manifest, {len(self.audit_breaks)} audit chain(s) broken"
        )

    def summary(self, against: str = "the manifest") -> str:
        audit = (
            f"{self.audit_chains} audit chain(s) intact ({self.audit_rows} rows)"
            if self.audit_checked
            else "no audit tables to check"
        )
        return f"{self.tables} tables, {self.rows} rows match {against}; {audit}; {self.seconds:.1f} s"

    def notes(self) -> list[str]:
        notes = [f"Dropped {name}, left behind by an interrupted restore or check." for name in self.leftovers]
        if self.migrations_missing:
            notes.append(
                f"The backup predates {len(self.migrations_missing)} migration(s) of this code "
                f"({', '.join(self.migrations_missing[:3])}{', ...' if len(self.migrations_missing) > 3 else ''}): "
                "run `manage.py migrate` before serving it."
            )
        if self.migrations_unknown:
            notes.append(
                f"The backup has {len(self.migrations_unknown)} migration(s) this code does not know "
                f"({', '.join(self.migrations_unknown[:3])}): it comes from newer code."
            )
        if self.attachments_missing:
            shown = ", ".join(self.attachments_missing[:3]) + (", ..." if len(self.attachments_missing) > 3 else "")
            notes.append(
                f"{len(self.attachments_missing)} challenge file(s) the restored database refers to are not in "
                f"{attachment_storage_label()} ({shown}): copy them back from your copy of the challenge files "
                "(the backup's manifest lists each one with its sha256); until then their downloads answer 404."
            )
        if self.attachments_problem:
            notes.append(f"The challenge files could not be checked: {self.attachments_problem}")
        return notes


def _public_objects(conn) -> int:
    """Relations and functions of the public schema (extension members aside)."""
    return conn.execute(
        """
        SELECT (SELECT count(*) FROM pg_class c
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                  AND d.objid = c.oid AND d.deptype = 'e'))
             + (SELECT count(*) FROM pg_proc p
                WHERE p.pronamespace = 'public'::regnamespace
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                  AND d.objid = p.oid AND d.deptype = 'e'))
        """
    ).fetchone()[0]


def _public_tables_count(conn) -> int:
    with conn.cursor() as cursor:
        return len(public_tables(cursor))


def _create_database(admin, name: str, manifest: dict) -> None:
    """An empty database with the backed-up database's encoding and locale."""
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
    db = manifest.get("database_settings") or {}
    if db.get("encoding"):
        statement += sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Literal(db["encoding"]), sql.Literal(db["collate"]), sql.Literal(db["ctype"])
        )
    admin.execute(statement)


def _drop_database(server: Server, name: str) -> None:
    with server.on("postgres").connect() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def database_alias(database: str, base: str = DEFAULT_DB_ALIAS) -> Iterator[str]:
    """A temporary Django alias for another database on the server of `base`."""
    if connections[base].settings_dict["NAME"] == database:
        yield base
        return
    alias = f"backup_check_{database}"
    settings_dict = copy.deepcopy(connections[base].settings_dict)
    settings_dict["NAME"] = database
    settings_dict["OPTIONS"].pop("pool", None)  # one short check: no pool of its own
    settings_dict["CONN_MAX_AGE"] = 0
    with temporary_alias(alias, settings_dict):
        yield alias


@contextmanager
def temporary_alias(alias: str, settings_dict: dict) -> Iterator[str]:
    """Django's connection `alias` with these settings for the block; closed and forgotten after it."""
    connections.settings[alias] = settings_dict
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def compare_tables(expected: dict[str, dict], found: dict[str, dict]) -> list[str]:
    """One line per table whose count or checksum differs from the manifest's."""
    problems = []
    for table in sorted(expected.keys() | found.keys()):
        if table not in found:
            problems.append(f"{table}: in the backup, missing from the database")
        elif table not in expected:
            problems.append(f"{table}: in the database, not in the backup")
        else:
            want, got = expected[table], found[table]
            differences = []
            if want["rows"] != got["rows"]:
                differences.append(f"rows expected {want['rows']}, found {got['rows']}")
            if want["checksum"] != got["checksum"]:
                differences.append(f"checksum expected {want['checksum']}, found {got['checksum']}")
            if differences:
                problems.append(f"{table}: " + "; ".join(differences))
    return problems


def _migration_drift(manifest: dict) -> tuple[list[str], list[str]]:
    from django.db.migrations.loader import MigrationLoader

    in_code = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    in_backup = {(entry["app"], entry["name"]) for entry in manifest["migrations"]}
    apps = {app for app, _name in in_code}
    missing = sorted(f"{app}.{name}" for app, name in in_code - in_backup)
    unknown = sorted(f"{app}.{name}" for app, name in in_backup - in_code if app in apps)
    return missing, unknown


RESTORING = re.compile(r"processing data for table|finished item \d+ TABLE DATA")


# Connections checking a restored database at the same time: the table checksums on one,
# ranges of the audit chains on the other, then on both.
VERIFY_WORKERS = 2


def verify_database(
    manifest: dict | None, *, database: str, steps: Steps = SILENT, alias: str = DEFAULT_DB_ALIAS
) -> RestoreResult:
    """Compare a database with a backup's manifest and walk its audit chains.

    With no manifest (a point-in-time restore has none to compare with) the counts and
    checksums are only recorded, in `found`, and the migrations are the database's own.
    """
    started = time.monotonic()
    server = Server.of(alias).on(database)
    with server.connect() as conn:
        audited = conn.execute(
            "SELECT to_regclass('public.audit_logs') IS NOT NULL"
            " AND to_regclass('public.audit_chain_heads') IS NOT NULL"
        ).fetchone()[0]
        if manifest is None:
            manifest = {"tables": None, "migrations": _migrations(conn.cursor())}
    reports = []
    with database_alias(database, alias) as using, ThreadPoolExecutor(max_workers=VERIFY_WORKERS) as pool:
        method = manifest_checksum_method(manifest) or CHECKSUM_METHOD
        checksums = pool.submit(table_checksums, server, SILENT, method)
        if audited:
            keys = chain_keys(using=using)
            sizes = chain_sizes(keys, using=using)
            steps.start("checksums and audit chains", total=sum(sizes.values()), unit="row")
            lock = threading.Lock()

            def advance(rows: int) -> None:
                with lock:
                    steps.advance(rows)

            reports = list(verify_chains(keys, sizes=sizes, on_rows=advance, executor=pool, using=using).values())
        else:
            steps.start("checksums")
        found = checksums.result()
    result = RestoreResult(
        database=database,
        tables=len(found),
        rows=sum(entry["rows"] for entry in found.values()),
        seconds=0.0,
        mismatches=[] if manifest["tables"] is None else compare_tables(manifest["tables"], found),
        found=found,
    )
    if audited:
        for report in reports:
            result.audit_chains += 1
            result.audit_rows += report.rows
            if report.broken:
                result.audit_breaks.append(str(report.broken))
    else:
        result.audit_checked = False
    result.migrations_missing, result.migrations_unknown = _migration_drift(manifest)
    result.seconds = time.monotonic() - started
    return result


def restore_backup(
    checked: CheckedBackup,
    *,
    database: str | None = None,
    create: bool = False,
    force: bool = False,
    jobs: int = 1,
    steps: Steps = SILENT,
    alias: str = DEFAULT_DB_ALIAS,
    analyze: bool = True,
) -> RestoreResult:
    """Restore a checked backup as `database` (default: the alias's own), never destroying it on the way.

    The backup is restored into a scratch database beside the target and verified
    there. Only a copy that matches its manifest is swapped in: one transaction renames
    the target away and the copy in its place, with the target's owner, grants and
    settings, and the old database is dropped after. A failure at any point before the
    swap (pg_restore killed, a full disk, a mismatch) drops the copy and leaves the
    target exactly as it was (a copy that does not match: the result is not `ok`).

    pg_restore brings no planner statistics: with `analyze`, the copy is analysed before
    it is verified, so the first queries on it get good plans.
    """
    started = time.monotonic()
    server = Server.of(alias)
    target = database or server.database
    with _one_at_a_time(server, target) as admin:
        leftovers = _drop_leftovers(admin, target)
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target]).fetchone() is not None
        if not exists and not create:
            raise BackupError(f"Database {target} does not exist: add --create to create it.")
        if exists:
            with server.on(target).connect() as conn:
                if _public_objects(conn) and not force:
                    raise BackupError(
                        f"Database {target} is not empty ({_public_tables_count(conn)} tables in its public "
                        "schema); nothing was restored. Use --force to replace its contents."
                    )
        stamp = datetime.now(UTC).strftime(STAMP)
        scratch, old = scratch_name(target, "restore", stamp), scratch_name(target, "replaced", stamp)
        _create_database(admin, scratch, checked.manifest)
        replaced = False
        try:
            result = _restore_into(checked, scratch, jobs=jobs, steps=steps, alias=alias, analyze=analyze)
            if result.ok:
                steps.start("swap in")
                if target == connections[alias].settings_dict["NAME"]:
                    connections[alias].close()  # hold no session on what is about to be replaced
                    connections[alias].close_pool()  # nor keep pooled sessions on it (DB_POOL)
                _swap_in(admin, scratch, target, old if exists else None)
                replaced = True
        finally:
            if not replaced:
                _drop_database(server, scratch)
        if replaced and exists:
            _drop_database(server, old)
    result.database = target
    result.leftovers = leftovers
    if result.ok:
        _check_attachments(checked.manifest, result)
    result.seconds = time.monotonic() - started
    return result


def _check_attachments(manifest: dict, result: RestoreResult) -> None:
    """Which stored objects the restored rows refer to are missing (never failing the restore)."""
    try:
        result.attachments_missing = missing_attachments(manifest.get("attachments") or {})
    except Exception as exc:  # a storage's own errors (an unreachable bucket): the restore itself succeeded
        result.attachments_problem = one_line(exc)


def _restore_into(
    checked: CheckedBackup, database: str, *, jobs: int, steps: Steps, alias: str, analyze: bool
) -> RestoreResult:
    """pg_restore a checked backup into an empty `database`, then verify it against the manifest."""
    server = Server.of(alias)
    target_server = server.on(database)
    argv = [
        server.tool("pg_restore").path,
        "--no-owner",
        "--exit-on-error",
        "--verbose",
        f"--dbname={target_server.conninfo()}",
    ]
    argv += [f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]
    argv.append(str(checked.dump))
    steps.start("restore", total=checked.data_entries, unit="table")
    running = _Running(argv, target_server.env(), RESTORING)
    try:
        code = running.wait(steps.advance, checked.data_entries)
    finally:
        running.stop()
    if code != 0:
        raise BackupError(f"pg_restore into {database} failed: {running.error()}")
    if analyze:
        steps.start("analyze")
        with target_server.connect() as conn:
            conn.execute("ANALYZE")
    return verify_database(checked.manifest, database=database, steps=steps, alias=alias)


# --- Scratch databases and the swap ----------------------------------------------------------------

SCRATCH_KINDS = ("restore", "replaced", "verify")
STAMP = "%Y%m%d%H%M%S"
# advisory lock class of "one restore or check of a database at a time" ("VHRS")
RESTORE_LOCK = 0x56485253
SWAP_ATTEMPTS = 3  # each waits up to 5 s for the sessions it ended to go (PostgreSQL's own wait)


def scratch_name(database: str, kind: str = "verify", stamp: str | None = None) -> str:
    """`<database>_<kind>_<YYYYmmddHHMMSS>`, the database's name cut to fit PostgreSQL's 63 bytes."""
    suffix = f"_{kind}_{stamp or datetime.now(UTC).strftime(STAMP)}"
    return database[: 63 - len(suffix)] + suffix


def _is_scratch_of(name: str, database: str) -> bool:
    for kind in SCRATCH_KINDS:
        stem = scratch_name(database, kind, "0" * 14)[: -len(f"_{kind}_") - 14]
        if re.fullmatch(re.escape(stem) + f"_{kind}_" + r"\d{14}", name):
            return True
    return False


@contextmanager
def _one_at_a_time(server: Server, database: str) -> Iterator[psycopg.Connection]:
    """A connection to the server's maintenance database, holding the lock on restoring or checking `database`.

    While it is held, scratch databases of `database` that exist are leftovers of a run
    that was killed: no other run is using them.
    """
    with server.on("postgres").connect() as admin:
        taken = admin.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [RESTORE_LOCK, database]).fetchone()[0]
        if not taken:
            raise BackupError(f"Another restore or check of {database} is running: try again when it has finished.")
        yield admin  # the lock goes with the connection


def _drop_leftovers(admin: psycopg.Connection, database: str) -> list[str]:
    names = [row[0] for row in admin.execute("SELECT datname FROM pg_database ORDER BY datname")]
    leftovers = [name for name in names if name != database and _is_scratch_of(name, database)]
    for name in leftovers:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return leftovers


def _end_sessions(admin: psycopg.Connection, databases: list[str]) -> None:
    """Ask the server to end other sessions on these databases (only those this role may end)."""
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            [databases],
        )


def _swap_in(admin: psycopg.Connection, scratch: str, target: str, old: str | None) -> None:
    """Put `scratch` in the place of `target` in one transaction; the target, if any (`old` given), becomes `old`.

    A database cannot be renamed while anyone is connected to it: the app's sessions on
    the target are ended first (its next requests reconnect, to the restored database).
    """
    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        _end_sessions(admin, [target, scratch])
        try:
            with admin.transaction():
                if old:
                    admin.execute(rename.format(sql.Identifier(target), sql.Identifier(old)))
                admin.execute(rename.format(sql.Identifier(scratch), sql.Identifier(target)))
                if old:
                    _copy_database_settings(admin, old, target)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == SWAP_ATTEMPTS:
                raise BackupError(
                    f"Other sessions keep connecting to {target}: stop the app, then retry; {target} was left as "
                    "it was."
                ) from None


def _copy_database_settings(admin: psycopg.Connection, source: str, target: str) -> None:
    """Give `target` the owner, grants and settings (ALTER DATABASE/ROLE … SET) that `source` has."""
    owner, acl, oid = admin.execute(
        "SELECT datdba::regrole::text, datacl IS NOT NULL, oid FROM pg_database WHERE datname = %s", [source]
    ).fetchone()
    name = sql.Identifier(target)
    admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, sql.SQL(owner)))
    if acl:  # explicit grants (NULL: the defaults, as a new database has)
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        grants = admin.execute(
            """
            SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                   a.privilege_type, a.is_grantable
            FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s
            """,
            [source],
        ).fetchall()
        for grantee, privilege, grantable in grants:
            admin.execute(
                sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(privilege), name, sql.SQL(grantee), sql.SQL(" WITH GRANT OPTION" if grantable else "")
                )
            )
    settings_rows = admin.execute(
        "SELECT CASE WHEN setrole = 0 THEN NULL ELSE setrole::regrole::text END, setconfig "
        "FROM pg_db_role_setting WHERE setdatabase = %s",
        [oid],
    ).fetchall()
    for role, config in settings_rows:
        for item in config:
            key, _, value = item.partition("=")
            prefix = (
                sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.SQL(role), name)
                if role
                else sql.SQL("ALTER DATABASE {}").format(name)
            )
            admin.execute(sql.SQL("{} SET {} TO {}").format(prefix, sql.Identifier(key), sql.Literal(value)))


# --- The restore drill ---------------------------------------------------------------------------


@dataclass
class DrillResult:
    backup: Backup
    scratch: str
    restore: RestoreResult
    orphans: list[str]


def verify_newest(
    dest: Destination, *, jobs: int = 1, steps: Steps = SILENT, alias: str = DEFAULT_DB_ALIAS
) -> DrillResult:
    """Restore the newest backup into a scratch database, check it as `restore` does, drop it.

    Scratch databases left by a check that was killed are dropped first (and named in
    the result's notes).
    """
    server = Server.of(alias)
    listing = list_backups(dest, server.database)
    if not listing.backups:
        orphans = f" ({len(listing.orphans)} incomplete ones ignored)" if listing.orphans else ""
        raise BackupError(f"No backup of {server.database} in {dest.label}{orphans}.")
    newest = listing.backups[0]
    scratch = scratch_name(server.database, "verify")
    with tempfile.TemporaryDirectory(prefix="vulhub-verify-") as local:
        steps.start("fetch", total=2, unit="file")
        dump = dest.local_path(newest.dump_name, Path(local))
        steps.advance()
        dest.local_path(newest.manifest_name, Path(local))
        steps.advance()
        checked = check_backup(dump, server=server, steps=steps)
        with _one_at_a_time(server, server.database) as admin:
            leftovers = _drop_leftovers(admin, server.database)
            _create_database(admin, scratch, checked.manifest)
            try:
                result = _restore_into(checked, scratch, jobs=jobs, steps=steps, alias=alias, analyze=False)
            finally:
                _drop_database(server, scratch)
    result.leftovers = leftovers
    return DrillResult(newest, scratch, result, listing.orphans)


def positive_int(value: str) -> int:
    """argparse type of --keep, --jobs...: a whole number, 1 or more."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more")
    return number


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def one_line(exc: BaseException) -> str:
    """An exception as one line: the first line of its message (psycopg adds DETAIL lines)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
