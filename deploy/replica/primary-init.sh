#!/bin/sh
# Runs once, when docker-compose's PostgreSQL volume is first created (mounted into the
# image's /docker-entrypoint-initdb.d): the role a streaming replica logs in as, and the
# pg_hba.conf line that lets it stream from any address of the compose network (a
# password is still needed). The `replica` service (deploy/replica/standby.sh) uses both.
# On a volume made before this script existed, do the same by hand, once:
#   docker compose exec postgres psql -U vulhub -d vulhub_dev \
#     -c "CREATE ROLE vulhub_replicator WITH REPLICATION LOGIN PASSWORD 'vulhub_replicator123'"
#   docker compose exec postgres sh -c \
#     'echo "host replication vulhub_replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"'
#   docker compose exec postgres psql -U vulhub -d vulhub_dev -c "SELECT pg_reload_conf()"
set -e

: "${REPLICATION_USER:=vulhub_replicator}"
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD for the replica role}"

# REPLICATION only: it reads the whole cluster's files and WAL for the standby, and no
# table through SQL (it is no superuser, and no member of any other role).
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$REPLICATION_USER" -v password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE :"role" WITH REPLICATION LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SQL

# The image's last line (host all all all) does not cover replication connections.
echo "host replication $REPLICATION_USER all scram-sha-256" >> "$PGDATA/pg_hba.conf"
