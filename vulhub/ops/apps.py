from django.apps import AppConfig
from django.db.backends.signals import connection_created


class OpsConfig(AppConfig):
    """Operations: the embedded server, database roles, backups, recovery, statistics and their commands."""

    name = "vulhub.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self):
        from . import role_checks  # noqa: F401  (registers the check --deploy role check)
        from .db_roles import apply_assumed_role
        from .slow_queries import install

        connection_created.connect(install, dispatch_uid="vulhub.ops.slow_queries")
        connection_created.connect(apply_assumed_role, dispatch_uid="vulhub.ops.db_roles.apply_assumed_role")
