"""The transaction's tenant, as row-level security sees it (migrations vulhub 0001 and 0002).

PostgreSQL lets a row of a tenant-owned table through when its tenant_id is the
transaction's tenant: the setting vulhub.tenant holds "<id>:<seal>", and the seal binds
the tenant to this transaction of this backend with a key only the database owner can
read. The app role cannot write a valid value itself: it asks vulhub_enter_host() or
vulhub_enter_tenant() to, with a proof only this app can make (an HMAC of the host or
tenant id and the time, keyed with a key derived from SECRET_KEY; `migrate` installs the
same key in the database). A statement injected into a request, or an attacker holding
the app role's own login, has no proof for another tenant and sees nothing of it.

- A request runs in one transaction with its tenant entered (tenants.middleware).
- Work across tenants (management commands) runs as a role with BYPASSRLS: manage.py
  connects as the owner (MIGRATIONS_DATABASE_URL). Nothing the app role can set turns
  isolation off.
- Outside both, no tenant is set, and the tenant tables read as empty.

The setting lasts until the end of the transaction, so a pooled connection (Django's
pool, or PgBouncer in transaction mode) carries nothing from one request to the next.
"""

import contextlib
import hashlib
import hmac
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

CONTEXT_SETTING = "vulhub.tenant"
_KEY_PURPOSE = b"vulhub.tenant-context.v1"


def context_key(secret_key: str | None = None) -> bytes:
    """The key of tenant-context proofs, derived from SECRET_KEY (or `secret_key`)."""
    secret = settings.SECRET_KEY if secret_key is None else secret_key
    return hmac.new(secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest()


def _proof(message: str) -> tuple[int, str]:
    """(time, HMAC of the message and the time): what vulhub_check_proof() accepts for 5 minutes."""
    stamp = int(time.time())
    mac = hmac.new(context_key(), f"enter|{message}|{stamp}".encode(), hashlib.sha256).hexdigest()
    return stamp, mac


def host_proof(host: str) -> tuple[int, str]:
    return _proof(f"host|{host}")


def tenant_proof(tenant_id: int | None) -> tuple[int, str]:
    return _proof(f"tenant|{'' if tenant_id is None else int(tenant_id)}")


def install_context_key(using: str = DEFAULT_DB_ALIAS, *, extra: tuple[str, ...] = ()) -> bool:
    """As the owner: make the database accept proofs of SECRET_KEY and SECRET_KEY_FALLBACKS.

    Keys of other secrets are dropped (a rotated-out key stops working), except those of
    `extra`. Run by `migrate` and `db_roles`. False before migration vulhub 0002.
    """
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", []), *extra]
    rows = {}
    for secret in secrets:
        key = context_key(secret)
        padded = key.ljust(64, b"\0")
        rows[hashlib.sha256(key).hexdigest()[:16]] = (bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded))
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT to_regclass('public.vulhub_context_key') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return False
        cursor.execute("DELETE FROM vulhub_context_key WHERE NOT fingerprint = ANY(%s)", [list(rows)])
        for fingerprint, (inner, outer) in rows.items():
            cursor.execute(
                """
                INSERT INTO vulhub_context_key (fingerprint, inner_pad, outer_pad) VALUES (%s, %s, %s)
                ON CONFLICT (fingerprint) DO NOTHING
                """,
                [fingerprint, inner, outer],
            )
    return True


def current(using: str = DEFAULT_DB_ALIAS) -> str:
    """The connection's tenant context as stored ('' when unset): what restore() puts back."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting(%s, true), '')", [CONTEXT_SETTING])
        return cursor.fetchone()[0]


def current_tenant(using: str = DEFAULT_DB_ALIAS) -> int | None:
    """The tenant row-level security lets through now (None: none, or a context that does not verify)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT vulhub_current_tenant()")
        return cursor.fetchone()[0]


def set_tenant(tenant_id: int | None, using: str = DEFAULT_DB_ALIAS) -> None:
    """Until the end of the current transaction, only `tenant_id`'s rows exist (None: none)."""
    if not connections[using].in_atomic_block:
        raise RuntimeError("set_tenant() needs a transaction: the setting lasts until its end.")
    tenant = None if tenant_id is None else int(tenant_id)
    stamp, mac = tenant_proof(tenant)
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT vulhub_enter_tenant(%s, %s, %s)", [tenant, stamp, mac])


def restore(before: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Put back the context a nested transaction found (a request inside a test's transaction).

    A sealed value is only valid in the transaction it was made in, which is the one it
    goes back into.
    """
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [CONTEXT_SETTING, before])


@contextlib.contextmanager
def tenant_context(tenant_id: int | None, using: str = DEFAULT_DB_ALIAS):
    """A transaction in which only `tenant_id`'s rows exist, as in a request (in tests: as
    the app role too); the context and role before it come back after."""
    with transaction.atomic(using=using):
        connections[using].ensure_connection()
        role_before = enter_request_role(using)
        before = current(using) if role_before is None else None
        set_tenant(tenant_id, using)
        try:
            yield
        finally:
            if not connections[using].needs_rollback:
                if role_before is not None:
                    leave_request_role(role_before, using)
                else:
                    restore(before, using)


# The role a request inside a test's transaction acts as (conftest sets the app role): the
# test's own setup runs as a role that bypasses row-level security. None live, where the
# connection logs in as the app role already.
request_role: str | None = None


def enter_request_role(using: str = DEFAULT_DB_ALIAS) -> tuple[str, str] | None:
    """For a request inside a test's transaction: act as `request_role` until its end.

    Returns the context and the role to put back (leave_request_role). These statements
    exist only in tests, so they go to the server unlogged: the tests that count a page's
    queries count what runs live.
    """
    if request_role is None:
        return None
    raw = connections[using].connection
    before = raw.execute("SELECT coalesce(current_setting(%s, true), ''), current_user", [CONTEXT_SETTING]).fetchone()
    raw.execute("SELECT set_config('role', %s, true)", [request_role])
    return before


def leave_request_role(before: tuple[str, str] | None, using: str = DEFAULT_DB_ALIAS) -> None:
    if before is not None:
        raw = connections[using].connection
        raw.execute("SELECT set_config(%s, %s, true), set_config('role', %s, true)", [CONTEXT_SETTING, *before])
