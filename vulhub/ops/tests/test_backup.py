"""`manage.py backup` and `manage.py restore` against real PostgreSQL, pg_dump and pg_restore.

pg_dump runs in another process and cannot see a test's transaction, so these tests
work on scratch databases of their own (vulhub_bt_*): the migrated test database is
cloned once and seeded with the demo data (`seeded`), each test clones that again
(`source`) and points the default connection at its clone, as if it were the
operator's database. Every scratch database is dropped at teardown.

The django_db mark makes pytest-django create the test database these clones start
from; transaction=True because the tests move the default connection to their clones.
"""

import hashlib
import io
import json
import os
import sys
import time
import uuid
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.db import connections
from psycopg import sql

from audit.context import acting_as
from tenants.models import Tenant
from vulhub.ops import backups
from vulhub.ops.destinations import LocalDirectory, NameTaken, StorageDestination
from vulhub.ops.management.commands.backup import Command as BackupCommand
from vulhub.ops.management.commands.restore import Command as RestoreCommand
from vulhub.seeding.demo import load_demo_data
from vulhub.tests.append_only import allow_test_flush
from vulhub.tests.servers import moto_s3

pytestmark = pytest.mark.django_db(transaction=True)


def admin_execute(statement, params=None):
    with backups.Server.of().on("postgres").connect() as admin:
        return admin.execute(statement, params).fetchall() if params is not None else admin.execute(statement)


def create_database(name, template=None):
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    admin_execute(statement)


def drop_database(name):
    admin_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def databases_like(pattern):
    return [row[0] for row in admin_execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern])]


def scratch_name(role):
    return f"vulhub_bt_{role}_{uuid.uuid4().hex[:8]}"


def close_default():
    """Close the default connection for real: with DB_POOL, close() only returns it to the pool."""
    connection = connections["default"]
    connection.close()
    connection.close_pool()


@contextmanager
def default_database(name):
    """Point the default connection at another database of the same server."""
    connection = connections["default"]
    saved = connection.settings_dict["NAME"]
    close_default()  # a pool keeps the database it was made for
    connection.settings_dict["NAME"] = name
    try:
        yield
    finally:
        close_default()
        connection.settings_dict["NAME"] = saved


def checksums(database):
    return backups.table_checksums(backups.Server.of().on(database))


def end_other_sessions(database, wait=10.0):
    """Let a database serve as a template: other sessions get `wait` seconds to end, then are ended.

    A template must have no session but the copier's. Those left (a connection an
    earlier test did not close) are named in a warning, so the leak can be found.
    """
    others = """
        SELECT pid, application_name, state, left(query, 80) FROM pg_stat_activity
        WHERE datname = %s AND pid <> pg_backend_pid()
    """
    deadline = time.monotonic() + wait
    while (left := admin_execute(others, [database])) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        warnings.warn(f"ended sessions still open on {database}: {left}", stacklevel=2)
        admin_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """A clone of the migrated test database holding the demo data, committed."""
    name = scratch_name("seeded")
    test_database = connections["default"].settings_dict["NAME"]
    assert test_database.startswith("test_"), "clone the test database, never the operator's"
    with django_db_blocker.unblock():
        close_default()  # a template must have no other session
        end_other_sessions(test_database)
        create_database(name, template=test_database)
        try:
            with default_database(name):
                allow_test_flush(enable_guards=True)  # the clone is a real database: guards on
                with acting_as(None):
                    load_demo_data()
            yield name
        finally:
            drop_database(name)


@pytest.fixture
def source(seeded, django_db_blocker):
    """The operator's database: a seeded clone the default connection points at."""
    name = scratch_name("src")
    with django_db_blocker.unblock():
        create_database(name, template=seeded)
        try:
            with default_database(name):
                yield name
        finally:
            drop_database(name)
            for leftover in databases_like(f"{name}%"):
                drop_database(leftover)


@pytest.fixture
def other_database(django_db_blocker):
    """A name for a database the test may create; dropped afterwards."""
    name = scratch_name("target")
    yield name
    with django_db_blocker.unblock():
        drop_database(name)


