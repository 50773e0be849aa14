#!/bin/sh
# The backup scheduler: PID 1's child in the container havsh-backups on each host (docker's
# init reaps the jobs). Once a minute, in UTC, it runs backup.sh for every line of
# /havsh/schedule.conf whose cron fields match. havsh writes that file when a schedule
# changes and recreates the container; nothing else talks to it. Its log is `docker logs`.
#
# schedule.conf, one line per service and destination:
#   MIN HOUR DOM MON DOW SERVICE DB VERSION OUTDIR KEEP COMPRESSION FORMAT FSDIR HOST TYPE
. "$(dirname "$0")/lib.sh"

CONF=${HAVSH_SCHEDULE:-/havsh/schedule.conf}
HERE=$(dirname "$0")
stamp() { date -u '+%Y-%m-%dT%H:%M:%SZ'; }
say() { printf '%s %s\n' "$(stamp)" "$*"; }

say "scheduler started: $(grep -c -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$CONF" 2> /dev/null || echo 0) schedule(s), times in UTC"
last=-1
while :; do
  now=$(date -u +%s)
  minute=$(( now / 60 ))
  if [ "$minute" -ne "$last" ]; then
    last=$minute
    # shellcheck disable=SC2046
    set -- $(date -u -d "@$(( minute * 60 ))" '+%M %H %d %m %w' 2> /dev/null || date -u '+%M %H %d %m %w')
    awk -v mi="${1#0}" -v ho="${2#0}" -v dm="${3#0}" -v mo="${4#0}" -v dw="$5" "$HV_CRON_AWK" "$CONF" \
      > /tmp/havsh-due 2> /dev/null
    n=0
    while read -r svc db ver out keep comp fmt fs host stype; do
      n=$(( n + 1 ))
      lock=/tmp/havsh-lock.$svc.$n
      if ! mkdir "$lock" 2> /dev/null; then
        say "$svc -> $out: skipped, the previous backup is still running"
        continue
      fi
      # Twice in the background: the job is docker init's child, never waited for here.
      (
        (
          trap 'rmdir "$lock"' EXIT
          if out_text=$(sh "$HERE/backup.sh" dir "$out" "$svc" "$db" "$ver" scheduled "$fmt" \
                "$comp" "$fs" "$keep" "$host" "$stype" 2> /tmp/havsh-err.$svc.$n); then
            say "$svc -> $out: ok ${out_text#RESULT }"
          else
            say "$svc -> $out: FAILED $(grep -v '^P ' /tmp/havsh-err.$svc.$n | tail -n 3 | tr '\n' ' ')"
          fi
          grep -h 'rotated' /tmp/havsh-err.$svc.$n 2> /dev/null | while read -r line; do say "$svc: $line"; done
          rm -f /tmp/havsh-err.$svc.$n
        ) &
      )
    done < /tmp/havsh-due
  fi
  now=$(date -u +%s)
  sleep $(( 60 - now % 60 ))
done
