#!/bin/sh
# One database and one login role per service, from the services' own database URLs (the same
# secret files the services read), so there is a single source for each password.
# Runs once, on the first start with an empty data volume (/docker-entrypoint-initdb.d).
# Password changes later: see deploy/README.md, "Key rotation".
set -eu
SECRETS_DIR="${SECRETS_DIR:-/run/secrets}"
for url_file in "$SECRETS_DIR"/*_database_url; do
  [ -e "$url_file" ] || continue
  url="$(cat "$url_file")"
  # postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE
  user="$(printf '%s' "$url" | sed -E 's#^[^:]+://([^:@/]+):.*$#\1#')"
  password="$(printf '%s' "$url" | sed -E 's#^[^:]+://[^:@/]+:([^@]*)@.*$#\1#')"
  database="$(printf '%s' "$url" | sed -E 's#^.*/([^/?]+)([?].*)?$#\1#')"
  echo "init-databases: role and database '$database' for '$user'"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v role="$user" -v password="$password" -v database="$database" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
SQL
done
