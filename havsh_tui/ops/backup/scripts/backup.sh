#!/bin/sh
# One backup of one service: an Odoo-format zip (see lib.sh), its sha256 and a sidecar JSON.
#
#   backup.sh MODE OUTDIR SERVICE DB ODOO_VERSION KIND FORMAT COMPRESSION FSDIR KEEP HOST TYPE
#
# MODE         dir: write OUTDIR/SERVICE/ID.zip and ID.json (the sidecar, also printed on
#              stdout as "RESULT {...}"); stream: build the zip in this container's /tmp,
#              then print on stdout a line "RESULT {...}" followed by the zip.
# KIND         manual, scheduled or safety. Only scheduled backups are rotated: KEEP > 0
#              keeps that many of them in OUTDIR/SERVICE after a successful one.
# FORMAT       zip (dump.sql, what Odoo restores) or custom (dump.dump, pg_dump -Fc: havsh only)
# COMPRESSION  deflate (the fastest level), max (level 9: smallest, several times slower) or
#              store, for the dump; filestore files are always stored
# FSDIR        the service's filestore (.../filestore/DB), read-only; may be missing
# The connection to PostgreSQL comes from PGHOST, PGPORT, PGUSER and PGPASSWORD.
# A failure removes the partial file, says why on stderr and exits non-zero; nothing that
# existed before is ever deleted to make room.
. "$(dirname "$0")/lib.sh"

[ $# -eq 12 ] || hv_die "usage: backup.sh MODE OUTDIR SERVICE DB VERSION KIND FORMAT COMPRESSION FSDIR KEEP HOST TYPE"
MODE=$1 OUTDIR=$2 SERVICE=$3 DB=$4 VERSION=$5 KIND=$6 FORMAT=$7 COMPRESSION=$8 FSDIR=$9
KEEP=${10} HOSTNAME_=${11} STYPE=${12}

hv_slug() { case $1 in ''|*[!a-z0-9-]*|-*) return 1;; esac; return 0; }
hv_slug "$SERVICE" || hv_die "bad service name"
case $DB in ''|*[!a-z0-9_]*) hv_die "bad database name";; esac
case $VERSION in ''|*[!0-9a-z.~+-]*) hv_die "bad Odoo version";; esac
case $KIND in manual|scheduled|safety) ;; *) hv_die "bad kind $KIND";; esac
case $FORMAT in zip|custom) ;; *) hv_die "bad format $FORMAT";; esac
case $COMPRESSION in deflate|store) ;; max) HV_LEVEL=9; export HV_LEVEL;; *) hv_die "bad compression $COMPRESSION";; esac
case $KEEP in ''|*[!0-9]*) hv_die "bad keep count";; esac
case $HOSTNAME_ in ''|*[!a-z0-9.-]*) hv_die "bad host name";; esac
case $STYPE in ''|*[!a-z]*) hv_die "bad service type";; esac
case $MODE in dir|stream) ;; *) hv_die "bad mode $MODE";; esac

STAMP=$(date -u '+%Y%m%dT%H%M%SZ')
CREATED=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
RAND=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
ID=${SERVICE}_${STAMP}_${KIND}_${RAND}
TMP=$(mktemp -d /tmp/havsh-backup.XXXXXX) || hv_die "mktemp failed"
DONE=0
PARTIAL=
TICKER=

