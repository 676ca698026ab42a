"""How much disk each student and each submission costs: the growth figures of docs/scaling.md.

    .venv/bin/python bench/growth.py            # a table
    .venv/bin/python bench/growth.py --json     # the same figures as JSON

Run it on a seeded database (`manage.py seed --scale large` is the bench's million
submissions). For each table that grows with the classes (submissions, audit_logs,
event_store, leaderboards, users, user_badges) it reports the rows, the bytes on disk
split into heap, TOAST and indexes, and those bytes per row, per student and per
submission; then each of their indexes on its own. Sizes come from PostgreSQL's
pg_total_relation_size, pg_relation_size, pg_table_size and pg_indexes_size, so they are
what the files take now: a freshly seeded table is packed full, a table that has lived
through updates and VACUUMs takes more (its dead rows are shown beside it).

It reads only, and connects as the schema's owner like a management command
(MIGRATIONS_DATABASE_URL, else DATABASE_URL, else the embedded default): counting every
tenant's rows needs a role that bypasses row-level security. As the restricted app role
it would count nothing, so it stops with exit 2 instead of printing zeros.

    .venv/bin/python bench/growth.py --db-time     # WRITES: use a scratch database

--db-time adds what a request costs the database, as the site runs it: in this process,
through django.test.Client as the app role (DATABASE_URL, under row-level security),
signed in as students of the largest class. For each student page, the statements and
their time as the app sees them over its connection (round trips included), on the third
request with Redis warm and again with no cache at all; then the same for flag
submissions (wrong ones, and right ones: a solve that moves the student's points and
rank), with their COMMIT, and the rows each left in submissions, audit_logs, event_store
and user_badges. The flags stay submitted: run it on a copy, never on a live class.
"""

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import environ

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")
# an operator's tool: manage.py's role choice (the owner) and no statement timeout
os.environ["VULHUB_MANAGEMENT_COMMAND"] = "growth"
os.environ.setdefault("SLOW_QUERY_MS", "0")  # counting a million rows is not a slow query to report
# --db-time serves pages as production does: DEBUG off (no query log kept in memory), and a
# key of its own when the environment has only the example one (installed below, as bench/run.py)
os.environ["DEBUG"] = "false"
# the site's key (from the environment or .env, as the settings read it), kept valid in the
# database beside this process's own (install_context_key below)
environ.Env.read_env(ROOT / ".env")  # does not override variables already set
SITE_SECRET_KEY = os.environ.get("SECRET_KEY", "")
if SITE_SECRET_KEY.startswith("insecure-example-key-change") or not SITE_SECRET_KEY:
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,.localhost")
os.environ.setdefault("SECURE_COOKIES", "false")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from tenants.models import User  # noqa: E402
from tenants.rls import install_context_key  # noqa: E402
from vulhub.ops.db_roles import switch_role  # noqa: E402

# The tables that grow with students and submissions; everything else is per tenant or fixed.
TABLES = ("submissions", "audit_logs", "event_store", "leaderboards", "users", "user_badges")

SIZES_SQL = """
SELECT c.relname,
       pg_relation_size(c.oid)                                  AS main_bytes,
       pg_table_size(c.oid)                                     AS table_bytes,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast_bytes,
       pg_indexes_size(c.oid)                                   AS index_bytes,
       pg_total_relation_size(c.oid)                            AS total_bytes,
       coalesce(s.n_dead_tup, 0)                                AS dead_rows
FROM pg_class c
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relname = %s AND c.relnamespace = 'public'::regnamespace
"""

INDEXES_SQL = """
SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid), i.indisunique
FROM pg_index i
WHERE i.indrelid = %s::regclass
ORDER BY pg_relation_size(i.indexrelid) DESC, 1
"""

