from django.core.management.commands.migrate import Command as DjangoMigrate

from vulhub.db_roles import grant_app_privileges, use_role


class Command(DjangoMigrate):
    help = (
        "Apply the migrations as the schema's owner (MIGRATIONS_DATABASE_URL), then grant the app role "
        "(DATABASE_URL) its data privileges on every table. " + DjangoMigrate.help
    )

    def handle(self, *args, **options):
        with use_role("owner", options["database"]):
            super().handle(*args, **options)
            grant_app_privileges(options["database"])
