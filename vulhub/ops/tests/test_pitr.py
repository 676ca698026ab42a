"""Point-in-time recovery on pgBackRest, drilled on throwaway PostgreSQL 15 clusters.

pgBackRest (Debian's 2.45) supports PostgreSQL up to 15, so every drill runs on a cluster
of PostgreSQL 15 binaries, whatever the test server is: the module migrates and seeds
one VulHub database once, and each test starts its own copy of it with a repository of
its own. The operator's commands run as they would from a shell or cron: `manage.py
pitr …` in a process of its own, pointed at the copy by DATABASE_URL. The drill takes a
backup, writes submissions, notes T1, writes more, notes T2, deletes some, and restores:
to T1 from the machine's repository and to T2 from the second repository alone (a
folder, or an S3 bucket over TLS), the first deleted as the loss of the machine would.
Each restored database holds exactly the rows committed by its target: nothing later,
nothing lost.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig
from django.core.management import call_command
from django.core.management.base import CommandError

from vulhub.ops import pitr
from vulhub.ops.pg_cluster import Cluster, find_bin_dir, hand_over
from vulhub.tests.servers import ROOT, moto_s3

DATABASE = "vulhub_drill"
MAJOR = 15  # the newest PostgreSQL Debian's pgBackRest 2.45 supports
ARCHIVING = {"wal_level": "replica", "archive_mode": "on", "archive_command": ""}


def new_folder(prefix: str) -> Path:
    """A temporary folder the cluster's account may write in."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    hand_over(folder)
    return folder


def manage(cluster: Cluster, *args: str, env: dict | None = None, check: bool = True) -> str:
    """`manage.py *args` against the drill database on `cluster`, as its superuser; what it printed."""
    url = cluster.url(DATABASE)
    environment = {**os.environ, "DATABASE_URL": url, "MIGRATIONS_DATABASE_URL": url, **(env or {})}
    environment.pop("BACKUP_DATABASE_URL", None)
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert not check or done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def template():
    """A stopped PostgreSQL 15 data directory holding a migrated, seeded VulHub database; its ids."""
    base = new_folder("vulhub-test-pitr-template-")
    cluster = Cluster(base / "data", bin_dir=find_bin_dir(MAJOR)).initdb(ARCHIVING)
    try:
        cluster.start()
        with cluster.connect() as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        manage(cluster, "migrate", "--no-input")
        manage(cluster, "db_roles")
        manage(cluster, "seed", "--no-progress")
        with cluster.connect(DATABASE) as conn:
            ids = conn.execute(
                "SELECT u.tenant_id, u.id, p.id FROM users u JOIN projects p ON p.tenant_id = u.tenant_id"
                " WHERE u.role = 'STUDENT' ORDER BY u.id LIMIT 1"
            ).fetchone()
        cluster.stop()
        yield cluster.datadir, ids
    finally:
        cluster.remove()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Drill:
    cluster: Cluster
    home: Path  # the repositories and pgBackRest's configuration
    ids: tuple[int, int, int]
    options: dict = field(default_factory=dict)  # PITR_PGBACKREST_OPTIONS

    @property
    def repo1(self) -> Path:
        return self.home / "repo1"

    @property
    def env(self) -> dict[str, str]:
        return {
            "PITR_DIR": str(self.repo1),
            "PITR_CONFIG": str(self.home / "etc" / "pgbackrest.conf"),
            "PITR_PGBACKREST_OPTIONS": json.dumps(self.options),
        }

    def command(self, *args: str, check: bool = True) -> str:
        return manage(self.cluster, "pitr", *args, env=self.env, check=check)

    def config(self) -> pitr.Config:
        return pitr.Config(self.home / "etc" / "pgbackrest.conf", "vulhub")

    def write(self, count: int, label: str) -> list[int]:
        """`count` write-ups, each committed on its own; their ids."""
        tenant, student, project = self.ids
        with self.cluster.connect(DATABASE) as conn:
            return [
                conn.execute(
                    "INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, points_awarded, "
                    "answer, link, feedback, submitted_at) "
                    "VALUES (%s, %s, %s, 'WRITEUP', 'PENDING', 0, %s, '', '', now()) RETURNING id",
                    [tenant, student, project, f"{label} {number}"],
                ).fetchone()[0]
                for number in range(count)
            ]

    def now(self):
        with self.cluster.connect(DATABASE) as conn:
            return conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def submission_ids(self, cluster: Cluster | None = None) -> set[int]:
        with (cluster or self.cluster).connect(DATABASE) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM submissions").fetchall()}

    def archive_current_wal(self) -> None:
        """Close the current WAL file and wait until the archiver has it."""
        with self.cluster.connect() as conn:
            wanted = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]
                if done and done >= wanted:
                    return
                time.sleep(0.2)
        raise AssertionError(f"{wanted} was not archived within 60 s")


