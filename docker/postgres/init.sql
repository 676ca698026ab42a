-- Runs once, when the docker-compose PostgreSQL volume is first created.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

-- VulHub's database roles (vulhub/ops/db_roles.py, docs/configuration.md). The image's
-- POSTGRES_USER ("vulhub") owns the schema and runs the migrations; the app runs as
-- vulhub_app, which only reads and writes rows under row-level security; backups run
-- as vulhub_backup, which reads everything. Local passwords: change them for anything
-- but a trial (and in the web service's URLs).
CREATE ROLE vulhub_app LOGIN PASSWORD 'vulhub_app123' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
CREATE ROLE vulhub_backup LOGIN PASSWORD 'vulhub_backup123' NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE;
GRANT pg_read_all_data TO vulhub_backup;
GRANT CONNECT ON DATABASE vulhub_dev TO vulhub_app, vulhub_backup;

-- Monitoring (docs/monitoring.md): prometheus-postgres-exporter logs in as vulhub_monitor.
-- pg_monitor lets it read every statistics view and setting (other sessions' queries in
-- pg_stat_activity included) and nothing of the data; it bypasses no row-level security.
-- On a volume created before this line existed, run these three statements by hand.
CREATE ROLE vulhub_monitor LOGIN PASSWORD 'vulhub_monitor123' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
GRANT pg_monitor TO vulhub_monitor;
GRANT CONNECT ON DATABASE vulhub_dev TO vulhub_monitor;
