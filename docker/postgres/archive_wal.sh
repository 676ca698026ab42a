#!/bin/sh
# PostgreSQL's archive_command for VulHub's point-in-time recovery (docs/operations.md):
#   archive_command = '/path/to/archive_wal.sh %p %f /archive/wal'
# Copies one WAL file into the archive directory under a temporary name, flushes it to
# disk and only then gives it its name, so a crash never leaves a truncated file under
# the real name. A file already archived with the same content is success (PostgreSQL
# retries after a crash); with other content it is an error, never overwritten.
set -eu
source_path=$1
name=$2
archive=$3
if [ -f "$archive/$name" ]; then
    cmp -s "$source_path" "$archive/$name" && exit 0
    echo "archive_wal: $archive/$name exists with other content; not overwritten" >&2
    exit 1
fi
cp "$source_path" "$archive/.$name.partial"
sync
mv "$archive/.$name.partial" "$archive/$name"
