"""Pilot tests and snapshots of the hosts screen, the per-host poller and the app's section
keys and failure handler. No network: a fake pool answers the polls (tests/infra/screenshots.py
uses the same fakes and demo health)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from havsh_tui import workers
from havsh_tui.app import HavshApp, make_app
from havsh_tui.core.audit import AuditLog
from havsh_tui.core.model import Host, ServiceStatus
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import Settings
from havsh_tui.dialogs.add_host import HostDialog
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.dialogs.jump import JumpDialog
from havsh_tui.ops.bootstrap import BootstrapResult
from havsh_tui.ops.hosts import HostHealth, OpsError
from havsh_tui.remote.hosts import SSHOptions
from havsh_tui.screens.dashboard import DashboardScreen
from havsh_tui.screens.hosts import HostsScreen
from havsh_tui.widgets.host_table import HostTable, format_bytes

from .conftest import FROZEN_NOW, demo_hosts, demo_services, fill_inventory, frozen_clock

SIZE = (120, 40)
GiB = 1024**3

# -- fakes (also used by tests/tui/test_dialogs.py and tests/infra/screenshots.py) ----------


def demo_health() -> dict[str, HostHealth]:
    """One healthy host and one that timed out, at the frozen "now"."""
    at = FROZEN_NOW.timestamp() - 3
    return {
        "alpha": HostHealth(
            host="alpha",
            reachable=True,
            docker_version="27.5.1",
            api_version="1.47",
            cpus=8,
            load1=0.42,
            load5=0.51,
            load15=0.60,
            mem_total=int(31.2 * GiB),
            mem_available=int(12.3 * GiB),
            docker_root="/var/lib/docker",
            disk_free=180 * GiB,
            disk_total=480 * GiB,
            managed_containers=6,
            platform={"havsh-postgres": "running", "havsh-proxy": "running",
                      "havsh-backups": "running"},
            rtt_ms=1.8,
            checked_at=at,
        ),
        "bravo": HostHealth(
            host="bravo",
            reachable=False,
            error="deploy@192.0.2.20: no answer within 10 s (connection timed out)",
            checked_at=at,
        ),
    }


#: 1-minute loads of alpha over its last polls, for the sparkline.
DEMO_LOADS = [0.3, 0.35, 0.5, 0.9, 1.6, 2.4, 1.9, 1.2, 0.8, 0.6, 0.5, 0.45, 0.4, 0.42]

DEMO_AUDIT = [
    {"time": "2025-06-01T09:12:04Z", "host": "alpha", "action": "host.add",
     "target": "deploy@192.0.2.10", "outcome": "ok", "detail": "key SHA256:q1w2e3r4t5y6u7i8o9p0"},
    {"time": "2025-06-01T09:13:40Z", "host": "alpha", "action": "network.create",
     "target": "havsh", "outcome": "ok", "detail": ""},
    {"time": "2025-06-01T09:13:52Z", "host": "alpha", "action": "container.create",
     "target": "havsh-postgres", "outcome": "ok", "detail": "postgres:16"},
    {"time": "2025-06-01T11:58:10Z", "host": "bravo", "action": "host.set", "target": "bravo",
     "outcome": "ok", "detail": "odoo_image=odoo:18.0"},
]


def write_audit(paths: AppPaths, records: list[dict[str, Any]] = DEMO_AUDIT) -> None:
    with open(paths.audit_log, "a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")


class FakeSession:
    def __init__(self, pool: FakePool, host: Host) -> None:
        self.pool = pool
        self.host = host


class FakePool:
    """Stands in for remote.hosts.HostPool: each host answers its scripted HostHealth.

    ``gates[name]`` (a threading.Event) makes that host's poll block until it is set, the
    way a host stuck in its SSH timeout would. ``close()`` opens every gate.
    """

    def __init__(self, opts: SSHOptions, health: dict[str, HostHealth] | None = None) -> None:
        self.opts = opts
        self.health = dict(health or {})
        self.statuses: dict[str, dict[str, ServiceStatus]] = {}
        self.gates: dict[str, threading.Event] = {}
        self.calls: list[str] = []
        self.dropped: list[str] = []
        self.passphrases: dict[str, str] = {}
        self.active: dict[str, int] = {}
        self.max_active: dict[str, int] = {}
        self._lock = threading.Lock()

    def session(self, host: Host, passphrase: str | None = None) -> FakeSession:
        if passphrase is not None:
            self.passphrases[host.name] = passphrase
        return FakeSession(self, host)

    def check(self, host: Host) -> HostHealth:
        name = host.name
        with self._lock:
            self.calls.append(name)
            self.active[name] = self.active.get(name, 0) + 1
            self.max_active[name] = max(self.max_active.get(name, 0), self.active[name])
        try:
            gate = self.gates.get(name)
            if gate is not None:
                gate.wait(timeout=60)
            answer = self.health.get(name)
            if answer is None:
                return HostHealth(host=name, reachable=False, error=f"{name}: nothing scripted")
            return replace(answer)
        finally:
            with self._lock:
                self.active[name] -= 1

    def statuses_of(self, host: Host) -> dict[str, ServiceStatus]:
        return dict(self.statuses.get(host.name, {}))

    def drop(self, name: str) -> None:
        self.dropped.append(name)

    def close(self) -> None:
        for gate in self.gates.values():
            gate.set()


def use_fake_ops(setattr_: Callable[[Any, str, Any], None]) -> None:
    """Route the poller's ops calls to the FakePool (``monkeypatch.setattr``, or a plain
    setattr for the screenshot script)."""
    setattr_(workers, "check_host", lambda session: session.pool.check(session.host))
    setattr_(workers, "poll_statuses", lambda session: session.pool.statuses_of(session.host))


def fake_opts(paths: AppPaths) -> SSHOptions:
    return SSHOptions(known_hosts=paths.known_hosts, ssh_config=None, system_known_hosts=False)


@pytest.fixture
def fake_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_ops(monkeypatch.setattr)


@pytest.fixture
def pools():
    made: list[FakePool] = []
    yield made
    for pool in made:
        pool.close()  # never leave a poll thread waiting on a gate


@pytest.fixture
def build(fake_ops: None, pools: list[FakePool]) -> Callable[..., tuple[HavshApp, FakePool]]:
    """``build(paths, health=..., **settings)`` → (the real app on a fake pool, the pool)."""

    def make(
        paths: AppPaths, health: dict[str, HostHealth] | None = None, **settings: Any
    ) -> tuple[HavshApp, FakePool]:
        pool = FakePool(fake_opts(paths), demo_health() if health is None else health)
        pools.append(pool)
        settings.setdefault("poll_interval", 3600.0)
        app = make_app(paths, Settings(**settings), pool=pool, clock=frozen_clock)
        return app, pool

    return make


async def wait_for(pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 5.0):
    """Let the app run until ``condition()`` holds (workers finish on their own schedule)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.01)
    await pilot.pause()


