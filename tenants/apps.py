from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tenants"
    verbose_name = "Tenants and users"

    def ready(self):
        from . import records
        from .rls import command_bypass
        from .roles import ensure_permission_groups

        records.register()  # what it records in the audit log and the event store
        connection_created.connect(command_bypass, dispatch_uid="tenants.rls.command_bypass")

        # The data migration creates the groups; a database flush (as between
        # transactional tests) empties them, and `migrate` then refills them here.
        post_migrate.connect(ensure_permission_groups, sender=self, dispatch_uid="tenants.permission_groups")
