"""Acting as the app role inside a test's transaction, as a request does live."""

from psycopg import sql

from tenants import rls
from vulhub.ops.db_roles import app_role_name


def as_app(cursor, tenant_id: int | None) -> None:
    """Until the transaction ends: the app role (no BYPASSRLS), with `tenant_id` entered as a request enters it."""
    cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(app_role_name())))
    rls.set_tenant(tenant_id)
