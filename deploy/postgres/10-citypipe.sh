#!/bin/sh
# Run once by the postgres image on an empty data folder (/docker-entrypoint-initdb.d): the roles
# and databases of Airflow's metadata and of the DuckLake catalog, each role with its password
# from a secret file (no default). Later password changes: docs/operations.md (ALTER ROLE).
set -eu
for f in /run/secrets/airflow_db_password /run/secrets/warehouse_password; do
  [ -s "$f" ] || { echo "10-citypipe.sh: secret $f is missing or empty" >&2; exit 1; }
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v airflow_password="$(head -n 1 /run/secrets/airflow_db_password)" \
  -v lake_password="$(head -n 1 /run/secrets/warehouse_password)" \
  -f /docker-entrypoint-initdb.d/create_roles.psql