def start_drill(template, options_for=None) -> Drill:
    datadir, ids = template
    home = new_folder("vulhub-test-pitr-")
    done = subprocess.run(["cp", "-a", str(datadir), str(home / "data")], capture_output=True, text=True)  # noqa: S607
    assert done.returncode == 0, done.stderr
    cluster = Cluster(home / "data", bin_dir=find_bin_dir(MAJOR))
    cluster.start()
    drill = Drill(cluster, home, ids)
    if options_for:
        drill.options = options_for(drill)
    return drill


def end_drill(drill: Drill) -> None:
    drill.cluster.remove()
    shutil.rmtree(drill.home, ignore_errors=True)


@pytest.fixture
def drill(template):
    """A running copy of the template, set up for pgBackRest with a second repository in a folder."""
    started = start_drill(template, lambda d: {"repo2-path": str(d.home / "repo2")})
    try:
        assert "Archiving checked" in started.command("setup")
        yield started
    finally:
        end_drill(started)


@pytest.fixture
def folders():
    made = []

    def folder(prefix: str) -> Path:
        made.append(new_folder(prefix))
        return made[-1]

    yield folder
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


class started:  # noqa: N801  (used as a context manager, like open)
    """A restored data directory, started as an operator would, until the block ends."""

    def __init__(self, datadir: Path):
        self.cluster = Cluster(datadir, bin_dir=find_bin_dir(int((datadir / "PG_VERSION").read_text())))

    def __enter__(self) -> Cluster:
        self.cluster.start()
        return self.cluster

    def __exit__(self, *exc):
        self.cluster.release()


def test_the_drill_restores_exactly_what_was_committed_by_the_target_time(drill, folders):
    before = drill.submission_ids()
    output = drill.command("backup", "--no-progress")
    assert "(full) in repository 1" in output and "(full) in repository 2" in output
    time.sleep(1.1)  # a backup's end is known to the second: T1 lies clearly after it
    first = drill.write(5, "before T1")
    t1 = drill.now()
    time.sleep(0.05)
    second = drill.write(5, "after T1")
    t2 = drill.now()
    time.sleep(0.05)
    with drill.cluster.connect(DATABASE) as conn:
        conn.execute("DELETE FROM submissions WHERE id = ANY(%s)", [first[:2] + second[:2]])
    drill.write(1, "the newest")  # a commit after the deletions, so T2 lies inside the window
    drill.archive_current_wal()

    window = pitr.recovery_window(drill.config())
    assert window.start < t1 < t2 < window.end
    listed = drill.command("window")
    assert f"Recovery window: {window.describe()}" in listed and "repository 2" in listed

    # To T1, from the machine's repository.
    into = folders("vulhub-test-restored-") / "t1"
    output = drill.command("restore", "--to", t1.isoformat(), "--into", str(into), "--repo", "1", "--no-progress")
    assert f"Restored to {pitr.show_time(t1)} into {into}" in output and "audit chain(s) intact" in output
    with started(into) as at_t1, at_t1.connect(DATABASE) as conn:
        assert drill.submission_ids(at_t1) == before | set(first)  # nothing later, nothing lost
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        assert conn.execute("SELECT current_setting('archive_mode')").fetchone()[0] == "off"
    record = json.loads((into / pitr.RESTORE_RECORD).read_text())
    assert record["tables"]["submissions"]["rows"] == len(before) + 5
    assert "match its restore record" in drill.command("verify", str(into), "--no-progress")

    # To T2, from the second repository alone: the machine's is gone.
    shutil.rmtree(drill.repo1)
    into = folders("vulhub-test-restored-") / "t2"
    output = drill.command("restore", "--to", t2.isoformat(), "--into", str(into), "--repo", "2")
    assert "repository 2" in output
    with started(into) as at_t2:
        assert drill.submission_ids(at_t2) == before | set(first) | set(second)  # not yet deleted at T2


