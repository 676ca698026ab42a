"""A tenant context the app role cannot forge, and no bypass it could switch on.

Until now row-level security trusted two plain settings, vulhub.tenant_id and
vulhub.rls_bypass, and any role may set_config() a setting: one injected statement
could see every tenant. Now:

- The transaction's tenant lives in the setting vulhub.tenant as "<id>:<seal>", the seal
  an HMAC-SHA256 of the tenant, the backend's pid and the transaction's start, keyed
  with a random key made here that only the owner can read (vulhub_seal_key).
  vulhub_current_tenant() (SECURITY DEFINER) checks the seal, so a
  value copied from another transaction or typed by hand counts as no tenant at all.
- Only vulhub_enter_host() and vulhub_enter_tenant() write the setting, and only for a
  caller holding a fresh proof: an HMAC of the host (or tenant id) and a time, made by the
  app with a key derived from its SECRET_KEY (vulhub_context_key holds those of SECRET_KEY
  and SECRET_KEY_FALLBACKS, installed by `migrate`; no query of the app role reads it). An attacker with
  the app role's login, or a statement injected into a request, has no proof for
  another tenant and no way to make one.
- vulhub_rls_bypass() is false for everybody: work across tenants runs as a role with
  BYPASSRLS (management commands connect as the owner), never through a setting.
- The policies call vulhub_current_tenant() once per statement (a scalar subquery),
  not once per row.
- tenants gets row-level security too: a transaction sees its own tenant's row only
  (invite codes are in its settings); the host lookup happens inside vulhub_enter_host().
- The admin's history (django_admin_log) shows a transaction the entries of the users it
  can see: its tenant's.
- Sessions are reached only through their key: the app role calls vulhub_session_*()
  and cannot list the table.
- A platform superuser's last_login is written by vulhub_platform_login(): nothing else
  of a platform account is writable from a tenant's request.

The table privileges themselves (what the app role may do on each table) are granted by
vulhub/ops/db_roles.py after every migration.

Going back restores the plain settings and the bypass.
"""

from django.db import migrations

OLD_RULE = "tenant_id = vulhub_current_tenant() OR vulhub_rls_bypass()"
RULE = "tenant_id = (SELECT vulhub_current_tenant())"

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"


def with_rule(rule: str) -> str:
    """Every tenant_isolation policy (on whatever tables have one) set to `rule`."""
    return f"""
DO $$
DECLARE
  p record;
BEGIN
  FOR p IN SELECT tablename FROM pg_policies WHERE schemaname = 'public' AND policyname = 'tenant_isolation' LOOP
    EXECUTE format('ALTER POLICY tenant_isolation ON %I USING ({rule}) WITH CHECK ({rule})', p.tablename);
  END LOOP;
END
$$;"""


