"""What `seed` costs against a plain COPY of the same rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/seed_cost.py [--scale large]

1. `manage.py seed --scale S` end to end (generation, COPY, audit rows, events,
   leaderboards) into a fresh, migrated database.
2. The same rows, generated beforehand, loaded by plain COPY (one table after the
   other, one transaction per tenant, as `psql \\copy` would) into another fresh
   database: the lower bound, since only loading is measured.

Prints both times and the speed of seed as a fraction of the plain COPY's (goal: at
least 0.3x). The server of DATABASE_URL gets databases vulhub_seedbench_*; they are
dropped at the end.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def url_for(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin(base: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url_for(base, "postgres"), autocommit=True) as conn:
        conn.execute(sql)


def manage(url: str, *args: str) -> float:
    env = dict(os.environ, DATABASE_URL=url, SLOW_QUERY_MS="0")
    started = time.perf_counter()
    command = [sys.executable, str(ROOT / "manage.py"), *args]  # our own script and fixed arguments
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["small", "large"], default="large")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL")
    if not base:
        sys.exit("Set DATABASE_URL to a PostgreSQL server (any database on it): scratch databases are made there.")
    template, seeded, copied = "vulhub_seedbench_tpl", "vulhub_seedbench_seed", "vulhub_seedbench_copy"
    for name in (seeded, copied, template):
        admin(base, f"DROP DATABASE IF EXISTS {name}")
    admin(base, f"CREATE DATABASE {template}")
    manage(url_for(base, template), "migrate", "-v0")
    manage(url_for(base, template), "createcachetable")
    manage(url_for(base, template), "seed", "--no-progress")  # the demo data, in both
    admin(base, f"CREATE DATABASE {seeded} TEMPLATE {template}")
    admin(base, f"CREATE DATABASE {copied} TEMPLATE {template}")
    try:
        print(f"seed --scale {args.scale} ...", flush=True)
        seed_seconds = manage(url_for(base, seeded), "seed", "--scale", args.scale, "--no-progress")
        print(f"  {seed_seconds:.1f} s", flush=True)

        os.environ["DATABASE_URL"] = url_for(base, copied)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")
        import django

        django.setup()
        from django.db import connection, transaction

        from vulhub import bulk_load, generated

        sizes = generated.SCALES[args.scale]
        students = generated.split(sizes.students, sizes.tenants)
        submissions = generated.split(sizes.submissions, sizes.tenants)
        print("generating the same rows for the plain COPY ...", flush=True)
        tenants = [
            generated.generate_tenant(
                seed=1,
                number=n + 1,
                students=students[n],
                challenges=sizes.challenges,
                submissions=submissions[n],
                ids=bulk_load.ids(),
            )  # fmt: skip
            for n in range(sizes.tenants)
        ]
        print("plain COPY ...", flush=True)
        started = time.perf_counter()
        for data in tenants:
            with transaction.atomic():
                for table, columns, rows in bulk_load.copy_plan(data):
                    bulk_load.copy_rows(table, columns, rows)
        copy_seconds = time.perf_counter() - started
        connection.close()
        rows = sum(bulk_load.row_count(d) for d in tenants)
        print(f"  {copy_seconds:.1f} s for {rows:,} rows", flush=True)
        print()
        print(f"seed --scale {args.scale}: {seed_seconds:6.1f} s  (generation, COPY, records, leaderboards)")
        print(f"plain COPY of the rows:   {copy_seconds:6.1f} s")
        print(f"seed speed / COPY speed:  {copy_seconds / seed_seconds:6.2f}x  (goal: at least 0.3x)")
    finally:
        for name in (seeded, copied, template):
            admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
