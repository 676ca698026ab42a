"""The transaction's tenant, as row-level security sees it (migration vulhub 0001).

PostgreSQL lets a row of a tenant-owned table through when its tenant_id equals the
setting vulhub.tenant_id, or when vulhub.rls_bypass is 'on'. Both are set with
set_config(..., true): they last until the end of the transaction and never outlive
it, so a pooled connection (Django's pool, or PgBouncer in transaction mode) carries
nothing from one request to the next.

- A request runs in one transaction with its tenant set (tenants.middleware).
- A platform superuser's request, and a management command, bypass isolation on
  purpose; every bypass writes an audit row saying who and why.
- Outside both, nothing is set, and the tenant tables read as empty.
"""

import contextlib
import logging
import os

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from audit import api as audit

logger = logging.getLogger(__name__)

TENANT_SETTING = "vulhub.tenant_id"
BYPASS_SETTING = "vulhub.rls_bypass"
# Set by manage.py for every command but runserver: the command's connections bypass.
COMMAND_ENV = "VULHUB_MANAGEMENT_COMMAND"


def current(using: str = DEFAULT_DB_ALIAS) -> tuple[str, str]:
    """(tenant setting, bypass setting) of the connection, '' when unset."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(current_setting(%s, true), ''), coalesce(current_setting(%s, true), '')",
            [TENANT_SETTING, BYPASS_SETTING],
        )
        return cursor.fetchone()


def _set(tenant: str, bypass: str, using: str, *, local: bool = True) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT set_config(%s, %s, %s), set_config(%s, %s, %s)",
            [TENANT_SETTING, tenant, local, BYPASS_SETTING, bypass, local],
        )


def set_tenant(tenant_id: int | None, using: str = DEFAULT_DB_ALIAS) -> None:
    """Until the end of the current transaction, only `tenant_id`'s rows exist (None: none)."""
    if not connections[using].in_atomic_block:
        raise RuntimeError("set_tenant() needs a transaction: the setting lasts until its end.")
    _set("" if tenant_id is None else str(int(tenant_id)), "off", using)


def bypass(reason: str, *, actor=None, tenant_id=None, using: str = DEFAULT_DB_ALIAS) -> None:
    """Until the end of the current transaction, see every tenant's rows; recorded in the audit log."""
    if not connections[using].in_atomic_block:
        raise RuntimeError("bypass() needs a transaction: the setting lasts until its end.")
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'on', true)", [BYPASS_SETTING])
    audit.record(action="rls_bypass", object_type="tenancy", object_text=reason[:255], tenant_id=tenant_id, actor=actor)


# Columns a query on the tenants table adds to set its row's tenant for the transaction
# (the request's tenant lookup does it, so a request pays no extra statement), after
# reading the settings the transaction had (to put them back when it is nested).
BEFORE_AND_SET = {
    "_rls_tenant_before": f"coalesce(current_setting('{TENANT_SETTING}', true), '')",
    "_rls_bypass_before": f"coalesce(current_setting('{BYPASS_SETTING}', true), '')",
    "_rls_set": (
        f"set_config('{TENANT_SETTING}', tenants.id::text, true) || set_config('{BYPASS_SETTING}', 'off', true)"
    ),
}


def restore(before: tuple[str, str], using: str = DEFAULT_DB_ALIAS) -> None:
    """Put back the settings a nested transaction found (a request inside a test's transaction)."""
    _set(*before, using)


@contextlib.contextmanager
def tenant_context(tenant_id: int | None, using: str = DEFAULT_DB_ALIAS):
    """A transaction in which only `tenant_id`'s rows exist; the settings before it come back after."""
    with transaction.atomic(using=using):
        before = current(using)
        set_tenant(tenant_id, using)
        try:
            yield
        finally:
            if not connections[using].needs_rollback:
                _set(*before, using)


@contextlib.contextmanager
def bypassing(reason: str, *, actor=None, using: str = DEFAULT_DB_ALIAS):
    """A transaction that sees every tenant (recorded); the settings before it come back after."""
    with transaction.atomic(using=using):
        before = current(using)
        bypass(reason, actor=actor, using=using)
        try:
            yield
        finally:
            if not connections[using].needs_rollback:
                _set(*before, using)


# --- Management commands ------------------------------------------------------------------

_command_recorded = False


def command_bypass(sender, connection, **kwargs) -> None:
    """connection_created: a management command's connections bypass isolation.

    Commands (seed, rebuild_leaderboards, verify_audit, shell...) are the operator's
    tools and work across tenants. A transaction-local setting would not outlive one
    statement of a command's autocommit work, so the setting is the session's; commands
    connect directly, not through a transaction-mode PgBouncer, and the connection ends
    with the process. The first connection of the process records the bypass.
    """
    global _command_recorded
    command = os.environ.get(COMMAND_ENV)
    if not command:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'on', false)", [BYPASS_SETTING])
    if _command_recorded:
        return
    _command_recorded = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('public.audit_logs') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return  # a database not migrated yet: nothing to record in
        if connection.alias == DEFAULT_DB_ALIAS:
            audit.record(action="rls_bypass", object_type="tenancy", object_text=f"manage.py {command}"[:255])
    except Exception:  # recording must not stop the operator's command
        logger.warning("could not record the row-level security bypass of manage.py %s", command, exc_info=True)
