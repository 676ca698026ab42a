import argparse
import json
import re
import smtplib

from django.conf import settings
from django.core.mail import mail_admins
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from vulhub.ops import dbstats
from vulhub.ops.db_roles import use_role

# A cell that reads as a number (count, size, percentage): aligned on the right.
NUMBER = re.compile(r"^(-|-?[\d,]+(\.\d+)?( ?(B|kB|MB|GB|TB|%))?)$")


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value!r}")
    return int(value)


class Command(BaseCommand):
    help = (
        "Report on the health of the database of the default connection: connections in use, "
        "slow queries (pg_stat_statements), table and index sizes, unused indexes and tables read "
        "by sequential scans, cache hit ratio, long-running queries and sessions idle in "
        "transaction, dead tuples, WAL archiving, the newest backup. Read-only. With --check, compare with "
        "DBSTATS_THRESHOLDS (a failing WAL archive always counts), mail "
        "the problems to ADMINS and exit non-zero when one is crossed (for cron)."
    )

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
                "Only compare with settings.DBSTATS_THRESHOLDS: print each problem, mail them to ADMINS "
                "and exit 1, or say all is well and exit 0. With --json, the full document gains a "
                '"check" key.'
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
        # server settings and every session's statistics: the owner's view, not the app's
        with use_role("owner"):
            return self._handle(*args, **options)

    def _handle(self, *args, **options):
        as_json, check = options["json"], options["check"]
        try:
            with connections["default"].cursor() as cursor:
                report = dbstats.collect(cursor, limit=options["limit"])
        except DatabaseError as exc:
            raise CommandError(f"Could not read the database statistics: {exc}".strip()) from exc

        report["backups"] = dbstats.backup_freshness(report["database"]["name"])
        report["pitr_backups"] = dbstats.pitr_freshness()
        found = dbstats.problems(report, settings.DBSTATS_THRESHOLDS) if check else []
        if as_json:
            if check:
                report["check"] = {"ok": not found, "problems": found, "thresholds": settings.DBSTATS_THRESHOLDS}
            self.stdout.write(_json_dumps(report))
        elif check:
            self._write_check(report, found)
        else:
            self._write_report(report)

        if found:
            sent = self._mail_admins(report, found)
            raise CommandError(f"{len(found)} database problem(s) found; {sent}.")

    def _write_check(self, report, found):
        database = report["database"]["name"]
        if not found:
            self.stdout.write(self.style.SUCCESS(f"Database {database}: all within DBSTATS_THRESHOLDS."))
        for line in found:
            self.stdout.write(self.style.ERROR(f"PROBLEM {line}"))
        if report["slow_queries"]["status"] != "available":
            self.stdout.write(f"Slow statements not checked: {report['slow_queries']['note']}")
        if not report["cache"]["database"]["judged"]:
            self.stdout.write("Cache hit ratio not checked: too few block reads yet to judge.")

    def _mail_admins(self, report, found) -> str:
        if not settings.ADMINS:
            return "ADMINS is empty, no mail sent"
        database = report["database"]["name"]
        body = "\n".join(
            [
                f"manage.py dbstats --check found {len(found)} problem(s) in database {database} "
                f"at {report['database']['collected_at']}:",
                "",
                *(f"- {line}" for line in found),
                "",
                f"Thresholds (DBSTATS_THRESHOLDS): {_json_dumps(settings.DBSTATS_THRESHOLDS, indent=None)}",
                "Run `manage.py dbstats` for the full report.",
            ]
        )
        try:
            mail_admins(f"dbstats: {len(found)} problem(s) in database {database}", body)
        except (OSError, smtplib.SMTPException) as exc:
            return f"mailing ADMINS failed: {exc}"
        return f"mailed to {len(settings.ADMINS)} admin(s)"

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

        backup = report.get("backups")  # added by the command, not by dbstats.collect()
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

        section = report.get("pitr_backups")
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
