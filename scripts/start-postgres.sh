#!/usr/bin/env bash
# Start a local PostgreSQL for the tests and write its URL to var/test-database-url.
# As root on Debian: the packaged cluster through pg_ctlcluster (initdb refuses root).
# Otherwise: a private cluster in var/postgres on a free port (initdb + pg_ctl).
# Role and database "portal" (CREATEDB, so pytest-django can create test_portal).
set -euo pipefail

VAR_DIR="${PORTAL_VAR_DIR:-var}"
mkdir -p "$VAR_DIR"
VAR_DIR="$(cd "$VAR_DIR" && pwd)"
OUT="$VAR_DIR/test-database-url"
ROLE=portal
PASSWORD=portal

version="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1)"
if [ -z "$version" ] || [ ! -x "/usr/lib/postgresql/$version/bin/postgres" ]; then
    echo "error: PostgreSQL is not installed (apt-get install -y postgresql)" >&2
    exit 1
fi
bin="/usr/lib/postgresql/$version/bin"

wait_ready() {  # host port
    local deadline=$((SECONDS + 30))
    until pg_isready -q -h "$1" -p "$2"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "error: PostgreSQL on $1:$2 is not ready after 30 s" >&2
            exit 1
        fi
        sleep 0.2
    done
}

if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {found = 1} END {exit !found}'; then
        pg_createcluster "$version" main >/dev/null
    fi
    port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"
    status="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}')"
    if [ "$status" != "online" ]; then
        echo "Starting PostgreSQL $version (pg_ctlcluster $version main start)..."
        pg_ctlcluster "$version" main start
    fi
    wait_ready 127.0.0.1 "$port"
    as_postgres() { runuser -u postgres -- "$@"; }
    as_postgres psql -q -p "$port" -v ON_ERROR_STOP=1 -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END \$\$;
SQL
    if ! as_postgres psql -p "$port" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$ROLE'" | grep -q 1; then
        as_postgres createdb -p "$port" -O "$ROLE" "$ROLE"
    fi
else
    data="$VAR_DIR/postgres"
    if [ ! -f "$data/PG_VERSION" ]; then
        echo "Creating a private PostgreSQL $version cluster in $data..."
        "$bin/initdb" -D "$data" -U "$ROLE" --auth=trust -E UTF8 >/dev/null
    fi
    if [ -f "$data/port" ] && "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        port="$(cat "$data/port")"
    else
        port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        echo "$port" > "$data/port"
        echo "Starting PostgreSQL $version on 127.0.0.1:$port..."
        "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
            -o "-p $port -k $data -c listen_addresses=127.0.0.1" start >/dev/null
    fi
    wait_ready 127.0.0.1 "$port"
    if ! psql -h 127.0.0.1 -p "$port" -U "$ROLE" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$ROLE'" | grep -q 1; then
        createdb -h 127.0.0.1 -p "$port" -U "$ROLE" "$ROLE"
    fi
fi

echo "postgres://$ROLE:$PASSWORD@127.0.0.1:$port/$ROLE" > "$OUT"
echo "PostgreSQL ready: postgres://$ROLE:***@127.0.0.1:$port/$ROLE"