def test_latest_restores_everything_archived_and_a_changed_restore_fails_verification(drill, folders):
    drill.command("backup", "--repo", "1")
    kept = drill.write(3, "kept")
    drill.archive_current_wal()
    into = folders("vulhub-test-restored-") / "latest"
    drill.command("restore", "--to", "latest", "--into", str(into))
    with started(into) as restored:
        assert set(kept) <= drill.submission_ids(restored)
    assert "match its restore record" in drill.command("verify", str(into))  # unchanged: it checks out
    with started(into) as changed, changed.connect(DATABASE) as conn:
        conn.execute("UPDATE submissions SET answer = 'changed afterwards' WHERE answer = 'kept 1'")

    output = drill.command("verify", str(into), check=False)
    assert "differs from its restore record" in output and "MISMATCH submissions" in output


def test_retention_keeps_the_archive_bounded_however_long_it_runs(drill):
    """Four full backups with writes between them, retention two: the oldest two and their WAL go."""
    backups_taken = []
    for round_ in range(4):
        drill.write(20, f"round {round_}")
        with drill.cluster.connect(DATABASE) as conn:
            conn.execute("UPDATE submissions SET feedback = repeat('x', 2000) WHERE answer LIKE 'round%%'")
        drill.archive_current_wal()
        drill.command("backup", "--repo", "1")
        backups_taken.append(pitr.info(drill.config(), 1).backups[-1])
        if round_ == 0:
            oldest_wal = pitr.info(drill.config(), 1).wal[1][0]

    kept = pitr.info(drill.config(), 1)
    assert [backup.label for backup in kept.backups] == [backup.label for backup in backups_taken[-2:]]
    assert not (drill.repo1 / "backup" / "vulhub" / backups_taken[0].label).exists()
    low, _high = kept.wal[1]
    assert low > oldest_wal and low <= kept.backups[0].wal_start  # WAL older than the oldest kept backup is gone
    archived = [p.name[:24] for p in (drill.repo1 / "archive").rglob("*.zst") if len(p.name) > 24]
    assert archived and min(archived) >= kept.backups[0].wal_start[:24]


def test_a_target_outside_the_window_is_refused_with_the_window(drill, folders):
    drill.command("backup", "--repo", "1")
    time.sleep(1.1)
    drill.write(2, "inside")
    drill.archive_current_wal()
    window = pitr.recovery_window(drill.config())
    into = folders("vulhub-test-restored-") / "never"

    for outside in (window.start - timedelta(hours=1), window.end + timedelta(hours=1)):
        output = drill.command("restore", "--to", outside.isoformat(), "--into", str(into), check=False)
        assert "outside the recovery window" in output and pitr.show_time(window.start) in output
        assert pitr.show_time(window.end) in output and "Traceback" not in output
    assert not into.exists()  # nothing was written


def test_a_restore_never_goes_over_a_data_directory(drill, folders):
    drill.command("backup", "--repo", "1")
    output = drill.command("restore", "--to", "latest", "--into", str(drill.cluster.datadir), check=False)
    assert "is the running server's data directory" in output
    occupied = folders("vulhub-test-occupied-")
    (occupied / "notes.txt").write_text("mine")
    output = drill.command("restore", "--to", "latest", "--into", str(occupied), check=False)
    assert "not empty" in output and (occupied / "notes.txt").read_text() == "mine"
    assert drill.submission_ids()  # the live server is untouched and running


