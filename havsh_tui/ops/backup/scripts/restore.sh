#!/bin/sh
# The host side of a restore. Each mode is one step; havsh runs them in order, and each can
# run again after an interruption (an SSH cut) and finish what it started.
#
#   restore.sh inspect ZIP [SHA256]
#       Check the sha256 (when given) and the zip's structure; print "INFO {...}", then the
#       manifest.json (if any) after a line "MANIFEST". Nothing is changed.
#   restore.sh load ZIP TARGET_DB ROLE FSDEST CREATE TRUSTED
#       Load dump.sql (psql) or dump.dump (pg_restore) into TARGET_DB as ROLE (CREATE=1
#       drops and creates it first, owned by ROLE) and extract the filestore into FSDEST.
#       TRUSTED=1 (a havsh backup whose sha256 matched its record) lets the filestore come
#       out of the zip's tar view in one pass; other zips have theirs checked first.
#   restore.sh swap DB FSROOT        DB__restore becomes DB, DB becomes DB__old (one transaction)
#   restore.sh unswap DB FSROOT      the reverse, after a failed health check
#   restore.sh drop DB FSROOT WHICH  drop DB__old, DB__restore or both (old|restore|both)
# The connection to PostgreSQL comes from PGHOST, PGPORT, PGUSER (a superuser), PGPASSWORD.
. "$(dirname "$0")/lib.sh"

MODE=${1:-}
[ $# -ge 1 ] && shift
TMP=$(mktemp -d /tmp/havsh-restore.XXXXXX) || hv_die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT HUP

psql_q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres "$@"; }
hv_dbname() { case $1 in ''|*[!a-z0-9_]*) hv_die "bad database name $1";; esac; }

