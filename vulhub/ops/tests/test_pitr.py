"""The point-in-time recovery drill, on a throwaway cluster of the test's own with archiving on.

The cluster (`initdb`, `pg_ctl`) holds a copy of the test database and archives its WAL
through `docker/postgres/archive_wal.sh`, as docker-compose's PostgreSQL does. The drill
takes a base backup, writes submissions, notes T1, writes more, notes T2, deletes some,
and then restores: to T1 from the local archive, and to T2 from the off-site copy alone
(the local archive deleted first, as the loss of the machine would). Each restored
database holds exactly the rows committed by its target time: nothing later, nothing lost.
"""

import io
import json
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from challenges.factories import ProjectFactory
from tenants.factories import StudentFactory, TenantFactory
from vulhub.ops import backups, pitr
from vulhub.ops.destinations import LocalDirectory
from vulhub.ops.pg_cluster import Cluster, hand_over
from vulhub.tests.servers import ROOT, manage_on, own_postgres

ARCHIVER = ROOT / "docker" / "postgres" / "archive_wal.sh"


def new_folder(prefix: str) -> Path:
    """A temporary folder the cluster's account may write in."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    hand_over(folder)
    return folder


@dataclass
class Drill:
    cluster: Cluster
    database: str
    archive: LocalDirectory
    tenant: int
    student: int
    project: int

    def pitr(self, *args: str, check: bool = True) -> str:
        """`manage.py pitr *args` against the drill's cluster, in a process of its own; its output."""
        return manage_on(self.cluster, self.database, "pitr", *args, check=check)

    @property
    def local(self) -> list[str]:
        return ["--archive", str(self.archive.path)]

    def server(self) -> backups.Server:
        params = {"host": str(self.cluster.socket_dir), "port": str(self.cluster.port), "user": "postgres"}
        return backups.Server({**params, "dbname": self.database}, None, None)

    def write(self, count: int, label: str) -> list[int]:
        """`count` write-ups, each committed on its own; their ids."""
        ids = []
        with self.cluster.connect(self.database) as conn:
            for number in range(count):
                ids.append(
                    conn.execute(
                        "INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, points_awarded, "
                        "answer, link, feedback, submitted_at) "
                        "VALUES (%s, %s, %s, 'WRITEUP', 'PENDING', 0, %s, '', '', now()) RETURNING id",
                        [self.tenant, self.student, self.project, f"{label} {number}"],
                    ).fetchone()[0]
                )
        return ids

    def now(self):
        with self.cluster.connect(self.database) as conn:
            return conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def submission_ids(self, cluster: Cluster | None = None) -> set[int]:
        with (cluster or self.cluster).connect(self.database) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM submissions").fetchall()}

    def archive_current_wal(self) -> None:
        """Close the current WAL file and wait until the archiver has it."""
        with self.cluster.connect() as conn:
            wanted = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]
                if done and done >= wanted:
                    return
                time.sleep(0.2)
        raise AssertionError(f"{wanted} was not archived within 30 s")


@pytest.fixture
def drill(transactional_db):
    tenant = TenantFactory(slug="alpha", domain="alpha.localhost")
    project = ProjectFactory(tenant=tenant, slug="report", name="Report")
    student = StudentFactory(tenant=tenant)
    archive = new_folder("vulhub-test-pitr-")
    wal = archive / "wal"
    wal.mkdir()
    hand_over(wal)
    archiving = {"wal_level": "replica", "archive_mode": "on", "archive_command": f"{ARCHIVER} %p %f {wal}"}
    try:
        with own_postgres(archiving) as (cluster, name):
            yield Drill(cluster, name, pitr.local_archive(archive), tenant.pk, student.pk, project.pk)
    finally:
        shutil.rmtree(archive, ignore_errors=True)


@pytest.fixture
def folders():
    made = []

    def folder(prefix: str) -> Path:
        made.append(new_folder(prefix))
        return made[-1]

    yield folder
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def started(datadir: Path):
    """A restored data directory, started as an operator would, until the block ends."""
    cluster = Cluster(datadir, bin_dir=pitr.find_bin_dir(int((datadir / "PG_VERSION").read_text())))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_the_drill_restores_exactly_what_was_committed_by_the_target_time(drill, folders):
    """The operator's commands, each in a process of its own, as cron or a shell runs them."""
    before = drill.submission_ids()
    assert "Base backup" in drill.pitr("backup", *drill.local)
    first = drill.write(5, "before T1")
    t1 = drill.now()
    time.sleep(0.05)
    second = drill.write(5, "after T1")
    t2 = drill.now()
    time.sleep(0.05)
    with drill.cluster.connect(drill.database) as conn:
        conn.execute("DELETE FROM submissions WHERE id = ANY(%s)", [first[:2] + second[:2]])
    drill.write(1, "the newest")  # a commit after the deletions, so T2 lies inside the window
    with drill.cluster.connect(drill.database) as conn:
        conn.execute("ANALYZE submissions")  # the newest commit carries more than its time in the WAL
    drill.archive_current_wal()

    window = pitr.recovery_window(drill.archive)
    (backup,) = window.usable
    assert window.start == backup.finished_at and window.end > t2
    assert f"Recovery window: {window.describe()}" in drill.pitr("window", *drill.local)

    # To T1, from the local archive.
    into = folders("vulhub-test-restored-") / "t1"
    output = drill.pitr("restore", "--to", t1.isoformat(), "--into", str(into), *drill.local, "--no-progress")
    assert f"Restored {drill.database} to {pitr.show_time(t1)} into {into}" in output
    assert "audit chain(s) intact" in output
    with started(into) as at_t1, at_t1.connect(drill.database) as conn:
        assert drill.submission_ids(at_t1) == before | set(first)  # nothing later, nothing lost
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        assert conn.execute("SELECT current_setting('archive_mode')").fetchone()[0] == "off"
    record = json.loads((into / pitr.RESTORE_RECORD).read_text())
    assert record["tables"]["submissions"]["rows"] == len(before) + 5
    assert "match its restore record" in drill.pitr("verify", str(into), "--no-progress")

    # To T2, from the off-site copy alone: the machine's archive is gone.
    offsite = folders("vulhub-test-offsite-")
    assert "Shipped 1 base backup(s)" in drill.pitr("ship", *drill.local, "--to", str(offsite))
    assert "(0 B)" in drill.pitr("ship", *drill.local, "--to", str(offsite))  # a second run copies nothing
    shutil.rmtree(drill.archive.path)
    into = folders("vulhub-test-restored-") / "t2"
    output = drill.pitr("restore", "--to", t2.isoformat(), "--into", str(into), "--offsite", str(offsite))
    assert int(re.search(r"the (\d+) WAL file\(s\) archived since", output).group(1)) >= 2
    with started(into) as at_t2:
        assert drill.submission_ids(at_t2) == before | set(first) | set(second)  # not yet deleted at T2


