"""The SQL that makes a table a tenant's table, for migrations: row-level security and same-tenant references.

Migrations import these and run what they return, so what they return must never
change: a migration applied long ago is reversed with the same statements. A new rule
gets a new function.
"""

from django.db import migrations

# the policy of every tenant table: a row is seen and written only inside its tenant's context
RULE = "tenant_id = (SELECT vulhub_current_tenant())"


def row_level_security(table: str) -> migrations.RunSQL:
    """Row-level security on `table`, forced for its owner too, with the tenant policy; reversible."""
    return migrations.RunSQL(
        f"""
        ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
        ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
        CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE});
        """,
        reverse_sql=f"""
        DROP POLICY tenant_isolation ON {table};
        ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
        ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
        """,
    )


def same_tenant_fk_name(table: str, column: str) -> str:
    return f"fk_{table}_{column.removesuffix('_id')}_same_tenant"


def same_tenant_references(references, *, referenced: tuple[str, ...] = ()) -> migrations.RunSQL:
    """Foreign keys that also match the tenant: each (table, column, parent) refers to (id, tenant_id) of parent.

    `referenced`: tables of this migration that others refer to this way, which first get
    a unique (id, tenant_id) key (uniq_<table>_id_tenant). Reversible.
    """
    keys = [f"ALTER TABLE {t} ADD CONSTRAINT uniq_{t}_id_tenant UNIQUE (id, tenant_id);" for t in referenced]
    forward = [
        *keys,
        *[
            f"ALTER TABLE {table} ADD CONSTRAINT {same_tenant_fk_name(table, column)} "
            f"FOREIGN KEY ({column}, tenant_id) REFERENCES {parent} (id, tenant_id) DEFERRABLE INITIALLY DEFERRED;"
            for table, column, parent in references
        ],
    ]
    backward = [
        *[f"ALTER TABLE {t} DROP CONSTRAINT {same_tenant_fk_name(t, column)};" for t, column, _ in references],
        *[f"ALTER TABLE {t} DROP CONSTRAINT uniq_{t}_id_tenant;" for t in referenced],
    ]
    return migrations.RunSQL(forward, reverse_sql=backward)