async def shown(pilot: Pilot[Any], screen: HostsScreen, *hosts: str) -> None:
    """Wait until ``hosts`` have answered and the screen shows their answers."""
    app = screen.havsh

    def on_screen() -> bool:
        latest = app.poller.latest
        return not screen.repaint_pending and all(
            h in latest and screen.table.health_of(h) is latest[h] for h in hosts
        )

    await wait_for(pilot, on_screen)


async def open_hosts(pilot: Pilot[Any]) -> HostsScreen:
    await pilot.press("2")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, HostsScreen)
    return screen


def cell(table: HostTable, host: str, column: str) -> str:
    value = table.get_cell(host, column)
    return getattr(value, "plain", str(value)).strip()


def seed_history(app: HavshApp, loads: list[float] = DEMO_LOADS) -> None:
    """Feed alpha's loads through the poller's own delivery path (as polls would)."""
    base = demo_health()["alpha"]
    for load in loads:
        app.poller.deliver(workers.HostPolled("alpha", replace(base, load1=load), {}))


@pytest.fixture
def demo_paths(populated_paths: AppPaths) -> AppPaths:
    write_audit(populated_paths)
    return populated_paths


# -- the hosts screen -------------------------------------------------------------------------


async def test_hosts_screen_shows_every_metric(demo_paths: AppPaths, build):
    app, pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await shown(pilot, screen, "alpha", "bravo")
        table = screen.table
        assert [h.name for h in table.hosts] == ["alpha", "bravo"]
        row = {key: cell(table, "alpha", key) for key in (
            "destination", "state", "docker", "cpus", "load", "mem", "disk", "containers",
            "rtt", "services",
        )}
        assert row == {
            "destination": "deploy@192.0.2.10",
            "state": "reachable",
            "docker": "27.5.1",
            "cpus": "8",
            "load": "0.42",
            "mem": "12.3 GiB",
            "disk": "180.0 GiB",
            "containers": "6",
            "rtt": "1.8 ms",
            "services": "7",
        }
        assert cell(table, "bravo", "state") == "unreachable"
        assert cell(table, "bravo", "services") == "3"
        assert screen.sub_title == "2 hosts · polled every 3600 s"