cleanup() {
  [ -n "$TICKER" ] && kill "$TICKER" 2> /dev/null
  [ -n "${HVF_CRC:-}" ] && [ "$HVF_CRC" != "$TMP" ] && rm -rf "$HVF_CRC"
  if [ "$DONE" != 1 ] && [ -n "$PARTIAL" ]; then rm -f "$PARTIAL"; fi
  rm -rf "$TMP"
  return 0
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT HUP

if [ "$MODE" = dir ]; then
  DIR=$OUTDIR/$SERVICE
  mkdir -p "$DIR" || hv_die "cannot create $DIR"
  PARTIAL=$DIR/.$ID.zip.partial
else
  DIR=$TMP
  PARTIAL=$TMP/$ID.zip
fi

psql_q() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

exists=$(psql_q -d postgres -v db="$DB" <<'SQL'
SELECT 1 FROM pg_database WHERE datname = :'db';
SQL
) || hv_die "cannot reach PostgreSQL at ${PGHOST:-?}"
[ "$exists" = 1 ] || hv_die "database $DB does not exist"

# Odoo's manifest (odoo/service/db.py dump_db_manifest): the version comes from the base
# module when the database says it, else from havsh's record of the service.
psql_q -d "$DB" -v version="$VERSION" > "$TMP/manifest.base" <<'SQL' || hv_die "cannot read the modules of $DB (is it an Odoo database?)"
WITH v AS (
  SELECT coalesce((SELECT substring(latest_version from '^((?:saas~)?[0-9]+\.[0-9]+)')
                   FROM ir_module_module WHERE name = 'base'), :'version') AS version
), n AS (SELECT current_setting('server_version_num')::int AS num)
SELECT json_build_object(
  'odoo_dump', '1',
  'db_name', current_database(),
  'version', v.version,
  'version_info', json_build_array(
      coalesce(substring(v.version from '([0-9]+)\.')::int, 0),
      coalesce(substring(v.version from '[0-9]+\.([0-9]+)')::int, 0), 0, 'final', 0, ''),
  'major_version', v.version,
  'pg_version', (n.num / 10000)::text || '.' || (n.num / 100 % 100)::text,
  'modules', coalesce((SELECT json_object_agg(name, latest_version ORDER BY name)
                       FROM ir_module_module WHERE state = 'installed'), '{}'::json)
)::text
FROM v, n;
SQL
MANIFEST=$(cat "$TMP/manifest.base")
ODOO_VERSION=$(printf '%s' "$MANIFEST" | sed -n 's/.*"version" : "\([^"]*\)".*/\1/p' | head -n 1)
PG_VERSION=$(printf '%s' "$MANIFEST" | sed -n 's/.*"pg_version" : "\([^"]*\)".*/\1/p' | head -n 1)
[ -n "$ODOO_VERSION" ] || ODOO_VERSION=$VERSION

hv_log "backing up $DB to $DIR ($FORMAT, $COMPRESSION)"
# The dump and the filestore are written at the same time (pg_dump and gzip on one core, the
# filestore on the other): the filestore into the zip, the dump's entry into a part file of
# its own, appended once both are done. The central directory still lists dump.sql first.
DUMPPART=$DIR/.$ID.dump.partial
DUMPPID=
cleanup_dump() {
  [ -n "$DUMPPID" ] && hv_kill_tree "$DUMPPID"
  rm -f "$DUMPPART"
}
trap 'cleanup_dump; cleanup' EXIT
zip_begin "$PARTIAL" "$TMP"
mkdir -p "$TMP/dump" || hv_die "mktemp failed"
(
  HV_ZIP=$DUMPPART HV_OFF=0 HV_CD=$TMP/dump/cd HV_TMP=$TMP/dump
  : > "$HV_ZIP" || hv_write_failed dump
  : > "$HV_CD"
  HOW=$COMPRESSION; [ "$HOW" = max ] && HOW=deflate
  if [ "$FORMAT" = zip ]; then
    zip_add_stream dump.sql "$HOW" pg_dump --no-owner "$DB"
  else
    zip_add_stream dump.dump "$HOW" pg_dump -Fc -Z 0 --no-owner "$DB"
  fi
  echo "$HV_OFF" > "$TMP/dump/size"
) &
DUMPPID=$!
(while sleep 2; do
   printf 'P %s\n' $(( $(wc -c < "$PARTIAL" 2> /dev/null || echo 0) + $(wc -c < "$DUMPPART" 2> /dev/null || echo 0) )) >&2
 done) &
TICKER=$!
# The CRCs of the files an earlier backup here saw (see zip_add_filestore).
CACHE=
[ "$MODE" = dir ] && [ -f "$DIR/.havsh-crc-cache" ] && CACHE=$DIR/.havsh-crc-cache
zip_add_filestore "$FSDIR" "$CACHE"
hv_log "filestore written: $HV_FILES files, $HV_FSBYTES bytes ($(grep -c . "$HV_TMP/crc.new") CRCs, $([ -n "$CACHE" ] && awk '$4 != "-"' "$HV_TMP/fs.list" | wc -l || echo 0) of them from the cache)"
wait "$DUMPPID" || { DUMPPID=; exit 1; }
DUMPPID=
kill "$TICKER" 2> /dev/null; TICKER=
read -r DUMP_SIZE < "$TMP/dump/size" || hv_die "the dump did not finish"
hv_log "dump written: $DUMP_SIZE bytes"
# shellcheck disable=SC2046
set -- $(cat "$TMP/dump/cd")
[ $# -eq 7 ] || hv_die "the dump's entry is missing"
DUMP_BYTES=$3
cat "$DUMPPART" >> "$PARTIAL" || hv_write_failed "the dump"
rm -f "$DUMPPART"
{ printf '%s %s %s %s %s %s %s\n' "$1" "$2" "$3" $(( HV_OFF + $4 )) "$5" "$6" "$7"
  cat "$HV_CD"; } > "$TMP/cd.all" && mv "$TMP/cd.all" "$HV_CD" || hv_die "cannot write $TMP"
HV_OFF=$(( HV_OFF + DUMP_SIZE ))
[ "$(wc -c < "$PARTIAL")" -eq "$HV_OFF" ] || hv_write_failed "the dump"
printf 'P %s\n' "$HV_OFF" >&2
printf '%s, "havsh": {"format": "%s", "compression": "%s", "service": "%s", "host": "%s", "type": "%s", "kind": "%s", "created_at": "%s", "files": %s, "filestore_bytes": %s, "filestore_tar": {"offset": %s, "length": %s, "files": %s}}}\n' \
  "${MANIFEST%\}}" "$FORMAT" "$COMPRESSION" "$SERVICE" "$HOSTNAME_" "$STYPE" "$KIND" "$CREATED" \
  "$HV_FILES" "$HV_FSBYTES" "$HV_T0" "$HV_TLEN" "$HV_TFILES" > "$TMP/manifest.json" \
  || hv_die "cannot write the manifest"
zip_add_file manifest.json "$TMP/manifest.json"
zip_finish
hv_log "zip complete: $HV_OFF bytes"
hv_sha256 "$PARTIAL"
hv_log "sha256 $HV_SHA"
SIZE=$(wc -c < "$PARTIAL")
RESULT=$(printf '{"havsh_backup": 1, "id": "%s", "file": "%s.zip", "service": "%s", "host": "%s", "service_type": "%s", "database": "%s", "kind": "%s", "format": "%s", "compression": "%s", "created_at": "%s", "size": %s, "sha256": "%s", "odoo_version": "%s", "pg_version": "%s", "files": %s, "filestore_bytes": %s, "dump_bytes": %s}' \
  "$ID" "$ID" "$SERVICE" "$HOSTNAME_" "$STYPE" "$DB" "$KIND" "$FORMAT" "$COMPRESSION" "$CREATED" \
  "$SIZE" "$HV_SHA" "$ODOO_VERSION" "$PG_VERSION" "$HV_FILES" "$HV_FSBYTES" "${DUMP_BYTES:-0}")

if [ "$MODE" = stream ]; then
  printf 'RESULT %s\n' "$RESULT"
  cat "$PARTIAL" || exit 1
  DONE=1
  exit 0
fi

mv "$PARTIAL" "$DIR/$ID.zip" || hv_die "cannot rename the backup into place"
DONE=1
# Best effort: a full disk only costs the next backup the time to read the files again.
if cp "$TMP/crc.new" "$DIR/.havsh-crc-cache.tmp" 2> /dev/null; then
  mv "$DIR/.havsh-crc-cache.tmp" "$DIR/.havsh-crc-cache" 2> /dev/null
fi
rm -f "$DIR/.havsh-crc-cache.tmp"
printf '%s\n' "$RESULT" > "$DIR/.$ID.json.tmp" && mv "$DIR/.$ID.json.tmp" "$DIR/$ID.json" || {
  rm -f "$DIR/.$ID.json.tmp" "$DIR/$ID.zip"
  hv_write_failed "the sidecar $ID.json"
}
printf 'RESULT %s\n' "$RESULT"

# Retention: only scheduled backups, only after a good one, never more than asked.
if [ "$KIND" = scheduled ] && [ "$KEEP" -gt 0 ]; then
  (cd "$DIR" && ls) | grep -E "^${SERVICE}_[0-9]{8}T[0-9]{6}Z_scheduled_[0-9a-f]+\\.json\$" | sort \
    | awk -v keep="$KEEP" '{ a[NR] = $0 } END { for (i = 1; i <= NR - keep; i++) print a[i] }' \
    | while read -r old; do
        rm -f "$DIR/$old" && rm -f "$DIR/${old%.json}.zip" && hv_log "rotated ${old%.json}"
      done
fi
exit 0