def socket_dirs() -> set[str]:
    return {entry.name for entry in Path(tempfile.gettempdir()).glob("vulhub-pg-*")}


def test_a_killed_restore_stops_its_server_and_leaves_its_directory_as_it_was(drill, folders):
    drill.command("backup", "--repo", "1")
    drill.write(2, "kept")
    drill.archive_current_wal()
    into = folders("vulhub-test-restored-") / "killed"
    into.mkdir()
    hand_over(into)
    before = socket_dirs()
    url = drill.cluster.url(DATABASE)
    env = {**os.environ, "DATABASE_URL": url, "MIGRATIONS_DATABASE_URL": url, **drill.env}
    restore = subprocess.Popen(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), "pitr", "restore", "--to", "latest", "--into", str(into)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (into / "postmaster.pid").exists():  # the restored server is starting or recovering
        assert restore.poll() is None and time.monotonic() < deadline, restore.communicate()
        time.sleep(0.05)
    restore.send_signal(signal.SIGTERM)
    out, err = restore.communicate(timeout=120)

    assert restore.returncode == 1 and "stopped by SIGTERM" in err, out + err
    assert into.is_dir() and not any(into.iterdir())  # empty, as it was
    assert socket_dirs() <= before  # no server left, nor its socket folder
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout  # noqa: S607
    assert str(into) not in ps


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the test's own certificate
def test_a_second_repository_in_an_s3_bucket_over_tls_restores_alone(template, folders):
    """pgBackRest talks to S3 over TLS only: moto serves it with a throwaway certificate."""
    with moto_s3(tls=True) as endpoint:
        bucket = f"vulhub-pitr-{uuid.uuid4().hex[:8]}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
            region_name="us-east-1", verify=False, config=BotoConfig(s3={"addressing_style": "path"}),
        )  # fmt: skip
        client.create_bucket(Bucket=bucket)
        port = endpoint.rsplit(":", 1)[1]
        s3 = {
            "repo2-type": "s3", "repo2-path": "/pitr", "repo2-s3-bucket": bucket, "repo2-s3-endpoint": "127.0.0.1",
            "repo2-storage-port": port, "repo2-s3-region": "us-east-1", "repo2-s3-key": "test",
            "repo2-s3-key-secret": "test", "repo2-s3-uri-style": "path",
            "repo2-storage-verify-tls": "n",  # the test's own certificate; never in production
        }  # fmt: skip
        drill = start_drill(template, lambda d: s3)
        try:
            drill.command("setup")
            drill.command("backup", "--repo", "2")
            time.sleep(1.1)
            kept = drill.write(3, "kept")
            t1 = drill.now()
            time.sleep(0.05)
            drill.write(3, "later")
            drill.archive_current_wal()
            keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
            assert any(key.startswith("pitr/backup/vulhub/") for key in keys)
            assert any(key.startswith("pitr/archive/vulhub/") and key.endswith(".zst") for key in keys)

            shutil.rmtree(drill.repo1)  # the machine is lost: only the bucket is left
            into = folders("vulhub-test-restored-") / "from-s3"
            drill.command("restore", "--to", t1.isoformat(), "--into", str(into), "--repo", "2")
            with started(into) as restored:
                found = drill.submission_ids(restored)
                assert set(kept) <= found and not any(i > max(kept) for i in found)
        finally:
            end_drill(drill)


def test_a_server_pgbackrest_does_not_support_gets_one_line(folders):
    """The embedded default runs PostgreSQL 16, which Debian's pgBackRest 2.45 refuses."""
    newer = Cluster(folders("vulhub-test-pg16-") / "data", bin_dir=find_bin_dir(16)).initdb()
    newer.start()
    try:
        with newer.connect() as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        for action in ("setup", "backup", "window"):
            output = manage(newer, "pitr", action, check=False)
            assert "needs a PostgreSQL server pgBackRest 2.45 supports (up to 15); this one runs 16" in output
            assert "Traceback" not in output and len(output.strip().splitlines()) == 1
    finally:
        newer.remove()


