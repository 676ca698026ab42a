from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tenants"
    verbose_name = "Class and people"

    def ready(self):
        from django.contrib.auth.models import update_last_login
        from django.contrib.auth.signals import user_logged_in

        from . import records
        from .backends import record_last_login
        from .roles import ensure_permission_groups

        records.register()  # what it records in the audit log and the event store
        # A platform account's last login is written by the database function made for it:
        # a tenant's request may change nothing else of an account outside the tenant.
        user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
        user_logged_in.connect(record_last_login, dispatch_uid="tenants.last_login")

        # The data migration creates the groups; a database flush (as between
        # transactional tests) empties them, and `migrate` then refills them here.
        post_migrate.connect(ensure_permission_groups, sender=self, dispatch_uid="tenants.permission_groups")
