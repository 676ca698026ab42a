#!/bin/sh
# A hot standby of docker-compose's database (the `replica` service, profile `replica`).
# On its first start (an empty volume) it copies the primary with pg_basebackup, which
# writes standby.signal and the primary's address (-R) and streams the WAL written
# meanwhile (-X stream), through a replication slot of its own so that the primary keeps
# the WAL this standby has not received yet, up to max_slot_wal_keep_size. Every start
# then runs PostgreSQL with the arguments given ("$@"), as a read-only hot standby that
# follows the primary.
#
# Starting again from a fresh copy (the standby was too far behind: "requested WAL
# segment has already been removed"):  docker compose --profile replica rm -sf replica
# && docker volume rm <project>_replica_data, then up again. Removing the standby for
# good: drop its slot on the primary, or the primary keeps WAL for it:
#   docker compose exec postgres psql -U vulhub -d vulhub_dev -c "SELECT pg_drop_replication_slot('vulhub_replica')"
set -e

: "${PGDATA:?PGDATA is the standby's data directory}"
: "${PRIMARY_HOST:=postgres}"
: "${PRIMARY_PORT:=5432}"
: "${REPLICATION_USER:=vulhub_replicator}"
: "${REPLICATION_SLOT:=vulhub_replica}"
: "${PGPASSWORD:?set PGPASSWORD to the replication role's password}"
export PGPASSWORD

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
        echo "standby: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
        sleep 2
    done
    # a slot left by an earlier copy of this standby: it holds WAL no one will read
    pg_receivewal -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" \
        --slot="$REPLICATION_SLOT" --drop-slot 2>/dev/null || true
    rm -rf "${PGDATA:?}"/* "${PGDATA:?}"/.[!.]* 2>/dev/null || true  # a copy that failed half-way
    pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" -D "$PGDATA" \
        -R -X stream -C -S "$REPLICATION_SLOT" --checkpoint=fast --progress
    chmod 700 "$PGDATA"
    echo "standby: copied the primary; starting as a hot standby"
fi

exec postgres "$@"
