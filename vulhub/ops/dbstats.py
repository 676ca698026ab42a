"""What the database is doing: the queries behind `manage.py dbstats`.

Every function takes a DB-API cursor on a psycopg 3 connection (Django's
`connection.cursor()` or a plain `psycopg` cursor) and returns plain data (dicts,
lists, numbers, ISO strings) ready for `json.dumps`. `collect()` gathers every section,
`problems()` compares a collected report with the operator's thresholds.

Statistics are cumulative since the last `pg_stat_reset()` (see `database.stats_reset`).
Sessions are those of this database; connections are counted server-wide, because
`max_connections` is a server-wide limit.
"""

import contextlib
import datetime
import re
from decimal import Decimal

import psycopg
from django.db import DatabaseError

from . import backups, pitr

# Judge dead tuples only on tables this big (live + dead rows): a 12-row table with 6
# dead rows is not a vacuum problem.
DEAD_TUPLE_MIN_ROWS = 1000
# Below this many block accesses since the statistics were reset, a hit ratio says
# nothing yet (a fresh server reads everything from disk once).
CACHE_MIN_BLOCKS = 10_000
# Sequential scans on tables smaller than this are the planner's right choice.
SEQ_SCAN_MIN_BYTES = 1024 * 1024
# Characters of SQL kept per statement or session.
QUERY_CHARS = 1000

PG_STAT_STATEMENTS_HOWTO = (
    "To see slow queries, load pg_stat_statements: add "
    "shared_preload_libraries = 'pg_stat_statements' to postgresql.conf, restart "
    "PostgreSQL, then run CREATE EXTENSION pg_stat_statements; in this database."
)


def collect(cursor, *, limit: int = 10) -> dict:
    """Every section of the report; lists hold at most `limit` rows, worst first."""
    # Statistics views are snapshotted once per transaction: start from fresh numbers.
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    return {
        "database": database_info(cursor),
        "connections": connections(cursor),
        "slow_queries": slow_queries(cursor, limit=limit),
        "table_sizes": table_sizes(cursor, limit=limit),
        "index_usage": index_usage(cursor, limit=limit),
        "cache": cache_hit_ratio(cursor, limit=limit),
        "sessions": sessions(cursor, limit=limit),
        "dead_tuples": dead_tuples(cursor, limit=limit),
        "archiving": archiving(cursor),
    }


def database_info(cursor) -> dict:
    return _one(
        cursor,
        """
        SELECT current_database() AS name,
               current_setting('server_version') AS server_version,
               pg_database_size(current_database()) AS size_bytes,
               (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset,
               clock_timestamp() AS collected_at
        """,
    )


def connections(cursor) -> dict:
    """Client connections by state, against `max_connections` (server-wide)."""
    settings = _one(
        cursor,
        """
        SELECT current_setting('max_connections')::int AS max_connections,
               current_setting('superuser_reserved_connections')::int AS superuser_reserved
        """,
    )
    # A state is NULL for another user's session when we may not see it.
    by_state = _rows(
        cursor,
        """
        SELECT coalesce(state, 'unknown') AS state,
               count(*) AS total,
               count(*) FILTER (WHERE datname = current_database()) AS this_database
        FROM pg_stat_activity
        WHERE backend_type = 'client backend'
        GROUP BY 1
        ORDER BY 2 DESC, 1
        """,
    )
    in_use = sum(row["total"] for row in by_state)
    return {
        **settings,
        "in_use": in_use,
        "used_pct": _pct(in_use, settings["max_connections"]),
        "this_database": sum(row["this_database"] for row in by_state),
        "by_state": {row["state"]: row["total"] for row in by_state},
    }