FORWARD = f"""
-- The app's keys (from SECRET_KEY and SECRET_KEY_FALLBACKS, installed by `migrate`): a
-- proof made with any of them enters a tenant. Stored as HMAC pads (key XOR 0x36, 0x5c).
CREATE TABLE vulhub_context_key (
  fingerprint text PRIMARY KEY,
  inner_pad bytea NOT NULL CHECK (length(inner_pad) = 64),
  outer_pad bytea NOT NULL CHECK (length(outer_pad) = 64)
);
REVOKE ALL ON vulhub_context_key FROM PUBLIC;

-- The database's own key for seals, random, made here and never shown to anyone.
CREATE TABLE vulhub_seal_key (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  inner_pad bytea NOT NULL CHECK (length(inner_pad) = 64),
  outer_pad bytea NOT NULL CHECK (length(outer_pad) = 64)
);
REVOKE ALL ON vulhub_seal_key FROM PUBLIC;
DO $$
DECLARE
  -- gen_random_uuid() draws from the server's strong random source: 244 random bits
  k bytea := sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')) || decode(repeat('00', 32), 'hex');
  inner_pad bytea := k;
  outer_pad bytea := k;
BEGIN
  FOR i IN 0..63 LOOP
    inner_pad := set_byte(inner_pad, i, get_byte(k, i) # 54);
    outer_pad := set_byte(outer_pad, i, get_byte(k, i) # 92);
  END LOOP;
  INSERT INTO vulhub_seal_key (inner_pad, outer_pad) VALUES (inner_pad, outer_pad);
END
$$;

-- HMAC-SHA256 (RFC 2104) of a message with a key's pads.
CREATE FUNCTION vulhub_hmac(inner_pad bytea, outer_pad bytea, message text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT pg_catalog.encode(pg_catalog.sha256(outer_pad OPERATOR(pg_catalog.||)
           pg_catalog.sha256(inner_pad OPERATOR(pg_catalog.||) pg_catalog.convert_to(message, 'UTF8'))), 'hex')
$$;

-- What binds a tenant to this transaction of this backend (a real backend pid, behind
-- PgBouncer too; the start as an epoch, whatever DateStyle or TimeZone say).
-- (This one and vulhub_current_tenant() run for every statement: no SET clause, which would
-- cost a configuration save and restore per call; every name in them is schema-qualified
-- instead, so a caller's search_path cannot put its own objects in their way.)
CREATE FUNCTION vulhub_context_seal(tenant text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
  k public.vulhub_seal_key;
BEGIN
  SELECT * INTO k FROM public.vulhub_seal_key;
  RETURN public.vulhub_hmac(k.inner_pad, k.outer_pad,
                            'seal|' || tenant || '|' || pg_catalog.pg_backend_pid()
                            || '|' || pg_catalog.date_part('epoch', pg_catalog.transaction_timestamp()));
END
$$;
REVOKE EXECUTE ON FUNCTION vulhub_context_seal(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION vulhub_current_tenant() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
  context text := pg_catalog.current_setting('vulhub.tenant', true);
  tenant text := pg_catalog.split_part(context, ':', 1);
  k public.vulhub_seal_key;
BEGIN
  IF tenant OPERATOR(pg_catalog.~) '^[0-9]{{1,18}}$' THEN
    -- vulhub_context_seal()'s computation, inline: one SECURITY DEFINER call per statement
    SELECT * INTO k FROM public.vulhub_seal_key;
    IF pg_catalog.split_part(context, ':', 2) OPERATOR(pg_catalog.=) public.vulhub_hmac(
         k.inner_pad, k.outer_pad, 'seal|' || tenant || '|' || pg_catalog.pg_backend_pid()
         || '|' || pg_catalog.date_part('epoch', pg_catalog.transaction_timestamp())) THEN
      RETURN tenant::pg_catalog.int8;
    END IF;
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION vulhub_rls_bypass() RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT false $$;

CREATE FUNCTION vulhub_check_proof(message text, stamp bigint, proof text) RETURNS void
LANGUAGE plpgsql STABLE {DEFINER} AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM vulhub_context_key) THEN
    RAISE EXCEPTION 'VulHub''s tenant context key is not installed: run manage.py migrate'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF proof IS NULL OR stamp IS NULL OR abs(extract(epoch FROM clock_timestamp()) - stamp) > 300
     OR NOT EXISTS (SELECT 1 FROM vulhub_context_key k
                    WHERE vulhub_hmac(k.inner_pad, k.outer_pad, 'enter|' || message || '|' || stamp) = proof) THEN
    RAISE EXCEPTION 'tenant context refused: its proof does not verify (a SECRET_KEY other than the one '
                    '`migrate` installed, a clock more than 5 minutes off, or a forgery)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION vulhub_check_proof(text, bigint, text) FROM PUBLIC;

CREATE FUNCTION vulhub_set_context(tenant bigint) RETURNS void
LANGUAGE sql VOLATILE {DEFINER} AS $$
  SELECT set_config('vulhub.tenant',
                    CASE WHEN tenant IS NULL THEN '' ELSE tenant || ':' || vulhub_context_seal(tenant::text) END,
                    true)
$$;
REVOKE EXECUTE ON FUNCTION vulhub_set_context(bigint) FROM PUBLIC;

-- The request's tenant: the active tenant served on `host` (as Tenant.objects.for_host),
-- set for the transaction and returned (no row: no tenant, and none set).
CREATE FUNCTION vulhub_enter_host(host text, stamp bigint, proof text) RETURNS SETOF tenants
LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
DECLARE
  found tenants;
BEGIN
  PERFORM vulhub_check_proof('host|' || host, stamp, proof);
  SELECT * INTO found FROM tenants t WHERE lower(t.domain) = lower(host) AND t.is_active LIMIT 1;
  PERFORM vulhub_set_context(found.id);
  IF found.id IS NOT NULL THEN
    RETURN NEXT found;
  END IF;
END
$$;

-- A tenant by id (work outside a request: tenants.rls.tenant_context); NULL: none.
CREATE FUNCTION vulhub_enter_tenant(tenant bigint, stamp bigint, proof text) RETURNS bigint
LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
BEGIN
  PERFORM vulhub_check_proof('tenant|' || coalesce(tenant::text, ''), stamp, proof);
  PERFORM vulhub_set_context(tenant);
  RETURN tenant;
END
$$;

{with_rule(RULE)}

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_itself ON tenants
  USING (id = (SELECT vulhub_current_tenant())) WITH CHECK (id = (SELECT vulhub_current_tenant()));

-- The admin's history: an entry exists for a transaction when its user does (users has
-- row-level security: the tenant's users, and platform accounts).
ALTER TABLE django_admin_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE django_admin_log FORCE ROW LEVEL SECURITY;
CREATE POLICY by_visible_user ON django_admin_log
  USING (EXISTS (SELECT 1 FROM users u WHERE u.id = user_id))
  WITH CHECK (EXISTS (SELECT 1 FROM users u WHERE u.id = user_id));

-- Sessions, through their key only.
CREATE FUNCTION vulhub_session_load(key text) RETURNS TABLE (session_data text, expire_date timestamptz)
LANGUAGE sql STABLE {DEFINER} AS $$
  SELECT s.session_data, s.expire_date FROM django_session s WHERE s.session_key = key AND s.expire_date > now()
$$;
CREATE FUNCTION vulhub_session_exists(key text) RETURNS boolean
LANGUAGE sql STABLE {DEFINER} AS $$
  SELECT EXISTS (SELECT 1 FROM django_session s WHERE s.session_key = key)
$$;
CREATE FUNCTION vulhub_session_save(key text, data text, expires timestamptz, must_create boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
BEGIN
  IF must_create THEN
    INSERT INTO django_session (session_key, session_data, expire_date) VALUES (key, data, expires)
      ON CONFLICT (session_key) DO NOTHING;
  ELSE
    UPDATE django_session SET session_data = data, expire_date = expires WHERE session_key = key;
  END IF;
  RETURN FOUND;
END
$$;
CREATE FUNCTION vulhub_session_delete(key text) RETURNS void
LANGUAGE sql VOLATILE {DEFINER} AS $$
  DELETE FROM django_session WHERE session_key = key
$$;

CREATE FUNCTION vulhub_platform_login(account bigint) RETURNS void
LANGUAGE sql VOLATILE {DEFINER} AS $$
  UPDATE users SET last_login = now() WHERE id = account AND tenant_id IS NULL AND is_superuser
$$;
"""

