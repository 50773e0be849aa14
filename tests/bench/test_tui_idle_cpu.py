"""Idle CPU of the TUI with 10 hosts polled every 5 s. Target: under 3% of one core.

Two runs, each against a baseline measured in the same run (a bare Textual app with a
10-row DataTable, idle for as long):

- ``real``: the testbed's two hosts, each added five times under different names, so ten
  hosts with ten SSH connections are polled over real SSH (health and service statuses:
  per poll one Docker API call, one pipelined SFTP round trip and one SSH keepalive; the
  engine's /info and /version once a minute). Skipped when the testbed is down.
- ``fake``: ten hosts whose polls answer at once (the TUI's own cost: workers, timers,
  table updates, without SSH).

The app runs headless (``run_test``) on the hosts screen. After every host has answered once
(connections are open), the process's CPU time (``resource.getrusage``: all threads, user and
system) is read over ``IDLE_SECONDS`` of idle. Results go to results/tui_idle_cpu.json and
are printed; nothing fails on timing.
"""

from __future__ import annotations

import json
import platform
import resource
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import textual
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, Header

from havsh_tui import workers
from havsh_tui.app import make_app
from havsh_tui.core.inventory import open_inventory
from havsh_tui.core.model import Host
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import Settings
from havsh_tui.ops.hosts import HostHealth

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
RESULT_FILE = RESULTS / "tui_idle_cpu.json"
IDLE_SECONDS = 30.0
POLL_INTERVAL = 5.0
N_HOSTS = 10
SIZE = (120, 40)
TARGET_PERCENT = 3.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def idle_cpu(pilot: Pilot[Any], seconds: float) -> tuple[float, float]:
    """(% of one core, wall seconds) while the app sits idle for ``seconds``."""
    await pilot.pause()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    await pilot.pause(seconds)
    cpu1, wall1 = cpu_seconds(), time.monotonic()
    wall = wall1 - wall0
    return 100 * (cpu1 - cpu0) / wall, wall