def run(command, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def fails(command, *args):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command(command, *args, "--no-progress", stdout=out, stderr=err)
    assert excinfo.value.returncode == 1
    assert "\n" not in str(excinfo.value)  # one line for the operator
    return str(excinfo.value), out.getvalue() + err.getvalue()


def take_backup(dest):
    run("backup", "--dest", str(dest))
    (dump,) = sorted(Path(dest).glob("*.dump"))
    return dump, dump.with_name(dump.name.replace(".dump", ".manifest.json"))


def read_manifest(path):
    return json.loads(Path(path).read_text())


def write_manifest(path, manifest):
    Path(path).write_text(json.dumps(manifest))


# --- backup, then restore ----------------------------------------------------------------


def test_a_backup_restores_into_an_emptied_database_table_for_table(source, tmp_path):
    dump, manifest_path = take_backup(tmp_path)
    manifest = read_manifest(manifest_path)

    assert dump.name.startswith(f"vulhub-{source}-") and dump.name.endswith("Z.dump")
    assert manifest["database"] == source
    assert manifest["dump"]["file"] == dump.name
    assert manifest["dump"]["size"] == dump.stat().st_size
    assert manifest["dump"]["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert {"app": "audit", "name": "0005_linear_chain_trigger"} in manifest["migrations"]
    assert {"pg_dump", "vulhub", "django"} <= set(manifest["tools"])
    assert manifest["tools"]["pg_dump"].startswith("pg_dump (PostgreSQL) ")
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    before = checksums(source)
    assert manifest["tables"] == before  # the manifest describes the database as it was
    assert manifest["tables"]["audit_logs"]["rows"] > 0
    assert manifest["tables"]["tenants"]["rows"] == Tenant.objects.count()

    close_default()
    drop_database(source)
    output = run("restore", str(dump), "--create")

    assert f"Restored {dump.name} into {source}" in output
    assert "match the manifest" in output
    assert "audit chain(s) intact" in output
    assert checksums(source) == manifest["tables"]
    assert "intact" in run("verify_audit")


def test_restore_from_the_manifest_into_another_database_with_parallel_jobs(source, other_database, tmp_path):
    _dump, manifest_path = take_backup(tmp_path)

    output = run("restore", str(manifest_path), "--database", other_database, "--create", "--jobs", "2")

    assert f"into {other_database}" in output
    assert checksums(other_database) == read_manifest(manifest_path)["tables"]
    assert checksums(source) == read_manifest(manifest_path)["tables"]  # the source is left alone


def test_the_counts_come_from_the_dumps_own_snapshot(source, tmp_path):
    """Rows committed after the backup are in neither the dump nor the manifest."""
    dump, manifest_path = take_backup(tmp_path)
    with acting_as(None):
        Tenant.objects.create(name="Late Tenant", slug="late", domain="late.localhost")

    _message, _output = fails("restore", str(dump))  # not empty
    run("restore", str(dump), "--force")

    assert not Tenant.objects.filter(slug="late").exists()
    assert checksums(source) == read_manifest(manifest_path)["tables"]


# --- refusals that touch nothing ------------------------------------------------------------


def flip_bytes_in_the_middle(dump, manifest_path):
    data = bytearray(dump.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    dump.write_bytes(bytes(data))


def truncate(dump, manifest_path):
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])


def foreign_file_with_a_forged_manifest(dump, manifest_path):
    dump.write_text("SELECT 'this is not a pg_dump archive';\n" * 50)
    manifest = read_manifest(manifest_path)
    manifest["dump"].update(size=dump.stat().st_size, sha256=hashlib.sha256(dump.read_bytes()).hexdigest())
    write_manifest(manifest_path, manifest)


def lose_the_manifest(dump, manifest_path):
    manifest_path.unlink()


def garble_the_manifest(dump, manifest_path):
    manifest_path.write_text('{"manifest_version": 1, "dump": ')


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (flip_bytes_in_the_middle, "is corrupted: its sha256 differs from its manifest's"),
        (truncate, "the file is truncated"),
        (foreign_file_with_a_forged_manifest, "is not a PostgreSQL custom-format dump"),
        (lose_the_manifest, "No manifest"),
        (garble_the_manifest, "is not valid JSON"),
    ],
)
def test_a_damaged_backup_is_refused_before_anything_is_touched(source, other_database, tmp_path, damage, message):
    dump, manifest_path = take_backup(tmp_path)
    damage(dump, manifest_path)
    with acting_as(None):
        Tenant.objects.create(name="Kept Tenant", slug="kept", domain="kept.localhost")
    before = checksums(source)

    error, _output = fails("restore", str(dump), "--force")
    assert message in error
    assert "nothing was restored" in error
    assert checksums(source) == before  # still its old rows, the new one included

    error, _output = fails("restore", str(dump), "--database", other_database, "--create")
    assert message in error
    assert databases_like(other_database) == []  # not even created


