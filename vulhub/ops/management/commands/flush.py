from django.core.management.commands.flush import Command as DjangoFlush

from vulhub.ops.db_roles import use_role


class Command(DjangoFlush):
    help = "Empty every table as the schema's owner (TRUNCATE is not the app role's to use). " + DjangoFlush.help

    def handle(self, *args, **options):
        with use_role("owner", options["database"]):
            super().handle(*args, **options)
