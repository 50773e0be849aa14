#!/usr/bin/env bash
# The project's test command:  bash tests/run.sh [pytest args]
#
# Installs the missing Debian packages, makes .venv (pip install -e '.[test]'), brings the
# testbed up (tests/infra/testbed.py: two Docker hosts behind sshd), runs pytest, and takes
# the testbed down again if this run brought it up (HAVSH_TESTBED_KEEP=1 leaves it up).
# Without root there is no testbed: the integration tests are skipped.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=/usr/bin/python3
log() { printf '[run.sh] %s\n' "$*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }

# 1. Debian packages (stdlib-only module: runs before any venv exists).
if is_root; then
  "$PY" -m tests.infra.testbed packages || { log "installing Debian packages failed"; exit 1; }
else
  log "not root: no Debian packages, no testbed; integration tests will be skipped"
fi

# 2. The venv, reinstalled only when pyproject.toml changed.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv || exit 1
fi
stamp=.venv/.havsh-installed
want=$(sha256sum pyproject.toml 2>/dev/null | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c 'import havsh_tui, pytest' 2>/dev/null; then
  log "pip install -e '.[test]'"
  .venv/bin/python -m pip install -q -e '.[test]' || { log "pip install failed"; exit 1; }
  .venv/bin/python -c 'import pytest' 2>/dev/null || .venv/bin/python -m pip install -q pytest || exit 1
  echo "$want" > "$stamp"
fi

# 3. The testbed.
started=0
teardown() {
  if [ "$started" = 1 ] && [ -z "${HAVSH_TESTBED_KEEP:-}" ]; then
    .venv/bin/python -m tests.infra.testbed down || log "testbed down failed"
  fi
}
if is_root; then
  .venv/bin/python -m tests.infra.testbed is-up || started=1
  trap teardown EXIT
  .venv/bin/python -m tests.infra.testbed up || { log "testbed up failed"; exit 1; }
fi

# 4. The tests. The copy and backup benchmarks move 128 MB + 128 MB here by default, so that
# the whole suite stays quick; the issues' full-size runs set the sizes to 1024 (README).
export HAVSH_BENCH_DB_MB=${HAVSH_BENCH_DB_MB:-128} HAVSH_BENCH_FS_MB=${HAVSH_BENCH_FS_MB:-128}
export HAVSH_BENCH_COPY_DB_MB=${HAVSH_BENCH_COPY_DB_MB:-128}
export HAVSH_BENCH_COPY_FS_MB=${HAVSH_BENCH_COPY_FS_MB:-128}
export HAVSH_BENCH_ROUNDS=${HAVSH_BENCH_ROUNDS:-1}
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then
  log "pytest collected no tests: that is a failure"
  rc=1
fi
exit "$rc"
