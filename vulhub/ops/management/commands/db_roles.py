from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from vulhub.ops.db_roles import DEFAULT_BACKUP_ROLE, app_role_name, ensure_roles, role_settings, use_role


class Command(BaseCommand):
    help = (
        "Create VulHub's database roles when missing and grant them their privileges: the app role "
        "(DATABASE_URL: data only, row-level security applies), the backup role (BACKUP_DATABASE_URL: "
        "reads everything). Runs as the owner (MIGRATIONS_DATABASE_URL), which needs CREATEROLE to "
        "create roles and superuser for the backup role's BYPASSRLS. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default", help="database alias (default: default)")
        parser.add_argument("--no-backup-role", action="store_true", help="leave the backup role alone")

    def handle(self, *args, database="default", no_backup_role=False, **options):
        backup = None
        if not no_backup_role:
            backup = role_settings("backup").get("USER") or DEFAULT_BACKUP_ROLE
            if backup == role_settings("owner").get("USER"):
                backup = None  # the owner takes the backups: nothing to create
        try:
            with use_role("owner", database):
                for line in ensure_roles(app=app_role_name(), backup=backup, alias=database):
                    self.stdout.write(f"  {line}")
        except DatabaseError as exc:
            raise CommandError(f"Could not set up the database roles: {str(exc).strip()}") from None
        self.stdout.write(self.style.SUCCESS("Database roles ready."))
