from django.core.management import call_command
from django.core.management.commands.migrate import Command as DjangoMigrate

from vulhub.ops.db_roles import grant_app_privileges, use_role


class Command(DjangoMigrate):
    help = (
        "Apply the migrations and create the database cache's table as the schema's owner "
        "(MIGRATIONS_DATABASE_URL), then grant the app role (DATABASE_URL) its data privileges on every table. "
        + DjangoMigrate.help
    )

    def handle(self, *args, **options):
        with use_role("owner", options["database"]):
            super().handle(*args, **options)
            if not options["plan"] and not options["check_unapplied"] and not options["prune"]:
                # the database cache's table (REDIS_URL unset) belongs to a migrated schema:
                # without it every cache read would be a logged miss
                call_command(
                    "createcachetable", database=options["database"], verbosity=max(0, options["verbosity"] - 1)
                )
            grant_app_privileges(options["database"])
