"""The point-in-time recovery drill at growing database sizes: recovery time and recovery point.

    .venv/bin/python bench/pitr_drill.py --submissions 20000 200000 1000000

For each size, on a throwaway cluster of its own with WAL archiving on (as docker-compose
configures it, with `--archive-timeout`): migrate, seed that many submissions, take a base
backup (`manage.py pitr backup`), commit a marker submission at T1 and then more, archive,
and restore to T1 (`manage.py pitr restore`, verification included). It reports the
database and base backup sizes, the backup and restore times (the recovery time), checks
that the restored database holds the marker and nothing after it, and measures how long
a commit waits before its WAL is in the archive (what a lost machine would lose: the
recovery point). Results go to var/pitr-drill.json; nothing is asserted.
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

from vulhub.ops.pg_cluster import Cluster, hand_over  # noqa: E402

ARCHIVER = ROOT / "docker" / "postgres" / "archive_wal.sh"
COLUMNS = ("submissions", "database_mb", "base_backup_mb", "backup_s", "restore_s", "restore_exact", "archive_lag_s")


def manage(cluster: Cluster, *args: str) -> tuple[float, str]:
    env = {**os.environ, "DATABASE_URL": cluster.url("vulhub"), "MIGRATIONS_DATABASE_URL": cluster.url("vulhub")}
    env.pop("BACKUP_DATABASE_URL", None)
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.monotonic() - started, done.stdout


def folder(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    hand_over(path)
    return path


def marker(conn, label: str) -> int:
    return conn.execute(
        "INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, points_awarded, answer, link, "
        "feedback, submitted_at) SELECT tenant_id, user_id, project_id, 'WRITEUP', 'PENDING', 0, %s, '', '', now() "
        "FROM submissions LIMIT 1 RETURNING id",
        [label],
    ).fetchone()[0]


def archive_lag(cluster: Cluster) -> float:
    """Seconds from a commit to its WAL file in the archive, on an otherwise idle server."""
    with cluster.connect("vulhub") as conn:
        marker(conn, "recovery point probe")
        wanted = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        committed = time.monotonic()
        while True:
            done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]
            if done and done >= wanted:
                return time.monotonic() - committed
            time.sleep(0.2)


def drill(submissions: int, archive_timeout: int) -> dict:
    base = folder("vulhub-pitr-drill-")
    wal = base / "archive" / "wal"
    wal.mkdir(parents=True)
    hand_over(wal.parent)
    hand_over(wal)
    settings = {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"{ARCHIVER} %p %f {wal}",
        "archive_timeout": f"{archive_timeout}s",
        "max_wal_size": "2GB",
    }
    cluster = Cluster(base / "data").initdb(settings)
    try:
        cluster.start()
        with cluster.connect() as admin:
            admin.execute("CREATE DATABASE vulhub")
        manage(cluster, "migrate", "--no-input")
        manage(cluster, "db_roles")
        seed_s, _ = manage(cluster, "seed", "--tenants", "2", "--students", str(max(200, submissions // 50)),
                           "--submissions", str(submissions), "--no-progress")  # fmt: skip
        with cluster.connect("vulhub") as conn:
            size = conn.execute("SELECT pg_database_size('vulhub')").fetchone()[0]
        backup_s, _ = manage(cluster, "pitr", "backup", "--archive", str(wal.parent))
        with cluster.connect("vulhub") as conn:
            kept = marker(conn, "committed by T1")
            t1 = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            time.sleep(0.05)
            later = marker(conn, "committed after T1")
            conn.execute("SELECT pg_switch_wal()")
        lag = archive_lag(cluster)
        into = folder("vulhub-pitr-drill-restored-") / "data"
        restore_s, output = manage(
            cluster, "pitr", "restore", "--to", t1.isoformat(), "--into", str(into), "--archive", str(wal.parent),
            "--no-progress",
        )  # fmt: skip
        restored = Cluster(into, bin_dir=cluster.bin_dir)
        restored.start()
        try:
            with restored.connect("vulhub") as conn:
                found = {
                    row[0] for row in conn.execute("SELECT id FROM submissions WHERE id IN (%s, %s)", [kept, later])
                }
        finally:
            restored.remove()
        backup_bytes = sum(p.stat().st_size for p in (wal.parent / "base").rglob("*") if p.is_file())
        return {
            "submissions": submissions,
            "database_mb": round(size / 2**20, 1),
            "base_backup_mb": round(backup_bytes / 2**20, 1),
            "seed_s": round(seed_s, 1),
            "backup_s": round(backup_s, 1),
            "restore_s": round(restore_s, 1),
            "restore_exact": found == {kept},
            "archive_lag_s": round(lag, 1),
            "archive_timeout_s": archive_timeout,
            "restore_output": output.strip().splitlines(),
        }
    finally:
        cluster.remove()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, nargs="+", default=[20_000, 200_000], metavar="N")
    parser.add_argument("--archive-timeout", type=int, default=60, metavar="S", help="archive_timeout (default 60)")
    parser.add_argument("--output", default=str(ROOT / "var" / "pitr-drill.json"), metavar="PATH")
    args = parser.parse_args()
    results = []
    columns = ("submissions", "db MB", "backup MB", "backup s", "restore s", "exact", "lag s")
    print(" ".join(f"{name:>11}" for name in columns))  # noqa: T201
    for size in args.submissions:
        result = drill(size, args.archive_timeout)
        results.append(result)
        print(" ".join(f"{result[key]!s:>11}" for key in COLUMNS))  # noqa: T201
    Path(args.output).parent.mkdir(exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
