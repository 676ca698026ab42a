import argparse
import contextlib
import dataclasses
import json
import re
import sys

from django.conf import settings
from django.core.mail import get_connection, mail_admins
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connections

from vulhub.ops import dbstats
from vulhub.ops.db_roles import use_role

# A cell that reads as a number (count, size, percentage): aligned on the right.
NUMBER = re.compile(r"^(-|-?[\d,]+(\.\d+)?( ?(B|kB|MB|GB|TB|%))?)$")
# A statistics query that waits longer than this for a table's lock (a migration holding
# one) fails instead of hanging the check: the check then says UNKNOWN, not nothing.
LOCK_TIMEOUT = "10s"


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value!r}")
    return int(value)


class Unreachable(Exception):
    """The database could not be reached (refused, wrong password, timeout, lost): critical."""


class Command(BaseCommand):
    help = (
        "Report on the health of the database of the default connection: connections in use, "
        "slow queries (pg_stat_statements), table and index sizes, unused indexes and tables read "
        "by sequential scans, cache hit ratio, long-running queries and sessions idle in "
        "transaction, dead tuples, WAL archiving, transaction-ID wraparound, lock waits, "
        "replication, the newest backups, free disk space. Read-only. With --check, a monitoring "
        "check: compare with DBSTATS_THRESHOLDS, print a status line and one line per finding, "
        "mail them to ADMINS, and exit 0 OK, 1 WARNING, 2 CRITICAL (the database unreachable too) "
        "or 3 UNKNOWN (the check could not judge)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        """A usage error (a mistyped option in a monitor's command line) exits 3, UNKNOWN, not argparse's 2."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        django_error = parser.error

        def error(message):
            if not parser.called_from_command_line:
                django_error(message)  # call_command(): a CommandError, as for every command
            parser.print_usage(sys.stderr)
            parser.exit(dbstats.UNKNOWN, f"DBSTATS UNKNOWN - {parser.prog}: {message}\n")

        parser.error = error
        return parser

    def add_arguments(self, parser):
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print one JSON document with the same data instead of the text report.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help=(
                "Only compare with settings.DBSTATS_THRESHOLDS, for cron or a Nagios/Icinga check: print "
                '"DBSTATS <STATUS> - ..." and a line per finding ("CRITICAL ...", "WARNING ...") or "OK ...", '
                "mail a non-OK result to ADMINS, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. With --json, "
                'the full document gains a "check" key.'
            ),
        )
        parser.add_argument(
            "--limit",
            type=_positive_int,
            default=10,
            metavar="N",
            help="Rows per list (slowest statements, largest tables, dead tuples, ...). Default: 10.",
        )

    def handle(self, *args, **options):
        as_json, check = options["json"], options["check"]
        name = connections["default"].settings_dict.get("NAME") or "?"
        try:
            report, outcome = self._run(check=check, limit=options["limit"])
        except dbstats.ThresholdError as exc:
            report, outcome = {"database": {"name": name}}, _failed(dbstats.UNKNOWN, f"DBSTATS_THRESHOLDS: {exc}")
        except Unreachable as exc:
            report = {"database": {"name": name, "reachable": False, "error": str(exc)}}
            outcome = _failed(dbstats.CRITICAL, f"database {name} unreachable: {exc}", check="database")
        except Exception as exc:  # a permission, a bug: the check cannot judge, and says so in one line
            if options.get("traceback"):
                raise
            report = {"database": {"name": name}}
            outcome = _failed(
                dbstats.UNKNOWN, f"the check could not judge database {name}: {type(exc).__name__}: {_one_line(exc)}"
            )

        if outcome is None:  # a person's report, read in full: no verdict
            if as_json:
                self.stdout.write(_json_dumps(report))
            else:
                self._write_report(report)
            return
        if check and outcome["exit_code"] != dbstats.OK:
            outcome["mail"] = self._mail_admins(report, outcome)
        if as_json:
            self.stdout.write(_json_dumps({**report, "check": outcome}))
        else:
            self._write_check(report, outcome)
        if outcome["mail"]:
            self.stderr.write(outcome["mail"])  # stdout stays the monitor's
        if outcome["exit_code"] != dbstats.OK:
            raise SystemExit(outcome["exit_code"])

    def _run(self, *, check: bool, limit: int) -> tuple[dict, dict | None]:
        """The report, and with `check` the verdict on it."""
        thresholds = dbstats.thresholds_of(settings.DBSTATS_THRESHOLDS) if check else {}
        # server settings and every session's statistics: the owner's view, not the app's
        with _without_pool(), use_role("owner"):
            report = self._collect(limit)
        report["backups"] = dbstats.backup_freshness(report["database"]["name"])
        report["pitr_backups"] = dbstats.pitr_freshness()
        report["disk"] = dbstats.disk_space(report["database"])
        if not check:
            return report, None
        return report, self._outcome(report, dbstats.findings(report, thresholds), thresholds)

    def _collect(self, limit):
        connection = connections["default"]
        try:
            connection.ensure_connection()
        except DatabaseError as exc:  # refused, wrong password, timeout, the embedded server not starting
            raise Unreachable(_one_line(exc)) from exc
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [LOCK_TIMEOUT])
                try:
                    return dbstats.collect(cursor, limit=limit)
                finally:
                    cursor.execute("RESET lock_timeout")
        except DatabaseError as exc:
            if _lost(connection):
                raise Unreachable(f"lost the connection: {_one_line(exc)}") from exc
            raise

    def _outcome(self, report, found, thresholds) -> dict:
        code = dbstats.status(found)
        database = report["database"]["name"]
        counts = [f"{n} {level}" for level in ("critical", "warning") if (n := sum(f.level == level for f in found))]
        summary = ", ".join(counts) if found else f"database {database}: all within DBSTATS_THRESHOLDS"
        perf = dbstats.perfdata(report, thresholds)
        return {
            "status": dbstats.STATUS_NAMES[code],
            "exit_code": code,
            "ok": code == dbstats.OK,
            "summary": f"DBSTATS {dbstats.STATUS_NAMES[code]} - {summary}",
            "perfdata": perf,
            "findings": [dataclasses.asdict(finding) for finding in found],
            "problems": [finding.message for finding in found],
            "not_checked": _not_checked(report),
            "thresholds": thresholds,
            "mail": None,
        }

    def _write_check(self, report, outcome):
        status_line = outcome["summary"] + (f" | {outcome['perfdata']}" if outcome.get("perfdata") else "")
        style = {0: self.style.SUCCESS, 1: self.style.WARNING}.get(outcome["exit_code"], self.style.ERROR)
        self.stdout.write(style(status_line))
        if outcome.get("error"):  # unreachable or unknown: that one line says it
            return
        if not outcome["findings"]:
            database = report["database"]["name"]
            self.stdout.write(self.style.SUCCESS(f"OK Database {database}: all within DBSTATS_THRESHOLDS."))
        for finding in outcome["findings"]:
            level_style = self.style.ERROR if finding["level"] == "critical" else self.style.WARNING
            self.stdout.write(level_style(f"{finding['level'].upper()} {finding['message']}"))
        for line in outcome["not_checked"]:
            self.stdout.write(f"Not checked: {line}")

    def _mail_admins(self, report, outcome) -> str:
        if not settings.ADMINS:
            return "ADMINS is empty, no mail sent."
        database = report["database"]["name"]
        lines = [f"- {f['level'].upper()} {f['message']}" for f in outcome.get("findings", [])]
        body = "\n".join(
            [
                f"manage.py dbstats --check on database {database} at "
                f"{report['database'].get('collected_at') or 'the time of this mail'}:",
                "",
                outcome["summary"],
                *lines,
                "",
                f"Thresholds (DBSTATS_THRESHOLDS): {_json_dumps(outcome.get('thresholds') or {}, indent=None)}",
                "Run `manage.py dbstats` for the full report; docs/operations.md (Database health) says what to do.",
            ]
        )
        try:
            mail = get_connection()
            if getattr(mail, "stream", None) is sys.stdout:  # the console backend: stdout is the monitor's
                mail.stream = sys.stderr
            mail_admins(outcome["summary"].replace("DBSTATS", "dbstats:", 1), body, connection=mail)
        except Exception as exc:  # a mail server down or misconfigured: the check's verdict stands
            return f"Mailing ADMINS failed: {type(exc).__name__}: {_one_line(exc)}"
        return f"Mailed to {len(settings.ADMINS)} admin(s)."

    def _write_report(self, report):
        db = report["database"]
        self._heading(f"Database {db['name']}")
        self.stdout.write(
            f"PostgreSQL {db['server_version']}, {_size(db['size_bytes'])}, "
            f"statistics since {db['stats_reset'] or 'the server started'}, collected {db['collected_at']}"
        )

        conn = report["connections"]
        self._heading("Connections")
        self.stdout.write(
            f"{conn['in_use']} of max_connections {conn['max_connections']} in use ({conn['used_pct']}%), "
            f"{conn['this_database']} on this database, {conn['superuser_reserved']} reserved for superusers"
        )
        self._table(["state", "count"], list(conn["by_state"].items()))

        slow = report["slow_queries"]
        self._heading("Slow statements (pg_stat_statements)")
        if slow["status"] != "available":
            self.stdout.write(self.style.WARNING(slow["note"]))
        else:
            for key, title in (("by_mean", "by mean time"), ("by_total", "by total time")):
                self.stdout.write(title)
                self._table(
                    ["mean ms", "total ms", "calls", "rows", "query"],
                    [
                        (r["mean_ms"], r["total_ms"], r["calls"], r["rows"], dbstats.shorten(r["query"], 80))
                        for r in slow[key]
                    ],
                )

        self._heading("Table sizes (largest first)")
        self._table(
            ["table", "total", "table data", "indexes", "rows (est.)"],
            [
                (
                    _name(r),
                    _size(r["total_bytes"]),
                    _size(r["table_bytes"]),
                    _size(r["index_bytes"]),
                    r["rows_estimate"],
                )
                for r in report["table_sizes"]
            ],
        )

        usage = report["index_usage"]
        self._heading("Unused indexes (never scanned)")
        self._table(
            ["index", "table", "size"], [(r["index"], _name(r), _size(r["size_bytes"])) for r in usage["unused"]]
        )
        self.stdout.write("Never scanned, but enforcing a primary key, unique or exclusion rule (keep):")
        self._table(
            ["index", "table", "size"],
            [(r["index"], _name(r), _size(r["size_bytes"])) for r in usage["unused_enforcing"]],
        )
        self._heading(f"Tables read mostly by sequential scans (from {_size(usage['seq_scan_min_bytes'])})")
        self._table(
            ["table", "seq scans", "index scans", "rows read by seq scans", "live rows", "size"],
            [
                (_name(r), r["seq_scan"], r["idx_scan"], r["seq_tup_read"], r["live_rows"], _size(r["table_bytes"]))
                for r in usage["seq_scan_heavy"]
            ],
        )

        cache = report["cache"]
        self._heading("Cache hit ratio")
        whole = cache["database"]
        verdict = "" if whole["judged"] else f" (fewer than {cache['min_blocks']} block accesses: too early to judge)"
        self.stdout.write(
            f"database: {_pct(whole['hit_ratio_pct'])} "
            f"({_cell(whole['blks_hit'])} blocks from memory, {_cell(whole['blks_read'])} from disk){verdict}"
        )
        self._table(
            ["table", "heap hit ratio", "from memory", "from disk"],
            [(_name(r), _pct(r["hit_ratio_pct"]), r["heap_blks_hit"], r["heap_blks_read"]) for r in cache["tables"]],
        )

        for key, title in (("active", "Running queries"), ("idle_in_transaction", "Sessions idle in transaction")):
            self._heading(f"{title} (longest first)")
            self._table(
                ["pid", "user", "application", "state", "duration s", "transaction s", "query"],
                [
                    (
                        str(r["pid"]),
                        r["username"],
                        r["application_name"],
                        r["state"],
                        r["duration_seconds"],
                        r["transaction_seconds"],
                        dbstats.shorten(r["query"], 60),
                    )
                    for r in report["sessions"][key]
                ],
            )

        self._heading(f"Dead tuples (judged from {dbstats.DEAD_TUPLE_MIN_ROWS} rows)")
        self._table(
            ["table", "dead rows", "live rows", "dead % of all", "last autovacuum", "last vacuum"],
            [
                (
                    _name(r),
                    r["dead_rows"],
                    r["live_rows"],
                    r["dead_pct"],
                    r["last_autovacuum"] or "never",
                    r["last_vacuum"] or "never",
                )
                for r in report["dead_tuples"]
            ],
        )

        archive = report["archiving"]
        self._heading("WAL archiving (point-in-time recovery)")
        if not archive["enabled"]:
            self.stdout.write(f"off (archive_mode = {archive['archive_mode']})")
        else:
            line = (
                f"{archive['archived_count']} WAL file(s) archived, the last {archive['last_archived_wal'] or '-'} "
                f"at {archive['last_archived_time'] or 'never'}; {archive['failed_count']} failure(s)"
            )
            self.stdout.write(self.style.ERROR(f"FAILING: {line}") if archive["failing"] else line)

        self._write_wraparound(report["wraparound"])
        self._write_lock_waits(report["lock_waits"])
        self._write_replication(report["replication"])
        self._write_backups(report.get("backups"), report.get("pitr_backups"))  # added by the command
        self._write_disk(report.get("disk"))

    def _write_wraparound(self, section):
        self._heading("Transaction ID wraparound (every database)")
        self.stdout.write(
            f"wraparound at an age of {section['limit']:,}; autovacuum freezes from autovacuum_freeze_max_age "
            f"{section['autovacuum_freeze_max_age']:,} (multixacts: "
            f"{section['autovacuum_multixact_freeze_max_age']:,}); autovacuum "
            f"{'on' if section['autovacuum'] else 'OFF'}"
        )
        self._table(
            ["database", "xid age", "% of limit", "multixact age", "connections"],
            [
                (
                    r["name"],
                    r["xid_age"],
                    _pct(round(100.0 * r["xid_age"] / section["limit"], 1)),
                    r["mxid_age"],
                    "allowed" if r["allows_connections"] else "not allowed",
                )
                for r in section["databases"]
            ],
        )
        holding = section["holding_back"]
        self.stdout.write(
            "oldest horizons (age): session snapshot "
            f"{_cell(holding['oldest_session_xmin_age'])}, prepared transaction "
            f"{_cell(holding['oldest_prepared_transaction_age'])}, replication slot "
            f"{_cell(holding['oldest_replication_slot_age'])}"
        )

    def _write_lock_waits(self, rows):
        self._heading("Lock waits (longest first)")
        self._table(
            ["pid", "user", "waiting s", "lock", "on", "blocked by", "query"],
            [
                (
                    str(r["pid"]),
                    r["username"],
                    r["waiting_seconds"],
                    r["mode"],
                    r["relation"] or r["locktype"],
                    ", ".join(str(pid) for pid in r["blocking_pids"]) or "-",
                    dbstats.shorten(r["query"], 50),
                )
                for r in rows
            ],
        )
        blockers = {b["pid"]: b for r in rows for b in r["blockers"] if "state" in b}
        if blockers:
            self.stdout.write("Blocking sessions:")
            self._table(
                ["pid", "user", "state", "transaction s", "query"],
                [
                    (
                        str(b["pid"]),
                        b["username"],
                        b["state"],
                        b["transaction_seconds"],
                        dbstats.shorten(b["query"], 60),
                    )
                    for b in blockers.values()
                ],
            )

    def _write_replication(self, section):
        self._heading("Replication")
        if section["note"]:
            self.stdout.write(f"{section['note']} (this server is a {section['role']})")
            return
        standby = section["standby"]
        if standby:
            paused = ", replay PAUSED" if standby["replay_paused"] else ""
            self.stdout.write(
                f"this server is a standby of {standby['sender_host'] or '-'} (WAL receiver: "
                f"{standby['receiver_status'] or 'none'}{paused}): {_size(standby['behind_bytes'])} received but not "
                f"replayed, delay {_cell(standby['delay_seconds'])} s, last replayed commit from "
                f"{standby['last_replayed_commit_at'] or 'before it started'}"
            )
        self.stdout.write(f"replicas of this {section['role']}:")
        self._table(
            ["replica", "address", "state", "sync", "replay lag s", "WAL behind"],
            [
                (
                    r["application_name"] or str(r["pid"]),
                    r["client_addr"] or "local",
                    r["state"],
                    r["sync_state"],
                    r["replay_lag_seconds"],
                    _size(r["replay_lag_bytes"]),
                )
                for r in section["replicas"]
            ],
        )
        self.stdout.write("replication slots:")
        self._table(
            ["slot", "type", "active", "WAL status", "WAL kept"],
            [
                (
                    s["slot_name"],
                    s["slot_type"],
                    "yes" if s["active"] else "NO",
                    s["wal_status"],
                    _size(s["retained_bytes"]),
                )
                for s in section["slots"]
            ],
        )

    def _write_backups(self, backup, section):
        if backup is None:
            return
        self._heading("Backups (manage.py backup)")
        if backup.get("error"):
            self.stdout.write(self.style.ERROR(f"could not be listed: {backup['error']}"))
        elif backup["newest"] is None:
            self.stdout.write(f"none in {backup['destination']}")
        else:
            self.stdout.write(
                f"{backup['count']} in {backup['destination']}; the newest, {backup['newest']}, is "
                f"{backup['newest_age_hours']:.1f} hours old"
            )

        if section is None:
            return
        self._heading("Backups (pgBackRest, point-in-time recovery)")
        if section.get("error"):
            self.stdout.write(self.style.ERROR(f"could not be listed: {section['error']}"))
            return
        for repo, newest in section["repos"].items():
            self.stdout.write(
                f"repository {repo}: none"
                if newest["newest"] is None
                else f"repository {repo}: {newest['count']}; the newest, {newest['newest']} ({newest['newest_kind']}), "
                f"is {newest['newest_age_hours']:.1f} hours old"
            )

    def _write_disk(self, section):
        if section is None:
            return
        self._heading("Disk space")
        self._table(
            ["folder", "path", "free", "of", "free %"],
            [
                (f["what"], f["path"], _size(f["free_bytes"]), _size(f["total_bytes"]), _pct(f["free_pct"]))
                for f in section["folders"]
            ],
        )
        for folder in section["not_checked"]:
            self.stdout.write(f"{folder['what']} not checked: {folder['reason']}")

    def _heading(self, title):
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(title))
        self.stdout.write(self.style.MIGRATE_HEADING("-" * len(title)))

    def _table(self, headers, rows):
        if not rows:
            self.stdout.write("  (none)")
            return
        cells = [[_cell(value) for value in row] for row in rows]
        # Numbers line up on the right, text on the left.
        numeric = [all(NUMBER.match(row[i]) for row in cells) for i in range(len(headers))]
        widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]

        def line(values):
            parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
            return ("  " + "  ".join(parts)).rstrip()

        self.stdout.write(line(headers))
        for row in cells:
            self.stdout.write(line(row))


