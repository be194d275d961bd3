#!/bin/sh
# One-time set-up of the local PostgreSQL for the pg-agent tests and benchmark (idempotent).
# Settings that need a server restart (logging_collector, shared_preload_libraries) are changed,
# and the server restarted, only when they differ; run this before the test suite starts (a
# restart drops every open connection), e.g. from .ci/run. Reload-only settings are set by the
# tests themselves. Usage: setup-server.sh [psql connection args]
set -eu
PSQL="psql -X -v ON_ERROR_STOP=1 -At ${*:--h 127.0.0.1 -U postgres -d test}"
restart=no
if [ "$($PSQL -c 'SHOW logging_collector')" != "on" ]; then
  $PSQL -c "ALTER SYSTEM SET logging_collector = on"
  restart=yes
fi
case "$($PSQL -c 'SHOW shared_preload_libraries')" in
  *pg_stat_statements*) ;;
  *) $PSQL -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"; restart=yes ;;
esac
# Reload-only: keep the plain stderr log and add the structured one the agent reads.
$PSQL -c "ALTER SYSTEM SET log_destination = 'stderr,jsonlog'" -c "SELECT pg_reload_conf()" >/dev/null
if [ "$restart" = yes ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -n 1)" main restart
fi
$PSQL -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
echo "pg-agent test settings: logging_collector=$($PSQL -c 'SHOW logging_collector') log_destination=$($PSQL -c 'SHOW log_destination') shared_preload_libraries=$($PSQL -c 'SHOW shared_preload_libraries')"