def test_a_database_that_is_not_empty_needs_force(source, other_database, tmp_path):
    dump, manifest_path = take_backup(tmp_path)
    create_database(other_database)
    with backups.Server.of().on(other_database).connect() as conn:
        conn.execute("CREATE TABLE notes (body text)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")

    error, _output = fails("restore", str(dump), "--database", other_database)

    assert error == (
        f"Database {other_database} is not empty (1 tables in its public schema); nothing was restored. "
        "Use --force to replace its contents."
    )
    assert checksums(other_database)["notes"]["rows"] == 1

    run("restore", str(dump), "--database", other_database, "--force")

    assert checksums(other_database) == read_manifest(manifest_path)["tables"]  # notes is gone


def test_a_missing_database_needs_create(source, other_database, tmp_path):
    dump, _manifest_path = take_backup(tmp_path)

    error, _output = fails("restore", str(dump), "--database", other_database)

    assert error == f"Database {other_database} does not exist: add --create to create it."


def test_a_table_that_differs_from_the_manifest_fails_the_restore_and_is_named(source, other_database, tmp_path):
    dump, manifest_path = take_backup(tmp_path)
    manifest = read_manifest(manifest_path)
    real = manifest["tables"]["projects"]["checksum"]
    manifest["tables"]["projects"]["checksum"] = "12345"
    manifest["tables"]["badges"]["rows"] += 1
    write_manifest(manifest_path, manifest)  # the sha256 covers the dump, not the manifest

    error, output = fails("restore", str(dump), "--database", other_database, "--create")

    assert "does not match its backup: 2 table(s) differ from the manifest" in error
    assert f"MISMATCH projects: checksum expected 12345, found {real}" in output
    assert "MISMATCH badges: rows expected" in output


def test_a_backup_checksummed_with_md5_row_text_is_checked_with_that_method(source, other_database, tmp_path):
    """Manifests of older backups name md5(row::text): a restore checks them that way."""
    dump, manifest_path = take_backup(tmp_path)
    manifest = read_manifest(manifest_path)
    assert manifest["checksum"]["method"] == backups.HASH_RECORD
    old = backups.table_checksums(backups.Server.of().on(source), method=backups.MD5_TEXT)
    assert {t: e["rows"] for t, e in old.items()} == {t: e["rows"] for t, e in manifest["tables"].items()}
    assert old["audit_logs"]["checksum"] != manifest["tables"]["audit_logs"]["checksum"]  # another method
    manifest["checksum"]["method"], manifest["tables"] = backups.MD5_TEXT, old
    write_manifest(manifest_path, manifest)

    output = run("restore", str(dump), "--database", other_database, "--create")

    assert "match the manifest" in output
    manifest["tables"]["projects"]["checksum"] = "12345"
    manifest["checksum"]["method"] = "sha1 of the moon"
    write_manifest(manifest_path, manifest)
    error, _output = fails("restore", str(dump), "--database", other_database, "--force")
    assert "its checksum method 'sha1 of the moon' is not one this version knows" in error
    assert "nothing was restored" in error


