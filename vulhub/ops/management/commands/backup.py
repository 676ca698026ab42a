import subprocess

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DatabaseError

from vulhub.ops import backups
from vulhub.ops.db_roles import use_role

# Failures an operator can act on: reported in one line, never as a traceback.
FAILURES = (backups.BackupError, psycopg.Error, DatabaseError, OSError, subprocess.SubprocessError)


def write_findings(command: BaseCommand, result: backups.RestoreResult) -> None:
    """A restore's notes (as warnings) and its problems (one per line) in a command's output."""
    for note in result.notes():
        command.stdout.write(command.style.WARNING(note))
    for line in result.problems():
        command.stderr.write(line)


class Command(BaseCommand):
    help = (
        "Back up the default database: a pg_dump custom-format dump plus a JSON manifest (row count and "
        "checksum of every table, taken in the dump's own snapshot; applied migrations; versions; the "
        "dump's sha256), both named vulhub-<db>-<UTC time>. They go to BACKUP_DIR, --dest DIR, or the "
        "'backups' storage when BACKUP_STORAGE is set. --keep/--keep-days then prune old backups; "
        "--verify runs the restore drill on the newest backup instead. Challenge files are not in the dump: "
        "the manifest lists them and the output says where they live (ATTACHMENTS_DIR or ATTACHMENT_STORAGE), "
        "to back up as well. Exits 1 on any failure."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dest",
            metavar="DIR",
            help="local directory for the backups (default: BACKUP_DIR, or the 'backups' storage "
            "when BACKUP_STORAGE is set)",
        )
        parser.add_argument(
            "--compress",
            metavar="N",
            help="compression passed to pg_dump --compress (0-9; PostgreSQL 16 also takes e.g. zstd:3); "
            "default: pg_dump's own",
        )
        parser.add_argument(
            "--keep",
            type=backups.positive_int,
            metavar="N",
            help="after a successful backup, keep only the newest N backups of this database",
        )
        parser.add_argument(
            "--keep-days",
            type=backups.positive_int,
            metavar="D",
            help="after a successful backup, delete this database's backups taken more than D days ago "
            "(by the time in their name); the newest backup is always kept",
        )
        parser.add_argument(
            "--prune-only", action="store_true", help="apply --keep/--keep-days without taking a backup"
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="with --keep/--keep-days: list the backups that would be deleted, delete nothing",
        )
        parser.add_argument(
            "--verify",
            action="store_true",
            help="take no backup: restore the newest backup into a scratch database <db>_verify_<time>, "
            "check every table's count and checksum and the audit chains, drop the scratch database; "
            "exit 1 on any problem (the restore drill for cron)",
        )
        parser.add_argument(
            "--jobs", type=backups.positive_int, default=1, metavar="N", help="with --verify: parallel pg_restore jobs"
        )
        parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")

    def handle(self, *args, **options):
        # a backup reads everything (the backup role); the restore drill creates a database (the owner)
        with use_role("owner" if options.get("verify") else "backup"):
            return self._handle(*args, **options)

    def _handle(self, *args, **options):
        retention = options["keep"] is not None or options["keep_days"] is not None
        if options["verify"] and (retention or options["prune_only"] or options["compress"] is not None):
            raise CommandError("--verify takes no backup and deletes nothing: use it without --keep/--prune-only.")
        if (options["prune_only"] or options["dry_run"]) and not retention:
            raise CommandError("--prune-only and --dry-run need --keep N and/or --keep-days D.")
        steps = backups.Steps(disable=options["no_progress"] or None, file=self.stderr._out)
        try:
            dest = backups.destination(options["dest"])
            if options["verify"]:
                self._verify(dest, options, steps)
                return
            if not options["prune_only"]:
                self._backup(dest, options, steps)
            if retention:
                self._prune(dest, options)
        except FAILURES as exc:
            raise CommandError(backups.one_line(exc)) from exc
        finally:
            steps.close()

    def _backup(self, dest, options, steps):
        result = backups.take_backup(dest=dest, compress=options["compress"], steps=steps)
        steps.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup {result.dump_name} written to {result.destination}: {backups.human_size(result.size)}, "
                f"{result.tables} tables, {result.rows} rows, in {result.seconds:.1f} s."
            )
        )
        self.stdout.write(f"  manifest {result.manifest_name}, sha256 {result.sha256}")
        self.stdout.write(f"  {result.attachments_note}")
        if not (options["keep"] or options["keep_days"]):  # retention reports them itself
            self._report_orphans(backups.list_backups(dest, backups.Server.of().database).orphans)

    def _report_orphans(self, orphans):
        for orphan in orphans:
            self.stdout.write(self.style.WARNING(f"  ignored {orphan}: its other half is missing (interrupted?)"))

    def _prune(self, dest, options):
        database = backups.Server.of().database
        retention = backups.apply_retention(
            dest, database, keep=options["keep"], keep_days=options["keep_days"], dry_run=options["dry_run"]
        )
        verb = "would delete" if options["dry_run"] else "deleted"
        for backup in retention.deleted:
            self.stdout.write(f"  {verb} {backup.dump_name} and its manifest")
        self._report_orphans(retention.orphans)
        outcome = "would be deleted (dry run)" if options["dry_run"] else "deleted"
        self.stdout.write(
            f"Retention: {len(retention.deleted)} backup(s) {outcome}, {retention.kept} kept in {dest.label}."
        )

    def _verify(self, dest, options, steps):
        drill = backups.verify_newest(dest, jobs=options["jobs"], steps=steps)
        steps.close()
        result = drill.restore
        self._report_orphans(drill.orphans)
        write_findings(self, result)
        if not result.ok:
            raise CommandError(
                f"Backup {drill.backup.dump_name} failed its restore drill: {result.failure()} "
                f"(scratch database {drill.scratch} dropped)."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup {drill.backup.dump_name} verified in scratch database {drill.scratch} (dropped): "
                f"{result.summary()}."
            )
        )
