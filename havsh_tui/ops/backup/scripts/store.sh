#!/bin/sh
# A directory of backups on a host (bind-mounted at ROOT): list, read, receive, delete.
#
#   store.sh list ROOT [SERVICE]            every sidecar JSON whose zip is there, one a line
#   store.sh cat ROOT SERVICE ID            the zip on stdout
#   store.sh receive ROOT SERVICE ID SHA256 the zip on stdin; kept only if its sha256 matches,
#                                           then the sidecar (JSON in $HAVSH_SIDECAR) beside it
#   store.sh delete ROOT SERVICE ID         the sidecar first (the backup is gone from the
#                                           listings), then the zip
#   store.sh sweep ROOT MINUTES             remove *.partial and spool files older than that
. "$(dirname "$0")/lib.sh"

MODE=${1:-}
[ $# -ge 2 ] || hv_die "usage: store.sh list|cat|receive|delete|sweep ROOT ..."
ROOT=$2
shift 2
svc_ok() { case $1 in ''|*[!a-z0-9-]*|-*) hv_die "bad service name";; esac; }
id_ok() { case $1 in ''|*[!a-z0-9_TZ-]*) hv_die "bad backup id";; esac; }

case $MODE in
list)
  [ -d "$ROOT" ] || exit 0
  if [ -n "${1:-}" ]; then svc_ok "$1"; set -- "$ROOT/$1"; else set -- "$ROOT"/*; fi
  for d in "$@"; do
    [ -d "$d" ] || continue
    for j in "$d"/*.json; do
      [ -f "$j" ] && [ -f "${j%.json}.zip" ] || continue
      head -c 8192 "$j" | tr -d '\n'
      printf ' @%s\n' "${j#"$ROOT"/}"
    done
  done
  ;;
cat)
  svc_ok "$1"; id_ok "$2"
  exec cat "$ROOT/$1/$2.zip"
  ;;
receive)
  svc_ok "$1"; id_ok "$2"
  DIR=$ROOT/$1
  mkdir -p "$DIR" || hv_die "cannot create $DIR"
  PARTIAL=$DIR/.$2.zip.partial
  HV_ZIP=$PARTIAL
  trap 'rm -f "$PARTIAL" "$DIR/.$2.json.tmp"' EXIT
  cat > "$PARTIAL" || hv_write_failed "the upload"
  hv_sha256 "$PARTIAL"
  [ "$HV_SHA" = "$3" ] || hv_die "the upload arrived damaged (sha256 $HV_SHA, expected $3)"
  mv "$PARTIAL" "$DIR/$2.zip" || hv_die "cannot rename the upload into place"
  if [ -n "${HAVSH_SIDECAR:-}" ]; then
    printf '%s\n' "$HAVSH_SIDECAR" > "$DIR/.$2.json.tmp" && mv "$DIR/.$2.json.tmp" "$DIR/$2.json" \
      || { rm -f "$DIR/$2.zip"; hv_write_failed "the sidecar"; }
  fi
  trap - EXIT
  printf 'RESULT {"sha256": "%s", "size": %s}\n' "$HV_SHA" "$(wc -c < "$DIR/$2.zip")"
  ;;
delete)
  svc_ok "$1"; id_ok "$2"
  rm -f "$ROOT/$1/$2.json" && rm -f "$ROOT/$1/$2.zip" || hv_die "cannot delete $2"
  echo 'RESULT {"deleted": true}'
  ;;
sweep)
  case $1 in ''|*[!0-9]*) hv_die "bad age";; esac
  [ -d "$ROOT" ] && find "$ROOT" -maxdepth 2 -type f -name '.*.partial' -mmin +"$1" -delete
  echo 'RESULT {"swept": true}'
  ;;
*) hv_die "unknown mode $MODE" ;;
esac
exit 0