def test_a_faithful_copy_of_a_tampered_audit_log_fails_the_restore(source, other_database, tmp_path):
    with backups.Server.of().connect() as conn:  # what only the table owner can do
        conn.execute("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only")
        conn.execute("UPDATE audit_logs SET object_text = 'rewritten' WHERE id = (SELECT min(id) FROM audit_logs)")
        conn.execute("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only")
    dump, _manifest_path = take_backup(tmp_path)

    error, output = fails("restore", str(dump), "--database", other_database, "--create")

    assert "0 table(s) differ from the manifest, 1 audit chain(s) broken" in error
    assert "BROKEN audit chain" in output
    assert "edited: its content no longer matches its hash" in output


# --- backup failures and guards --------------------------------------------------------------


def test_a_failed_pg_dump_leaves_nothing_behind(source, tmp_path):
    error, _output = fails("backup", "--dest", str(tmp_path), "--compress", "bogus")

    assert error.startswith("pg_dump failed: ")
    assert list(tmp_path.iterdir()) == []


def test_a_pg_dump_older_than_the_server_is_refused():
    old = backups.Tool("/usr/lib/postgresql/14/bin/pg_dump", "pg_dump (PostgreSQL) 14.11", 14)

    with pytest.raises(backups.BackupError, match="is version 14 but the server runs PostgreSQL 15"):
        backups._tool_newer_than_server(old, 15)


DJANGO_OPTIONS = {"help", "version", "verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color"}
DJANGO_OPTIONS |= {"skip_checks"}


@pytest.mark.parametrize("command", [BackupCommand, RestoreCommand])
def test_every_option_is_explained(command):
    parser = command().create_parser("manage.py", command.__module__.rsplit(".", 1)[1])
    ours = [action for action in parser._actions if action.dest not in DJANGO_OPTIONS]

    assert command.help
    assert ours and all(action.help for action in ours)


# --- retention ----------------------------------------------------------------------------------


def fake_backup(directory, database, taken_at, *, manifest=True):
    stem = f"vulhub-{database}-{taken_at:%Y%m%dT%H%M%SZ}"
    (directory / f"{stem}.dump").write_bytes(b"PGDMP")
    if manifest:
        (directory / f"{stem}.manifest.json").write_text("{}")
    return stem


@pytest.fixture
def aged_backups(tmp_path):
    """Backups 0.5, 1.5, 2.5, 3.5 and 5 days old, all with this minute's mtime, and bystanders."""
    database = connections["default"].settings_dict["NAME"]
    now = datetime.now(UTC)
    stems = [fake_backup(tmp_path, database, now - timedelta(days=days)) for days in (0.5, 1.5, 2.5, 3.5, 5)]
    bystanders = {
        "notes.txt",
        "vulhub-not-a-backup.dump",
        fake_backup(tmp_path, "otherdb", now - timedelta(days=30)) + ".dump",
        fake_backup(tmp_path, "otherdb", now - timedelta(days=30)) + ".manifest.json",
        fake_backup(tmp_path, database, now - timedelta(days=9), manifest=False) + ".dump",  # interrupted
    }
    (tmp_path / "notes.txt").write_text("operator's notes")
    (tmp_path / "vulhub-not-a-backup.dump").write_text("?")
    for path in tmp_path.iterdir():
        os.utime(path)  # mtimes say nothing: ages come from the names
    return tmp_path, stems, bystanders


def remaining(directory):
    return {path.name for path in directory.iterdir()}


def pair(stem):
    return {f"{stem}.dump", f"{stem}.manifest.json"}


def test_keep_n_keeps_the_newest_n(aged_backups):
    directory, stems, bystanders = aged_backups

    output = run("backup", "--dest", str(directory), "--prune-only", "--keep", "2")

    assert remaining(directory) == pair(stems[0]) | pair(stems[1]) | bystanders
    for stem in stems[2:]:
        assert f"deleted {stem}.dump and its manifest" in output
    assert "Retention: 3 backup(s) deleted, 2 kept" in output
    assert "has no manifest" not in output and "its other half is missing" in output


