#!/usr/bin/env bash
# Make sure a local PostgreSQL with the PostGIS extension answers on
# 127.0.0.1:5432, and that the test database exists with PostGIS enabled.
set -euo pipefail
DB=${TWIN_TEST_DB:-twin_test}
PSQL="psql -h 127.0.0.1 -p 5432 -U postgres -v ON_ERROR_STOP=1 -qAt"

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ! command -v psql >/dev/null; then
    echo "setup_postgis: psql not found; install PostgreSQL 15 (apt-get install -y postgresql-15)" >&2
    exit 1
fi
if ! pg_up; then
    echo "setup_postgis: PostgreSQL is down; starting the local cluster"
    if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
        ver=$(ls /etc/postgresql | sort -n | tail -1)
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    fi
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    pg_up || { echo "setup_postgis: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi
ver=$($PSQL -d postgres -c "SHOW server_version_num" | cut -c1-2)
if ! $PSQL -d postgres -c "SELECT 1 FROM pg_available_extensions WHERE name='postgis'" | grep -q 1; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup_postgis: installing postgresql-$ver-postgis-3"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "postgresql-$ver-postgis-3" >/dev/null 2>&1 || {
            apt-get update -q >/dev/null && apt-get install -y -q "postgresql-$ver-postgis-3" >/dev/null; }
    else
        echo "setup_postgis: PostGIS is missing; as root run: apt-get install -y postgresql-$ver-postgis-3" >&2
        exit 1
    fi
fi
if ! $PSQL -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
    $PSQL -d postgres -c "CREATE DATABASE \"$DB\""
fi
$PSQL -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS postgis"
echo "setup_postgis: PostGIS $($PSQL -d "$DB" -c 'SELECT postgis_lib_version()') ready in database $DB"
