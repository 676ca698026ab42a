from django.core.management.commands.createcachetable import Command as DjangoCreateCacheTable

from vulhub.ops.db_roles import grant_app_privileges, use_role


class Command(DjangoCreateCacheTable):
    help = "Create the database cache table as the schema's owner, then grant the app role its privileges on it."

    def handle(self, *args, **options):
        with use_role("owner", options["database"]):
            super().handle(*args, **options)
            grant_app_privileges(options["database"])