async def test_unreachable_host_shows_its_error(demo_paths: AppPaths, build):
    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await shown(pilot, screen, "bravo")
        await pilot.press("down")
        await pilot.pause()
        assert screen.selected_host is not None and screen.selected_host.name == "bravo"
        error = screen.query_one("#host-error", Static)
        assert not error.has_class("-hidden")
        assert "connection timed out" in str(error.render())
        assert not screen.query_one("#host-load-row").display


async def test_sparkline_follows_the_load_history(demo_paths: AppPaths, build):
    from textual.widgets import Sparkline

    from havsh_tui.widgets.host_table import SparkCell

    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await shown(pilot, screen, "alpha")
        seed_history(app)
        await shown(pilot, screen, "alpha")
        history = list(app.poller.history["alpha"])
        assert history[-len(DEMO_LOADS):] == DEMO_LOADS
        assert list(screen.query_one("#host-load", Sparkline).data or []) == history
        spark = screen.table.get_cell("alpha", "spark")
        assert isinstance(spark, SparkCell) and list(spark.samples) == history
        label = screen.query_one("#host-load-range")
        assert "max 2.40" in str(label.render())


async def test_keys_work_while_a_host_poll_hangs(demo_paths: AppPaths, build):
    """bravo's poll blocks (a host in its SSH timeout): alpha answers, keys still work."""
    app, pool = build(demo_paths)
    pool.gates["bravo"] = threading.Event()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await shown(pilot, screen, "alpha")
        assert "bravo" in app.poller.in_progress and "bravo" not in app.poller.latest
        assert cell(screen.table, "bravo", "state") == "polling…"
        # The cursor moves, a dialog opens and closes, sections switch: all while bravo hangs.
        await pilot.press("down")
        await pilot.pause()
        assert screen.selected_host is not None and screen.selected_host.name == "bravo"
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, HostDialog)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("2")
        await pilot.pause()
        assert app.screen is screen
        assert "bravo" in app.poller.in_progress
        pool.gates["bravo"].set()
        await shown(pilot, screen, "bravo")
        assert cell(screen.table, "bravo", "state") == "unreachable"


async def test_polls_reschedule_and_never_overlap(demo_paths: AppPaths, build):
    app, pool = build(demo_paths, poll_interval=0.02)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await wait_for(pilot, lambda: pool.calls.count("alpha") >= 5 and
                       pool.calls.count("bravo") >= 5)
        # Each host has its own worker and timer; a poll never starts while one runs.
        assert pool.max_active == {"alpha": 1, "bravo": 1}
        app.poller.poll_now()  # asked while a poll may be running: queued, not doubled
        await wait_for(pilot, lambda: pool.calls.count("alpha") >= 8)
        assert pool.max_active == {"alpha": 1, "bravo": 1}


async def test_one_dead_host_does_not_slow_the_others(demo_paths: AppPaths, build):
    app, pool = build(demo_paths, poll_interval=0.02)
    pool.gates["bravo"] = threading.Event()
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await wait_for(pilot, lambda: pool.calls.count("alpha") >= 10)
        assert pool.calls.count("bravo") == 1