def slow_queries(cursor, *, limit: int = 10) -> dict:
    """Top statements of this database by mean and by total time, from pg_stat_statements.

    `status` says whether the numbers could be read: "available", "not_installed" (the
    server lacks the extension's files), "not_created" (no CREATE EXTENSION here) or
    "not_loaded" (created, but the library is not in shared_preload_libraries).
    """
    result = {"status": "available", "note": "", "by_mean": [], "by_total": []}
    extension = _one(
        cursor,
        """
        SELECT quote_ident(n.nspname) AS schema, e.extversion AS version
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_stat_statements'
        """,
    )
    if extension is None:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'")
        if cursor.fetchone() is None:
            result["status"] = "not_installed"
            result["note"] = (
                "pg_stat_statements is not installed on the database server (on Debian and "
                "Ubuntu it ships with the postgresql-contrib package). " + PG_STAT_STATEMENTS_HOWTO
            )
        else:
            result["status"] = "not_created"
            result["note"] = "pg_stat_statements is not created in this database. " + PG_STAT_STATEMENTS_HOWTO
        return result

    view = f"{extension['schema']}.pg_stat_statements"
    try:
        with _savepoint(cursor):
            cursor.execute(f"SELECT 1 FROM {view} LIMIT 1")  # noqa: S608 (schema from quote_ident)
    except (psycopg.Error, DatabaseError) as exc:
        result["status"] = "not_loaded"
        result["note"] = (
            f"pg_stat_statements is created but cannot be read ({_first_line(exc)}). " + PG_STAT_STATEMENTS_HOWTO
        )
        return result

    cursor.execute("SELECT current_setting('server_version_num')::int")
    # PostgreSQL 13 split planning from execution time.
    total, mean = (
        ("total_exec_time", "mean_exec_time") if cursor.fetchone()[0] >= 130000 else ("total_time", "mean_time")
    )
    for key, order in (("by_mean", mean), ("by_total", total)):
        result[key] = _rows(
            cursor,
            f"""
            SELECT s.queryid,
                   s.calls,
                   round(s.{total}::numeric, 2) AS total_ms,
                   round(s.{mean}::numeric, 2) AS mean_ms,
                   s.rows,
                   left(s.query, %(chars)s) AS query
            FROM {view} s
            WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY s.{order} DESC
            LIMIT %(limit)s
            """,  # noqa: S608 (identifiers are ours and quote_ident's)
            {"limit": limit, "chars": QUERY_CHARS},
        )
    return result


def table_sizes(cursor, *, limit: int = 10) -> list[dict]:
    """Largest tables first: total = table (with TOAST) + indexes; rows as last estimated."""
    rows = _rows(
        cursor,
        """
        SELECT n.nspname AS schema,
               c.relname AS "table",
               pg_total_relation_size(c.oid) AS total_bytes,
               pg_table_size(c.oid) AS table_bytes,
               pg_indexes_size(c.oid) AS index_bytes,
               c.reltuples::bigint AS rows_estimate
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_toast'
        ORDER BY total_bytes DESC, n.nspname, c.relname
        LIMIT %(limit)s
        """,
        {"limit": limit},
    )
    for row in rows:
        if row["rows_estimate"] < 0:  # never vacuumed or analyzed (PostgreSQL 14+)
            row["rows_estimate"] = None
    return rows


def index_usage(cursor, *, limit: int = 10) -> dict:
    """Indexes never scanned, and tables read mostly by sequential scans.

    An unused index that enforces a primary key, unique or exclusion rule (a constraint
    or a bare unique index) is listed apart: it earns its keep without being scanned.
    """
    unused = _rows(
        cursor,
        """
        SELECT s.schemaname AS schema,
               s.relname AS "table",
               s.indexrelname AS "index",
               pg_relation_size(s.indexrelid) AS size_bytes,
               (i.indisprimary OR i.indisunique OR i.indisexclusion
                OR EXISTS (SELECT 1 FROM pg_constraint c
                           WHERE c.conindid = s.indexrelid AND c.contype IN ('p', 'u', 'x')))
                   AS enforces_constraint
        FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
        WHERE s.idx_scan = 0
        ORDER BY size_bytes DESC, s.schemaname, s.relname, s.indexrelname
        """,
    )
    seq_scan_heavy = _rows(
        cursor,
        """
        SELECT schemaname AS schema,
               relname AS "table",
               seq_scan,
               coalesce(idx_scan, 0) AS idx_scan,
               seq_tup_read,
               n_live_tup AS live_rows,
               pg_relation_size(relid) AS table_bytes
        FROM pg_stat_user_tables
        WHERE seq_scan > coalesce(idx_scan, 0)
          AND pg_relation_size(relid) >= %(min_bytes)s
        ORDER BY seq_tup_read DESC, schemaname, relname
        LIMIT %(limit)s
        """,
        {"limit": limit, "min_bytes": SEQ_SCAN_MIN_BYTES},
    )
    return {
        "unused": [row for row in unused if not row["enforces_constraint"]][:limit],
        "unused_enforcing": [row for row in unused if row["enforces_constraint"]][:limit],
        "seq_scan_heavy": seq_scan_heavy,
        "seq_scan_min_bytes": SEQ_SCAN_MIN_BYTES,
    }


