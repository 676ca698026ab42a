"""audit_record() retries a lost event version itself, so the app need not read its answer.

Until now an event whose version a concurrent writer took was left out of the rows the
function returned, and the app appended it again. Now the function does that second
try itself: each event that lost its race is appended on its own, numbered after the
version its rival committed (a new statement sees it), up to 5 times. It then returns
every event appended, as before. Two cases end in a serialization failure (SQLSTATE
40001) that the caller may retry with the whole transaction: an aggregate with several
events in the call lost part-way (retrying the rest alone could reorder them), and an
event that lost 5 times.

With nothing left to decide from the answer, the app sends the call and the end of its
transaction together (audit.recording.in_bulk): one round trip fewer for every write.

Going back restores the version of 0004, which leaves lost events to the caller.
"""

import importlib

from django.db import migrations

PREVIOUS = importlib.import_module("audit.migrations.0004_audit_record_function").FORWARD.replace(
    "CREATE FUNCTION audit_record", "CREATE OR REPLACE FUNCTION audit_record", 1
)

COLUMNS = """tenant_id bigint, aggregate_type varchar, aggregate_id varchar, event_type varchar,
             payload jsonb, metadata jsonb, occurred_at timestamptz"""

RETRYING = f"""
CREATE OR REPLACE FUNCTION audit_record(audits jsonb, events jsonb)
RETURNS TABLE (out_position bigint, out_aggregate_type varchar, out_aggregate_id varchar, out_version integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  appended text[] := '{{}}';  -- aggregate_type || E'\\n' || aggregate_id of each event appended
  lost record;
  attempt integer;
BEGIN
  IF audits IS NOT NULL AND jsonb_array_length(audits) > 0 THEN
    INSERT INTO audit_logs (tenant_id, actor_id, actor_text, action, object_type, object_id, object_text,
                            changes, ip, user_agent, request_id, created_at)
    SELECT a.tenant_id, a.actor_id, a.actor_text, a.action, a.object_type, a.object_id, a.object_text,
           coalesce(a.changes, '{{}}'), a.ip, a.user_agent, a.request_id, a.created_at
    FROM ROWS FROM (jsonb_to_recordset(audits) AS (
           tenant_id bigint, actor_id bigint, actor_text varchar, action varchar, object_type varchar,
           object_id varchar, object_text varchar, changes jsonb, ip inet, user_agent text,
           request_id varchar, created_at timestamptz))
         WITH ORDINALITY AS a (tenant_id, actor_id, actor_text, action, object_type, object_id, object_text,
                               changes, ip, user_agent, request_id, created_at, n)
    ORDER BY a.n;
  END IF;
  IF events IS NULL OR jsonb_array_length(events) = 0 THEN
    RETURN;
  END IF;
  FOR out_position, out_aggregate_type, out_aggregate_id, out_version IN
    WITH added AS (
      INSERT INTO event_store (tenant_id, aggregate_type, aggregate_id, version, event_type, payload,
                               metadata, occurred_at)
      SELECT v.tenant_id, v.aggregate_type, v.aggregate_id,
             coalesce((SELECT max(e.version) FROM event_store e
                       WHERE e.aggregate_type = v.aggregate_type AND e.aggregate_id = v.aggregate_id), 0)
             + row_number() OVER (PARTITION BY v.aggregate_type, v.aggregate_id ORDER BY v.n),
             v.event_type, v.payload, coalesce(v.metadata, '{{}}'), v.occurred_at
      FROM ROWS FROM (jsonb_to_recordset(events) AS ({COLUMNS}))
           WITH ORDINALITY AS v (tenant_id, aggregate_type, aggregate_id, event_type, payload, metadata,
                                 occurred_at, n)
      ORDER BY v.n
      ON CONFLICT (aggregate_type, aggregate_id, version) DO NOTHING
      RETURNING position, aggregate_type, aggregate_id, version
    )
    SELECT * FROM added
  LOOP
    appended := appended || (out_aggregate_type || E'\\n' || out_aggregate_id);
    RETURN NEXT;
  END LOOP;
  IF cardinality(appended) = jsonb_array_length(events) THEN
    RETURN;
  END IF;
  -- Some events lost their version to a concurrent writer that has committed since.
  SELECT o.aggregate_type, o.aggregate_id INTO lost
  FROM jsonb_to_recordset(events) AS o(aggregate_type varchar, aggregate_id varchar)
  GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 1;
  IF FOUND THEN
    -- An aggregate with several events here: the lost ones retried alone could be reordered.
    RAISE EXCEPTION 'a concurrent writer took versions this call needed, and % % has several events in it; retry the transaction',
      lost.aggregate_type, lost.aggregate_id USING ERRCODE = 'serialization_failure';
  END IF;
  FOR lost IN  -- each the only event of its aggregate here
    SELECT v.*
    FROM ROWS FROM (jsonb_to_recordset(events) AS ({COLUMNS})) WITH ORDINALITY AS v
    WHERE NOT (v.aggregate_type || E'\\n' || v.aggregate_id) = ANY (appended)
    ORDER BY v.ordinality
  LOOP
    FOR attempt IN 1..5 LOOP
      INSERT INTO event_store (tenant_id, aggregate_type, aggregate_id, version, event_type, payload,
                               metadata, occurred_at)
      SELECT lost.tenant_id, lost.aggregate_type, lost.aggregate_id,
             coalesce((SELECT max(e.version) FROM event_store e
                       WHERE e.aggregate_type = lost.aggregate_type AND e.aggregate_id = lost.aggregate_id), 0) + 1,
             lost.event_type, lost.payload, coalesce(lost.metadata, '{{}}'), lost.occurred_at
      ON CONFLICT (aggregate_type, aggregate_id, version) DO NOTHING
      RETURNING position, aggregate_type, aggregate_id, version
      INTO out_position, out_aggregate_type, out_aggregate_id, out_version;
      IF FOUND THEN
        RETURN NEXT;
        EXIT;
      END IF;
      IF attempt = 5 THEN
        RAISE EXCEPTION '% %: too many concurrent writers', lost.aggregate_type, lost.aggregate_id
          USING ERRCODE = 'serialization_failure';
      END IF;
    END LOOP;
  END LOOP;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_row_hash_version_2")]

    operations = [migrations.RunSQL(sql=RETRYING, reverse_sql=PREVIOUS)]