def test_keep_days_deletes_what_is_older(aged_backups):
    directory, stems, bystanders = aged_backups

    run("backup", "--dest", str(directory), "--prune-only", "--keep-days", "3")

    assert remaining(directory) == pair(stems[0]) | pair(stems[1]) | pair(stems[2]) | bystanders


def test_dry_run_deletes_nothing(aged_backups):
    directory, stems, _bystanders = aged_backups
    before = remaining(directory)

    output = run("backup", "--dest", str(directory), "--prune-only", "--keep", "1", "--dry-run")

    assert remaining(directory) == before
    assert "Retention: 4 backup(s) would be deleted (dry run), 1 kept" in output
    assert f"would delete {stems[1]}.dump" in output


def test_the_newest_backup_survives_any_age_limit(tmp_path):
    database = connections["default"].settings_dict["NAME"]
    stem = fake_backup(tmp_path, database, datetime.now(UTC) - timedelta(days=40))

    run("backup", "--dest", str(tmp_path), "--prune-only", "--keep-days", "7")

    assert remaining(tmp_path) == pair(stem)


def test_retention_follows_a_successful_backup(source, tmp_path):
    old = fake_backup(tmp_path, source, datetime.now(UTC) - timedelta(days=10))

    orphan = fake_backup(tmp_path, source, datetime.now(UTC) - timedelta(days=20), manifest=False)

    output = run("backup", "--dest", str(tmp_path), "--keep", "1")

    assert f"deleted {old}.dump" in output
    assert f"ignored {orphan}.dump: its other half is missing" in output
    assert (tmp_path / f"{orphan}.dump").exists()
    assert len(list(tmp_path.glob("*.manifest.json"))) == 1


# --- the restore drill and the storage destination ------------------------------------------------


def verify_scratch_databases(source):
    return databases_like(f"{source}_verify_%")


def test_the_drill_passes_a_good_backup_and_fails_a_damaged_one(source, tmp_path):
    dump, manifest_path = take_backup(tmp_path)
    good = dump.read_bytes()

    output = run("backup", "--verify", "--dest", str(tmp_path))
    assert f"Backup {dump.name} verified in scratch database {source}_verify_" in output
    assert verify_scratch_databases(source) == []

    flip_bytes_in_the_middle(dump, manifest_path)
    error, _output = fails("backup", "--verify", "--dest", str(tmp_path))
    assert f"{dump.name} is corrupted" in error
    assert verify_scratch_databases(source) == []

    dump.write_bytes(good)
    manifest = read_manifest(manifest_path)
    manifest["tables"]["users"]["rows"] -= 1
    write_manifest(manifest_path, manifest)
    error, output = fails("backup", "--verify", "--dest", str(tmp_path))
    assert "failed its restore drill: 1 table(s) differ from the manifest" in error
    assert "MISMATCH users: rows expected" in output
    assert verify_scratch_databases(source) == []


def test_the_drill_needs_a_backup(source, tmp_path):
    fake_backup(tmp_path, source, datetime.now(UTC), manifest=False)

    error, _output = fails("backup", "--verify", "--dest", str(tmp_path))

    assert error == f"No backup of {source} in {tmp_path} (1 incomplete ones ignored)."


def test_a_storage_destination_gets_the_backup_and_serves_the_drill(source, other_database, tmp_path, settings):
    location = tmp_path / "bucket"
    settings.BACKUP_STORAGE = "django.core.files.storage.FileSystemStorage"
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {"BACKEND": settings.BACKUP_STORAGE, "OPTIONS": {"location": str(location)}},
    }

    output = run("backup")

    (dump,) = location.glob("*.dump")
    assert f"written to storage 'backups' (FileSystemStorage {location})" in output
    assert (location / dump.name.replace(".dump", ".manifest.json")).exists()
    assert "verified" in run("backup", "--verify")
    assert verify_scratch_databases(source) == []
    run("restore", dump.name, "--from-storage", "--database", other_database, "--create")
    assert checksums(other_database) == checksums(source)
    old = fake_backup(location, source, datetime.now(UTC) - timedelta(days=10))
    assert f"deleted {old}.dump" in run("backup", "--prune-only", "--keep-days", "1")
    assert sorted(path.name for path in location.iterdir()) == [dump.name, dump.name.replace(".dump", ".manifest.json")]