def test_the_newest_commit_and_latest_restore_everything_archived(drill, folders):
    drill.pitr("backup", *drill.local)
    kept = drill.write(3, "kept")
    drill.archive_current_wal()
    newest = pitr.recovery_window(drill.archive).end  # no commit after it to stop at: all is replayed

    for target in (newest.isoformat(), "latest"):
        into = folders("vulhub-test-restored-") / "data"
        drill.pitr("restore", "--to", target, "--into", str(into), *drill.local)
        with started(into) as restored:
            assert set(kept) <= drill.submission_ids(restored), target


def test_a_changed_restored_database_fails_its_verification(drill, folders):
    drill.pitr("backup", *drill.local)
    drill.write(3, "kept")
    drill.archive_current_wal()
    into = folders("vulhub-test-restored-") / "latest"
    drill.pitr("restore", "--to", "latest", "--into", str(into), *drill.local)
    assert "match its restore record" in drill.pitr("verify", str(into))  # unchanged: it checks out
    with started(into) as changed, changed.connect(drill.database) as conn:
        conn.execute("UPDATE submissions SET answer = 'changed afterwards' WHERE answer = 'kept 1'")

    output = drill.pitr("verify", str(into), check=False)
    assert "differs from its restore record" in output and "MISMATCH submissions" in output


def test_a_target_outside_the_window_is_refused_with_the_window(drill, folders):
    pitr.take_base_backup(drill.server(), drill.archive)
    drill.write(2, "inside")
    drill.archive_current_wal()
    window = pitr.recovery_window(drill.archive)
    into = folders("vulhub-test-restored-") / "never"

    for outside in (window.start - timedelta(hours=1), window.end + timedelta(hours=1)):
        with pytest.raises(pitr.PitrError, match="outside the recovery window") as refused:
            pitr.restore_to(drill.archive, outside, into)
        assert pitr.show_time(window.start) in str(refused.value) and pitr.show_time(window.end) in str(refused.value)
    assert not into.exists()  # nothing was written


def test_a_restore_never_goes_over_a_data_directory(drill, folders):
    pitr.take_base_backup(drill.server(), drill.archive)
    with pytest.raises(pitr.PitrError, match="running server's data directory"):
        pitr.restore_to(drill.archive, None, drill.cluster.datadir, live_datadir=str(drill.cluster.datadir))
    with pytest.raises(pitr.PitrError, match="holds a PostgreSQL data directory"):
        pitr.restore_to(drill.archive, None, drill.cluster.datadir)
    occupied = folders("vulhub-test-occupied-")
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(pitr.PitrError, match="not empty"):
        pitr.restore_to(drill.archive, None, occupied)
    assert (occupied / "notes.txt").read_text() == "mine"


def test_a_base_backup_of_a_server_that_does_not_archive_is_refused(folders):
    plain = Cluster(folders("vulhub-test-plain-") / "data").initdb()
    plain.start()
    try:
        server = backups.Server({"host": str(plain.socket_dir), "port": str(plain.port), "user": "postgres",
                                 "dbname": "postgres"}, None, None)  # fmt: skip
        with pytest.raises(pitr.PitrError, match="does not archive its WAL"):
            pitr.take_base_backup(server, pitr.local_archive(folders("vulhub-test-archive-")))
    finally:
        plain.remove()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pitr", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["restore", "--to", "yesterday at noon", "--into", "/nonexistent/restored"], "is not a time"),
        (["window", "--archive", "/nonexistent/archive"], "No recovery window"),
        (
            ["restore", "--to", "latest", "--into", "/nonexistent/restored", "--archive", "/nonexistent/archive"],
            "Nothing to recover",
        ),
        (["ship", "--archive", "/nonexistent/archive"], "No off-site copy is configured"),
        (["verify", "/nonexistent/datadir"], "was not restored by"),
    ],
)
def test_the_command_answers_bad_input_with_one_clear_line(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_every_action_has_its_help():
    for action in ("backup", "window", "restore", "verify", "ship"):
        with pytest.raises(SystemExit) as done:
            call_command("pitr", action, "--help", stdout=io.StringIO())
        assert done.value.code == 0
