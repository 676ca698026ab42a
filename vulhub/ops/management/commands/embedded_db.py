import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from vulhub.ops.embedded_db import server

NOT_RUNNING = 3  # the LSB exit status of `status` for a service that is not running


class Command(BaseCommand):
    help = (
        "Start, stop or describe the embedded PostgreSQL that VulHub uses when DATABASE_URL "
        "is unset (data in EMBEDDED_PGDATA, default var/pgdata). `status` exits 0 when it runs, 3 when it is "
        "stopped (as `pg_ctl status` and init scripts do)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"], help="what to do")

    def handle(self, *args, action, **options):
        pgdata = settings.EMBEDDED_PGDATA
        if settings.DATABASES["default"]["ENGINE"] != "vulhub.ops.embedded_db" and action != "stop":
            raise CommandError("DATABASE_URL is set: VulHub does not use the embedded PostgreSQL.")
        if action == "start":
            host = server.ensure_running(pgdata, settings.DATABASES["default"]["NAME"])
            self.stdout.write(self.style.SUCCESS(f"Embedded PostgreSQL running (data {pgdata}, socket {host})."))
        elif action == "stop":
            stopped = server.stop(pgdata)
            self.stdout.write("Embedded PostgreSQL stopped." if stopped else "Embedded PostgreSQL was not running.")
        else:
            running = server.is_running(pgdata)
            self.stdout.write(f"Embedded PostgreSQL {'running' if running else 'stopped'} (data {pgdata}).")
            if not running:
                sys.exit(NOT_RUNNING)
