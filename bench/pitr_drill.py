"""The point-in-time recovery drill on pgBackRest at growing database sizes.

    .venv/bin/python bench/pitr_drill.py --submissions 20000 200000 1000000

For each size, on a throwaway PostgreSQL 15 cluster of its own (pgBackRest 2.45 supports
up to 15) with WAL archiving on (archive_timeout from `--archive-timeout`): migrate, seed
that many submissions, and `manage.py pitr setup` with a repository and configuration in
the drill's temporary folder. Then it times:

- `manage.py pitr backup` (a full pgBackRest backup: zstd, two processes) against
  `cp -a` of the running cluster's data directory into a scratch folder, as the account
  that owns it. The copy is a baseline for reading the files, not a consistent copy of
  the database (a running server's files copied as they are). It reads what the backup
  reads: every entry of the data directory but pg_wal, whose WAL pgBackRest takes from
  the archive rather than from there.
- `manage.py pitr restore --to T1 --into DIR` (pgBackRest's restore, the replay of the
  archived WAL to T1, and VulHub's verification of every table and audit chain) against
  `cp -a` of that copy back into a new folder: writing the files back.

The repository's size is taken after the backup: the backup (zstd) and the WAL archived
since `pitr setup`, which includes the seed's. Archiving is on with an empty
archive_command until then, so the server keeps that WAL for the archive, as a server
does when point-in-time recovery is set up on an existing database; setup's check waits
until it is archived, before the backup is timed.

T1 is the commit of a marker submission; another is committed after it, the WAL file
switched (`pg_switch_wal()`) and archived before the restore. The restored cluster must
hold the first marker and not the second (restore_exact). It also reports the database
and repository sizes, and how long a commit on an idle server waits before its WAL is in
the archive (archive_lag_s: what a lost machine would lose, the recovery point). Results
go to var/pitr-drill.json; the ratios to the copies are reported, no goal is asserted.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vulhub.ops.pg_cluster import Cluster, find_bin_dir, hand_over, run_as  # noqa: E402

MAJOR = 15  # the newest PostgreSQL Debian's pgBackRest 2.45 supports
DATABASE = "vulhub"
# (heading, key) of the printed table
COLUMNS = (
    ("submissions", "submissions"),
    ("db MB", "database_mb"),
    ("repo MB", "repository_mb"),
    ("of it bkp MB", "repository_backup_mb"),
    ("backup s", "backup_s"),
    ("cp s", "copy_s"),
    ("backup/cp", "backup_ratio"),
    ("restore s", "restore_s"),
    ("cp back s", "copy_back_s"),
    ("restore/cp", "restore_ratio"),
    ("exact", "restore_exact"),
    ("lag s", "archive_lag_s"),
)


class Drill:
    """One size's cluster, repository and scratch folders, all under one temporary folder."""

    def __init__(self, base: Path, cluster: Cluster):
        self.base = base
        self.cluster = cluster

    @property
    def env(self) -> dict[str, str]:
        url = self.cluster.url(DATABASE)
        return {
            "DATABASE_URL": url,
            "MIGRATIONS_DATABASE_URL": url,
            "PITR_DIR": str(self.base / "repo1"),
            "PITR_CONFIG": str(self.base / "etc" / "pgbackrest.conf"),
            "PITR_PGBACKREST_OPTIONS": "{}",  # repository 1 only (the default names a second one)
        }

    def manage(self, *args: str) -> tuple[float, str]:
        """`manage.py *args` against the drill database: its seconds and what it printed."""
        env = {**os.environ, **self.env}
        env.pop("BACKUP_DATABASE_URL", None)
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603
            [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return time.monotonic() - started, done.stdout

    def copy(self, sources: list[Path], into: Path) -> float:
        """Seconds of `cp -a sources into/`, as the cluster's account (files that vanish meanwhile are skipped)."""
        into.mkdir()
        hand_over(into)
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603
            ["cp", "-a", *map(str, sources), f"{into}/"],  # noqa: S607
            user=run_as(),
            capture_output=True,
            text=True,
            cwd="/",
        )
        seconds = time.monotonic() - started
        problems = [line for line in done.stderr.splitlines() if "No such file or directory" not in line]
        if done.returncode != 0 and problems:  # a running server removes files while they are copied
            raise SystemExit(f"cp -a into {into} failed:\n{done.stderr}")
        return seconds


def marker(conn, label: str) -> int:
    return conn.execute(
        "INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, points_awarded, answer, link, "
        "feedback, submitted_at) SELECT tenant_id, user_id, project_id, 'WRITEUP', 'PENDING', 0, %s, '', '', now() "
        "FROM submissions LIMIT 1 RETURNING id",
        [label],
    ).fetchone()[0]