@pytest.mark.parametrize("kind", ["directory", "storage"])
def test_a_directory_and_a_storage_keep_files_alike(kind, tmp_path):
    root, scratch = tmp_path / "root", tmp_path / "scratch"
    scratch.mkdir()
    if kind == "directory":
        dest = LocalDirectory(root)
    else:
        dest = StorageDestination(FileSystemStorage(location=str(root)), "storage")
    wal, meta = "wal/000000010000000000000001", "base/20260101T000000Z/vulhub.json"
    assert (dest.files(), dest.files("wal"), dest.folders("base")) == ([], [], [])

    dump = dest.write_path("top.dump", scratch)
    dump.write_bytes(b"dump")
    dest.save(dump, "top.dump")
    (scratch / "segment").write_bytes(b"12345")
    dest.save(scratch / "segment", wal)
    dest.save_text(meta, "{}\n")
    (root / "wal" / ".000000010000000000000002.partial").write_bytes(b"half")  # being written: not listed
    (root / "base" / ".20260102T000000Z.partial").mkdir()

    on_disk = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    assert on_disk == [meta, "top.dump", "wal/.000000010000000000000002.partial", wal]
    assert (dest.files(), dest.files("wal"), dest.folders("base")) == (["top.dump"], [wal[4:]], ["20260101T000000Z"])
    assert dest.read_text(meta) == "{}\n"
    assert (dest.exists(wal), dest.size(wal), dest.exists("wal/gone"), dest.size("wal/gone")) == (True, 5, False, None)
    dest.fetch(wal, tmp_path / "fetched")
    assert (tmp_path / "fetched").read_bytes() == b"12345"
    assert dest.local_path("top.dump", scratch).read_bytes() == b"dump"

    if kind == "storage":  # a storage never overwrites: the copy it kept under another name goes
        with pytest.raises(NameTaken):
            dest.save_text(meta, "other")
        assert dest.read_text(meta) == "{}\n"
        assert dest.files("base/20260101T000000Z") == ["vulhub.json"]
    dest.delete("top.dump")
    dest.delete(wal)
    assert (dest.files(), dest.files("wal")) == ([], [])


# --- restores never destroy -------------------------------------------------------------------


def database_facts(name):
    """What a swap must carry over: owner, grants and settings (and the oid, which it must not)."""
    ((oid, owner),) = admin_execute("SELECT oid, datdba::regrole::text FROM pg_database WHERE datname = %s", [name])
    grants = admin_execute(
        "SELECT a.grantee::regrole::text, a.privilege_type FROM pg_database d, aclexplode(d.datacl) a "
        "WHERE d.datname = %s ORDER BY 1, 2",
        [name],
    )
    settings = admin_execute("SELECT setrole, setconfig FROM pg_db_role_setting WHERE setdatabase = %s", [oid])
    return oid, {"owner": owner, "grants": grants, "settings": settings}


def late_tenant():
    """A change after the backup: the target then differs from it, so a restore would show."""
    with acting_as(None):
        Tenant.objects.create(name="Late Tenant", slug="late", domain="late.localhost")


@pytest.fixture
def pg_restore_killed_midway(tmp_path, monkeypatch):
    """pg_restore, killed (SIGKILL) as soon as it starts loading the first table's rows."""
    real = backups.Server.of().tool("pg_restore")
    wrapper = tmp_path / "bin" / "pg_restore"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import subprocess, sys\n"
        f"child = subprocess.Popen([{real.path!r}, *sys.argv[1:]], stderr=subprocess.PIPE, text=True)\n"
        "for line in child.stderr:\n"
        "    sys.stderr.write(line)\n"
        "    if 'processing data for table' in line:\n"
        "        child.kill()\n"
        "        child.wait()\n"
        "        sys.exit(137)\n"
        "sys.exit(child.wait())\n"
    )
    wrapper.chmod(0o755)
    tool = backups.Server.tool

    def tools(server, name):
        return backups.Tool(str(wrapper), real.version, real.major) if name == "pg_restore" else tool(server, name)

    monkeypatch.setattr(backups.Server, "tool", tools)


