#!/bin/bash
# Runs once, on a new PostgreSQL volume (the official image and deploy/ci's both run /docker-entrypoint-initdb.d/):
# reroute's roles and schemas. reroute_owner owns the three schemas and runs the migrations (`reroute db upgrade`);
# each service logs in as its own role, which may read and write the tables of its own schema and nothing else:
# no DDL, no other service's schema. Passwords come from the environment (compose's .env); none has a default.
set -Eeo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set db="$POSTGRES_DB" \
    --set owner_pw="${REROUTE_DB_OWNER_PASSWORD:?}" --set intake_pw="${REROUTE_DB_INTAKE_PASSWORD:?}" \
    --set risk_pw="${REROUTE_DB_RISK_PASSWORD:?}" --set scheduling_pw="${REROUTE_DB_SCHEDULING_PASSWORD:?}" <<'SQL'
CREATE ROLE reroute_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE intake LOGIN PASSWORD :'intake_pw';
CREATE ROLE risk LOGIN PASSWORD :'risk_pw';
CREATE ROLE scheduling LOGIN PASSWORD :'scheduling_pw';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO reroute_owner, intake, risk, scheduling;
GRANT CREATE ON DATABASE :"db" TO reroute_owner;

CREATE SCHEMA intake AUTHORIZATION reroute_owner;
GRANT USAGE ON SCHEMA intake TO intake;
ALTER DEFAULT PRIVILEGES FOR ROLE reroute_owner IN SCHEMA intake GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO intake;
ALTER DEFAULT PRIVILEGES FOR ROLE reroute_owner IN SCHEMA intake GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO intake;

CREATE SCHEMA risk AUTHORIZATION reroute_owner;
GRANT USAGE ON SCHEMA risk TO risk;
ALTER DEFAULT PRIVILEGES FOR ROLE reroute_owner IN SCHEMA risk GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO risk;
ALTER DEFAULT PRIVILEGES FOR ROLE reroute_owner IN SCHEMA risk GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO risk;

CREATE SCHEMA scheduling AUTHORIZATION reroute_owner;
GRANT USAGE ON SCHEMA scheduling TO scheduling;
ALTER DEFAULT PRIVILEGES FOR ROLE reroute_owner IN SCHEMA scheduling GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO scheduling;
ALTER DEFAULT PRIVILEGES FOR ROLE reroute_owner IN SCHEMA scheduling GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO scheduling;
SQL