def wait_archived(conn, wanted: str, timeout: float = 600) -> float:
    """Seconds until the archiver reports `wanted` (a WAL file name) or a later one archived."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]
        if done and done >= wanted:
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"{wanted} was not archived within {timeout:.0f} s")


def archive_lag(cluster: Cluster) -> float:
    """Seconds from a commit to its WAL file in the archive, on an otherwise idle server."""
    with cluster.connect(DATABASE) as conn:
        marker(conn, "recovery point probe")
        wanted = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        return wait_archived(conn, wanted)


def size_of(path: Path) -> int:
    done = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)  # noqa: S603, S607
    return int(done.stdout.split()[0])


def mb(size: int) -> float:
    return round(size / 2**20, 1)


def drill(submissions: int, archive_timeout: int) -> dict:
    base = Path(tempfile.mkdtemp(prefix="vulhub-pitr-drill-"))
    hand_over(base)
    cluster = Cluster(base / "data", bin_dir=find_bin_dir(MAJOR))
    restored = None
    try:
        cluster.initdb(
            {
                "wal_level": "replica",
                "archive_mode": "on",
                "archive_command": "",  # `pitr setup` points it at pgBackRest
                "archive_timeout": f"{archive_timeout}s",
                "max_wal_size": "2GB",
            }
        )
        cluster.start()
        run = Drill(base, cluster)
        with cluster.connect() as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        run.manage("migrate", "--no-input")
        run.manage("db_roles")
        seed_s, _ = run.manage("seed", "--tenants", "2", "--students", str(max(200, submissions // 50)),
                               "--submissions", str(submissions), "--no-progress")  # fmt: skip
        run.manage("pitr", "setup")
        with cluster.connect(DATABASE) as conn:
            size = conn.execute("SELECT pg_database_size(%s)", [DATABASE]).fetchone()[0]
            conn.execute("CHECKPOINT")  # the seed's dirty pages reach the files before either reads them

        # Backup: the data directory's files read (and, for the copy, written once more).
        sources = sorted(entry for entry in cluster.datadir.iterdir() if entry.name != "pg_wal")
        copy = run.base / "copy"
        copy_s = run.copy(sources, copy)
        copied, wal = size_of(copy), size_of(cluster.datadir / "pg_wal")
        backup_s, backup_output = run.manage("pitr", "backup", "--no-progress")
        repository, in_backup = size_of(run.base / "repo1"), size_of(run.base / "repo1" / "backup")

        # T1 and after, archived.
        time.sleep(1.1)  # a backup's end is known to the second: T1 lies clearly after it
        with cluster.connect(DATABASE) as conn:
            kept = marker(conn, "committed by T1")
            t1 = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            time.sleep(0.05)
            later = marker(conn, "committed after T1")
            switched = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
            wait_archived(conn, switched)
        lag = archive_lag(cluster)

        # Restore: the files written back.
        for empty in (copy / "pg_wal", copy / "pg_wal" / "archive_status"):
            empty.mkdir(mode=0o700)
            hand_over(empty)
        copy_back_s = run.copy(sorted(copy.iterdir()), run.base / "copy-back")
        for done in (copy, run.base / "copy-back"):
            shutil.rmtree(done)
        into = run.base / "restored"
        restore_s, restore_output = run.manage("pitr", "restore", "--to", t1.isoformat(), "--into", str(into),
                                               "--no-progress")  # fmt: skip
        restored = Cluster(into, bin_dir=cluster.bin_dir)
        restored.start()
        with restored.connect(DATABASE) as conn:
            found = {row[0] for row in conn.execute("SELECT id FROM submissions WHERE id IN (%s, %s)", [kept, later])}
        return {
            "submissions": submissions,
            "database_mb": mb(size),
            "copied_mb": mb(copied),
            "pg_wal_mb": mb(wal),  # not copied: pgBackRest takes the WAL from the archive
            "repository_mb": mb(repository),
            "repository_backup_mb": mb(in_backup),  # the rest is archived WAL, the seed's included
            "seed_s": round(seed_s, 1),
            "backup_s": round(backup_s, 1),
            "copy_s": round(copy_s, 1),
            "backup_ratio": round(backup_s / copy_s, 2),
            "restore_s": round(restore_s, 1),
            "copy_back_s": round(copy_back_s, 1),
            "restore_ratio": round(restore_s / copy_back_s, 2),
            "restore_exact": found == {kept},
            "archive_lag_s": round(lag, 1),
            "archive_timeout_s": archive_timeout,
            "backup_output": backup_output.strip().splitlines(),
            "restore_output": restore_output.strip().splitlines(),
        }
    finally:
        if restored is not None:
            restored.remove()
        cluster.remove()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, nargs="+", default=[20_000, 200_000], metavar="N")
    parser.add_argument("--archive-timeout", type=int, default=60, metavar="S", help="archive_timeout (default 60)")
    parser.add_argument("--output", default=str(ROOT / "var" / "pitr-drill.json"), metavar="PATH")
    args = parser.parse_args()
    results = []
    print(" ".join(f"{heading:>12}" for heading, _key in COLUMNS), flush=True)  # noqa: T201
    for size in args.submissions:
        result = drill(size, args.archive_timeout)
        results.append(result)
        print(" ".join(f"{result[key]!s:>12}" for _heading, key in COLUMNS), flush=True)  # noqa: T201
        Path(args.output).parent.mkdir(exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")  # each size as soon as it is measured


if __name__ == "__main__":
    main()