# --db-time: the student pages, and the tables a submission adds rows to (with the column that orders them)
PAGES = ("/", "/challenges/", "/challenges/{slug}/", "/leaderboard/", "/badges/", "/profile/", "/submissions/")
APPENDED = {"submissions": "id", "audit_logs": "id", "event_store": "position", "user_badges": "id"}
NO_CACHE = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    parser.add_argument(
        "--db-time",
        action="store_true",
        help="also time the database work of pages and flag submissions (WRITES submissions: a scratch database)",
    )
    parser.add_argument("--students", type=int, default=20, metavar="N", help="students sampled by --db-time (20)")
    return parser.parse_args(argv)


def refuse_a_role_under_rls() -> None:
    """Stop when this role sees only one tenant's rows (or none): the counts would be wrong, not small."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        name, bypasses = cursor.fetchone()
    if not bypasses:
        sys.stderr.write(
            f"growth: role {name} is under row-level security and would count no tenant's rows; "
            "run it as the schema's owner (MIGRATIONS_DATABASE_URL).\n"
        )
        sys.exit(2)


def scalar(cursor, sql: str):
    """The first column of the first row."""
    cursor.execute(sql)
    return cursor.fetchone()[0]


def denominators(cursor) -> dict:
    """Students (accounts of role STUDENT in a tenant) and submissions: what the per-unit figures divide by."""
    return {
        "students": scalar(cursor, "SELECT count(*) FROM users WHERE role = 'STUDENT' AND tenant_id IS NOT NULL"),
        "submissions": scalar(cursor, "SELECT count(*) FROM submissions"),
        "tenants": scalar(cursor, "SELECT count(*) FROM tenants"),
    }


def per(value: int, unit: int) -> float | None:
    return round(value / unit, 2) if unit else None


def table_figures(cursor, table: str, units: dict) -> dict:
    """One table's rows and bytes, and both divided by its rows, the students and the submissions."""
    cursor.execute(SIZES_SQL, [table])
    _, main, table_bytes, toast, indexes, total, dead = cursor.fetchone()
    rows = scalar(cursor, f"SELECT count(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608 (a fixed name)
    cursor.execute(INDEXES_SQL, [table])
    index_list = [{"name": name, "bytes": size, "unique": unique} for name, size, unique in cursor.fetchall()]
    return {
        "table": table,
        "rows": rows,
        "dead_rows": dead,
        # heap: the main fork with its free-space and visibility maps, without TOAST
        "heap_bytes": table_bytes - toast,
        "main_fork_bytes": main,
        "toast_bytes": toast,
        "index_bytes": indexes,
        "total_bytes": total,
        "bytes_per_row": per(total, rows),
        "heap_bytes_per_row": per(table_bytes - toast, rows),
        "index_bytes_per_row": per(indexes, rows),
        "rows_per_student": per(rows, units["students"]),
        "rows_per_submission": per(rows, units["submissions"]),
        "bytes_per_student": per(total, units["students"]),
        "bytes_per_submission": per(total, units["submissions"]),
        "indexes": index_list,
    }


def measure() -> dict:
    with connection.cursor() as cursor:
        units = denominators(cursor)
        tables = [table_figures(cursor, table, units) for table in TABLES]
        database_bytes = scalar(cursor, "SELECT pg_database_size(current_database())")
        server = scalar(cursor, "SELECT current_setting('server_version')")
    total = sum(t["total_bytes"] for t in tables)
    return {
        "database": connection.settings_dict["NAME"],
        "server_version": server,
        **units,
        "database_bytes": database_bytes,
        "tables_total_bytes": total,
        "tables_bytes_per_student": per(total, units["students"]),
        "tables_bytes_per_submission": per(total, units["submissions"]),
        "tables": tables,
    }


def mb(value: int) -> str:
    return f"{value / 1_048_576:,.1f}"


def optional(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(doc: dict) -> str:
    """The figures as two plain tables: the tables, then their indexes."""
    lines = [
        f"database {doc['database']} (PostgreSQL {doc['server_version']}): {doc['tenants']:,} tenants, "
        f"{doc['students']:,} students, {doc['submissions']:,} submissions, {mb(doc['database_bytes'])} MB in all",
        "",
    ]
    head = ("table", "rows", "heap MB", "toast MB", "index MB", "total MB", "B/row", "rows/student", "B/student",
            "rows/submission", "B/submission")  # fmt: skip
    body = [
        (
            t["table"],
            f"{t['rows']:,}",
            mb(t["heap_bytes"]),
            mb(t["toast_bytes"]),
            mb(t["index_bytes"]),
            mb(t["total_bytes"]),
            optional(t["bytes_per_row"]),
            optional(t["rows_per_student"], 2),
            optional(t["bytes_per_student"]),
            optional(t["rows_per_submission"], 2),
            optional(t["bytes_per_submission"]),
        )
        for t in doc["tables"]
    ]
    body.append(
        ("all six", "", "", "", "", mb(doc["tables_total_bytes"]), "", "",
         optional(doc["tables_bytes_per_student"]), "", optional(doc["tables_bytes_per_submission"]))
    )  # fmt: skip
    lines += columns(head, body)
    lines += ["", "indexes (largest first; * unique)"]
    index_rows = [
        (t["table"], ("* " if i["unique"] else "  ") + i["name"], mb(i["bytes"]), optional(per(i["bytes"], t["rows"])))
        for t in doc["tables"]
        for i in t["indexes"]
    ]
    lines += columns(("table", "index", "MB", "B/row"), index_rows)
    dead = [f"{t['table']} {t['dead_rows']:,}" for t in doc["tables"] if t["dead_rows"]]
    if dead:
        lines += ["", "dead rows not yet vacuumed (their space is in the figures): " + ", ".join(dead)]
    return "\n".join(lines)


def columns(head: tuple, rows: list[tuple]) -> list[str]:
    """Left-aligned first column, the rest right-aligned: numbers line up."""
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]

    def line(row):
        cells = [str(row[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return [line(head), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]


# --- --db-time: the database work of a request, timed from the app's side ----------------


class SqlClock:
    """Statements and their time as the app sees them (a connection.execute_wrapper), and the COMMITs."""

    def __init__(self):
        self.ms = 0.0
        self.statements = 0
        self.commit_ms = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.ms += (time.perf_counter() - started) * 1000
            self.statements += 1

    @contextmanager
    def running(self):
        """Time the statements, and the request transaction's COMMIT (which runs no execute())."""
        commit = connection._commit

        def timed_commit():
            started = time.perf_counter()
            try:
                return commit()
            finally:
                self.commit_ms += (time.perf_counter() - started) * 1000

        connection._commit = timed_commit
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            del connection._commit  # the class's method again


def timed_request(client: Client, method: str, path: str, data: dict | None = None) -> dict:
    """One request in process: its status, wall time, and the database's share of it."""
    clock = SqlClock()
    started = time.perf_counter()
    with clock.running():
        response = client.get(path) if method == "GET" else client.post(path, data or {})
    return {
        "status": response.status_code,
        "ms": (time.perf_counter() - started) * 1000,
        "sql_ms": clock.ms,
        "statements": clock.statements,
        "commit_ms": clock.commit_ms,
    }


def summary(samples: list[dict]) -> dict:
    """Medians (and the p95 of the wall time) of a list of timed requests."""
    ms = sorted(s["ms"] for s in samples)
    return {
        "requests": len(samples),
        "statuses": sorted({s["status"] for s in samples}),
        "ms_median": round(statistics.median(ms), 2),
        "ms_p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
        "sql_ms_median": round(statistics.median(s["sql_ms"] for s in samples), 2),
        "commit_ms_median": round(statistics.median(s["commit_ms"] for s in samples), 2),
        "statements_median": statistics.median(s["statements"] for s in samples),
    }


def largest_class(cursor) -> tuple[int, str]:
    cursor.execute(
        """SELECT t.id, t.domain FROM tenants t JOIN users u ON u.tenant_id = t.id AND u.role = 'STUDENT'
           GROUP BY t.id ORDER BY count(*) DESC, t.id LIMIT 1"""
    )
    return cursor.fetchone()


def sampled_students(cursor, tenant_id: int, limit: int) -> list[int]:
    """The same students on every run of the same data: ordered by a hash of their id."""
    cursor.execute(
        """SELECT id FROM users WHERE tenant_id = %s AND role = 'STUDENT' AND is_active
           ORDER BY md5(id::text) LIMIT %s""",
        [tenant_id, limit],
    )
    return [row[0] for row in cursor.fetchall()]


def open_flags(cursor, tenant_id: int, user_ids: list[int]) -> list[tuple[int, str, str]]:
    """(student, challenge slug, right flag) for flag challenges each student has not solved yet.

    The right flag is read from someone's approved flag submission (the answer is kept).
    """
    cursor.execute(
        """WITH flags AS (
             SELECT p.id, p.slug, (SELECT s.answer FROM submissions s WHERE s.project_id = p.id
                                     AND s.status = 'APPROVED' AND s.kind = 'FLAG' LIMIT 1) AS flag
             FROM projects p WHERE p.tenant_id = %s AND p.is_published AND p.flag_hash <> ''
               AND p.scoring = 'STATIC')
           SELECT u, f.slug, f.flag FROM unnest(%s::bigint[]) AS u CROSS JOIN flags f
           WHERE f.flag IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM submissions s WHERE s.tenant_id = %s AND s.user_id = u
               AND s.project_id = f.id AND s.status IN ('APPROVED', 'PENDING'))
           ORDER BY u, f.slug""",
        [tenant_id, user_ids, tenant_id],
    )
    return cursor.fetchall()


def signed_in_clients(domain: str, user_ids: list[int]) -> dict[int, Client]:
    """One client per student, signed in (as the owner: the app role sees no user outside a request)."""
    clients = {}
    for user in User.objects.filter(pk__in=user_ids):
        client = Client(HTTP_HOST=domain)
        client.force_login(user)
        clients[user.pk] = client
    return clients


def page_costs(clients: dict[int, Client], slug: str) -> dict:
    """Each page as every sampled student: warm (the third request), then with no cache at all."""
    results = {}
    for page in PAGES:
        path = page.format(slug=slug)
        warm, cold = [], []
        for client in clients.values():
            client.get(path)
            client.get(path)
            warm.append(timed_request(client, "GET", path))
        with override_settings(CACHES=NO_CACHE):
            for client in clients.values():
                cold.append(timed_request(client, "GET", path))
        results[page] = {"warm": summary(warm), "no_cache": summary(cold)}
    return results


def heads(cursor, tenant_id: int) -> dict[str, int]:
    """The last row of each appended table in the class: rows added after it are a submission's."""
    found = {}
    for table, column in APPENDED.items():
        cursor.execute(f"SELECT coalesce(max({column}), 0) FROM {table} WHERE tenant_id = %s", [tenant_id])  # noqa: S608
        found[table] = cursor.fetchone()[0]
    return found


def rows_added(cursor, tenant_id: int, before: dict[str, int], submissions: int) -> dict:
    """Rows (and their average width, pg_column_size) added to each table, per submission."""
    added = {}
    for table, column in APPENDED.items():
        cursor.execute(
            f"SELECT count(*), coalesce(avg(pg_column_size(t.*)), 0) FROM {table} t "  # noqa: S608 (fixed names)
            f"WHERE tenant_id = %s AND {column} > %s",
            [tenant_id, before[table]],
        )
        rows, width = cursor.fetchone()
        cursor.execute(f"SELECT avg(pg_column_size(t.*)) FROM (SELECT * FROM {table} LIMIT 20000) t")  # noqa: S608
        added[table] = {
            "rows_per_submission": round(rows / submissions, 2) if submissions else None,
            "row_bytes_live": round(float(width)),
            "row_bytes_seeded": round(float(cursor.fetchone()[0] or 0)),
        }
    return added


def submit(clients: dict[int, Client], attempts: list[tuple[int, str, str]]) -> list[dict]:
    return [
        timed_request(clients[user_id], "POST", f"/challenges/{slug}/", {"flag": flag})
        for user_id, slug, flag in attempts
    ]


def db_time(students: int) -> dict:
    """Pages and flag submissions of the largest class, timed as the app role serves them."""
    owner, app = settings.DATABASE_ROLES["owner"], settings.DATABASE_ROLES["app"]
    # this process's tenant proofs, and the site's still accepted
    install_context_key(extra=tuple(key for key in (settings.SECRET_KEY, SITE_SECRET_KEY) if key))
    with connection.cursor() as cursor:
        tenant_id, domain = largest_class(cursor)
        user_ids = sampled_students(cursor, tenant_id, students)
        flags = open_flags(cursor, tenant_id, user_ids)
    if not flags:
        raise SystemExit("growth: the sampled students have no open flag challenge with a known flag")
    clients = signed_in_clients(domain, user_ids)
    # one open challenge per student: a wrong flag there, then the right one (a solve)
    firsts = list({user_id: (user_id, slug, flag) for user_id, slug, flag in reversed(flags)}.values())
    wrongs = [(u, slug, f"FLAG{{growth_wrong_{secrets.token_hex(4)}}}") for u, slug, _ in firsts for _ in range(3)]
    with connection.cursor() as cursor:
        before = heads(cursor, tenant_id)
    switch_role(app)
    try:
        with override_settings(ALLOWED_HOSTS=[domain], FLAG_ATTEMPT_LIMIT=1000):
            pages = page_costs(clients, firsts[0][1])
            wrong = submit(clients, wrongs)
            right = submit(clients, firsts)
    finally:
        switch_role(owner)
    with connection.cursor() as cursor:
        added = rows_added(cursor, tenant_id, before, len(wrongs) + len(firsts))
    return {
        "tenant_id": tenant_id,
        "students_sampled": len(clients),
        "pages": pages,
        "wrong_flag": summary(wrong),
        "right_flag": summary(right),
        "rows_added_per_submission": added,
    }


def render_db_time(doc: dict) -> str:
    head = ("request", "cache", "n", "statuses", "wall ms (median)", "wall p95", "SQL ms (median)", "COMMIT ms",
            "statements")  # fmt: skip
    rows = []
    for page, runs in doc["pages"].items():
        for cache, s in (("Redis warm", runs["warm"]), ("none", runs["no_cache"])):
            rows.append((f"GET {page}", cache, *summary_cells(s)))
    for name in ("wrong_flag", "right_flag"):
        rows.append((f"POST flag ({name.replace('_', ' ')})", "Redis warm", *summary_cells(doc[name])))
    lines = [f"database time of requests, tenant {doc['tenant_id']}, {doc['students_sampled']} students", ""]
    lines += columns(head, rows)
    lines += ["", "rows added per flag submission (the wrong and the right ones together)"]
    added = [
        (table, f["rows_per_submission"], f["row_bytes_live"], f["row_bytes_seeded"])
        for table, f in doc["rows_added_per_submission"].items()
    ]
    lines += columns(("table", "rows/submission", "B/row live", "B/row seeded"), added)
    return "\n".join(lines)


def summary_cells(s: dict) -> tuple:
    return (
        s["requests"],
        ",".join(map(str, s["statuses"])),
        f"{s['ms_median']:.2f}",
        f"{s['ms_p95']:.2f}",
        f"{s['sql_ms_median']:.2f}",
        f"{s['commit_ms_median']:.2f}",
        f"{s['statements_median']:g}",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    switch_role(settings.DATABASE_ROLES["owner"])
    refuse_a_role_under_rls()
    doc = measure()
    if args.db_time:
        doc["db_time"] = db_time(args.students)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(render(doc))
        if args.db_time:
            print("\n" + render_db_time(doc["db_time"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
