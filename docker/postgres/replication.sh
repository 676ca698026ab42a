#!/bin/sh
# Runs once, when the docker-compose PostgreSQL volume is first created (after init.sql):
# lets the schema owner (POSTGRES_USER) connect for replication from the other containers,
# which `manage.py pitr backup` (pg_basebackup) needs. The image's own pg_hba.conf lets
# "all" databases in over the network, and "all" does not cover replication connections.
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