async def test_host_polled_is_posted_to_the_app(demo_paths: AppPaths, build, monkeypatch):
    seen: list[workers.HostPolled] = []
    monkeypatch.setattr(
        HavshApp, "on_host_polled", lambda self, message: seen.append(message), raising=False
    )
    app, pool = build(demo_paths)
    pool.statuses["alpha"] = {"erp-prod": ServiceStatus.RUNNING, "erp-test": ServiceStatus.FAILED}
    async with app.run_test(size=SIZE) as pilot:
        signalled: list[str] = []
        app.poller.subscribe(app.screen, lambda message: signalled.append(message.host))
        app.poller.poll_now()  # the dashboard may have started the polls already
        await wait_for(
            pilot, lambda: {m.host for m in seen} == {"alpha", "bravo"} and len(signalled) >= 2
        )
        by_host = {m.host: m for m in seen}
        assert by_host["alpha"].statuses == {
            "erp-prod": ServiceStatus.RUNNING,
            "erp-test": ServiceStatus.FAILED,
        }
        assert by_host["alpha"].health.reachable
        assert by_host["bravo"].statuses is None
        assert set(signalled) == {"alpha", "bravo"}


async def test_nothing_polls_until_someone_subscribes(demo_paths: AppPaths, fake_ops, pools):
    from textual.app import App

    from havsh_tui.core.inventory import open_inventory

    class Bare(App[None]):
        def __init__(self) -> None:
            super().__init__()
            self.settings = Settings(poll_interval=3600.0)
            self.inventory = open_inventory(demo_paths)
            self.pool = FakePool(fake_opts(demo_paths), demo_health())
            pools.append(self.pool)
            self.poller = workers.HostPoller(self)  # type: ignore[arg-type]  # duck-typed

    app = Bare()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.05)
        assert app.pool.calls == [] and not app.poller.running
        app.poller.subscribe(app.screen, lambda message: None)
        await wait_for(pilot, lambda: len(app.poller.latest) == 2)
        assert sorted(app.pool.calls) == ["alpha", "bravo"]


async def test_refresh_polls_every_host_now(demo_paths: AppPaths, build):
    app, pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await wait_for(pilot, lambda: len(app.poller.latest) == 2)
        assert sorted(pool.calls) == ["alpha", "bravo"]
        await pilot.press("r")
        await wait_for(pilot, lambda: len(pool.calls) == 4)
        assert sorted(pool.calls) == ["alpha", "alpha", "bravo", "bravo"]


async def test_keys_greyed_out_without_a_host(paths: AppPaths, build):
    app, _pool = build(paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        for action in ("edit_host", "remove_host", "bootstrap", "forget_key", "refresh"):
            assert screen.check_action(action, ()) is None, action
        assert screen.check_action("add_host", ()) is True
        footer_keys = {b.binding.action: b.enabled for b in screen.active_bindings.values()}
        assert footer_keys["edit_host"] is False and footer_keys["add_host"] is True
        await pilot.press("e", "d", "b", "k")
        await pilot.pause()
        assert app.screen is screen  # nothing opened
        hint = str(screen.query_one("#host-summary", Static).render())
        assert "No hosts yet" in hint


async def test_remove_is_refused_while_the_host_has_services(demo_paths: AppPaths, build):
    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications))
        note = next(n for n in app._notifications if n.severity == "error")
        assert "still has 7 service(s)" in note.message
        assert "erp-prod" in note.message and "shop-copy" in note.message
        assert note.title == "remove host alpha failed"
        assert [h.name for h in app.inventory.list_hosts()] == ["alpha", "bravo"]
        assert app.screen is screen


