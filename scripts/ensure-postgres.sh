#!/usr/bin/env bash
# Makes sure a PostgreSQL server is running for the cost-control tests and
# prints its connection URL as the LAST line of stdout. Idempotent:
#   1. installs Debian's `postgresql` package when no server binary exists;
#   2. starts the Debian cluster (pg_ctlcluster) when it is down, creating it
#      first if the package left none;
#   3. creates the role and database the tests use (tests make their own
#      schema per test inside it, so they run in parallel and repeatedly).
# Usage: COST_CONTROL_PG_URL="$(scripts/ensure-postgres.sh | tail -n1)"
# Progress goes to stderr so that stdout's last line is always the URL.
set -euo pipefail

PG_ROLE="${COST_CONTROL_PG_ROLE:-cost_control}"
PG_PASSWORD="${COST_CONTROL_PG_PASSWORD:-cost_control}"
PG_DB="${COST_CONTROL_PG_DB:-cost_control_test}"

say() { echo "==> $*" >&2; }

server_version() {
  ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n1
}

if [[ -z "$(server_version)" || ! -x "/usr/lib/postgresql/$(server_version)/bin/postgres" ]]; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "ensure-postgres: PostgreSQL is not installed and we are not root; install the 'postgresql' package" >&2
    exit 1
  fi
  say "installing PostgreSQL from Debian (apt-get install postgresql)"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
fi
VERSION="$(server_version)"

as_postgres() {
  if [[ "$(id -u)" == 0 ]]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

if ! pg_lsclusters -h 2>/dev/null | awk -v v="$VERSION" '$1==v && $2=="main"' | grep -q .; then
  say "creating PostgreSQL $VERSION cluster 'main'"
  pg_createcluster "$VERSION" main >&2
fi

PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $3}')"
STATUS="$(pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $4}')"
if [[ "$STATUS" != online* ]]; then
  say "starting PostgreSQL $VERSION/main on port $PORT"
  pg_ctlcluster "$VERSION" main start >&2
fi

# Wait until it accepts connections (a fresh start can take a moment).
for _ in $(seq 1 50); do
  if as_postgres "psql -p $PORT -qAtc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
as_postgres "psql -p $PORT -qAtc 'select 1'" >/dev/null

if [[ "$(as_postgres "psql -p $PORT -qAtc \"select 1 from pg_roles where rolname='$PG_ROLE'\"")" != 1 ]]; then
  say "creating role $PG_ROLE"
  as_postgres "psql -p $PORT -qc \"create role $PG_ROLE login password '$PG_PASSWORD'\"" >&2
fi
if [[ "$(as_postgres "psql -p $PORT -qAtc \"select 1 from pg_database where datname='$PG_DB'\"")" != 1 ]]; then
  say "creating database $PG_DB"
  as_postgres "psql -p $PORT -qc \"create database $PG_DB owner $PG_ROLE\"" >&2
fi

say "PostgreSQL $VERSION ready on port $PORT"
echo "postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PORT/$PG_DB"