def test_pgbackrest_errors_become_one_line():
    failed = subprocess.CompletedProcess(
        [], 29, "", "P00  ERROR: [029]: unable to find backup set\n            HINT: is the time right?\n"
    )
    assert "unable to find backup set HINT: is the time right?" in pitr.error_of(failed)
    assert pitr.newest_supported((2, 45)) == 15 and pitr.newest_supported((2, 53)) == 17


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pitr", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "/nonexistent/datadir"], "was not restored by"),
    ],
)
def test_the_command_answers_bad_input_with_one_clear_line(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_a_missing_configuration_bad_options_and_a_bad_time_are_one_line(drill, folders):
    output = drill.command("restore", "--to", "yesterday at noon", "--into", "/nonexistent/restored", check=False)
    assert "'yesterday at noon' is not a time: give ISO 8601" in output and "Traceback" not in output
    output = manage(drill.cluster, "pitr", "window", env={**drill.env, "PITR_CONFIG": "/nonexistent/pgbackrest.conf"},
                    check=False)  # fmt: skip
    assert "No pgBackRest configuration at /nonexistent/pgbackrest.conf: run `manage.py pitr setup`" in output
    output = manage(drill.cluster, "pitr", "setup", env={**drill.env, "PITR_PGBACKREST_OPTIONS": "{repo2"}, check=False)
    assert "PITR_PGBACKREST_OPTIONS is not valid JSON" in output and "Traceback" not in output
    with drill.cluster.connect() as admin:
        admin.execute("CREATE ROLE plain LOGIN")
    owner = drill.cluster.url(DATABASE, user="plain")
    output = manage(drill.cluster, "pitr", "backup", env={**drill.env, "MIGRATIONS_DATABASE_URL": owner}, check=False)
    assert "needs the server's superuser" in output and "Traceback" not in output


def test_every_action_has_its_help():
    for action in ("setup", "check", "backup", "window", "restore", "verify"):
        with pytest.raises(SystemExit) as done:
            call_command("pitr", action, "--help", stdout=io.StringIO())
        assert done.value.code == 0


def test_the_configuration_is_pgbackrests_own_and_the_server_archives_through_it(drill):
    config = drill.config()
    assert config.option("pg1-path") == str(drill.cluster.datadir)
    assert config.option("compress-type") == "zst" and config.option("repo1-retention-full") == "2"
    assert config.repos() == [1, 2] and config.option("repo2-retention-full") == "2"
    assert oct(config.path.stat().st_mode & 0o777) == "0o640"
    with drill.cluster.connect() as conn:
        command = conn.execute("SELECT current_setting('archive_command')").fetchone()[0]
    assert command == pitr.archive_command(config)
    with drill.cluster.connect() as conn:
        assert conn.execute("SELECT current_setting('archive_timeout')").fetchone()[0] == "1min"  # was 0
    assert "Archiving works" in drill.command("check")


def test_dbstats_checks_the_age_of_pgbackrests_newest_backup_in_every_repository(drill):
    env = {**drill.env, "DBSTATS_MAX_BACKUP_AGE_HOURS": "26"}
    report = json.JSONDecoder().raw_decode  # what --check prints after its JSON is not read
    before, _ = report(manage(drill.cluster, "dbstats", "--check", "--json", env=env, check=False))
    assert "No pgBackRest backup in repository 1 of stanza vulhub." in before["check"]["problems"]
    assert "No pgBackRest backup in repository 2 of stanza vulhub." in before["check"]["problems"]

    drill.command("backup", "--repo", "1")
    after, _ = report(manage(drill.cluster, "dbstats", "--check", "--json", env=env, check=False))
    assert not any("repository 1" in line for line in after["check"]["problems"])
    assert "No pgBackRest backup in repository 2 of stanza vulhub." in after["check"]["problems"]
    newest = after["pitr_backups"]["repos"]["1"]
    assert newest["newest_kind"] == "full" and newest["newest_age_hours"] < 0.1
    text = manage(drill.cluster, "dbstats", env=env)
    assert f"repository 1: 1; the newest, {newest['newest']} (full)" in text and "repository 2: none" in text
