"""`havsh logs -f` against raw `docker logs -f`, through SSH to the same host.

Target (issue 6): havsh's throughput at least 0.8x the raw one. The same container (about
200,000 lines, written before anything is timed) is read, alternating, by

- raw: ``ssh -F <testbed ssh_config> hosta docker logs -f C`` (OpenSSH and the docker CLI),
- havsh: ``havsh logs -f --tail all NAME`` (plain lines), and ``--json`` for the record,

each with stdout on a pipe that this test drains in large reads until the last line
arrives (both commands follow, so neither ends by itself; both are then killed). Reported:
lines per second from start to the last line (``wall``), and from the first byte to the last
line (``stream``: without Python's start and the SSH handshake). The ratio is of medians.
Written to results/logs_cli_throughput.json and printed; nothing fails on timing.
"""

# The testbed fixtures are imported from tests/integration (as in test_docker_over_ssh.py);
# pytest passes them by name, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from havsh_tui.core.model import Service, ServiceStatus, ServiceType
from tests.bench.test_log_ingest import TOTAL, N, start_generator
from tests.integration.conftest import (  # noqa: F401
    cleanup,
    havsh_paths,
    host_a,
    host_b,
    inventory,
    pool,
    ssh_opts,
)

pytestmark = [pytest.mark.bench, pytest.mark.integration]
RESULTS = Path(__file__).parent / "results"
REPS = 3


def time_until_last(argv: list[str], last: bytes, env: dict | None = None
                    ) -> tuple[float, float, int]:
    """Run argv until ``last`` shows on its stdout: (seconds to it, seconds from the first
    byte to it, bytes read)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    first = None
    tail = b""
    total = 0
    try:
        while True:
            data = proc.stdout.read1(1 << 17)
            if not data:
                raise AssertionError(f"{argv[0]} ended before the last line")
            if first is None:
                first = time.perf_counter()
            total += len(data)
            tail = tail[-len(last):] + data
            if last in tail:
                break
            assert time.perf_counter() - t0 < 300
        end = time.perf_counter()
    finally:
        proc.kill()
        proc.wait()
    return end - t0, end - (first or t0), total


def test_logs_follow_throughput(pool, host_a, inventory, havsh_paths, cleanup, testbed):
    slug = "bench-cli-logs"
    cleanup.add(slug)
    container = start_generator(pool, host_a, slug)
    inventory.add_service(Service(name=slug, host="hosta", type=ServiceType.TEST,
                                  odoo_version="17.0", image="havsh-test/postgres:15",
                                  status=ServiceStatus.RUNNING))
    last = f"ValueError: boom {N - N % 10}\n".encode()
    ssh_config = testbed.hosts["hosta"].ssh_config
    raw_argv = ["ssh", "-F", str(ssh_config), "hosta", "docker", "logs", "-f", container]
    havsh_argv = [sys.executable, "-m", "havsh_tui", "logs", "-f", "--tail", "all", slug]
    env = dict(os.environ)  # HAVSH_HOME: the test's home, whose inventory has the service

    runs: dict[str, list[tuple[float, float, int]]] = {"raw": [], "havsh": [], "json": []}
    time_until_last(raw_argv, last)  # warm: the engine's file cache, sshd
    for _ in range(REPS):
        runs["raw"].append(time_until_last(raw_argv, last))
        runs["havsh"].append(time_until_last(havsh_argv, last, env))
        runs["json"].append(time_until_last([*havsh_argv, "--json"],
                                            f'"ValueError: boom {N - N % 10}"'.encode(), env))
    try:
        pool.session(host_a).docker().api.remove_container(container, force=True)
    except Exception:  # noqa: BLE001
        pass

    def rate(kind: str, index: int) -> float:
        return TOTAL / statistics.median(r[index] for r in runs[kind])

    result = {
        "what": f"{TOTAL:,} lines, `havsh logs -f --tail all` vs `ssh hosta docker logs -f`",
        "target_ratio": 0.8,
        "lines_per_s": {
            "raw_wall": round(rate("raw", 0)),
            "havsh_wall": round(rate("havsh", 0)),
            "havsh_json_wall": round(rate("json", 0)),
            "raw_stream": round(rate("raw", 1)),
            "havsh_stream": round(rate("havsh", 1)),
            "havsh_json_stream": round(rate("json", 1)),
        },
        "ratio_wall": round(rate("havsh", 0) / rate("raw", 0), 3),
        "ratio_stream": round(rate("havsh", 1) / rate("raw", 1), 3),
        "ratio_json_wall": round(rate("json", 0) / rate("raw", 0), 3),
        "seconds": {k: [round(r[0], 2) for r in v] for k, v in runs.items()},
        "bytes": {k: v[0][2] for k, v in runs.items()},
        "reps": REPS,
        "cpus": os.cpu_count(),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "logs_cli_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n" + json.dumps(result, indent=2))
