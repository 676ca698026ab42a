"""Only the recorder writes audit rows and events.

The app role loses INSERT, UPDATE and DELETE on audit_logs, event_store and
audit_chain_heads (vulhub/ops/db_roles.py). audit_record() stays the one way in:

- Called by a role that may insert (the owner's commands, bulk loads), it inserts as
  before (audit_record_rows(), the former audit_record()).
- Called by the app role, it hands the rows to audit_record_sealed() (SECURITY DEFINER),
  which takes the tenant from the transaction's sealed context (migration vulhub 0002) and
  the time from the database's clock, whatever the caller wrote, and accepts as actor only
  a user of that tenant (or a platform account). No tenant context: refused.

Each row the recorder writes is marked recorded = true by the chain trigger (the recorder
sets vulhub.recording for its own statements). A row inserted any other way, even by the
owner, is marked false, and `verify_audit` names it; rows from before this migration are
NULL and must all come before the first recorded row of their chain.

Going back restores audit_record() as the one function, unmarked rows and the old trigger.
"""

import importlib

from django.db import migrations, models

LINEAR = importlib.import_module("audit.migrations.0005_linear_chain_trigger").LINEAR
CHAIN_FUNCTION = LINEAR[: LINEAR.index("CREATE FUNCTION audit_logs_chain_flush()")]
HASH_LINE = "  NEW.row_hash := audit_logs_row_hash(NEW);"
assert HASH_LINE in CHAIN_FUNCTION
MARKING_CHAIN_FUNCTION = CHAIN_FUNCTION.replace(
    HASH_LINE, "  NEW.recorded := coalesce(current_setting('vulhub.recording', true), '') = 'on';\n" + HASH_LINE
)

OUT = "out_position bigint, out_aggregate_type varchar, out_aggregate_id varchar, out_version integer"
DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"

FORWARD = f"""
ALTER FUNCTION audit_record(jsonb, jsonb) RENAME TO audit_record_rows;

CREATE FUNCTION audit_record_sealed(audits jsonb, events jsonb) RETURNS TABLE ({OUT})
LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
DECLARE
  tenant bigint := vulhub_current_tenant();
  at timestamptz := clock_timestamp();
  stranger text;
BEGIN
  IF tenant IS NULL THEN
    RAISE EXCEPTION 'audit rows are recorded only in a tenant''s context' USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT x->>'tenant_id' INTO stranger
  FROM (SELECT jsonb_array_elements(coalesce(audits, '[]')) UNION ALL SELECT jsonb_array_elements(coalesce(events, '[]'))) r(x)
  WHERE x->>'tenant_id' IS NOT NULL AND x->>'tenant_id' <> tenant::text LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'an audit row or event of tenant % in tenant %''s context', stranger, tenant
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT a->>'actor_id' INTO stranger FROM jsonb_array_elements(coalesce(audits, '[]')) a
  WHERE a->>'actor_id' IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM users u WHERE u.id = (a->>'actor_id')::bigint
      AND (u.tenant_id = tenant OR (u.tenant_id IS NULL AND u.is_superuser)))
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'actor % is not a user of tenant %', stranger, tenant USING ERRCODE = 'insufficient_privilege';
  END IF;
  audits := (SELECT jsonb_agg(a || jsonb_build_object('tenant_id', tenant, 'created_at', at) ORDER BY n)
             FROM jsonb_array_elements(coalesce(audits, '[]')) WITH ORDINALITY AS x(a, n));
  events := (SELECT jsonb_agg(e || jsonb_build_object('tenant_id', tenant, 'occurred_at', at) ORDER BY n)
             FROM jsonb_array_elements(coalesce(events, '[]')) WITH ORDINALITY AS x(e, n));
  PERFORM set_config('vulhub.recording', 'on', true);
  RETURN QUERY SELECT * FROM audit_record_rows(audits, events);
  PERFORM set_config('vulhub.recording', '', true);
END
$$;

CREATE FUNCTION audit_record(audits jsonb, events jsonb) RETURNS TABLE ({OUT})
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF has_table_privilege('audit_logs', 'INSERT') AND has_table_privilege('event_store', 'INSERT') THEN
    PERFORM set_config('vulhub.recording', 'on', true);
    RETURN QUERY SELECT * FROM audit_record_rows(audits, events);
    PERFORM set_config('vulhub.recording', '', true);
  ELSE
    RETURN QUERY SELECT * FROM audit_record_sealed(audits, events);
  END IF;
END
$$;

{MARKING_CHAIN_FUNCTION}
"""

BACKWARD = f"""
{CHAIN_FUNCTION}
DROP FUNCTION audit_record(jsonb, jsonb);
DROP FUNCTION audit_record_sealed(jsonb, jsonb);
ALTER FUNCTION audit_record_rows(jsonb, jsonb) RENAME TO audit_record;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_audit_record_retries_versions"), ("vulhub", "0002_sealed_tenant_context")]

    operations = [
        migrations.AddField(
            model_name="auditlog",
            name="recorded",
            field=models.BooleanField(
                null=True,
                editable=False,
                help_text="Written by the recorder (audit_record()); false: inserted some other way; "
                "empty: from before the mark existed.",
            ),
        ),
        migrations.RunSQL(FORWARD, reverse_sql=BACKWARD),
    ]