async def test_remove_a_host_without_services(paths: AppPaths, build):
    fill_inventory(paths, demo_hosts(), [s for s in demo_services() if s.host == "alpha"])
    app, pool = build(paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await wait_for(pilot, lambda: len(app.poller.latest) == 2)
        await pilot.press("down", "d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # no: nothing happens
        await pilot.pause()
        assert len(app.inventory.list_hosts()) == 2
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: [h.name for h in screen.table.hosts] == ["alpha"])
        assert [h.name for h in app.inventory.list_hosts()] == ["alpha"]
        assert app.poller.hosts == ["alpha"] and "bravo" not in app.poller.latest
        assert pool.dropped == ["bravo"]
        assert AuditLog(paths.audit_log).tail(1)[0]["action"] == "host.rm"


async def test_bootstrap_runs_in_a_worker_and_shows_its_steps(
    demo_paths: AppPaths, build, monkeypatch
):
    import havsh_tui.ops.bootstrap as bootstrap

    release = threading.Event()
    calls: list[str] = []

    def fake_bootstrap(session, secret_store, reporter, audit=None):
        calls.append(session.host.name)
        reporter.step("network", "running")
        reporter.step("network", "done")
        reporter.step("postgres", "running")
        release.wait(10)
        reporter.step("postgres", "done")
        audit.append(session.host.name, "container.create", "havsh-postgres", "ok")
        return BootstrapResult(host=session.host.name, created=["container havsh-postgres"],
                               unchanged=["network havsh"])

    monkeypatch.setattr(bootstrap, "bootstrap_host", fake_bootstrap)
    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await pilot.press("b")
        operation = screen.query_one("#host-operation", Static)
        await wait_for(pilot, lambda: "● postgres" in str(operation.render()))
        text = str(operation.render())
        assert text.startswith("Bootstrap: ✓ network · ● postgres")
        await pilot.press("b")  # a second one is refused while the first runs
        await pilot.pause()
        assert any("being bootstrapped already" in n.message for n in app._notifications)
        release.set()
        await wait_for(pilot, lambda: "→" in str(operation.render()))
        assert "✓ postgres" in str(operation.render())
        assert "created container havsh-postgres" in str(operation.render())
        assert calls == ["alpha"]
        audit_rows = screen.query_one("#audit-table", DataTable).row_count
        assert audit_rows == len(DEMO_AUDIT) + 1


async def test_bootstrap_failure_reaches_the_failure_handler(
    demo_paths: AppPaths, build, monkeypatch
):
    import havsh_tui.ops.bootstrap as bootstrap

    def broken(session, secret_store, reporter, audit=None):
        reporter.step("network", "running")
        raise OpsError("alpha: the Docker engine said: permission denied")

    monkeypatch.setattr(bootstrap, "bootstrap_host", broken)
    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await pilot.press("b")
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications))
        note = next(n for n in app._notifications if n.severity == "error")
        assert note.message == "alpha: the Docker engine said: permission denied"
        assert note.title == "bootstrap alpha failed"
        operation = screen.query_one("#host-operation", Static)
        await wait_for(pilot, lambda: operation.has_class("-failed"))


async def test_forget_key_asks_first(demo_paths: AppPaths, build, monkeypatch):
    import havsh_tui.ops.hosts as ops_hosts

    forgotten: list[str] = []

    def fake_forget(host, opts):
        forgotten.append(host.name)
        return "192.0.2.10", 1

    monkeypatch.setattr(ops_hosts, "forget_host_key", fake_forget)
    app, pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("k")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        assert dialog.focused is not None and dialog.focused.id == "confirm-cancel"
        await pilot.press("enter")  # enter on the focused Cancel: nothing forgotten
        await pilot.pause()
        assert forgotten == []
        await pilot.press("k")
        await pilot.pause()
        await pilot.click("#confirm-ok")
        await wait_for(pilot, lambda: forgotten == ["alpha"] and "alpha" in pool.dropped)
        await wait_for(pilot, lambda: any("Removed 1 key line" in n.message
                                          for n in app._notifications))
        record = AuditLog(demo_paths.audit_log).tail(1)[0]
        assert (record["action"], record["target"]) == ("host.forget-key", "192.0.2.10")


