"""5. Seed: `manage.py seed` end to end against a plain COPY of the same rows.

Each run gets two fresh databases cloned from one migrated, empty template. Into
one, `seed` generates and loads the dataset (the large scale, or the smoke sizes)
in a process of its own, timed from start to exit. Into the other, the very same
rows, generated beforehand in this process (so only loading is timed), go in by
plain COPY, table after table, one transaction per tenant: the lower bound. Both
go through the same constraints, indexes and triggers.
"""

import itertools
import os
import subprocess
import sys
import time

import psycopg
from psycopg import sql

from bench.framework import Context, Figure, Series
from vulhub.ops import backups
from vulhub.ops.db_roles import connection_url
from vulhub.seeding import bulk_load, generated

SCENARIO = "5 seed"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = generated.Sizes(tenants=2, students=80, challenges=12, submissions=3000)


def run(ctx: Context) -> list[Figure]:
    sizes = SMOKE if ctx.smoke else generated.SCALES["large"]
    server = backups.Server.of()
    if server.bin_dir is not None:
        os.environ["PATH"] = f"{server.bin_dir}{os.pathsep}{os.environ['PATH']}"
    # named after the benchmark's database: a smoke run and a full run on one server never share them
    prefix = f"{server.database[:40]}_b5"
    template, seeded, copied = f"{prefix}_tpl", f"{prefix}_seed", f"{prefix}_copy"

    def admin(statement):
        with server.on("postgres").connect() as conn:
            conn.execute(statement)

    def drop(name):
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def clone(name):
        drop(name)
        admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))

    def manage(database, *args):
        url = _url(server, database)  # the scratch database, as the benchmark's own (owner) login
        env = dict(os.environ, DATABASE_URL=url, MIGRATIONS_DATABASE_URL=url, SLOW_QUERY_MS="0")
        env.pop("BACKUP_DATABASE_URL", None)
        command = [sys.executable, os.path.join(ROOT, "manage.py"), *args]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603

    for name in (seeded, copied, template):
        drop(name)
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    ctx.scratch.setdefault("cleanups", []).append(lambda: [drop(n) for n in (seeded, copied, template)])
    manage(template, "migrate", "-v0")  # the cache table too

    ctx.log("   generating the rows for the plain COPY ...")
    counters: dict[str, itertools.count] = {}
    ids = generated.Ids(lambda table, n: [next(counters.setdefault(table, itertools.count(1))) for _ in range(n)])
    students = generated.split(sizes.students, sizes.tenants)
    submissions = generated.split(sizes.submissions, sizes.tenants)
    data = [
        generated.generate_tenant(
            seed=1, number=n + 1, students=students[n], challenges=sizes.challenges, submissions=submissions[n], ids=ids
        )  # fmt: skip
        for n in range(sizes.tenants)
    ]
    rows = sum(bulk_load.row_count(d) for d in data)
    args = [
        *("--tenants", str(sizes.tenants), "--students", str(sizes.students)),
        *("--challenges", str(sizes.challenges), "--submissions", str(sizes.submissions)),
        *("--random-seed", "1", "--no-progress"),
    ]

    seed_seconds, copy_seconds = [], []
    for number in range(ctx.runs):
        clone(seeded)
        started = time.perf_counter()
        manage(seeded, "seed", *args)
        seed_seconds.append(time.perf_counter() - started)
        drop(seeded)

        clone(copied)
        with psycopg.connect(server.on(copied).conninfo(), password=server.password) as conn:
            started = time.perf_counter()
            for tenant in data:
                with conn.transaction():
                    for table, columns, table_rows in bulk_load.copy_plan(tenant):
                        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                            for row in table_rows:
                                copy.write_row(row)
            copy_seconds.append(time.perf_counter() - started)
        drop(copied)
        ctx.log(f"   run {number + 1}: seed {seed_seconds[-1]:.1f} s, plain COPY {copy_seconds[-1]:.1f} s")
    return [
        Figure(
            SCENARIO,
            f"seed {sizes.submissions:,} submissions end to end vs plain COPY of the same {rows:,} rows",
            ours=Series("seed", seed_seconds, "s"),
            baseline=Series("plain COPY", copy_seconds, "s"),
            compare="speed",
            goal=0.3,
            note="seed includes generating the rows, process start-up, demo data and leaderboards; "
            "it loads two tenants at once",
            extra={"rows": rows},
        )
    ]


def _url(server: backups.Server, database: str) -> str:
    params = server.params
    return connection_url(
        user=params.get("user", ""),
        password=server.password or "",
        host=params.get("host"),
        port=params.get("port"),
        name=database,
    )
