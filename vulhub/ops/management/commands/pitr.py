import signal
import subprocess
import time
from pathlib import Path

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DatabaseError

from vulhub.ops import backups, pitr
from vulhub.ops.db_roles import use_role

FAILURES = (pitr.PitrError, pitr.ClusterError, backups.BackupError, psycopg.Error, DatabaseError, OSError,
            subprocess.SubprocessError)  # fmt: skip
REPO_HELP = "only repository N (pgBackRest's repo1, repo2, …; default: all)"


class Terminated(Exception):
    """SIGTERM (a service manager, `kill`): the work in hand is undone as for an interrupt."""


def _terminate(signum, frame):
    raise Terminated("stopped by SIGTERM: what it had begun was undone")


class Command(BaseCommand):
    help = (
        "Point-in-time recovery on pgBackRest: configure it for this server (setup), check archiving, take "
        "full/differential/incremental backups, show the recovery window, restore to a moment into a new data "
        "directory (never over the running server) and verify it. Needs a server pgBackRest supports, on this "
        "machine. `manage.py pitr ACTION --help` tells more. Exits 1 on any failure."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        actions.add_parser(
            "setup",
            help="write pgbackrest.conf, set the server's archive_command, create the stanza, check archiving",
            description="Write PITR_CONFIG (pgBackRest's configuration) from the server's facts and the PITR_* "
            "settings, set the server's archive_command to pgBackRest's archive-push (ALTER SYSTEM, reloaded), "
            "create the stanza and check that a WAL file reaches every repository. Run it again after changing a "
            "PITR_* setting. Needs the server's superuser (MIGRATIONS_DATABASE_URL).",
        )
        actions.add_parser(
            "check",
            help="check that archiving reaches every repository (pgbackrest check)",
            description="Switch the server to a new WAL file and wait until pgBackRest has archived it: fails "
            "when archiving is broken.",
        )
        backup = actions.add_parser(
            "backup",
            help="take a backup (full, diff or incr) into each repository, then expire what retention drops",
            description="Take a pgBackRest backup of the server into each configured repository (or --repo N). "
            "Retention (PITR_RETENTION_*) then expires old backups and the WAL only they needed.",
        )
        backup.add_argument(
            "--type", choices=("full", "diff", "incr"), default="full",
            help="full (default), diff (changes since the last full) or incr (since the last backup)",
        )  # fmt: skip
        backup.add_argument("--repo", type=backups.positive_int, metavar="N", help=REPO_HELP)
        backup.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")

        window = actions.add_parser(
            "window",
            help="list the backups and the recovery window",
            description="List the backups of each repository and the recovery window: from just after the "
            "oldest backup ended to the newest archived commit.",
        )
        window.add_argument("--repo", type=backups.positive_int, metavar="N", help=REPO_HELP)

        restore = actions.add_parser(
            "restore",
            help="restore to a moment into a new data directory, and verify it",
            description="Restore the newest backup that ended before TIME into the new or empty directory DIR "
            "(pgBackRest), recover it to TIME from the archived WAL on a spare port, verify it (row count and "
            "checksum of every table, recorded in DIR/vulhub_restore.json; every audit chain walked) and stop "
            "it, ready to start with pg_ctl. Archiving is off in the restored server. Any failure or interrupt "
            "leaves DIR as it was.",
        )
        restore.add_argument(
            "--to",
            required=True,
            metavar="TIME",
            help="ISO 8601, e.g. 2026-12-03T14:02:00Z (no zone: TIME_ZONE's), or 'latest' for all that is archived",
        )
        restore.add_argument("--into", required=True, metavar="DIR", help="the new data directory (new or empty)")
        restore.add_argument("--repo", type=backups.positive_int, metavar="N", help="restore from repository N only")
        restore.add_argument("--database", metavar="NAME", help="the database to verify (default: the site's)")
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

    def handle(self, *args, action, **options):
        steps = backups.Steps(disable=options.get("no_progress") or None, file=self.stderr._out)
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            if action != "verify":  # a restored directory is checked with its own binaries, whatever the server
                with self._server().connect() as conn:
                    pitr.refuse_unsupported(conn.info.server_version // 10000)
            getattr(self, f"_{action}")(options, steps)
        except FAILURES as exc:
            raise CommandError(backups.one_line(exc)) from exc
        except Terminated as exc:
            raise CommandError(str(exc)) from exc
        finally:
            signal.signal(signal.SIGTERM, previous)
            steps.close()

    def _server(self) -> backups.Server:
        with use_role("owner"):
            return backups.Server.of()

    def _setup(self, options, steps):
        done = pitr.setup(self._server(), steps)
        steps.close()
        changed = "set" if done.changed_archive_command else "already"
        self.stdout.write(f"Wrote {done.config}; archive_command {changed}: {done.archive_command}")
        self.stdout.write(self.style.SUCCESS("Archiving checked: a WAL file reached every repository."))

    def _check(self, options, steps):
        steps.start("check")
        pitr.Config.of_settings().run("check")
        steps.close()
        self.stdout.write(self.style.SUCCESS("Archiving works: a WAL file reached every repository."))

    def _backup(self, options, steps):
        started = time.monotonic()
        taken = pitr.take_backup(self._server(), options["type"], [options["repo"]] if options["repo"] else None, steps)
        steps.close()
        seconds = time.monotonic() - started
        for backup in taken:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Backup {backup.label} ({backup.kind}) in repository {backup.repo}: "
                    f"{backups.human_size(backup.stored)} stored for a {backups.human_size(backup.size)} database, "
                    f"consistent from {pitr.show_time(backup.finished_at)}."
                )
            )
        self.stdout.write(f"  {len(taken)} backup(s) in {seconds:.1f} s; retention expired what it no longer keeps.")

    def _window(self, options, steps):
        config = pitr.Config.of_settings()
        window = pitr.recovery_window(config, options["repo"])
        self.stdout.write(f"Stanza {config.stanza} ({config.path}): {len(window.backups)} backup(s)")
        for backup in window.backups:
            self.stdout.write(
                f"  {backup.label}  {backup.kind:<4}  repository {backup.repo}  ended "
                f"{pitr.show_time(backup.finished_at)}  {backups.human_size(backup.stored)}"
            )
        for repo, (low, high) in sorted(window.wal.items()):
            self.stdout.write(f"  archived WAL in repository {repo}: {low} to {high}")
        if window.start is None:
            raise CommandError(f"No recovery window for stanza {config.stanza}: take one with `manage.py pitr backup`.")
        self.stdout.write(self.style.SUCCESS(f"Recovery window: {window.describe()}"))

    def _restore(self, options, steps):
        target = pitr.parse_target(options["to"])
        server = self._server()
        live = pitr.live_data_directory(server)
        result = pitr.restore_to(
            target,
            Path(options["into"]),
            database=options["database"] or settings.DATABASES["default"]["NAME"],
            repo=options["repo"],
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
                f"Restored to {moment} into {result.datadir} in {result.seconds:.1f} s, from backup "
                f"{result.backup.label} ({result.backup.kind}, repository {result.backup.repo}) and the WAL "
                "archived since."
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