def test_a_pg_restore_killed_midway_leaves_the_target_exactly_as_it_was(source, tmp_path, pg_restore_killed_midway):
    dump, _manifest_path = take_backup(tmp_path / "backups")
    late_tenant()
    before = checksums(source)
    oid, facts = database_facts(source)

    error, _output = fails("restore", str(dump), "--force")

    assert error.startswith(f"pg_restore into {source}_restore_") and "failed" in error
    assert checksums(source) == before  # the late tenant is still there: nothing was replaced
    assert database_facts(source) == (oid, facts)
    assert databases_like(f"{source}_restore_%") == []  # the half-loaded copy is gone


def test_a_copy_that_does_not_match_its_manifest_is_never_swapped_in(source, tmp_path):
    dump, manifest_path = take_backup(tmp_path)
    manifest = read_manifest(manifest_path)
    manifest["tables"]["projects"]["checksum"] = "12345"
    write_manifest(manifest_path, manifest)
    late_tenant()
    before = checksums(source)

    error, _output = fails("restore", str(dump), "--force")

    assert error.endswith(f"1 table(s) differ from the manifest, 0 audit chain(s) broken; {source} was left as it was.")
    assert checksums(source) == before
    assert databases_like(f"{source}_restore_%") == []


def test_a_forced_restore_swaps_in_a_copy_with_the_databases_owner_grants_and_settings(source, tmp_path):
    dump, manifest_path = take_backup(tmp_path)
    name = sql.Identifier(source)
    admin_execute(sql.SQL("ALTER DATABASE {} SET work_mem TO '7MB'").format(name))
    admin_execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
    admin_execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO PUBLIC").format(name))
    oid, facts = database_facts(source)
    assert facts["settings"] and facts["grants"]
    late_tenant()

    output = run("restore", str(dump), "--force")

    assert f"Restored {dump.name} into {source}" in output
    new_oid, new_facts = database_facts(source)
    assert new_oid != oid  # another database took the name
    assert new_facts == facts
    assert checksums(source) == read_manifest(manifest_path)["tables"]
    assert not Tenant.objects.filter(slug="late").exists()  # the app's connection reaches the restored database
    assert databases_like(f"{source}_re%") == []  # neither the copy's old name nor the replaced database is left


def test_one_restore_or_check_of_a_database_at_a_time(source, tmp_path):
    dump, _manifest_path = take_backup(tmp_path)
    before = checksums(source)
    with backups.Server.of().on("postgres").connect() as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [backups.RESTORE_LOCK, source])

        error, _output = fails("restore", str(dump), "--force")
        verify_error, _output = fails("backup", "--verify", "--dest", str(tmp_path))

    assert error == f"Another restore or check of {source} is running: try again when it has finished."
    assert verify_error == error
    assert checksums(source) == before


@pytest.mark.parametrize("kind", ["restore", "replaced", "verify"])
def test_scratch_databases_of_a_killed_run_are_dropped_by_the_next_and_named(source, tmp_path, kind):
    dump, _manifest_path = take_backup(tmp_path)
    leftover = backups.scratch_name(source, kind, "20200101000000")
    unrelated = f"{source}_restored_by_hand"
    create_database(leftover)
    create_database(unrelated)
    try:
        output = run("backup", "--verify", "--dest", str(tmp_path))
        remaining = databases_like(f"{source}_%")
        again = run("restore", str(dump), "--force")
    finally:
        drop_database(unrelated)
        drop_database(leftover)

    assert f"Dropped {leftover}, left behind by an interrupted restore or check." in output
    assert remaining == [unrelated]  # a database that only looks alike is not a leftover
    assert "Dropped" not in again  # nothing was left the second time