def cache_hit_ratio(cursor, *, limit: int = 10) -> dict:
    """Share of block reads served from shared buffers: the database, and its busiest tables."""
    database = _one(
        cursor,
        """
        SELECT blks_hit, blks_read,
               round(100.0 * blks_hit / nullif(blks_hit + blks_read, 0), 2) AS hit_ratio_pct
        FROM pg_stat_database
        WHERE datname = current_database()
        """,
    )
    database["judged"] = database["blks_hit"] + database["blks_read"] >= CACHE_MIN_BLOCKS
    tables = _rows(
        cursor,
        """
        SELECT schemaname AS schema,
               relname AS "table",
               heap_blks_hit,
               heap_blks_read,
               round(100.0 * heap_blks_hit / nullif(heap_blks_hit + heap_blks_read, 0), 2) AS hit_ratio_pct
        FROM pg_statio_user_tables
        WHERE heap_blks_hit + heap_blks_read > 0
        ORDER BY heap_blks_hit + heap_blks_read DESC, schemaname, relname
        LIMIT %(limit)s
        """,
        {"limit": limit},
    )
    return {"database": database, "tables": tables, "min_blocks": CACHE_MIN_BLOCKS}


def sessions(cursor, *, limit: int = 10) -> dict:
    """Other sessions of this database inside a query or a transaction, longest first.

    `duration_seconds` is how long the current query has run (active) or how long the
    session has sat idle inside its transaction; `transaction_seconds` is the age of
    the whole transaction.
    """
    rows = _rows(
        cursor,
        """
        SELECT pid,
               usename AS username,
               application_name,
               client_addr::text AS client_addr,
               state,
               round(extract(epoch FROM clock_timestamp()
                     - CASE WHEN state = 'active' THEN query_start ELSE state_change END)::numeric, 3)
                   AS duration_seconds,
               round(extract(epoch FROM clock_timestamp() - xact_start)::numeric, 3) AS transaction_seconds,
               wait_event_type,
               wait_event,
               left(query, %(chars)s) AS query
        FROM pg_stat_activity
        WHERE datname = current_database()
          AND pid <> pg_backend_pid()
          AND backend_type = 'client backend'
          AND state IS NOT NULL AND state <> 'idle'
        ORDER BY duration_seconds DESC NULLS LAST, pid
        """,
        {"chars": QUERY_CHARS},
    )
    idle = [row for row in rows if row["state"].startswith("idle in transaction")]
    active = [row for row in rows if not row["state"].startswith("idle in transaction")]
    return {"active": active[:limit], "idle_in_transaction": idle[:limit]}


def dead_tuples(cursor, *, limit: int = 10) -> list[dict]:
    """Tables with dead rows, worst first among those big enough to judge (`judged`)."""
    return _rows(
        cursor,
        """
        SELECT schemaname AS schema,
               relname AS "table",
               n_live_tup AS live_rows,
               n_dead_tup AS dead_rows,
               round(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 1) AS dead_pct,
               n_live_tup + n_dead_tup >= %(min_rows)s AS judged,
               last_autovacuum,
               last_vacuum
        FROM pg_stat_user_tables
        WHERE n_dead_tup > 0
        ORDER BY judged DESC, dead_pct DESC NULLS FIRST, dead_rows DESC, schemaname, relname
        LIMIT %(limit)s
        """,
        {"limit": limit, "min_rows": DEAD_TUPLE_MIN_ROWS},
    )


