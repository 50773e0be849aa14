"""Log streams from a real container over SSH: order, filters, reconnect without loss."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import zlib

import pytest

from havsh_tui.ops.logs import LogFilter, LogLine, LogStream, StreamEvent

# Prints N numbered lines in Odoo's format, levels mixed, a traceback after each ERROR.
GEN_SCRIPT = r"""
i=1
while [ "$i" -le "$1" ]; do
  case $((i % 10)) in
    0) lvl=ERROR ;; 3|6) lvl=WARNING ;; 9) lvl=DEBUG ;; *) lvl=INFO ;;
  esac
  echo "2026-12-03 12:00:00,000 1 $lvl gen odoo.gen: line $i"
  if [ "$lvl" = ERROR ]; then
    echo "Traceback (most recent call last):"
    echo "  File \"x.py\", line $i, in f"
    echo "ValueError: boom $i"
  fi
  if [ "$2" != 0 ] && [ $((i % $2)) = 0 ]; then sleep 0.05; fi
  i=$((i + 1))
done
sleep 3600
"""


def _start_gen(pool, host, name: str, n: int, pause_every: int) -> str:
    client = pool.session(host).docker()
    client.api.create_container(
        host.postgres_image, name=name, entrypoint=[],
        command=["sh", "-c", GEN_SCRIPT, "sh", str(n), str(pause_every)],
        labels={"sh.hav.managed": "1", "sh.hav.service": name, "sh.hav.role": "test"},
    )
    client.api.start(name)
    return name


@pytest.fixture
def gen(pool, host_a, cleanup, request):
    made = []
    # A name of this test's own: under xdist the tests of this file run side by side.
    tag = zlib.crc32(request.node.name.encode()) % 100_000

    def start(n: int, pause_every: int = 0) -> str:
        name = f"lg-gen-{tag}-{len(made)}"
        cleanup.add(name)
        made.append(_start_gen(pool, host_a, name, n, pause_every))
        return name

    yield start
    client = pool.session(host_a).docker()
    for name in made:
        try:
            client.api.remove_container(name, force=True)
        except Exception:  # noqa: BLE001
            pass


def _numbers(lines: list[LogLine]) -> list[int]:
    return [int(x.text.rsplit(" ", 1)[1]) for x in lines if x.message and "line " in x.message]


def _wait_for(pred, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_lines_in_order_with_filters(pool, host_a, gen):
    name = gen(500)
    session = pool.session(host_a)
    assert _wait_for(lambda: b"line 500" in session.docker().api.logs(name, tail=5))
    stream = LogStream(lambda: session, name, tail="all", follow=False)
    lines = [x for x in stream.lines() if isinstance(x, LogLine)]
    assert _numbers(lines) == list(range(1, 501))
    # Tracebacks are attached to their ERROR line: continuation lines carry its level.
    tb = [x for x in lines if x.continuation]
    assert len(tb) == 50 * 3 and all(x.effective_level == "ERROR" for x in tb)
    errors = [x for x in lines if LogFilter.build("ERROR").matches(x)]
    assert len(errors) == 50 * 4
    warn = [x for x in lines if LogFilter.build("WARNING").matches(x)]
    assert _numbers(warn) == [i for i in range(1, 501) if i % 10 in (0, 3, 6)]
    rx = [x for x in lines if LogFilter.build(grep=r"line 4\d$").matches(x)]
    assert _numbers(rx) == list(range(40, 50))
    with pytest.raises(ValueError, match="bad regular expression"):
        LogFilter.build(grep="(")


@pytest.mark.slow
def test_reconnect_loses_and_doubles_nothing(pool, host_a, gen):
    n = 3000
    name = gen(n, pause_every=25)  # about 6 s of output
    session = pool.session(host_a)
    stream = LogStream(lambda: session, name, tail="all", follow=True, reconnect_delay=0.2)
    got: list[LogLine] = []
    events: list[StreamEvent] = []

    def read():
        for item in stream.lines():
            (got if isinstance(item, LogLine) else events).append(item)
            if isinstance(item, LogLine) and item.message == f"line {n}":
                stream.stop()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert _wait_for(lambda: len(got) > 300)
    # Cut the SSH connection under the stream, twice; the pool reconnects on next use.
    session.ssh.close()
    assert _wait_for(lambda: any(e.kind == "reconnected" for e in events), 20)
    assert _wait_for(lambda: len(_numbers(got)) > 1500)
    session.ssh.close()
    t.join(60)
    assert not t.is_alive()
    kinds = [e.kind for e in events]
    assert kinds.count("disconnected") == 2 and kinds.count("reconnected") == 2
    assert _numbers(got) == list(range(1, n + 1))


def test_cli_logs_json_and_grep(pool, host_a, gen, inventory, havsh_paths):
    from havsh_tui.core.model import Service, ServiceStatus, ServiceType

    name = gen(200)
    # A service record whose container is the generator (havsh-<slug>).
    client = pool.session(host_a).docker()
    client.api.rename(name, f"havsh-{name}")
    inventory.add_service(Service(name=name, host="hosta", type=ServiceType.TEST,
                                  odoo_version="17.0", image="x", status=ServiceStatus.RUNNING))
    assert _wait_for(lambda: b"line 200" in client.api.logs(f"havsh-{name}", tail=3))
    out = subprocess.run(
        [sys.executable, "-m", "havsh_tui", "logs", name, "--tail", "all", "--level",
         "WARNING", "--grep", "line 1[0-9]$", "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    import json

    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["message"] for r in rows] == ["line 10", "line 13", "line 16"]
    assert all(r["level"] in ("WARNING", "ERROR") for r in rows)
    client.api.remove_container(f"havsh-{name}", force=True)
