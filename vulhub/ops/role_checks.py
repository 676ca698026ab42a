"""`check --deploy`: the site's database role must leave row-level security in force."""

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError


@register(Tags.security, Tags.database, deploy=True)
def app_role_is_restricted(app_configs=None, **kwargs):
    from .db_roles import describe_current_role, role_settings

    try:
        # the site's role, by name: commands (this check among them) connect as the owner
        facts = describe_current_role(role=role_settings("app").get("USER"))
    except (DatabaseError, TypeError):
        return []  # unreachable or not migrated: the database checks say so
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
