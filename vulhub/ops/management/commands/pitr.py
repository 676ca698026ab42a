import subprocess
from pathlib import Path

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DatabaseError

from vulhub.ops import backups, pitr
from vulhub.ops.db_roles import use_role

FAILURES = (pitr.PitrError, pitr.ClusterError, backups.BackupError, psycopg.Error, DatabaseError, OSError,
            subprocess.SubprocessError)  # fmt: skip
ARCHIVE_HELP = "the local archive of base backups and WAL (default: PITR_DIR)"
OFFSITE_HELP = "read the off-site copy instead: DIR, or without DIR the 'pitr_offsite' storage (PITR_OFFSITE_STORAGE)"


class Command(BaseCommand):
    help = (
        "Point-in-time recovery from base backups and the WAL the server archives into PITR_DIR: take a "
        "base backup, show the recovery window, restore to a moment into a new data directory (never "
        "over the running server) and verify it, verify a restored directory again, ship the archive "
        "off-site. `manage.py pitr ACTION --help` tells more. Exits 1 on any failure."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        backup = actions.add_parser(
            "backup",
            help="take a base backup (pg_basebackup) into the archive",
            description="Take a base backup of the default database's server (as the schema owner, which "
            "needs the REPLICATION attribute) into <archive>/base/<UTC time>/. The server must archive its "
            "WAL (archive_mode on).",
        )
        backup.add_argument("--archive", metavar="DIR", help=ARCHIVE_HELP)

        window = actions.add_parser(
            "window",
            help="list the base backups and the recovery window",
            description="List the base backups and the recovery window: from the end of the oldest base "
            "backup whose WAL is archived without a gap to the newest archived commit.",
        )
        window.add_argument("--archive", metavar="DIR", help=ARCHIVE_HELP)
        window.add_argument("--offsite", nargs="?", const="", metavar="DIR", help=OFFSITE_HELP)

        restore = actions.add_parser(
            "restore",
            help="restore to a moment into a new data directory, and verify it",
            description="Unpack the newest base backup taken before TIME into the new or empty directory "
            "DIR, recover it to TIME from the archived WAL on a spare port, verify it (row count and "
            "checksum of every table, recorded in DIR/vulhub_restore.json; every audit chain walked) and "
            "stop it, ready to start with pg_ctl. Archiving is off in the restored server.",
        )
        restore.add_argument(
            "--to",
            required=True,
            metavar="TIME",
            help="ISO 8601, e.g. 2026-12-03T14:02:00Z (no zone: TIME_ZONE's), or 'latest' for all that is archived",
        )
        restore.add_argument("--into", required=True, metavar="DIR", help="the new data directory (new or empty)")
        restore.add_argument("--archive", metavar="DIR", help=ARCHIVE_HELP)
        restore.add_argument("--offsite", nargs="?", const="", metavar="DIR", help=OFFSITE_HELP)
        restore.add_argument(
            "--port", type=backups.positive_int, metavar="N", help="port while restoring (default: a free one)"
        )
        restore.add_argument("--keep-running", action="store_true", help="leave the restored server running afterwards")
        restore.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")

        verify = actions.add_parser(
            "verify",
            help="check a restored data directory against its restore record",
            description="Start a data directory restored by `pitr restore` on a spare port and check that every "
            "table has the rows and checksum recorded by the restore, and walk the audit chains. Exits 1 when "
            "anything differs.",
        )
        verify.add_argument("datadir", metavar="DIR", help="the restored data directory (its server stopped)")
        verify.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")

        ship = actions.add_parser(
            "ship",
            help="copy new base backups and WAL to the off-site copy",
            description="Copy every base backup and WAL file of the archive that the off-site copy lacks (or "
            "holds at another size) to it; a base backup's vulhub.json goes last, so a copy cut short is not "
            "listed. Run it from cron every few minutes.",
        )
        ship.add_argument("--archive", metavar="DIR", help=ARCHIVE_HELP)
        ship.add_argument("--to", metavar="DIR", help="a directory instead of the 'pitr_offsite' storage")
        ship.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")

    def handle(self, *args, action, **options):
        steps = backups.Steps(disable=options.get("no_progress") or None, file=self.stderr._out)
        try:
            getattr(self, f"_{action}")(options, steps)
        except FAILURES as exc:
            raise CommandError(backups.one_line(exc)) from exc
        finally:
            steps.close()

    def _archive(self, options):
        if options.get("offsite") is not None:
            return pitr.offsite_archive(options["offsite"] or None)
        return pitr.local_archive(options.get("archive"))

    def _backup(self, options, steps):
        with use_role("owner"):
            server = backups.Server.of()
            backup = pitr.take_base_backup(server, pitr.local_archive(options["archive"]), steps)
        steps.close()
        seconds = (backup.finished_at - backup.started_at).total_seconds()
        self.stdout.write(
            self.style.SUCCESS(
                f"Base backup {backup.name}: {backups.human_size(backup.size)} in {seconds:.1f} s, consistent from "
                f"{pitr.show_time(backup.finished_at)} (timeline {backup.timeline}, WAL from {backup.start_wal})."
            )
        )

    def _window(self, options, steps):
        archive = self._archive(options)
        window = pitr.recovery_window(archive)
        self.stdout.write(
            f"Archive {archive.label}: {len(window.backups)} base backup(s), {window.wal_files} WAL file(s)"
        )
        for backup in window.backups:
            usable = "" if backup in window.usable else "  (not usable: WAL missing after it)"
            self.stdout.write(
                f"  {backup.name}  ended {pitr.show_time(backup.finished_at)}  "
                f"{backups.human_size(backup.size)}{usable}"
            )
        for gap in window.gaps:
            self.stdout.write(self.style.WARNING(f"  gap in the WAL: {gap}"))
        if window.start is None:
            raise CommandError(
                f"No recovery window in {archive.label}: take a base backup with `manage.py pitr backup`."
            )
        self.stdout.write(self.style.SUCCESS(f"Recovery window: {window.describe()}"))

    def _restore(self, options, steps):
        target = pitr.parse_target(options["to"])
        archive = self._archive(options)
        with use_role("owner"):
            live = pitr.live_data_directory(backups.Server.of()) if not options.get("offsite") else None
        result = pitr.restore_to(
            archive,
            target,
            Path(options["into"]),
            live_datadir=live,
            keep_running=options["keep_running"],
            port=options["port"],
            steps=steps,
        )
        steps.close()
        verified = result.verified
        if verified.audit_breaks:
            for line in verified.problems():
                self.stderr.write(line)
            raise CommandError(f"The restored database failed its checks: {verified.failure()} (in {result.datadir}).")
        moment = "the newest archived commit" if target is None else pitr.show_time(target)
        newest = f" The newest change it holds is from {pitr.show_time(result.reached)}." if result.reached else ""
        audit = f"{verified.audit_chains} audit chain(s) intact ({verified.audit_rows} rows)"
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {result.backup.database} to {moment} into {result.datadir} in {result.seconds:.1f} s, "
                f"from base backup {result.backup.name} and the {result.wal_replayed} WAL file(s) archived since."
            )
        )
        self.stdout.write(
            f"  verified: {verified.tables} tables, {verified.rows} rows (recorded in {pitr.RESTORE_RECORD}); "
            f"{audit}.{newest}"
        )
        for note in verified.notes():
            self.stdout.write(self.style.WARNING(f"  {note}"))
        if options["keep_running"]:
            self.stdout.write(f"  running on port {result.port}: stop it with pg_ctl -D {result.datadir} stop")
        else:
            self.stdout.write(f"  start it: pg_ctl -D {result.datadir} -o '-p PORT' start  (archiving is off in it)")

    def _verify(self, options, steps):
        verified = pitr.verify_restored(Path(options["datadir"]), steps=steps)
        steps.close()
        for line in verified.problems():
            self.stderr.write(line)
        if not verified.ok:
            raise CommandError(f"{options['datadir']} differs from its restore record: {verified.failure()}.")
        self.stdout.write(self.style.SUCCESS(f"{options['datadir']}: {verified.summary('its restore record')}."))

    def _ship(self, options, steps):
        local = pitr.local_archive(options["archive"])
        offsite = pitr.offsite_archive(options["to"])
        shipped = pitr.ship(local, offsite, steps)
        steps.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Shipped {shipped.backups} base backup(s) and {shipped.wal} WAL file(s) "
                f"({backups.human_size(shipped.bytes)}) to {offsite.label}; {shipped.already} file(s) were there."
            )
        )
