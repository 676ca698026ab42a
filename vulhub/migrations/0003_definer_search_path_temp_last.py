"""Every SECURITY DEFINER function of the schema searches pg_temp last, after public.

Such a function runs as the schema's owner. With `SET search_path = pg_catalog, public`
PostgreSQL still looks for tables in the caller's temporary schema first (pg_temp is
searched before the path unless the path names it): the app role, which may create
temporary tables, could put a temporary view called `tenants` or `users` in front of the
real table, and a function that view calls would run as the owner. Naming pg_temp last
closes that, as PostgreSQL's manual advises ("Writing SECURITY DEFINER Functions Safely");
functions and operators are never looked up in pg_temp.

The statement sets every such function of the public schema at once, those of later
migrations included when this is applied after them (tests check each has it).
Going back restores the former path.
"""

from django.db import migrations

SAFE = "pg_catalog, public, pg_temp"
FORMER = "pg_catalog, public"


def every_definer(search_path: str) -> str:
    return f"""
DO $$
DECLARE
  f record;
BEGIN
  FOR f IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
           WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = {search_path}', f.signature);
  END LOOP;
END
$$;"""


class Migration(migrations.Migration):
    dependencies = [
        ("vulhub", "0002_sealed_tenant_context"),
        ("audit", "0009_recorder_only"),
        ("scoring", "0021_pending_writeups_metric"),
    ]

    operations = [migrations.RunSQL(every_definer(SAFE), every_definer(FORMER))]
