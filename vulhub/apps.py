from django.apps import AppConfig
from django.db.backends.signals import connection_created


class VulhubConfig(AppConfig):
    name = "vulhub"
    verbose_name = "VulHub"

    def ready(self):
        from . import checks, role_checks  # noqa: F401  (registers the system checks)
        from .slow_queries import install

        connection_created.connect(install, dispatch_uid="vulhub.slow_queries")

        from tenants.rls import command_bypass

        from .db_roles import apply_assumed_role

        connection_created.connect(apply_assumed_role, dispatch_uid="vulhub.db_roles.apply_assumed_role")
        connection_created.connect(command_bypass, dispatch_uid="tenants.rls.command_bypass")