def archiving(cursor) -> dict:
    """WAL archiving (point-in-time recovery): on or off, and whether the archiver keeps up or fails.

    `failing`: the newest attempt failed (pg_stat_archiver). While it fails the server
    keeps every WAL file it could not archive, until its disk is full.
    """
    return _one(
        cursor,
        """
        SELECT current_setting('archive_mode') AS archive_mode,
               archived_count, last_archived_wal, last_archived_time,
               failed_count, last_failed_wal, last_failed_time,
               extract(epoch FROM clock_timestamp() - last_archived_time)::float AS last_archived_age_seconds,
               stats_reset,
               current_setting('archive_mode') IN ('on', 'always') AS enabled,
               current_setting('archive_mode') IN ('on', 'always') AND last_failed_time IS NOT NULL
                 AND (last_archived_time IS NULL OR last_failed_time > last_archived_time) AS failing
        FROM pg_stat_archiver
        """,
    )


def backup_freshness(database: str) -> dict:
    """The newest backup of `database` where `manage.py backup` puts them, and its age in hours."""
    try:
        dest = backups.destination()
        listing = backups.list_backups(dest, database)
    except Exception as exc:  # a storage's own errors (S3, a network share) included: reported, not raised
        return {"database": database, "destination": "", "error": _first_line(exc)}
    newest = listing.backups[0] if listing.backups else None
    age = (datetime.datetime.now(datetime.UTC) - newest.taken_at).total_seconds() / 3600 if newest else None
    return {
        "database": database,
        "destination": dest.label,
        "newest": newest.dump_name if newest else None,
        "newest_taken_at": newest.taken_at.isoformat() if newest else None,
        "newest_age_hours": round(age, 2) if age is not None else None,
        "count": len(listing.backups),
    }


def pitr_freshness() -> dict | None:
    """pgBackRest's newest backup in each repository and its age in hours; None where `pitr setup` never ran."""
    try:
        config = pitr.Config.of_settings()
        if not config.path.exists():
            return None
        found, repos = pitr.info(config), config.repos()
    except Exception as exc:  # pgBackRest's own failures, an unreadable repository: reported, not raised
        return {"config": "PITR_CONFIG", "error": _first_line(exc)}
    now = datetime.datetime.now(datetime.UTC)
    section = {"config": str(config.path), "stanza": config.stanza, "repos": {}}
    for repo in repos:
        mine = [backup for backup in found.backups if backup.repo == repo]
        newest = mine[-1] if mine else None
        section["repos"][str(repo)] = {
            "count": len(mine),
            "newest": newest.label if newest else None,
            "newest_kind": newest.kind if newest else None,
            "newest_age_hours": round((now - newest.finished_at).total_seconds() / 3600, 2) if newest else None,
        }
    return section


def pitr_problems(section: dict | None, max_hours: int | None) -> list[str]:
    """A line for each repository whose newest pgBackRest backup is missing or older than `max_hours`."""
    if not section or not max_hours:
        return []
    if section.get("error"):
        return [f"pgBackRest's backups could not be listed: {section['error']}"]
    found = []
    for repo, newest in section["repos"].items():
        if newest["newest"] is None:
            found.append(f"No pgBackRest backup in repository {repo} of stanza {section['stanza']}.")
        elif newest["newest_age_hours"] > max_hours:
            found.append(
                f"The newest pgBackRest backup in repository {repo} ({newest['newest']}) is "
                f"{newest['newest_age_hours']:.0f} hours old, over {max_hours} hours."
            )
    return found


def archive_problem(archive: dict) -> str | None:
    """The line that says WAL archiving is failing (an `archiving()` section), or None."""
    if not archive["failing"]:
        return None
    return (
        f"WAL archiving is failing: {archive['failed_count']} failure(s), the last for "
        f"{archive['last_failed_wal']} at {archive['last_failed_time']} "
        f"(last success: {archive['last_archived_time'] or 'never'}); the server keeps every WAL file "
        "until archiving works again, then its disk fills. See its log for why."
    )


