"""audit_record(audits, events): write audit rows and append events in one call.

The app sends everything a transaction recorded as two JSON arrays; the function
inserts them with statements whose plans PL/pgSQL caches, so recording costs one
short round trip instead of planning a new multi-row statement each time.
Events are numbered after the latest version of their aggregate; an event whose
version a concurrent writer took is skipped (ON CONFLICT DO NOTHING) and left out
of the returned rows, for the caller to retry.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION audit_record(audits jsonb, events jsonb)
RETURNS TABLE (out_position bigint, out_aggregate_type varchar, out_aggregate_id varchar, out_version integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  IF audits IS NOT NULL AND jsonb_array_length(audits) > 0 THEN
    INSERT INTO audit_logs (tenant_id, actor_id, actor_text, action, object_type, object_id, object_text,
                            changes, ip, user_agent, request_id, created_at)
    SELECT a.tenant_id, a.actor_id, a.actor_text, a.action, a.object_type, a.object_id, a.object_text,
           coalesce(a.changes, '{}'), a.ip, a.user_agent, a.request_id, a.created_at
    FROM ROWS FROM (jsonb_to_recordset(audits) AS (
           tenant_id bigint, actor_id bigint, actor_text varchar, action varchar, object_type varchar,
           object_id varchar, object_text varchar, changes jsonb, ip inet, user_agent text,
           request_id varchar, created_at timestamptz))
         WITH ORDINALITY AS a (tenant_id, actor_id, actor_text, action, object_type, object_id, object_text,
                               changes, ip, user_agent, request_id, created_at, n)
    ORDER BY a.n;
  END IF;
  IF events IS NOT NULL AND jsonb_array_length(events) > 0 THEN
    RETURN QUERY
    WITH appended AS (
      INSERT INTO event_store (tenant_id, aggregate_type, aggregate_id, version, event_type, payload,
                               metadata, occurred_at)
      SELECT v.tenant_id, v.aggregate_type, v.aggregate_id,
             coalesce((SELECT max(e.version) FROM event_store e
                       WHERE e.aggregate_type = v.aggregate_type AND e.aggregate_id = v.aggregate_id), 0)
             + row_number() OVER (PARTITION BY v.aggregate_type, v.aggregate_id ORDER BY v.n),
             v.event_type, v.payload, coalesce(v.metadata, '{}'), v.occurred_at
      FROM ROWS FROM (jsonb_to_recordset(events) AS (
             tenant_id bigint, aggregate_type varchar, aggregate_id varchar, event_type varchar,
             payload jsonb, metadata jsonb, occurred_at timestamptz))
           WITH ORDINALITY AS v (tenant_id, aggregate_type, aggregate_id, event_type, payload, metadata,
                                 occurred_at, n)
      ORDER BY v.n
      ON CONFLICT (aggregate_type, aggregate_id, version) DO NOTHING
      RETURNING position, aggregate_type, aggregate_id, version
    )
    SELECT * FROM appended;
  END IF;
END
$$;
"""

BACKWARD = "DROP FUNCTION audit_record(jsonb, jsonb);"


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_only_triggers")]

    operations = [migrations.RunSQL(sql=FORWARD, reverse_sql=BACKWARD)]
