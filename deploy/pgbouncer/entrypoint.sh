#!/bin/sh
# PgBouncer in front of the stack's PostgreSQL, in transaction pooling: the bots' DATABASE_URL points
# here with DATABASE_POOLER=pgbouncer (docs/operations.md, "Many replicas"). The login is the stack's
# own (POSTGRES_USER / POSTGRES_PASSWORD from the env file); everything else has a default below.
# tests/pgbouncer.py runs this same script with Debian's pgbouncer for the tests and bench/intake.py.
set -eu
dir=${PGBOUNCER_DIR:-/tmp/pgbouncer}
mkdir -p "$dir"
umask 077
# userlist.txt: "user" "password", a double quote inside written twice.
printf '"%s" "%s"\n' "$(printf %s "$POSTGRES_USER" | sed 's/"/""/g')" \
  "$(printf %s "$POSTGRES_PASSWORD" | sed 's/"/""/g')" > "$dir/userlist.txt"
cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=${PGBOUNCER_SERVER_HOST:-postgres} port=${PGBOUNCER_SERVER_PORT:-5432}

[pgbouncer]
listen_addr = ${PGBOUNCER_LISTEN_ADDR:-0.0.0.0}
listen_port = ${PGBOUNCER_LISTEN_PORT:-6432}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
; Clients are cheap (every replica keeps DATABASE_POOL_SIZE of them); server connections are not.
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-2000}
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
max_db_connections = ${PGBOUNCER_POOL_SIZE:-20}
server_lifetime = 3600
ignore_startup_parameters = extra_float_digits
pidfile = $dir/pgbouncer.pid
INI
exec "${PGBOUNCER_BINARY:-pgbouncer}" "$dir/pgbouncer.ini"
