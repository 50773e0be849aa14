"""The live-status refresh of 200 services on 10 hosts: one docker call per host per refresh.

A refresh is what the poller does for the dashboard: ``ops.rescan.poll_statuses`` on every
host (one labelled ``containers`` list each), then the dashboard applying the ten results
(``HostPolled`` → ``ServiceTable.update_statuses``). The docker API calls are counted by
wrapping each session's docker client. The baseline, measured in the same run, is the naive
refresh that inspects every service's container (one call per service).

Three measurements, each as a ratio to its baseline (nothing here fails on timing):

* fake hosts: ten engines that answer like dockerd after the 5.7 ms round trip measured
  over SSH (shared/TESTBED.md), polled in parallel as the poller does;
* real hosts (when the testbed is up): ten inventory hosts that are all the testbed's
  host A through ten SSH connections, with real HTTP requests counted;
* the TUI: the dashboard applying the ten polls (200 status changes) against a bare
  DataTable updating the same 200 cells.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import textual
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from havsh_tui.core import names
from havsh_tui.core.model import Host, Service, ServiceStatus, ServiceType
from havsh_tui.ops.rescan import poll_statuses

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
N_HOSTS = 10
PER_HOST = 20
RTT = 0.0057  # seconds: containers.list over SSH with the paramiko transport (TESTBED.md)
REPS = 7
SIZE = (120, 40)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def inventory_of(host_names: list[str]) -> tuple[list[Host], list[Service]]:
    hosts = [Host(name=h, address=f"{h}.invalid") for h in host_names]
    types = [ServiceType.LIVE, ServiceType.TEST, ServiceType.DEMO, ServiceType.COPY]
    services = [
        Service(name=f"svc-{h:02d}-{i:02d}", host=host_names[h], type=types[i % len(types)],
                odoo_version="17.0", image="odoo:17.0", status=ServiceStatus.RUNNING,
                created_at=NOW, updated_at=NOW)
        for h in range(len(host_names)) for i in range(PER_HOST)
    ]
    return hosts, services


class FakeEngine:
    """The docker API of one host: labelled rows for its services, after one round trip.
    Every call is counted; a call it does not know fails the bench."""

    def __init__(self, services: list[Service], state: str = "exited") -> None:
        self.rows = [{
            "Id": f"{s.name:0<64}"[:64], "Names": [f"/{names.container_name(s.name)}"],
            "Image": s.image, "State": state, "Created": 1_700_000_000,
            "Labels": names.service_labels(s.name, s.type.value, s.odoo_version),
        } for s in services]
        self.by_name = {r["Names"][0][1:]: r for r in self.rows}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
        time.sleep(RTT)

    def containers(self, filters: dict | None = None, **kw: Any) -> list:
        self._call("containers")
        wanted = (filters or {}).get("label") or []
        wanted = [wanted] if isinstance(wanted, str) else wanted
        pairs = [w.partition("=") for w in wanted]
        return [r for r in self.rows if all(r["Labels"].get(k) == v for k, _, v in pairs)]

    def inspect_container(self, name: str) -> dict:
        self._call("inspect_container")
        row = self.by_name[name]
        return {"State": {"Status": row["State"], "Running": row["State"] == "running"}}


class FakeClient:
    def __init__(self, engine: FakeEngine) -> None:
        self.api = engine


class FakeSession:
    def __init__(self, engine: FakeEngine) -> None:
        self.client = FakeClient(engine)

    def docker(self) -> FakeClient:
        return self.client


def per_service_statuses(session: Any, services: list[Service]) -> dict[str, ServiceStatus]:
    """The baseline: one inspect per service."""
    state = {"running": ServiceStatus.RUNNING, "exited": ServiceStatus.STOPPED}
    out = {}
    for s in services:
        attrs = session.docker().api.inspect_container(names.container_name(s.name))
        out[s.name] = state.get(attrs["State"]["Status"], ServiceStatus.UNKNOWN)
    return out


def refresh(sessions: dict[str, Any], fn: Any) -> tuple[dict[str, Any], float]:
    """One refresh of every host in parallel (a thread per host, as the poller runs)."""
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        futures = {h: pool.submit(fn, h, s) for h, s in sessions.items()}
        results = {h: f.result() for h, f in futures.items()}
    return results, time.perf_counter() - t


def test_fake_hosts_one_call_per_host() -> None:
    host_names = [f"host-{h:02d}" for h in range(N_HOSTS)]
    _hosts, services = inventory_of(host_names)
    engines = {h: FakeEngine([s for s in services if s.host == h]) for h in host_names}
    sessions = {h: FakeSession(e) for h, e in engines.items()}
    by_host = {h: [s for s in services if s.host == h] for h in host_names}

    samples: dict[str, list[float]] = {"labelled": [], "per_service": []}
    calls: dict[str, int] = {}
    for rep in range(REPS):
        order = [("labelled", lambda h, s: poll_statuses(s)),
                 ("per_service", lambda h, s: per_service_statuses(s, by_host[h]))]
        for name, fn in order if rep % 2 == 0 else order[::-1]:
            for e in engines.values():
                e.calls.clear()
            results, seconds = refresh(sessions, fn)
            samples[name].append(seconds)
            calls[name] = sum(sum(e.calls.values()) for e in engines.values())
            if name == "labelled":
                # The rule of the issue: one docker call per host per refresh.
                assert [dict(e.calls) for e in engines.values()] == [{"containers": 1}] * N_HOSTS
            # Both see every service, stopped.
            assert sum(len(r) for r in results.values()) == N_HOSTS * PER_HOST
            assert all(st is ServiceStatus.STOPPED for r in results.values()
                       for st in r.values())
    assert calls["labelled"] == N_HOSTS
    assert calls["per_service"] == N_HOSTS * PER_HOST
    med = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "calls_per_refresh": calls,
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "time_ratio": round(med["labelled"] / med["per_service"], 4),
        "calls_ratio": round(calls["labelled"] / calls["per_service"], 4),
        "simulated_rtt_s": RTT,
    }
    _save("fake_hosts", result)
    print(f"\nstatus refresh, fake hosts: {calls['labelled']} docker calls "
          f"({med['labelled'] * 1000:.1f} ms) vs {calls['per_service']} per service "
          f"({med['per_service'] * 1000:.1f} ms), time ratio {result['time_ratio']}")


def test_real_hosts_one_call_per_host(testbed: Any, tmp_path: Path) -> None:
    """Ten inventory hosts that are all the testbed's host A, each with its own SSH
    connection; the HTTP requests of each docker client are counted."""
    from havsh_tui.remote.hosts import HostPool, SSHOptions

    a = testbed.hosts["hosta"]
    known = tmp_path / "known_hosts"
    shutil.copy(a.known_hosts, known)
    os.chmod(known, 0o600)
    opts = SSHOptions(known_hosts=known, ssh_config=None, connect_timeout=10,
                      command_timeout=60, system_known_hosts=False)
    pool = HostPool(opts)
    hosts = [Host(name=f"bench-a{h}", address=a.address, port=a.port, user=a.user,
                  identity_file=str(a.client_key)) for h in range(N_HOSTS)]
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    sessions = {}
    try:
        for host in hosts:
            session = pool.session(host)
            client = session.docker()
            client.api.ping()  # connect before timing
            send = client.api.send

            def counted(request: Any, *args: Any, _send: Any = send, _h: str = host.name,
                        **kw: Any) -> Any:
                with lock:
                    counts[_h] += 1
                return _send(request, *args, **kw)

            client.api.send = counted  # type: ignore[method-assign]
            sessions[host.name] = session
        # The baseline's 20 names per host: containers that are not there (404s) cost the
        # same round trip as ones that are.
        fake_names = {h.name: [Service(name=f"bench-none-{i:02d}", host=h.name,
                                       type=ServiceType.TEST, odoo_version="17.0",
                                       image="x") for i in range(PER_HOST)] for h in hosts}

        def inspect_each(h: str, s: Any) -> int:
            import docker.errors

            for svc in fake_names[h]:
                try:
                    s.docker().api.inspect_container(names.container_name(svc.name))
                except docker.errors.NotFound:
                    pass
            return PER_HOST

        samples: dict[str, list[float]] = {"labelled": [], "per_service": []}
        calls: dict[str, int] = {}
        for rep in range(REPS):
            order = [("labelled", lambda h, s: poll_statuses(s)), ("per_service", inspect_each)]
            for name, fn in order if rep % 2 == 0 else order[::-1]:
                counts.clear()
                _results, seconds = refresh(sessions, fn)
                samples[name].append(seconds)
                calls[name] = sum(counts.values())
                if name == "labelled":
                    assert set(counts.values()) == {1}, counts
        assert calls["labelled"] == N_HOSTS
        assert calls["per_service"] == N_HOSTS * PER_HOST
    finally:
        pool.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "calls_per_refresh": calls,
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "time_ratio": round(med["labelled"] / med["per_service"], 4),
        "note": "ten SSH connections to the testbed's host A, polled in parallel",
    }
    _save("real_hosts", result)
    print(f"\nstatus refresh, real hosts: {calls['labelled']} HTTP requests "
          f"({med['labelled'] * 1000:.1f} ms) vs {calls['per_service']} per service "
          f"({med['per_service'] * 1000:.1f} ms), time ratio {result['time_ratio']}")


# -- the TUI side ---------------------------------------------------------------------------------


class BareTable(App[None]):
    def __init__(self, rows: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield DataTable(id="bare")

    def on_mount(self) -> None:
        # The dashboard's columns, so both redraw the same cells.
        from havsh_tui.widgets.service_table import COLUMNS

        table = self.query_one(DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        for row in self.rows:
            table.add_row(*row, key=f"{row[1]}/{row[0]}")


async def test_dashboard_applies_ten_polls(bench_home: Path, no_network: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from havsh_tui.app import make_app
    from havsh_tui.core.inventory import open_inventory
    from havsh_tui.core.paths import AppPaths
    from havsh_tui.core.settings import Settings
    from havsh_tui.ops.hosts import HostHealth
    from havsh_tui.workers import HostPolled, HostPoller

    # The polls are given to the dashboard here; the poller itself must not dial.
    monkeypatch.setattr(HostPoller, "start", lambda self: None)
    host_names = [f"host-{h:02d}" for h in range(N_HOSTS)]
    hosts, services = inventory_of(host_names)
    paths = AppPaths.from_env().ensure()
    inventory = open_inventory(paths)
    for host in hosts:
        inventory.add_host(host)
        inventory.replace_services_for_host(host.name, [s for s in services
                                                        if s.host == host.name])
    engines = {h: FakeEngine([s for s in services if s.host == h], state="exited")
               for h in host_names}
    running = {h: FakeEngine([s for s in services if s.host == h], state="running")
               for h in host_names}
    # The statuses the ten hosts report (computed once, off the clock): all stopped, then
    # all running again, so every refresh changes all 200 cells.
    stopped = {h: poll_statuses(FakeSession(e)) for h, e in engines.items()}
    started = {h: poll_statuses(FakeSession(e)) for h, e in running.items()}
    rows = [(s.name, s.host, "17.0", " Running ", "—", "1y", "") for s in services]

    samples: dict[str, list[float]] = {"havsh": [], "bare": []}
    app = make_app(paths, Settings(), clock=lambda: NOW)
    bare = BareTable(rows)
    async with app.run_test(size=SIZE) as pilot, bare.run_test(size=SIZE) as bare_pilot:
        await pilot.pause()
        await bare_pilot.pause()
        table = app.screen.table
        bare_table = bare.query_one(DataTable)
        for rep in range(REPS * 2):
            report = stopped if rep % 2 == 0 else started
            want = ServiceStatus.STOPPED if rep % 2 == 0 else ServiceStatus.RUNNING
            t = time.perf_counter()
            for h in host_names:
                app.poller.deliver(HostPolled(h, HostHealth(host=h, reachable=True), report[h]))
            await pilot.pause()
            samples["havsh"].append(time.perf_counter() - t)
            assert all(s.status is want for s in table.services)

            label = want.display()
            t = time.perf_counter()
            for name, host, *_rest in rows:
                bare_table.update_cell(f"{host}/{name}", "status", f" {label} ")
            await bare_pilot.pause()
            samples["bare"].append(time.perf_counter() - t)
    assert no_network == []
    med = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "ratio": round(med["havsh"] / med["bare"], 3),
        "changes_per_refresh": N_HOSTS * PER_HOST,
    }
    _save("tui_apply", result)
    print(f"\nstatus refresh, TUI: havsh applies 10 polls (200 changes) in "
          f"{med['havsh'] * 1000:.1f} ms, a bare DataTable updates 200 cells in "
          f"{med['bare'] * 1000:.1f} ms, ratio {result['ratio']}")


def _save(part: str, data: dict[str, Any]) -> None:
    path = RESULTS / "status_refresh.json"
    RESULTS.mkdir(exist_ok=True)
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    current.update({
        "what": f"live-status refresh, {N_HOSTS * PER_HOST} services on {N_HOSTS} hosts: "
                "one labelled docker list per host vs one inspect per service",
        "hosts": N_HOSTS,
        "services": N_HOSTS * PER_HOST,
        "reps": REPS,
        "textual": textual.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    })
    current[part] = {**data, "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    path.write_text(json.dumps(current, indent=2) + "\n")
