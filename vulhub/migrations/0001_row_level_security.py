"""Row-level security on every tenant-owned table: the database enforces tenancy a second time.

Each table gets ENABLE and FORCE ROW LEVEL SECURITY (FORCE: its owner too, unless the
owner role has BYPASSRLS) and one policy, tenant_isolation, whose USING and WITH CHECK
both say: the row's tenant_id is the transaction's tenant (setting vulhub.tenant_id),
or the transaction bypasses isolation on purpose (setting vulhub.rls_bypass = 'on',
which only platform superusers' requests and management commands set, each recorded
in the audit log: tenants/rls.py). With neither setting a query reads no row and an
insert is refused: the policy fails closed.

users has one more policy, for SELECT only: platform accounts (no tenant, superuser)
can be read, so a platform superuser can log in and be recognised on a tenant's host;
nothing lets a tenant's request change them.

A new table with a tenant_id column needs the same: vulhub/tests/test_row_level_security.py
fails until it has it.
"""

from django.db import migrations

TENANT_TABLES = [
    "users",
    "projects",
    "submissions",
    "badges",
    "user_badges",
    "leaderboards",
    "audit_logs",
    "event_store",
]

FUNCTIONS = """
CREATE FUNCTION vulhub_current_tenant() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('vulhub.tenant_id', true), '')::bigint $$;

CREATE FUNCTION vulhub_rls_bypass() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(current_setting('vulhub.rls_bypass', true), '') = 'on' $$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION vulhub_rls_bypass();
DROP FUNCTION vulhub_current_tenant();
"""

RULE = "tenant_id = vulhub_current_tenant() OR vulhub_rls_bypass()"


def enable(table: str) -> str:
    return f"""
        ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
        ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
        CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE});
    """


def disable(table: str) -> str:
    return f"""
        DROP POLICY tenant_isolation ON {table};
        ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
        ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
    """


PLATFORM_ACCOUNTS = """
CREATE POLICY platform_accounts_readable ON users FOR SELECT
USING (tenant_id IS NULL AND is_superuser);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_constraint_messages"),
        ("challenges", "0004_drop_tenant_only_index"),
        ("scoring", "0010_ranks_read_not_stored"),
        ("audit", "0006_drop_single_tenant_indexes"),
    ]

    operations = [
        migrations.RunSQL(FUNCTIONS, reverse_sql=DROP_FUNCTIONS),
        *[migrations.RunSQL(enable(table), reverse_sql=disable(table)) for table in TENANT_TABLES],
        migrations.RunSQL(PLATFORM_ACCOUNTS, reverse_sql="DROP POLICY platform_accounts_readable ON users;"),
    ]
