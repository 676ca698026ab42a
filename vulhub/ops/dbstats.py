"""What the database is doing: the queries behind `manage.py dbstats`.

Every function takes a DB-API cursor on a psycopg 3 connection (Django's
`connection.cursor()` or a plain `psycopg` cursor) and returns plain data (dicts,
lists, numbers, ISO strings) ready for `json.dumps`. `collect()` gathers every section,
`findings()` compares a collected report with the operator's thresholds and gives each
finding a level, warning or critical; `status()` turns them into the exit code of the
monitoring-plugins convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

Statistics are cumulative since the last `pg_stat_reset()` (see `database.stats_reset`).
Sessions are those of this database; connections are counted server-wide, because
`max_connections` is a server-wide limit.
"""

import contextlib
import dataclasses
import datetime
import ipaddress
import os
import re
import shutil
import socket
import struct
from decimal import Decimal
from pathlib import Path

import psycopg
from django.conf import settings
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

# Transaction and multixact IDs wrap around at this age; PostgreSQL stops assigning new
# ones a few million short of it to protect the data.
XID_LIMIT = 2**31

# Exit codes of the monitoring-plugins convention (Nagios, Icinga, Sensu, cron wrappers).
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
LEVELS = {"warning": WARNING, "critical": CRITICAL}

# Every threshold `findings()` reads, with its default. settings.DBSTATS_THRESHOLDS (env
# variables DBSTATS_*, docs/operations.md) is laid over these: a key it lacks keeps its
# default here. A warning level and its critical level go in pairs.
DEFAULT_THRESHOLDS = {
    # connections in use, % of max_connections (server-wide): above these
    "connections_used_pct": 80,
    "connections_critical_pct": 95,
    # warnings only: they cost speed, not data or availability
    "cache_hit_ratio_min_pct": 95,
    "long_running_seconds": 300,
    "idle_in_transaction_seconds": 60,
    "dead_tuple_pct": 20,
    "slow_query_mean_ms": 500,
    # the newest backup (manage.py backup, and pgBackRest's in each repository): a warning
    # when older than this, critical when older than twice this or missing; 0: not checked
    "backup_age_hours": 0,
    # age(datfrozenxid) and mxid_age(datminmxid) of any database, against XID_LIMIT
    "xid_age_warning": 500_000_000,
    "xid_age_critical": 1_000_000_000,
    # a session of this database waiting for a lock longer than this
    "lock_wait_seconds": 30,
    "lock_wait_critical_seconds": 300,
    # a replica (or this standby) behind in time, and in WAL not yet replayed (or kept by a slot)
    "replication_lag_seconds": 60,
    "replication_lag_critical_seconds": 600,
    "replication_lag_mb": 256,
    "replication_lag_critical_mb": 1024,
    # free space, % of the file system, under the data directory and the backup folders: below these
    "disk_free_min_pct": 15,
    "disk_free_critical_pct": 5,
}
# (warning key, critical key, True when a higher value is worse)
THRESHOLD_PAIRS = [
    ("connections_used_pct", "connections_critical_pct", True),
    ("xid_age_warning", "xid_age_critical", True),
    ("lock_wait_seconds", "lock_wait_critical_seconds", True),
    ("replication_lag_seconds", "replication_lag_critical_seconds", True),
    ("replication_lag_mb", "replication_lag_critical_mb", True),
    ("disk_free_min_pct", "disk_free_critical_pct", False),
]
MB = 1024 * 1024

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
        "wraparound": wraparound(cursor),
        "lock_waits": lock_waits(cursor, limit=limit),
        "replication": replication(cursor),
    }