def problems(report: dict, thresholds: dict) -> list[str]:
    """One line per threshold crossed (settings.DBSTATS_THRESHOLDS), worst of each kind first."""
    found = []
    conn = report["connections"]
    if conn["used_pct"] > thresholds["connections_used_pct"]:
        found.append(
            f"Connections: {conn['in_use']} of max_connections {conn['max_connections']} in use "
            f"({conn['used_pct']}%), above {thresholds['connections_used_pct']}%."
        )

    cache = report["cache"]["database"]
    if cache["judged"] and cache["hit_ratio_pct"] < thresholds["cache_hit_ratio_min_pct"]:
        found.append(
            f"Cache hit ratio of database {report['database']['name']} is {cache['hit_ratio_pct']}%, "
            f"below {thresholds['cache_hit_ratio_min_pct']}% ({cache['blks_read']} blocks read from disk)."
        )

    for row in report["sessions"]["active"]:
        if row["duration_seconds"] is not None and row["duration_seconds"] > thresholds["long_running_seconds"]:
            found.append(
                f"Query running for {row['duration_seconds']:.0f} s (pid {row['pid']}, user {row['username']}), "
                f"over {thresholds['long_running_seconds']} s: {shorten(row['query'])}"
            )
    for row in report["sessions"]["idle_in_transaction"]:
        if row["duration_seconds"] is not None and row["duration_seconds"] > thresholds["idle_in_transaction_seconds"]:
            found.append(
                f"Session idle in transaction for {row['duration_seconds']:.0f} s (pid {row['pid']}, "
                f"user {row['username']}), over {thresholds['idle_in_transaction_seconds']} s; "
                f"last query: {shorten(row['query'])}"
            )

    for row in report["dead_tuples"]:
        if not row["judged"]:
            continue
        # a share of all the table's rows: bounded by 100, even when no row is live
        if row["dead_pct"] is not None and row["dead_pct"] > thresholds["dead_tuple_pct"]:
            share = f"{row['dead_pct']}% of all rows"
            found.append(
                f"Table {row['schema']}.{row['table']}: {row['dead_rows']} dead rows ({share}), "
                f"over {thresholds['dead_tuple_pct']}%; last autovacuum {row['last_autovacuum'] or 'never'}."
            )

    if report.get("archiving") and (line := archive_problem(report["archiving"])):
        found.append(line)
    backup = report.get("backups")
    if backup and thresholds.get("backup_age_hours"):
        if backup.get("error"):
            found.append(f"Backups could not be listed: {backup['error']}")
        elif backup["newest_age_hours"] is None:
            found.append(f"No backup of {backup['database']} in {backup['destination']}.")
        elif backup["newest_age_hours"] > thresholds["backup_age_hours"]:
            found.append(
                f"The newest backup of {backup['database']} ({backup['newest']}) is {backup['newest_age_hours']:.0f} "
                f"hours old, over {thresholds['backup_age_hours']} hours."
            )

    found += pitr_problems(report.get("pitr_backups"), thresholds.get("backup_age_hours"))

    for row in report["slow_queries"]["by_mean"]:
        if row["mean_ms"] > thresholds["slow_query_mean_ms"]:
            found.append(
                f"Statement averaging {row['mean_ms']} ms over {row['calls']} calls, "
                f"over {thresholds['slow_query_mean_ms']} ms: {shorten(row['query'])}"
            )
    return found


def shorten(sql: str | None, width: int = 100) -> str:
    """SQL on one line, cut to `width` characters."""
    text = re.sub(r"\s+", " ", sql or "").strip()
    return text if len(text) <= width else text[: width - 1] + "…"


@contextlib.contextmanager
def _savepoint(cursor):
    """Let a statement fail without aborting the caller's transaction, if there is one."""
    conn = cursor.connection
    if conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        yield  # each statement is its own transaction: nothing to protect
        return
    cursor.execute("SAVEPOINT vulhub_dbstats")
    try:
        yield
    except BaseException:
        cursor.execute("ROLLBACK TO SAVEPOINT vulhub_dbstats")
        raise
    finally:
        cursor.execute("RELEASE SAVEPOINT vulhub_dbstats")


def _rows(cursor, sql: str, params: dict | None = None) -> list[dict]:
    cursor.execute(sql, params)
    names = [column.name for column in cursor.description]
    return [{name: _plain(value) for name, value in zip(names, row, strict=True)} for row in cursor.fetchall()]


def _one(cursor, sql: str, params: dict | None = None) -> dict | None:
    rows = _rows(cursor, sql, params)
    return rows[0] if rows else None


def _plain(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return value


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
