#!/usr/bin/env bash
# Stand-in of the official postgres image's entrypoint (the subset in ODOO-CONTRACT.md).
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date '+%Y-%m-%d %H:%M:%S.%3N %Z')" "$*" >&2; }

# `docker run IMAGE -c foo=bar` means `postgres -c foo=bar`.
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"

# As root: own PGDATA (a fresh named volume or bind mount may be root's), then come back as
# the postgres user.
if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA" || :
	chmod 2777 /var/run/postgresql || :
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	find /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		cat >&2 <<-'MSG'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
		MSG
		exit 1
	fi
	log "initializing database cluster in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA"
	pwfile="$(mktemp)"
	trap 'rm -f "$pwfile"' EXIT
	printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 \
		--encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >&2
	rm -f "$pwfile"
	trap - EXIT
	{
		echo
		echo "# added by docker-entrypoint.sh: password auth from any address"
		echo "host all all all scram-sha-256"
	} >> "$PGDATA/pg_hba.conf"
	{
		echo
		echo "# added by docker-entrypoint.sh"
		echo "listen_addresses = '*'"
	} >> "$PGDATA/postgresql.conf"
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		# Single-user mode: no server, no socket, nothing can connect half-way through.
		db_ident="\"${POSTGRES_DB//\"/\"\"}\""
		echo "CREATE DATABASE $db_ident ;" | postgres --single -D "$PGDATA" postgres >/dev/null
		log "created database $POSTGRES_DB"
	fi
	log "PostgreSQL init process complete; ready for start up."
else
	log "PostgreSQL database directory appears to contain a database; skipping initialization"
fi

exec "$@"