class BareApp(App[None]):
    """The baseline: a header, a 10-row table, a footer; no timers, no workers."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Name", "Destination", "State", "Docker", "Load", "RTT")
        for i in range(N_HOSTS):
            table.add_row(f"host-{i}", f"root@192.0.2.{i}", "reachable", "27.5.1", "0.42",
                          "1.8 ms")


async def measure_bare(seconds: float) -> float:
    app = BareApp()
    async with app.run_test(size=SIZE) as pilot:
        percent, _wall = await idle_cpu(pilot, seconds)
    return percent


async def measure_havsh(
    paths: AppPaths,
    pool: Any,
    seconds: float,
    *,
    warm_timeout: float = 60.0,
    unpolled_seconds: float = 0.0,
) -> dict[str, Any]:
    app = make_app(paths, Settings(poll_interval=POLL_INTERVAL), pool=pool)
    polls = 0

    def count(_message: workers.HostPolled) -> None:
        nonlocal polls
        polls += 1

    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        app.poller.subscribe(app.screen, count)
        deadline = time.monotonic() + warm_timeout
        while len(app.poller.latest) < N_HOSTS:
            assert time.monotonic() < deadline, f"only {sorted(app.poller.latest)} answered"
            await pilot.pause(0.1)
        unreachable = {n: h.error for n, h in app.poller.latest.items() if not h.reachable}
        polls_before = polls
        percent, wall = await idle_cpu(pilot, seconds)
        polled = polls - polls_before
        unpolled = None
        if unpolled_seconds:
            # The same app and open SSH connections with the polling stopped: what the
            # connections (keepalives, transport threads) and the idle TUI cost alone.
            app.poller.stop()
            await pilot.pause(1.0)
            unpolled, _ = await idle_cpu(pilot, unpolled_seconds)
    result = {
        "cpu_percent": round(percent, 3),
        "idle_s": round(wall, 2),
        "polls": polled,
        "polls_per_s": round(polled / wall, 3),
        "cpu_ms_per_poll": round(10 * percent * wall / polled, 2) if polled else None,
        "unreachable": unreachable,
    }
    if unpolled is not None:
        result["not_polling_cpu_percent"] = round(unpolled, 3)
    return result


def record(mode: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    try:
        data = json.loads(RESULT_FILE.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    data["what"] = (
        f"idle CPU of the TUI (hosts screen) with {N_HOSTS} hosts polled every "
        f"{POLL_INTERVAL:g} s, % of one core, vs a bare Textual app idle as long"
    )
    data["target_percent"] = TARGET_PERCENT
    data[mode] = result
    RESULT_FILE.write_text(json.dumps(data, indent=2) + "\n")
    havsh = result["havsh"]
    unpolled = havsh.get("not_polling_cpu_percent")
    print(
        f"\nidle CPU ({mode}): havsh {havsh['cpu_percent']:.2f}% of one core"
        f" ({havsh['polls']} polls in {havsh['idle_s']:.0f} s, {havsh['cpu_ms_per_poll']} ms"
        f" CPU per poll), bare app {result['bare_percent']:.2f}%, ratio {result['ratio']}"
        f" (target < {TARGET_PERCENT:g}%)"
        + (f"; not polling, connections open: {unpolled:.2f}%" if unpolled is not None else "")
    )
    percent = result["havsh"]["cpu_percent"]
    if percent >= TARGET_PERCENT:
        print(f"NOTE: {percent:.2f}% is above the {TARGET_PERCENT:g}% target")


async def run(mode: str, paths: AppPaths, pool: Any, *, unpolled_seconds: float = 0.0) -> None:
    bare = await measure_bare(IDLE_SECONDS)
    havsh = await measure_havsh(paths, pool, IDLE_SECONDS, unpolled_seconds=unpolled_seconds)
    assert not havsh["unreachable"], havsh["unreachable"]
    record(
        mode,
        {
            "havsh": havsh,
            "bare_percent": round(bare, 3),
            "ratio": round(havsh["cpu_percent"] / bare, 2) if bare > 0 else None,
            "hosts": N_HOSTS,
            "poll_interval_s": POLL_INTERVAL,
            "textual": textual.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def fill(paths: AppPaths, hosts: list[Host]) -> None:
    inventory = open_inventory(paths)
    for host in hosts:
        inventory.add_host(host)


async def test_idle_cpu_ten_real_hosts(bench_home: Path, request: pytest.FixtureRequest):
    """The testbed's hosts A and B, five times each: ten SSH connections, real polls."""
    testbed = request.getfixturevalue("testbed")  # skips when the testbed cannot run here
    from havsh_tui.remote.hosts import HostPool, SSHOptions

    paths = AppPaths.from_env().ensure()
    shutil.copy(testbed.hosts["hosta"].known_hosts, paths.known_hosts)
    hosts = []
    for letter, th in (("a", testbed.hosts["hosta"]), ("b", testbed.hosts["hostb"])):
        for i in range(N_HOSTS // 2):
            hosts.append(Host(name=f"bench-{letter}{i}", address=th.address, port=th.port,
                              user=th.user, identity_file=str(th.client_key)))
    fill(paths, hosts)
    opts = SSHOptions(known_hosts=paths.known_hosts, ssh_config=None, connect_timeout=10.0,
                      command_timeout=60.0, system_known_hosts=False)
    pool = HostPool(opts)
    try:
        await run("real", paths, pool, unpolled_seconds=IDLE_SECONDS / 2)
    finally:
        pool.close()


class InstantPool:
    """Every poll answers at once with the same healthy host."""

    def __init__(self, opts: Any) -> None:
        self.opts = opts

    def session(self, host: Host, passphrase: str | None = None) -> Host:
        return host

    def drop(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass


def instant_health(host: Host) -> HostHealth:
    return HostHealth(host=host.name, reachable=True, docker_version="27.5.1",
                      api_version="1.47", cpus=2, load1=0.42, load5=0.5, load15=0.6,
                      mem_total=8 << 30, mem_available=3 << 30, docker_root="/var/lib/docker",
                      disk_free=40 << 30, disk_total=100 << 30, managed_containers=3, rtt_ms=1.1)


async def test_idle_cpu_ten_instant_hosts(bench_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The TUI's own share: the same ten hosts, answering without any SSH."""
    from havsh_tui.remote.hosts import SSHOptions

    check: Callable[[Host], HostHealth] = instant_health
    monkeypatch.setattr(workers, "check_host", check)
    monkeypatch.setattr(workers, "poll_statuses", lambda host: {})
    paths = AppPaths.from_env().ensure()
    # RFC 5737 addresses: nothing here dials them (the pool above never connects).
    fill(paths, [Host(name=f"bench-{i}", address=f"192.0.2.{i + 1}") for i in range(N_HOSTS)])
    pool = InstantPool(SSHOptions(known_hosts=paths.known_hosts, ssh_config=None))
    await run("fake", paths, pool)
