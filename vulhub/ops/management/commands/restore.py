import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from vulhub.ops import backups
from vulhub.ops.db_roles import use_role
from vulhub.ops.destinations import StorageDestination
from vulhub.ops.management.commands.backup import FAILURES, write_findings


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` as the default database (or --database NAME on the "
        "same server). PATH is the .dump or its .manifest.json; the other is found by name. Nothing is "
        "touched unless the manifest parses, the dump's size and sha256 match it and pg_restore can read "
        "it. The backup is restored into a scratch database and checked there (every table's row count "
        "and checksum against the manifest, every audit chain); only then is it swapped in for the target "
        "in one step, so a failure at any point leaves the target as it was (exit 1). Refuses a database "
        "that is not empty unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", metavar="PATH", help="the backup's .dump or .manifest.json file")
        parser.add_argument(
            "--database",
            metavar="NAME",
            help="restore into this database of the same server instead of the default one",
        )
        parser.add_argument("--create", action="store_true", help="create the target database when it is missing")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace a database that is not empty: once the restored copy has been checked, the target's "
            "sessions are ended and the copy takes its name, owner, grants and settings; the old database is "
            "dropped",
        )
        parser.add_argument(
            "--jobs",
            type=backups.positive_int,
            default=1,
            metavar="N",
            help="parallel pg_restore jobs (default 1); the target is untouched until the restored copy is checked",
        )
        parser.add_argument(
            "--from-storage",
            action="store_true",
            help="PATH is a file name in the 'backups' storage (BACKUP_STORAGE), not a local path",
        )
        parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")

    def handle(self, *args, **options):
        # an operator's tool writing every tenant's rows (COPY included): the schema owner's work
        with use_role("owner"):
            return self._handle(*args, **options)

    def _handle(self, *args, path, database=None, create=False, force=False, jobs=1, **options):
        steps = backups.Steps(disable=options["no_progress"] or None, file=self.stderr._out)
        try:
            with tempfile.TemporaryDirectory(prefix="vulhub-restore-") as local:
                if options["from_storage"]:
                    path = self._fetch(path, Path(local))
                server = backups.Server.of()
                checked = backups.check_backup(path, server=server, steps=steps)
                result = backups.restore_backup(
                    checked, database=database, create=create, force=force, jobs=jobs, steps=steps
                )
        except FAILURES as exc:
            raise CommandError(backups.one_line(exc)) from exc
        finally:
            steps.close()
        write_findings(self, result)
        if not result.ok:
            raise CommandError(
                f"{checked.dump.name}, restored into a scratch copy, does not match its backup: {result.failure()}; "
                f"{result.database} was left as it was."
            )
        self.stdout.write(
            self.style.SUCCESS(f"Restored {checked.dump.name} into {result.database}: {result.summary()}.")
        )

    def _fetch(self, name, local):
        dest = backups.destination()
        if not isinstance(dest, StorageDestination):
            raise CommandError("--from-storage needs BACKUP_STORAGE to be set.")
        dump_name, manifest_name = (p.name for p in backups.backup_files(Path(name)))
        for wanted in (dump_name, manifest_name):
            if not dest.exists(wanted):
                raise CommandError(f"{wanted} is not in {dest.label}.")
            dest.fetch(wanted, local / wanted)
        return local / Path(name).name
