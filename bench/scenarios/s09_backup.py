"""9. Backup and restore of the whole bench database against pg_dump and pg_restore.

- `manage.py backup` (dump, manifest with every table's count and checksum taken in
  the dump's snapshot, sha256) against `pg_dump -Fc` alone, at the same (default)
  compression, by the same pg_dump.
- `manage.py restore` (file checks, restore in one transaction, ANALYZE, every
  table's count and checksum compared, audit chains verified) into a new database,
  against `pg_restore --single-transaction` alone into an empty database.
"""

import subprocess
import tempfile
import time
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from psycopg import sql

from bench.framework import Context, Figure, Series
from vulhub.ops import backups

SCENARIO = "9 backup and restore"


def run(ctx: Context) -> list[Figure]:
    server = backups.Server.of()
    pg_dump, pg_restore = server.tool("pg_dump"), server.tool("pg_restore")
    target, bare_target = f"{server.database}_b9_restore", f"{server.database}_b9_bare"

    def admin(statement):
        with server.on("postgres").connect() as conn:
            conn.execute(statement)

    def drop(name):
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    ctx.scratch.setdefault("cleanups", []).append(lambda: [drop(n) for n in (target, bare_target)])
    backup_s, dump_s, restore_s, bare_restore_s = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="vulhub-bench9-") as folder:
        work = Path(folder)
        for number in range(ctx.runs):
            dest = work / f"run{number}"
            started = time.perf_counter()
            call_command("backup", "--dest", str(dest), "--no-progress", stdout=StringIO())
            backup_s.append(time.perf_counter() - started)
            dump = next(dest.glob("*.dump"))

            bare = work / f"bare{number}.dump"
            started = time.perf_counter()
            subprocess.run(  # noqa: S603
                [pg_dump.path, "-Fc", "-f", str(bare), f"--dbname={server.conninfo()}"], env=server.env(), check=True
            )
            dump_s.append(time.perf_counter() - started)

            drop(target)
            started = time.perf_counter()
            call_command("restore", str(dump), "--database", target, "--create", "--no-progress", stdout=StringIO())
            restore_s.append(time.perf_counter() - started)
            drop(target)

            drop(bare_target)
            admin(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(bare_target)))
            started = time.perf_counter()
            subprocess.run(  # noqa: S603
                [
                    pg_restore.path,
                    "--no-owner",
                    "--exit-on-error",
                    "--single-transaction",
                    f"--dbname={server.on(bare_target).conninfo()}",
                    str(bare),
                ],  # fmt: skip
                env=server.env(),
                check=True,
            )
            bare_restore_s.append(time.perf_counter() - started)
            drop(bare_target)
            size = dump.stat().st_size
            for path in (dump, bare):
                path.unlink()
            ctx.log(
                f"   run {number + 1}: backup {backup_s[-1]:.1f} s / pg_dump {dump_s[-1]:.1f} s, "
                f"restore {restore_s[-1]:.1f} s / pg_restore {bare_restore_s[-1]:.1f} s"
            )
    extra = {"dump_bytes": size, "database": server.database}
    return [
        Figure(
            SCENARIO,
            "backup (dump + manifest) vs pg_dump -Fc",
            ours=Series("backup", backup_s, "s"),
            baseline=Series("pg_dump", dump_s, "s"),
            compare="cost",
            goal_op="<=",
            goal=1.2,
            extra=extra,
        ),
        Figure(
            SCENARIO,
            "restore (with verification) vs pg_restore",
            ours=Series("restore", restore_s, "s"),
            baseline=Series("pg_restore", bare_restore_s, "s"),
            compare="cost",
            goal_op="<=",
            goal=1.3,
            note="restore checks the file, restores in one transaction, analyses, compares every table's count "
            "and checksum with the manifest and verifies the audit chains",
            extra=extra,
        ),
    ]