def test_backups_are_private_files_in_a_private_folder(source, tmp_path):
    folder = tmp_path / "backups"
    dump, manifest_path = take_backup(folder)

    assert folder.stat().st_mode & 0o777 == 0o700
    assert dump.stat().st_mode & 0o777 == 0o600  # it holds password hashes
    assert manifest_path.stat().st_mode & 0o777 == 0o600


def test_a_shared_directory_such_as_the_wal_archive_keeps_its_modes(tmp_path):
    """The database server's account writes WAL into the point-in-time archive: it must stay reachable."""
    archive = tmp_path / "pitr"
    archive.mkdir(mode=0o755)
    archive.chmod(0o755)

    LocalDirectory(archive).save_text("base/20261206/vulhub.json", "{}")

    assert archive.stat().st_mode & 0o777 == 0o755
    assert (archive / "base/20261206/vulhub.json").stat().st_mode & 0o077 != 0  # not made private


@pytest.mark.parametrize("method", [backups.HASH_RECORD, backups.MD5_TEXT])
def test_a_column_named_like_the_row_alias_does_not_change_what_is_checksummed(source, method):
    with backups.Server.of().connect() as conn:
        conn.execute("CREATE TABLE odd_columns (t integer, u text)")
        conn.execute("INSERT INTO odd_columns VALUES (1, 'one'), (2, 'two')")
        whole_row = {
            backups.HASH_RECORD: "SELECT sum(hash_record_extended(ROW(t, u), 0))::text FROM odd_columns",
            backups.MD5_TEXT: "SELECT sum(('x' || left(md5(ROW(t, u)::text), 16))::bit(64)::bigint::numeric)::text "
            "FROM odd_columns",
        }[method]
        expected = conn.execute(whole_row).fetchone()[0]
        with conn.cursor() as cursor:
            found = backups.table_checksum(cursor, "odd_columns", method)

    assert found == {"rows": 2, "checksum": expected}  # the whole row, not the column t


# --- an S3 bucket: a real S3 API, served by moto on this machine ------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint, settings):
    """BACKUP_STORAGE set to django-storages' S3 backend on a new bucket; a boto3 client on it."""
    bucket = f"vulhub-backups-{uuid.uuid4().hex[:8]}"
    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, **credentials)
    client.create_bucket(Bucket=bucket)
    settings.BACKUP_STORAGE = "storages.backends.s3.S3Storage"
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": settings.BACKUP_STORAGE,
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_endpoint,
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
            },
        },
    }
    return client, bucket


def bucket_keys(client, bucket):
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_backups_go_to_an_s3_bucket_and_come_back_from_it(source, other_database, s3_bucket):
    client, bucket = s3_bucket

    output = run("backup")

    (dump, manifest) = [key for key in bucket_keys(client, bucket) if key.endswith((".dump", ".manifest.json"))]
    assert f"written to storage 'backups' (S3Storage {bucket})" in output
    assert manifest == dump.replace(".dump", ".manifest.json")
    assert "verified" in run("backup", "--verify")  # downloaded, restored into a scratch database, checked
    run("restore", dump, "--from-storage", "--database", other_database, "--create")
    assert checksums(other_database) == checksums(source)
    old = f"vulhub-{source}-{datetime.now(UTC) - timedelta(days=10):%Y%m%dT%H%M%SZ}"
    for suffix in (".dump", ".manifest.json"):
        client.put_object(Bucket=bucket, Key=old + suffix, Body=b"{}")
    assert f"deleted {old}.dump" in run("backup", "--prune-only", "--keep-days", "1")
    assert bucket_keys(client, bucket) == [dump, manifest]


def test_an_unreachable_bucket_is_one_line(source, s3_bucket, settings):
    settings.STORAGES["backups"]["OPTIONS"]["bucket_name"] = "no-such-bucket"

    error, _output = fails("backup")

    assert error.startswith("storage 'backups' (S3Storage no-such-bucket): ")  # named, in one line
    assert "NoSuchBucket" in error