def database_info(cursor) -> dict:
    return _one(
        cursor,
        """
        SELECT current_database() AS name,
               current_setting('server_version') AS server_version,
               pg_database_size(current_database()) AS size_bytes,
               (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset,
               clock_timestamp() AS collected_at,
               -- hidden (NULL) from a role without pg_read_all_settings
               (SELECT setting FROM pg_settings WHERE name = 'data_directory') AS data_directory,
               (SELECT system_identifier FROM pg_control_system())::text AS system_identifier,
               host(inet_server_addr()) AS server_address,
               pg_is_in_recovery() AS in_recovery
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


def wraparound(cursor) -> dict:
    """How far each database of the server is from transaction-ID (and multixact-ID) wraparound.

    Autovacuum freezes a database's old rows once its age passes autovacuum_freeze_max_age;
    `holding_back` is the age of the oldest things that keep it from doing so (a session's
    snapshot, a prepared transaction, a replication slot).
    """
    section = _one(
        cursor,
        """
        SELECT current_setting('autovacuum_freeze_max_age')::bigint AS autovacuum_freeze_max_age,
               current_setting('autovacuum_multixact_freeze_max_age')::bigint
                   AS autovacuum_multixact_freeze_max_age,
               current_setting('autovacuum') = 'on' AS autovacuum
        """,
    )
    section["limit"] = XID_LIMIT
    section["databases"] = _rows(
        cursor,
        """
        SELECT datname AS name,
               datallowconn AS allows_connections,
               age(datfrozenxid) AS xid_age,
               mxid_age(datminmxid) AS mxid_age
        FROM pg_database
        ORDER BY greatest(age(datfrozenxid), mxid_age(datminmxid)) DESC, datname
        """,
    )
    section["holding_back"] = _one(
        cursor,
        """
        SELECT (SELECT max(age(backend_xmin)) FROM pg_stat_activity) AS oldest_session_xmin_age,
               (SELECT max(age(transaction)) FROM pg_prepared_xacts) AS oldest_prepared_transaction_age,
               (SELECT max(greatest(age(xmin), age(catalog_xmin))) FROM pg_replication_slots)
                   AS oldest_replication_slot_age
        """,
    )
    return section


def lock_waits(cursor, *, limit: int = 10) -> list[dict]:
    """Sessions of this database waiting for a lock, longest first, with the sessions that block them.

    `waiting_seconds` comes from pg_locks.waitstart, which PostgreSQL fills in a moment
    after the wait began (None until then).
    """
    rows = _rows(
        cursor,
        """
        SELECT a.pid,
               a.usename AS username,
               a.application_name,
               round(extract(epoch FROM clock_timestamp() - l.waitstart)::numeric, 3) AS waiting_seconds,
               l.locktype,
               l.mode,
               CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
               pg_blocking_pids(a.pid) AS blocking_pids,
               left(a.query, %(chars)s) AS query
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE NOT l.granted
          AND a.datname = current_database()
          AND a.pid <> pg_backend_pid()
        ORDER BY waiting_seconds DESC NULLS LAST, a.pid
        LIMIT %(limit)s
        """,
        {"chars": QUERY_CHARS, "limit": limit},
    )
    blockers = sorted({pid for row in rows for pid in row["blocking_pids"]})
    found = {
        row["pid"]: row
        for row in _rows(
            cursor,
            """
            SELECT pid,
                   usename AS username,
                   application_name,
                   state,
                   round(extract(epoch FROM clock_timestamp() - xact_start)::numeric, 3) AS transaction_seconds,
                   left(query, %(chars)s) AS query
            FROM pg_stat_activity
            WHERE pid = ANY(%(pids)s)
            """,
            {"chars": QUERY_CHARS, "pids": blockers},
        )
    }
    for row in rows:
        # a blocker that just ended, or a prepared transaction (pid 0), has no session to show
        row["blockers"] = [found.get(pid, {"pid": pid}) for pid in row["blocking_pids"]]
    return rows


def replication(cursor) -> dict:
    """Streaming replicas of this server (a primary's view) and its replication slots; on a standby, its delay.

    `replay_lag_bytes` is WAL a replica has not replayed yet. PostgreSQL's `replay_lag`
    is a time, but it stops moving while a replica's replay is stuck, so both are judged.
    On a standby, `delay_seconds` is how old the last replayed commit is while WAL waits
    to be replayed (0 when all received WAL is replayed).
    """
    section = _one(cursor, "SELECT pg_is_in_recovery() AS in_recovery")
    section["role"] = "standby" if section["in_recovery"] else "primary"
    here = "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END"
    section["replicas"] = _rows(
        cursor,
        f"""
        SELECT pid,
               usename AS username,
               application_name,
               client_addr::text AS client_addr,
               state,
               sync_state,
               round(extract(epoch FROM replay_lag)::numeric, 3) AS replay_lag_seconds,
               pg_wal_lsn_diff({here}, replay_lsn)::bigint AS replay_lag_bytes,
               reply_time
        FROM pg_stat_replication
        ORDER BY replay_lag_bytes DESC NULLS FIRST, pid
        """,  # noqa: S608 (our own SQL)
    )
    section["slots"] = _rows(
        cursor,
        f"""
        SELECT slot_name,
               slot_type,
               database,
               active,
               active_pid,
               wal_status,
               pg_wal_lsn_diff({here}, restart_lsn)::bigint AS retained_bytes
        FROM pg_replication_slots
        ORDER BY retained_bytes DESC NULLS LAST, slot_name
        """,  # noqa: S608 (our own SQL)
    )
    section["standby"] = None
    if section["in_recovery"]:
        section["standby"] = _one(
            cursor,
            """
            SELECT pg_is_wal_replay_paused() AS replay_paused,
                   pg_last_xact_replay_timestamp() AS last_replayed_commit_at,
                   pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS behind_bytes,
                   CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                        ELSE round(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::numeric, 3)
                   END AS delay_seconds,
                   (SELECT status FROM pg_stat_wal_receiver) AS receiver_status,
                   (SELECT sender_host FROM pg_stat_wal_receiver) AS sender_host
            """,
        )
    section["note"] = "" if section["replicas"] or section["slots"] or section["standby"] else "no replicas"
    return section


def disk_space(database: dict) -> dict:
    """Free space under the data directory (when this machine sees it) and the local backup folders.

    `database` is a `database_info()` section. The data directory counts only when the
    server runs on this machine (a Unix socket, a loopback or local address) and the
    folder here is that server's (the system identifier in its pg_control, when readable).
    """
    folders, not_checked = [], []

    def add(what, path, shown=None):
        try:
            usage = shutil.disk_usage(path)
            device = os.stat(path).st_dev
        except OSError as exc:
            not_checked.append({"what": what, "path": str(shown or path), "reason": _first_line(exc)})
            return
        room = usage.used + usage.free  # as df counts it: what is left to an ordinary user
        folders.append(
            {
                "what": what,
                "path": str(shown or path),
                "measured_at": str(path),
                "total_bytes": usage.total,
                "free_bytes": usage.free,
                "free_pct": round(100.0 * usage.free / room, 1) if room else 0.0,
                "device": device,
            }
        )

    reason = _data_directory_hidden(database)
    if reason:
        not_checked.append({"what": "data directory", "path": database.get("data_directory") or "", "reason": reason})
    else:
        data = Path(database["data_directory"])
        add("data directory", data)
        wal = data / "pg_wal"
        with contextlib.suppress(OSError):  # unreadable to this account: the data directory's disk stands for it
            if wal.resolve() != wal and os.stat(wal.resolve()).st_dev != os.stat(data).st_dev:
                add("WAL directory", wal.resolve())

    if not settings.BACKUP_STORAGE:
        backup_dir = Path(settings.BACKUP_DIR).absolute()
        # not made yet (no backup so far): the disk it will be made on
        existing = next((p for p in (backup_dir, *backup_dir.parents) if p.exists()), backup_dir)
        add("backups (manage.py backup)", existing, shown=backup_dir)
    pitr_dir = Path(settings.PITR_DIR).absolute()
    if pitr_dir.exists():
        add("backups (pgBackRest repository 1)", pitr_dir)
    return {"folders": folders, "not_checked": not_checked}


def _data_directory_hidden(database: dict) -> str:
    """Why the data directory's disk cannot be measured from here, or "" when it can."""
    path = database.get("data_directory")
    if not path:
        return "this role may not read data_directory (grant it pg_read_all_settings or pg_monitor)"
    address = database.get("server_address")
    if address and not _is_local_address(address):
        return f"the server runs on another host ({address}): measure its disk there"
    if not Path(path).is_dir():
        return f"{path} is not visible on this machine (the server runs in a container or on another host)"
    try:
        with open(Path(path) / "global" / "pg_control", "rb") as control:
            identifier = struct.unpack("=Q", control.read(8))[0]  # the first field of pg_control
    except (OSError, struct.error):
        return ""  # not ours to read (the server's own account): the local path stands
    if database.get("system_identifier") and str(identifier) != database["system_identifier"]:
        return f"{path} on this machine belongs to another PostgreSQL cluster than the server's"
    return ""


def _is_local_address(address: str) -> bool:
    """Whether `address` (the server's end of the connection) belongs to this machine."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))  # only an address of one of this machine's interfaces binds
    except OSError:
        return False
    return True


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


def pitr_freshness(timeout: float | None = None) -> dict | None:
    """pgBackRest's newest backup in each repository and its age in hours; None where `pitr setup` never ran.

    `timeout`: seconds `pgbackrest info` may take (an error past them).
    """
    try:
        config = pitr.Config.of_settings()
        if not config.path.exists():
            return None
        found, repos = pitr.info(config, timeout=timeout), config.repos()
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


@dataclasses.dataclass(frozen=True)
class Finding:
    """A threshold crossed: its level ("warning" or "critical"), which check, and one line saying it."""

    level: str
    check: str
    message: str


class ThresholdError(ValueError):
    """DBSTATS_THRESHOLDS makes no sense; the message says which key and why."""


def thresholds_of(configured: dict) -> dict:
    """DEFAULT_THRESHOLDS with `configured` (settings.DBSTATS_THRESHOLDS) over them, checked.

    Raises ThresholdError for an unknown key, a value that is not a number of 0 or more,
    or a critical level milder than its warning level.
    """
    unknown = sorted(set(configured) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise ThresholdError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_THRESHOLDS)})")
    merged = {**DEFAULT_THRESHOLDS, **configured}
    for key, value in merged.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ThresholdError(f"{key} must be a number of 0 or more, not {value!r}")
    for warning, critical, higher_is_worse in THRESHOLD_PAIRS:
        if higher_is_worse and merged[critical] < merged[warning]:
            raise ThresholdError(
                f"{critical} ({merged[critical]}) is below its warning level {warning} ({merged[warning]})"
            )
        if not higher_is_worse and merged[critical] > merged[warning]:
            raise ThresholdError(
                f"{critical} ({merged[critical]}) is above its warning level {warning} ({merged[warning]})"
            )
    return merged


def status(findings: list[Finding]) -> int:
    """The exit code: the worst level found, OK when none."""
    return max((LEVELS[finding.level] for finding in findings), default=OK)


def pitr_problems(section: dict | None, max_hours: int | None) -> list[Finding]:
    """Each repository whose newest pgBackRest backup is missing (critical) or older than `max_hours` (2x: critical)."""
    if not section or not max_hours:
        return []
    if section.get("error"):
        return [Finding("critical", "backups", f"pgBackRest's backups could not be listed: {section['error']}")]
    found = []
    for repo, newest in section["repos"].items():
        if newest["newest"] is None:
            found.append(
                Finding(
                    "critical", "backups", f"No pgBackRest backup in repository {repo} of stanza {section['stanza']}."
                )
            )
        elif newest["newest_age_hours"] > max_hours:
            found.append(
                Finding(
                    _level(newest["newest_age_hours"], max_hours, 2 * max_hours),
                    "backups",
                    f"The newest pgBackRest backup in repository {repo} ({newest['newest']}) is "
                    f"{newest['newest_age_hours']:.0f} hours old, over {max_hours} hours.",
                )
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
    """The message of each finding (see `findings()`), critical ones first."""
    return [finding.message for finding in findings(report, thresholds)]


def findings(report: dict, thresholds: dict) -> list[Finding]:
    """Each threshold crossed, critical ones first, then the worst of each kind first.

    `thresholds` is laid over DEFAULT_THRESHOLDS (`thresholds_of()`). Sections the report
    lacks (a report of `collect()` alone has no backups or disk) are not judged.
    """
    limits = thresholds_of(thresholds)
    found = [
        *_connection_findings(report, limits),
        *_performance_findings(report, limits),
        *_wraparound_findings(report.get("wraparound"), limits),
        *_lock_findings(report.get("lock_waits") or [], limits),
        *_replication_findings(report.get("replication"), limits),
    ]
    if report.get("archiving") and (line := archive_problem(report["archiving"])):
        found.append(Finding("critical", "archiving", line))
    found += _backup_findings(report.get("backups"), limits["backup_age_hours"])
    found += pitr_problems(report.get("pitr_backups"), limits["backup_age_hours"])
    found += _disk_findings(report.get("disk"), limits)
    # stable: within a level, in the order of the checks above
    return sorted(found, key=lambda finding: -LEVELS[finding.level])


def _level(value, warning, critical, *, higher_is_worse: bool = True) -> str | None:
    """ "critical", "warning" or None for `value` against a warning and a critical threshold."""
    if value is None:
        return None
    if (value > critical) if higher_is_worse else (value < critical):
        return "critical"
    if (value > warning) if higher_is_worse else (value < warning):
        return "warning"
    return None


def _connection_findings(report, limits):
    conn = report["connections"]
    level = _level(conn["used_pct"], limits["connections_used_pct"], limits["connections_critical_pct"])
    if not level:
        return []
    over = limits["connections_critical_pct" if level == "critical" else "connections_used_pct"]
    return [
        Finding(
            level,
            "connections",
            f"Connections: {conn['in_use']} of max_connections {conn['max_connections']} in use "
            f"({conn['used_pct']}%), above {over}%.",
        )
    ]


def _performance_findings(report, limits):
    """The checks that cost speed, not data: warnings."""
    found = []
    cache = report["cache"]["database"]
    if cache["judged"] and cache["hit_ratio_pct"] < limits["cache_hit_ratio_min_pct"]:
        found.append(
            f"Cache hit ratio of database {report['database']['name']} is {cache['hit_ratio_pct']}%, "
            f"below {limits['cache_hit_ratio_min_pct']}% ({cache['blks_read']} blocks read from disk)."
        )
    for row in report["sessions"]["active"]:
        if row["duration_seconds"] is not None and row["duration_seconds"] > limits["long_running_seconds"]:
            found.append(
                f"Query running for {row['duration_seconds']:.0f} s (pid {row['pid']}, user {row['username']}), "
                f"over {limits['long_running_seconds']} s: {shorten(row['query'])}"
            )
    for row in report["sessions"]["idle_in_transaction"]:
        if row["duration_seconds"] is not None and row["duration_seconds"] > limits["idle_in_transaction_seconds"]:
            found.append(
                f"Session idle in transaction for {row['duration_seconds']:.0f} s (pid {row['pid']}, "
                f"user {row['username']}), over {limits['idle_in_transaction_seconds']} s; "
                f"last query: {shorten(row['query'])}"
            )
    for row in report["dead_tuples"]:
        # a share of all the table's rows: bounded by 100, even when no row is live
        if row["judged"] and row["dead_pct"] is not None and row["dead_pct"] > limits["dead_tuple_pct"]:
            found.append(
                f"Table {row['schema']}.{row['table']}: {row['dead_rows']} dead rows ({row['dead_pct']}% of all rows), "
                f"over {limits['dead_tuple_pct']}%; last autovacuum {row['last_autovacuum'] or 'never'}."
            )
    for row in report["slow_queries"]["by_mean"]:
        if row["mean_ms"] > limits["slow_query_mean_ms"]:
            found.append(
                f"Statement averaging {row['mean_ms']} ms over {row['calls']} calls, "
                f"over {limits['slow_query_mean_ms']} ms: {shorten(row['query'])}"
            )
    return [Finding("warning", "performance", line) for line in found]


def _wraparound_findings(section, limits):
    if not section:
        return []
    found = []
    for row in section["databases"]:
        for kind, key, setting in (
            ("Transaction IDs", "xid_age", "autovacuum_freeze_max_age"),
            ("Multixact IDs", "mxid_age", "autovacuum_multixact_freeze_max_age"),
        ):
            age = row[key]
            level = _level(age, limits["xid_age_warning"], limits["xid_age_critical"])
            if not level:
                continue
            over = limits["xid_age_critical" if level == "critical" else "xid_age_warning"]
            freeze_at = section[setting]
            why = (
                f"past {setting} ({freeze_at:,}), so autovacuum should be freezing it: "
                f"see what holds it back ({_holding_back(section['holding_back'])}) and VACUUM (FREEZE) it"
                if age > freeze_at
                else f"still under {setting} ({freeze_at:,}): autovacuum has not been asked to freeze it yet"
            )
            found.append(
                Finding(
                    level,
                    "wraparound",
                    f"{kind} of database {row['name']} are {age:,} old ({100.0 * age / XID_LIMIT:.0f}% of the "
                    f"2^31 wraparound limit), over {over:,}; {why}.",
                )
            )
    return found


def _holding_back(holding: dict) -> str:
    parts = [
        f"{what} {holding[key]:,}"
        for key, what in (
            ("oldest_session_xmin_age", "oldest session snapshot"),
            ("oldest_prepared_transaction_age", "oldest prepared transaction"),
            ("oldest_replication_slot_age", "oldest replication slot"),
        )
        if holding.get(key) is not None
    ]
    return ", ".join(parts) or "no old session, prepared transaction or slot now"


def _lock_findings(rows, limits):
    found = []
    for row in rows:
        level = _level(row["waiting_seconds"], limits["lock_wait_seconds"], limits["lock_wait_critical_seconds"])
        if not level:
            continue
        over = limits["lock_wait_critical_seconds" if level == "critical" else "lock_wait_seconds"]
        target = f"{row['mode']} on {row['relation'] or row['locktype']}"
        blockers = "; ".join(_blocker(blocker) for blocker in row["blockers"]) or "no session (it just ended)"
        found.append(
            Finding(
                level,
                "locks",
                f"Session waiting {row['waiting_seconds']:.0f} s for a lock ({target}; pid {row['pid']}, "
                f"user {row['username']}), over {over} s, blocked by {blockers}: {shorten(row['query'])}",
            )
        )
    return found


def _blocker(blocker: dict) -> str:
    if "state" not in blocker:
        return f"pid {blocker['pid']}" + (" (a prepared transaction)" if blocker["pid"] == 0 else "")
    return f"pid {blocker['pid']} ({blocker['state']}, user {blocker['username']}: {shorten(blocker['query'], 60)})"


def _replication_findings(section, limits):
    if not section:
        return []
    found = []
    for row in section["replicas"]:
        name = f"Replica {row['application_name'] or row['pid']} ({row['client_addr'] or 'local'})"
        found += _lag_findings(name, row["replay_lag_seconds"], row["replay_lag_bytes"], limits)
    for slot in section["slots"]:
        if slot["wal_status"] == "lost":
            found.append(
                Finding(
                    "critical",
                    "replication",
                    f"Replication slot {slot['slot_name']} lost WAL its replica still needed: rebuild that replica "
                    "(or drop the slot).",
                )
            )
            continue
        retained = slot["retained_bytes"]
        level = _level(retained, limits["replication_lag_mb"] * MB, limits["replication_lag_critical_mb"] * MB)
        if not slot["active"] or level:
            found.append(
                Finding(
                    level or "warning",
                    "replication",
                    f"Replication slot {slot['slot_name']} ({slot['slot_type']}, "
                    f"{'active' if slot['active'] else 'inactive: no replica is using it'}) keeps "
                    f"{_mb(retained)} of WAL on the server; drop it if its replica is gone "
                    f"(SELECT pg_drop_replication_slot('{slot['slot_name']}')).",
                )
            )
    standby = section.get("standby")
    if standby:
        if standby["receiver_status"] != "streaming":
            found.append(
                Finding(
                    "warning",
                    "replication",
                    f"This standby receives no WAL stream from its primary (WAL receiver: "
                    f"{standby['receiver_status'] or 'none'}); its lag cannot be judged.",
                )
            )
        found += _lag_findings("This standby", standby["delay_seconds"], standby["behind_bytes"], limits)
        if standby["replay_paused"]:
            found.append(
                Finding("warning", "replication", "This standby's replay is paused (SELECT pg_wal_replay_resume()).")
            )
    return found


def _lag_findings(name, seconds, lag_bytes, limits):
    by_time = _level(seconds, limits["replication_lag_seconds"], limits["replication_lag_critical_seconds"])
    by_size = _level(lag_bytes, limits["replication_lag_mb"] * MB, limits["replication_lag_critical_mb"] * MB)
    if not (by_time or by_size):
        return []
    crossed = []
    if by_time:
        over = limits["replication_lag_critical_seconds" if by_time == "critical" else "replication_lag_seconds"]
        crossed.append(f"{seconds:.1f} s behind in replay, over {over} s")
    if by_size:
        over = limits["replication_lag_critical_mb" if by_size == "critical" else "replication_lag_mb"]
        crossed.append(f"{_mb(lag_bytes)} of WAL not replayed yet, over {over} MB")
    level = "critical" if "critical" in (by_time, by_size) else "warning"
    return [Finding(level, "replication", f"{name} is {' and '.join(crossed)}.")]


def _backup_findings(backup, max_hours):
    if not backup or not max_hours:
        return []
    if backup.get("error"):
        return [Finding("critical", "backups", f"Backups could not be listed: {backup['error']}")]
    if backup["newest_age_hours"] is None:
        return [Finding("critical", "backups", f"No backup of {backup['database']} in {backup['destination']}.")]
    level = _level(backup["newest_age_hours"], max_hours, 2 * max_hours)
    if not level:
        return []
    return [
        Finding(
            level,
            "backups",
            f"The newest backup of {backup['database']} ({backup['newest']}) is {backup['newest_age_hours']:.0f} "
            f"hours old, over {max_hours if level == 'warning' else 2 * max_hours} hours.",
        )
    ]


def _disk_findings(section, limits):
    if not section:
        return []
    by_device: dict[int, list[dict]] = {}
    for folder in section["folders"]:
        by_device.setdefault(folder["device"], []).append(folder)
    found = []
    for folders in by_device.values():  # one finding per file system, naming every folder on it
        first = folders[0]
        level = _level(
            first["free_pct"], limits["disk_free_min_pct"], limits["disk_free_critical_pct"], higher_is_worse=False
        )
        if not level:
            continue
        under = limits["disk_free_critical_pct" if level == "critical" else "disk_free_min_pct"]
        names = " and ".join(f"{folder['what']} {folder['path']}" for folder in folders)
        found.append(
            Finding(
                level,
                "disk",
                f"Disk of the {names}: {first['free_pct']}% free ({_gb(first['free_bytes'])} of "
                f"{_gb(first['total_bytes'])}), under {under}%.",
            )
        )
    return found


def _mb(n: int | None) -> str:
    return "an unknown amount" if n is None else f"{n / MB:,.1f} MB"


def _gb(n: int) -> str:
    return f"{n / 1024**3:,.1f} GB"


def perfdata(report: dict, thresholds: dict) -> str:
    """Performance data for a monitor's graphs ('label'=value[unit];warn;crit;min;max), the worst of each kind."""
    limits = thresholds_of(thresholds)
    items = []

    def add(label, value, unit, warning="", critical="", low="", high=""):
        if value is not None:
            number = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
            items.append(f"{label}={number}{unit};{warning};{critical};{low};{high}")

    conn = report["connections"]
    add(
        "connections", conn["used_pct"], "%", limits["connections_used_pct"], limits["connections_critical_pct"], 0, 100
    )
    wrap = report.get("wraparound")
    if wrap:
        for key in ("xid_age", "mxid_age"):
            add(key, max(row[key] for row in wrap["databases"]), "", limits["xid_age_warning"],
                limits["xid_age_critical"], 0, XID_LIMIT)  # fmt: skip
    if "lock_waits" in report:
        longest = max((row["waiting_seconds"] or 0.0 for row in report["lock_waits"]), default=0.0)
        add("lock_wait", float(longest), "s", limits["lock_wait_seconds"], limits["lock_wait_critical_seconds"], 0)
    repl = report.get("replication")
    if repl:
        lags = [row["replay_lag_bytes"] for row in repl["replicas"] if row["replay_lag_bytes"] is not None]
        if repl["standby"] and repl["standby"]["behind_bytes"] is not None:
            lags.append(repl["standby"]["behind_bytes"])
        if lags:
            add("replication_lag", max(lags), "B", limits["replication_lag_mb"] * MB,
                limits["replication_lag_critical_mb"] * MB, 0)  # fmt: skip
    backup = report.get("backups")
    if backup and backup.get("newest_age_hours") is not None:
        hours = limits["backup_age_hours"]
        add("backup_age", round(backup["newest_age_hours"] * 3600), "s", hours * 3600 or "", hours * 7200 or "", 0)
    disk = report.get("disk")
    if disk and disk["folders"]:
        add("disk_free", min(folder["free_pct"] for folder in disk["folders"]), "%",
            f"{limits['disk_free_min_pct']}:", f"{limits['disk_free_critical_pct']}:", 0, 100)  # fmt: skip
    return " ".join(items)


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