@contextlib.contextmanager
def _without_pool(alias: str = "default"):
    """One plain connection for this run, even with DB_POOL: a pool would wait DB_POOL_TIMEOUT for a server
    that refuses, then hide why. (A connection already open, as in a test's transaction, is left alone.)"""
    connection = connections[alias]
    options = connection.settings_dict.get("OPTIONS", {})
    if "pool" not in options or connection.in_atomic_block:
        yield
        return
    connection.close()
    connection.close_pool()
    pool = options.pop("pool")
    try:
        yield
    finally:
        connection.close()
        options["pool"] = pool


def _failed(code: int, line: str, *, check: str = "") -> dict:
    """The verdict when the database could not be judged: one line, and for the unreachable database a finding."""
    status_name = dbstats.STATUS_NAMES[code]
    findings = [{"level": "critical", "check": check, "message": line[0].upper() + line[1:]}] if check else []
    return {
        "status": status_name,
        "exit_code": code,
        "ok": False,
        "summary": f"DBSTATS {status_name} - {line}",
        "error": line,
        "findings": findings,
        "problems": [finding["message"] for finding in findings],
        "mail": None,
    }


def _not_checked(report) -> list[str]:
    """What --check could not judge, and why."""
    lines = []
    if report["slow_queries"]["status"] != "available":
        lines.append(f"slow statements: {report['slow_queries']['note']}")
    if not report["cache"]["database"]["judged"]:
        lines.append("cache hit ratio: too few block reads yet to judge.")
    if report["replication"]["note"]:
        lines.append(f"replication: {report['replication']['note']}.")
    for folder in report["disk"]["not_checked"]:
        lines.append(f"disk of the {folder['what']} {folder['path']}: {folder['reason']}.".replace("  ", " "))
    return lines


def _lost(connection) -> bool:
    """Whether the connection died under the statistics (the server stopped, the network dropped)."""
    raw = connection.connection
    return raw is None or raw.closed or raw.broken


def _one_line(exc: BaseException) -> str:
    """An error's message on one line: psycopg's carry a hint on the next ("Is the server running ...")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return re.sub(r"\s+", " ", lines[0]) if lines else type(exc).__name__


def _json_dumps(data, indent=2) -> str:
    return json.dumps(data, indent=indent, sort_keys=True, default=str)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _name(row) -> str:
    return row["table"] if row["schema"] == "public" else f"{row['schema']}.{row['table']}"


def _pct(value) -> str:
    return "-" if value is None else f"{value}%"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "kB"
    for bigger in ("MB", "GB", "TB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
