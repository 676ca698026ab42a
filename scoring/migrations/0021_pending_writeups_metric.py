"""vulhub_pending_writeups(): the write-ups waiting for grading, counted per class, for /metrics.

The app role sees one tenant's rows at a time (row-level security), and /metrics answers
outside any tenant. This function, run as the schema's owner, hands it only totals:
each active tenant's slug, its number of pending submissions and when the oldest was
sent. No row, no student and no answer leaves it (docs/monitoring.md, docs/security.md).
Its tables are named with their schema and pg_temp comes last in its search path, so a
temporary table of the caller cannot stand in for them (migration vulhub 0003).
Each tenant's pending rows are one range of the grading queue's index (idx_submissions_queue).
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION vulhub_pending_writeups() RETURNS TABLE (tenant text, pending bigint, oldest timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
  SELECT t.slug::text, p.pending, p.oldest
  FROM public.tenants t
  CROSS JOIN LATERAL (
    SELECT count(*) AS pending, min(s.submitted_at) AS oldest
    FROM public.submissions s WHERE s.tenant_id = t.id AND s.status = 'PENDING'
  ) p
  WHERE t.is_active AND p.pending > 0
$$;
-- the app role gets EXECUTE from `db_roles` (vulhub/ops/db_roles.py), no other role
REVOKE EXECUTE ON FUNCTION vulhub_pending_writeups() FROM PUBLIC;
"""

REVERSE = "DROP FUNCTION vulhub_pending_writeups();"


class Migration(migrations.Migration):
    dependencies = [("scoring", "0020_admin_challenge_label_recent_badges"), ("tenants", "0013_admin_names")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