async def test_audit_panel_picks_up_new_lines(demo_paths: AppPaths, build):
    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        table = screen.query_one("#audit-table", DataTable)
        assert table.row_count == len(DEMO_AUDIT)
        # Newest first.
        assert table.get_row_at(0)[2].plain == "host.set"
        AuditLog(demo_paths.audit_log).append("alpha", "container.start", "havsh-x", "ok")
        screen.refresh_audit()
        await pilot.pause()
        assert table.row_count == len(DEMO_AUDIT) + 1
        assert table.get_row_at(0)[2].plain == "container.start"


async def test_an_added_host_is_polled_at_once(demo_paths: AppPaths, build):
    app, pool = build(demo_paths)
    pool.health["charlie"] = replace(demo_health()["alpha"], host="charlie", cpus=2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await wait_for(pilot, lambda: len(app.poller.latest) == 2)
        app.inventory.add_host(Host(name="charlie", address="192.0.2.30"))
        screen.reload()
        await shown(pilot, screen, "charlie")
        assert cell(screen.table, "charlie", "cpus") == "2"


# -- sections and the failure handler ------------------------------------------------------


async def test_section_keys_and_jump_prompt(demo_paths: AppPaths, build):
    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.current_mode == "services"
        await pilot.press("2")
        await pilot.pause()
        assert app.current_mode == "hosts"
        await pilot.press("1")
        await pilot.pause()
        assert app.current_mode == "services"
        await pilot.press("colon")
        await pilot.pause()
        assert isinstance(app.screen, JumpDialog)
        await pilot.press(*"nope", "enter")
        await pilot.pause()
        assert isinstance(app.screen, JumpDialog)
        assert "no section 'nope'" in str(app.screen.query_one("#jump-hint", Static).render())
        jump_input = app.screen.query_one("#jump-input", Input)
        jump_input.value = ""
        await pilot.press("h", "enter")
        await pilot.pause()
        assert app.current_mode == "hosts"
        assert isinstance(app.screen, HostsScreen)


async def test_section_keys_do_nothing_under_a_dialog(demo_paths: AppPaths, build):
    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("d")  # the confirm dialog: its Cancel button has the focus
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("1", "colon")
        await pilot.pause()
        assert app.current_mode == "hosts" and isinstance(app.screen, ConfirmDialog)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OpsError("host 'x' still has 1 service(s): a."), "host 'x' still has 1 service(s): a."),
        (ValueError("bad thing"), "ValueError: bad thing"),
    ],
)
async def test_worker_failure_handler_shows_the_message(
    paths: AppPaths, build, error: Exception, message: str
):
    app, _pool = build(paths)
    async with app.run_test(size=SIZE) as pilot:

        def fail() -> None:
            raise error

        app.run_worker(fail, name="frobnicate", thread=True, exit_on_error=False)
        await wait_for(pilot, lambda: app._notifications)
        note = list(app._notifications)[-1]
        assert (note.title, note.message, note.severity) == (
            "frobnicate failed", message, "error"
        )
        assert app.is_running


def test_format_bytes():
    assert format_bytes(None) == "—"
    assert format_bytes(512) == "512 B"
    assert format_bytes(int(1.5 * 1024)) == "1.5 KiB"
    assert format_bytes(12 * GiB) == "12.0 GiB"
    assert format_bytes(3 * 1024**5) == "3.0 PiB"


# -- snapshots --------------------------------------------------------------------------------


async def _hosts_with_history(pilot: Pilot[Any]) -> None:
    screen = await open_hosts(pilot)
    await shown(pilot, screen, "alpha", "bravo")
    seed_history(screen.havsh)
    await shown(pilot, screen, "alpha", "bravo")


def test_snapshot_hosts(snap_compare, demo_paths: AppPaths, build):
    app, _pool = build(demo_paths)
    assert snap_compare(app, run_before=_hosts_with_history, terminal_size=SIZE)


def test_snapshot_hosts_unreachable_selected(snap_compare, demo_paths: AppPaths, build):
    app, _pool = build(demo_paths)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _hosts_with_history(pilot)
        await pilot.press("down")
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=SIZE)


def test_snapshot_hosts_empty(snap_compare, paths: AppPaths, build):
    app, _pool = build(paths)
    assert snap_compare(app, press=["2"], terminal_size=SIZE)