BACKWARD = f"""
DROP FUNCTION vulhub_platform_login(bigint);
DROP FUNCTION vulhub_session_delete(text);
DROP FUNCTION vulhub_session_save(text, text, timestamptz, boolean);
DROP FUNCTION vulhub_session_exists(text);
DROP FUNCTION vulhub_session_load(text);
DROP POLICY by_visible_user ON django_admin_log;
ALTER TABLE django_admin_log NO FORCE ROW LEVEL SECURITY;
ALTER TABLE django_admin_log DISABLE ROW LEVEL SECURITY;
DROP POLICY tenant_itself ON tenants;
ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY;
ALTER TABLE tenants DISABLE ROW LEVEL SECURITY;
{with_rule(OLD_RULE)}
DROP FUNCTION vulhub_enter_tenant(bigint, bigint, text);
DROP FUNCTION vulhub_enter_host(text, bigint, text);
DROP FUNCTION vulhub_set_context(bigint);
DROP FUNCTION vulhub_check_proof(text, bigint, text);
CREATE OR REPLACE FUNCTION vulhub_rls_bypass() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(current_setting('vulhub.rls_bypass', true), '') = 'on' $$;
CREATE OR REPLACE FUNCTION vulhub_current_tenant() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
AS $$ SELECT nullif(current_setting('vulhub.tenant_id', true), '')::bigint $$;
DROP FUNCTION vulhub_context_seal(text);
DROP FUNCTION vulhub_hmac(bytea, bytea, text);
DROP TABLE vulhub_seal_key;
DROP TABLE vulhub_context_key;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("vulhub", "0001_row_level_security"),
        ("tenants", "0005_rate_limit_hits"),
        ("scoring", "0014_first_blood"),
        ("audit", "0008_audit_record_retries_versions"),
        ("sessions", "0001_initial"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=BACKWARD)]
