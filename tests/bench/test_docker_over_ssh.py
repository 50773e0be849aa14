"""containers.list over our SSH transport vs the local socket of the same engine.

Target (issue 2): at most 3x the local socket once the connection is up. Reported as a ratio
of medians measured in the same run, alternating, because these machines are noisy.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import havsh_paths, host_a, pool, ssh_opts  # noqa: F401

pytestmark = [pytest.mark.bench, pytest.mark.integration]
RESULTS = Path(__file__).parent / "results"


def _time(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def test_containers_list_ssh_vs_local(pool, host_a, testbed):  # noqa: F811
    remote = pool.session(host_a).docker()
    local = docker.DockerClient(
        base_url="unix://" + testbed.hosts["hosta"].docker_socket, version=remote.api.api_version
    )
    # Warm both: connection up, pools filled.
    for _ in range(20):
        remote.containers.list(all=True)
        local.containers.list(all=True)
    ssh_t: list[float] = []
    local_t: list[float] = []
    for _ in range(10):
        ssh_t += _time(lambda: remote.containers.list(all=True), 20)
        local_t += _time(lambda: local.containers.list(all=True), 20)
    ssh_ms = statistics.median(ssh_t) * 1000
    local_ms = statistics.median(local_t) * 1000
    ratio = ssh_ms / local_ms
    RESULTS.mkdir(exist_ok=True)
    result = {
        "ssh_ms": round(ssh_ms, 3),
        "local_ms": round(local_ms, 3),
        "ratio": round(ratio, 2),
        "target": 3.0,
        "samples": len(ssh_t),
    }
    (RESULTS / "docker_over_ssh.json").write_text(json.dumps(result, indent=2))
    print(f"\ncontainers.list: ssh {ssh_ms:.2f} ms, local {local_ms:.2f} ms, ratio {ratio:.2f}x")