# index ZIP: TMP/index, and the entries havsh needs in E_DUMP, E_DUMPFMT, E_MANIFEST.
index() {
  zip_index "$1" > "$TMP/index" || exit 1
  E_DUMP=; E_DUMPFMT=; E_MANIFEST=; FS_COUNT=0; FS_BYTES=0; BAD=0
  while read -r m f c cs us off name; do
    case $name in
      dump.sql) E_DUMP="$m $f $c $cs $us $off"; E_DUMPFMT=zip ;;
      dump.dump) [ -z "$E_DUMP" ] && { E_DUMP="$m $f $c $cs $us $off"; E_DUMPFMT=custom; } ;;
      manifest.json) E_MANIFEST="$m $f $c $cs $us $off" ;;
      filestore/*)
        if hv_safe_name "${name#filestore/}"; then
          FS_COUNT=$(( FS_COUNT + 1 )); FS_BYTES=$(( FS_BYTES + us ))
        else BAD=$(( BAD + 1 )); fi ;;
      '?') BAD=$(( BAD + 1 )) ;;
    esac
    [ $(( f & 1 )) -eq 0 ] || hv_die "$1 is encrypted: havsh cannot restore it"
    case $m in 0|8) ;; *) hv_die "$1 uses compression method $m (only stored and deflate are supported)";; esac
  done < "$TMP/index"
  [ -n "$E_DUMP" ] || hv_die "$1 has no dump.sql: it is not an Odoo backup"
}

case $MODE in
inspect)
  ZIP=$1; WANT=${2:-}
  [ -f "$ZIP" ] || hv_die "no such backup file $ZIP"
  if [ -n "$WANT" ]; then
    hv_sha256 "$ZIP"
    [ "$HV_SHA" = "$WANT" ] || hv_die "checksum mismatch: $ZIP has sha256 $HV_SHA, the backup record says $WANT. The file is damaged: nothing was restored."
  fi
  index "$ZIP"
  printf 'INFO {"size": %s, "format": "%s", "dump_bytes": %s, "files": %s, "filestore_bytes": %s, "skipped_names": %s, "manifest": %s}\n' \
    "$(wc -c < "$ZIP")" "$E_DUMPFMT" "$(echo "$E_DUMP" | cut -d' ' -f5)" "$FS_COUNT" "$FS_BYTES" "$BAD" \
    "$([ -n "$E_MANIFEST" ] && echo true || echo false)"
  if [ -n "$E_MANIFEST" ]; then
    echo MANIFEST
    # shellcheck disable=SC2086
    zip_cat "$ZIP" $E_MANIFEST | head -c 4000000 || hv_die "$ZIP: manifest.json is damaged"
    echo
  fi
  ;;

load)
  ZIP=$1 TARGET=$2 ROLE=$3 FSDEST=$4 CREATE=$5 TRUSTED=${6:-0}
  hv_dbname "$TARGET"; hv_dbname "$ROLE"
  case $FSDEST in /fs/filestore/*) ;; *) hv_die "bad filestore path";; esac
  index "$ZIP"
  if [ "$CREATE" = 1 ]; then
    psql_q -v db="$TARGET" -v role="$ROLE" <<'SQL' || hv_die "cannot create the database $TARGET"
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
CREATE DATABASE :"db" OWNER :"role" TEMPLATE template0 ENCODING 'UTF8';
SQL
  fi
  hv_log "loading the database into $TARGET"
  # shellcheck disable=SC2086
  set -- $E_DUMP
  if [ "$E_DUMPFMT" = zip ]; then
    # As Odoo's own restore: psql without ON_ERROR_STOP (a dump from a newer pg_dump may set
    # a parameter this server does not know), but every error is read back below.
    { printf 'SET ROLE "%s";\n' "$ROLE"; zip_cat "$ZIP" "$@"; echo $? > "$TMP/unzip.st"; } \
      2> "$TMP/unzip.err" | psql -X -q -v ON_ERROR_STOP=0 -d "$TARGET" > /dev/null 2> "$TMP/load.err"
    rc=$?
  else
    { zip_cat "$ZIP" "$@"; echo $? > "$TMP/unzip.st"; } 2> "$TMP/unzip.err" \
      | pg_restore --no-owner --no-acl --role="$ROLE" -d "$TARGET" 2> "$TMP/load.err"
    rc=$?
    [ "$rc" -eq 1 ] && rc=0  # pg_restore exits 1 for errors it ignored: they are read below
  fi
  if [ "$(cat "$TMP/unzip.st" 2> /dev/null)" != 0 ]; then
    hv_die "the dump in $ZIP is damaged (it does not decompress): $(grep -m 3 . "$TMP/unzip.err" | tr '\n' ' ')"
  fi
  [ "$rc" -eq 0 ] || hv_die "the load exited $rc: $(tail -n 5 "$TMP/load.err" | tr '\n' ' ')"
  grep -i 'error' "$TMP/load.err" \
    | grep -v -i -e 'unrecognized configuration parameter' -e 'must be owner of extension' \
         -e 'role ".*" does not exist' -e 'errors ignored on restore' \
         -e 'schema "public" already exists' > "$TMP/errors"
  if [ -s "$TMP/errors" ]; then
    hv_die "the database did not load cleanly: $(head -n 5 "$TMP/errors" | tr '\n' ' ')"
  fi
  IGNORED=$(grep -c -i 'error' "$TMP/load.err")
  # The filestore: the tar view of a havsh zip in one pass, else entry by entry.
  hv_log "restoring the filestore into $FSDEST"
  rm -rf "$FSDEST" && mkdir -p "$FSDEST" || hv_die "cannot create $FSDEST"
  TOFF=; TLEN=; TFILES=
  if [ -n "$E_MANIFEST" ]; then
    # shellcheck disable=SC2086
    zip_cat "$ZIP" $E_MANIFEST > "$TMP/manifest.json" 2> /dev/null
    set -- $(sed -n 's/.*"filestore_tar": {"offset": \([0-9-]*\), "length": \([0-9]*\), "files": \([0-9]*\)}.*/\1 \2 \3/p' "$TMP/manifest.json")
    [ $# -eq 3 ] && TOFF=$1 TLEN=$2 TFILES=$3
  fi
  EXTRACTED=0 USE_TAR=0
  tar_view() {
    tail -c +$(( TOFF + 1 )) "$ZIP" | head -c "$TLEN"
    head -c $(( (512 - TLEN % 512) % 512 + 1024 )) /dev/zero
  }
  if [ -n "$TOFF" ] && [ "$TOFF" -ge 0 ] && [ "$TFILES" -eq "$FS_COUNT" ] && [ "$FS_COUNT" -gt 0 ] \
     && [ $(( TOFF + TLEN )) -le "$(wc -c < "$ZIP")" ]; then
    USE_TAR=1
    # A zip from elsewhere could carry any tar: only regular files with safe names.
    if [ "$TRUSTED" != 1 ] && ! tar_view | tar -t -v 2> /dev/null | awk '
         substr($1, 1, 1) != "-" { bad = 1 }
         { n = $NF; if (n ~ /^\// || n ~ /(^|\/)\.\.(\/|$)/ || n !~ /^[A-Za-z0-9._\/-]+$/) bad = 1 }
         END { exit bad }'; then
      USE_TAR=0
    fi
  fi
  if [ "$USE_TAR" = 1 ]; then
    if tar_view | tar -x -C "$FSDEST" --no-same-owner --no-same-permissions 2> "$TMP/tar.err" \
       && [ "$(find "$FSDEST" -type f | wc -l)" -eq "$FS_COUNT" ]; then
      EXTRACTED=1
    else
      hv_log "the tar view did not extract ($(head -c 300 "$TMP/tar.err")): extracting file by file"
      rm -rf "$FSDEST" && mkdir -p "$FSDEST"
    fi
  fi
  if [ "$EXTRACTED" = 0 ] && [ "$FS_COUNT" -gt 0 ]; then
    awk '$7 ~ /^filestore\// { sub(/^filestore\//, "", $7); n = split($7, p, "/"); d = ""
         for (i = 1; i < n; i++) d = d (i > 1 ? "/" : "") p[i]; if (d != "") print d }' "$TMP/index" \
      | sort -u | (cd "$FSDEST" && xargs -r mkdir -p) || hv_die "cannot create the filestore directories"
    n=0
    while read -r m f c cs us off name; do
      case $name in filestore/*) ;; *) continue;; esac
      rel=${name#filestore/}
      hv_safe_name "$rel" || continue
      zip_cat "$ZIP" "$m" "$f" "$c" "$cs" "$us" "$off" > "$FSDEST/$rel" \
        || hv_die "$ZIP: filestore/$rel is damaged"
      n=$(( n + 1 ))
      [ $(( n % 200 )) -eq 0 ] && printf 'P %s\n' "$n" >&2
    done < "$TMP/index"
  fi
  owner=$(stat -c %u:%g "$(dirname "$(dirname "$FSDEST")")") || owner=
  [ -n "$owner" ] && chown -R "$owner" "$FSDEST"
  printf 'RESULT {"database": "%s", "files": %s, "filestore_bytes": %s, "ignored_errors": %s, "tar": %s}\n' \
    "$TARGET" "$FS_COUNT" "$FS_BYTES" "$IGNORED" "$([ "$EXTRACTED" = 1 ] && echo true || echo false)"
  ;;

swap|unswap)
  DB=$1 FSROOT=$2
  hv_dbname "$DB"
  case $FSROOT in /fs/filestore) ;; *) hv_die "bad filestore root";; esac
  if [ "$MODE" = swap ]; then FROM=${DB}__restore TO=${DB}__old; else FROM=${DB}__old TO=${DB}__restore; fi
  state=$(psql_q -v a="$DB" -v b="$FROM" -v c="$TO" <<'SQL'
SELECT (SELECT count(*) FROM pg_database WHERE datname = :'a') || ' ' ||
       (SELECT count(*) FROM pg_database WHERE datname = :'b') || ' ' ||
       (SELECT count(*) FROM pg_database WHERE datname = :'c');
SQL
) || hv_die "cannot reach PostgreSQL"
  case $state in
    "1 1 0"|"0 1 0")
      psql_q -v db="$DB" -v from="$FROM" -v to="$TO" -v has="${state%% *}" <<'SQL' || hv_die "the database $MODE failed"
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname IN (:'db', :'from') AND pid <> pg_backend_pid();
BEGIN;
\if :has
ALTER DATABASE :"db" RENAME TO :"to";
\endif
ALTER DATABASE :"from" RENAME TO :"db";
COMMIT;
SQL
      ;;
    "1 0 1"|"1 0 0") hv_log "the databases were swapped already" ;;
    *) hv_die "unexpected databases for $MODE ($DB $FROM $TO: $state)" ;;
  esac
  if [ -e "$FSROOT/$FROM" ]; then
    if [ -e "$FSROOT/$DB" ]; then
      rm -rf "${FSROOT:?}/$TO"
      mv "$FSROOT/$DB" "$FSROOT/$TO" || hv_die "cannot move the filestore aside"
    fi
    mv "$FSROOT/$FROM" "$FSROOT/$DB" || hv_die "cannot move the restored filestore into place"
  fi
  echo "RESULT {\"done\": \"$MODE\"}"
  ;;

drop)
  DB=$1 FSROOT=$2 WHICH=$3
  hv_dbname "$DB"
  case $FSROOT in /fs/filestore) ;; *) hv_die "bad filestore root";; esac
  for suffix in old restore; do
    [ "$WHICH" = both ] || [ "$WHICH" = "$suffix" ] || continue
    psql_q -v db="${DB}__$suffix" <<'SQL' || hv_die "cannot drop ${DB}__$suffix"
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
SQL
    rm -rf "${FSROOT:?}/${DB}__$suffix"
  done
  echo 'RESULT {"done": "drop"}'
  ;;

*) hv_die "usage: restore.sh inspect|load|swap|unswap|drop ..." ;;
esac
exit 0
