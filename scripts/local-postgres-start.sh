#!/bin/bash
# local-postgres-start.sh -- idempotent throw-away PostgreSQL server for tests and CI.
#
# Uses Debian's postgresql package (installed with apt-get when missing and running as
# root), creates a cluster in a temporary directory, serves it on 127.0.0.1:$PORT with
# trust authentication, creates the database `metalab`, and prints its URL on stdout.
# Running it again while the server is up only prints the URL.
#
# Environment knobs (all optional):
#   METALAB_PG_PORT   port (default 55432)
#   METALAB_PG_DIR    cluster directory (default: $TMPDIR/metalab-postgres-$PORT)
#   METALAB_PG_SKIP_APT=1  never call apt-get
# The URL is also written to $METALAB_PG_DIR/url.
set -euo pipefail

PORT="${METALAB_PG_PORT:-55432}"
DIR="${METALAB_PG_DIR:-${TMPDIR:-/tmp}/metalab-postgres-$PORT}"
DB=metalab
URL="postgresql://postgres@127.0.0.1:$PORT/$DB"

log() { printf '[local-postgres] %s\n' "$*" >&2; }

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

BIN="$(find_bin)"
if [[ -z "$BIN" ]]; then
    if [[ "${METALAB_PG_SKIP_APT:-0}" == 1 || "$(id -u)" != 0 ]]; then
        log "ERROR: PostgreSQL is not installed; install Debian's 'postgresql' package"
        exit 1
    fi
    log "installing postgresql with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    BIN="$(find_bin)"
fi

# PostgreSQL refuses to run as root: run the server as the `postgres` system user.
as_pg() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; }

if ! ready; then
    mkdir -p "$DIR"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$DIR"
    if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
        log "creating a cluster in $DIR/data"
        as_pg "$BIN/initdb" -D "$DIR/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
    fi
    log "starting the server on 127.0.0.1:$PORT"
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start -o \
        "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off" >/dev/null
fi

if ! "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
fi
echo "$URL" > "$DIR/url"
echo "$URL"
