-- Runs once, when the docker-compose PostgreSQL volume is first created.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
