"""`check --deploy`: the site's database role must leave row-level security in force, and
the database must accept this SECRET_KEY's tenant contexts."""

from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError, connection, transaction

from tenants import rls


@register(Tags.security, Tags.database, deploy=True)
def database_roles_and_keys(app_configs=None, **kwargs):
    """Both checks below on one connection: a database that cannot be reached is tried once."""
    problems = app_role_is_restricted()
    if problems is None:
        return []  # unreachable or not migrated: the database checks say so
    return problems + tenant_context_key_is_installed()


def app_role_is_restricted(app_configs=None, **kwargs) -> list | None:
    """The W101 warning when the site's role escapes row-level security; None: no database to ask."""
    from .db_roles import describe_current_role, role_settings

    try:
        # the site's role, by name: commands (this check among them) connect as the owner
        facts = describe_current_role(role=role_settings("app").get("USER"))
    except (DatabaseError, TypeError):
        return None
    problems = []
    if facts.superuser:
        problems.append("is a superuser")
    if facts.bypass_rls:
        problems.append("has BYPASSRLS")
    if facts.owns_tables:
        problems.append(f"owns {facts.owns_tables} table(s)")
    if facts.can_truncate:
        problems.append(f"may TRUNCATE {facts.can_truncate} table(s)")
    if not problems:
        return []
    return [
        Warning(
            f"The site's database role {facts.name!r} {', '.join(problems)}: row-level security does not hold for it.",
            hint="Run the site as a data-only role (DATABASE_URL) and migrations as the owner "
            "(MIGRATIONS_DATABASE_URL); docs/configuration.md, Using an existing PostgreSQL.",
            id="vulhub.W101",
        )
    ]


def tenant_context_key_is_installed(app_configs=None, **kwargs) -> list:
    """The database must accept the tenant contexts this SECRET_KEY proves, or every request fails."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT to_regproc('vulhub_enter_tenant') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return []  # not migrated yet: the migrations check says so
            rls.set_tenant(None)
    except DatabaseError as error:
        if "tenant context" not in str(error):
            return []
        return [
            Error(
                "The database does not accept this SECRET_KEY's tenant contexts: every page would fail.",
                hint="Run `manage.py migrate` with this SECRET_KEY (it installs the key; keep the old one in "
                "SECRET_KEY_FALLBACKS while servers with it still run).",
                id="vulhub.E102",
            )
        ]
    return []
