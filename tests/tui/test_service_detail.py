"""The service detail screen (fake ops): settings, host facts, stats sparklines, the steps
and operations, the config editor, the image update, actions from the detail, snapshots."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from textual.app import ComposeResult
from textual.widgets import Input, RadioSet, Sparkline, Static, TabbedContent, TextArea

from havsh_tui.core.model import ServiceStatus
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.screens import service_detail
from havsh_tui.screens.dashboard import DashboardScreen, busy_services
from havsh_tui.screens.service_detail import (
    DETAIL_TABS,
    DetailTab,
    ServiceDetailScreen,
    UpdateImageDialog,
    UpdateImageScreen,
    register_tab,
)
from havsh_tui.widgets.service_table import row_key_for
from havsh_tui.workers import HostPolled

from .fakes import (
    Calls,
    demo_health,
    install,
    no_polling,
    seed_failed_steps,
    steady,
    wait_for,
)

SIZE = (120, 40)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    no_polling(monkeypatch.setattr)
    # One stats reading per screen unless a test asks for more: snapshots stay still.
    monkeypatch.setattr(service_detail, "STATS_SECONDS", 3600.0)
    return install(monkeypatch.setattr)


async def open_detail(pilot: Any, name: str = "erp-prod") -> ServiceDetailScreen:
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, DashboardScreen)
    service = next(s for s in screen.table.visible_services() if s.name == name)
    screen.table.move_cursor(row=screen.table.get_row_index(row_key_for(service)))
    await pilot.pause()
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ServiceDetailScreen))
    detail = pilot.app.screen
    await wait_for(pilot, lambda: detail.facts is not None or detail.facts_error is not None,
                   what="the host facts")
    await wait_for(pilot, lambda: len(detail.cpu) >= 1, what="a stats reading")
    await pilot.pause()
    return detail


def text_of(screen: Any, selector: str) -> str:
    content = screen.query_one(selector, Static).content
    if hasattr(content, "plain"):
        return content.plain
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    Console(file=out, width=200, color_system=None).print(content)
    return out.getvalue()


async def test_overview_shows_settings_facts_and_stats(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        settings = text_of(detail, "#detail-settings")
        for expected in ("Live: Production", "alpha", "odoo:17.0", "erp_prod (role "
                         "havsh_erp_prod)", "havsh-erp-prod-data", "https://erp-prod.alpha"):
            assert expected in settings, expected
        host = text_of(detail, "#detail-host")
        assert "havsh-erp-prod" in host and "Up 3 days" in host
        assert "812.0 MB" in host and "1.3 GB" in host
        assert detail.query_one("#cpu-spark", Sparkline).data == [3.5]
        assert "CPU 3.5 %" in str(detail.query_one("#cpu-label", Static).content)
        assert "Memory 210.0 MB of 8.0 GB" in str(detail.query_one("#mem-label").content)
        assert calls.of("facts") == [("alpha", "erp-prod")]


async def test_stats_are_read_again_and_again_without_overlap(app: Any, calls: Calls,
                                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(service_detail, "STATS_SECONDS", 0.02)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        # Each reading is a thread worker re-armed by a timer: generous under load.
        await wait_for(pilot, lambda: len(detail.cpu) >= 4, timeout=60, what="four readings")
        # The fake's readings come in a cycle of five; each one is taken once and in order,
        # whatever the window the history keeps (it holds STATS_HISTORY, and a loaded machine
        # may take more than that many readings before this line runs).
        cycle = [3.5, 12.0, 7.25, 20.0, 5.0]
        got = list(detail.cpu)
        start = cycle.index(got[0])
        assert got == [cycle[(start + i) % 5] for i in range(len(got))]
        mem = detail.query_one("#mem-spark", Sparkline).data
        mem_cycle = [210e6, 230e6, 228e6, 260e6, 250e6]
        assert mem[:2] == [mem_cycle[start], mem_cycle[(start + 1) % 5]]


async def test_facts_that_cannot_be_read_are_said(app: Any, calls: Calls):
    from havsh_tui.remote.ssh import RemoteError

    calls.fail["facts"] = RemoteError("alpha: connection timed out")
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        assert "Could not ask alpha: alpha: connection timed out" in text_of(
            detail, "#detail-host")


async def test_the_steps_tab_shows_the_failed_step_and_error(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, "erp-test")
        detail.query_one(TabbedContent).active = "tab-steps"
        await pilot.pause()
        error = text_of(detail, "#detail-error")
        assert "failed at step 'start'" in error and "exited with code 255" in error


async def test_recent_operations_come_from_the_inventory(app: Any):
    app.inventory.record_operation({"kind": "service.restart", "host": "alpha",
                                    "service": "erp-prod", "state": "done"})
    app.inventory.record_operation({"kind": "service.stop", "host": "bravo",
                                    "service": "erp-prod", "state": "done"})  # another host
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        ops = text_of(detail, "#detail-operations")
        assert "service.restart" in ops and "service.stop" not in ops


async def test_config_is_validated_then_saved(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        await pilot.press("e")
        await pilot.pause()
        assert detail.query_one(TabbedContent).active == "tab-config"
        editor = detail.query_one("#config-edit", TextArea)
        assert app.focused is editor
        editor.text = "workers = 3\ndb_password = nope\n"
        await pilot.click("#config-save")
        await pilot.pause()
        error = detail.query_one("#config-error", Static)
        assert not error.has_class("-hidden") and "db_password" in str(error.content)
        assert calls.of("config") == []
        editor.text = "workers = 3\nlimit_time_real = 600\n"
        await pilot.click("#config-save-restart")
        await wait_for(pilot, lambda: calls.of("config") and not busy_services(app))
        await pilot.pause()
        key, text, restart = calls.of("config")[0]
        assert key == ("alpha", "erp-prod") and restart is True and "workers = 3" in text
        assert detail.service.config == {"workers": "3", "limit_time_real": "600"}
        assert "limit_time_real=600, workers=3" in text_of(detail, "#detail-settings")


async def test_update_image_pull(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        await pilot.press("u")
        dialog = await _at(pilot, UpdateImageDialog)
        dialog.query_one("#update-image-input", Input).value = "odoo:18.0"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        assert "Test a new major version on a copy" in str(
            dialog.query_one("#update-error").content)
        dialog.query_one("#update-image-input", Input).value = "odoo:17.0-20250601"
        await pilot.press("enter")
        running = await _at(pilot, UpdateImageScreen)
        await wait_for(pilot, lambda: running.outcome is not None)
        assert running.outcome.ok
        assert calls.of("update") == [(("alpha", "erp-prod"), "odoo:17.0-20250601", "pull")]
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is detail)
        await pilot.pause()
        assert detail.service.image == "odoo:17.0-20250601"


async def test_update_image_offers_to_push_from_another_host(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot)
        await pilot.press("u")
        dialog = await _at(pilot, UpdateImageDialog)
        labels = [str(b.label) for b in dialog.query_one("#update-source", RadioSet).query(
            "RadioButton")]
        assert labels == ["pulling it on alpha", "pushing it from bravo",
                          "pushing it from this machine's Docker"]


async def test_restart_from_the_detail(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, "showroom")
        await pilot.press("r")
        await wait_for(pilot, lambda: calls.of("restart") and not busy_services(app))
        assert calls.of("restart") == [("alpha", "showroom")]


async def test_delete_from_the_detail_goes_back_to_the_list(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, "training")
        await pilot.press("D")
        await _at(pilot, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the list")
        await pilot.pause()
        assert "training" not in {s.name for s in app.screen.table.services}


async def test_live_status_reaches_the_badge(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        app.poller.deliver(HostPolled("alpha", demo_health()["alpha"],
                                      {"erp-prod": ServiceStatus.STOPPED}))
        await pilot.pause()
        assert detail.service.status is ServiceStatus.STOPPED
        assert detail.check_action("start_service", ()) is True


async def test_an_unreachable_host_marks_the_status_unconfirmed(app: Any):
    from havsh_tui.ops.hosts import HostHealth
    from havsh_tui.widgets.status_badge import StatusBadge

    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        badge = detail.query_one("#detail-status", StatusBadge)
        down = HostHealth(host="alpha", reachable=False,
                          error="deploy@192.0.2.10: no answer within 8 s")
        app.poller.deliver(HostPolled("alpha", down, None))
        await pilot.pause()
        assert str(badge.content) == "? Running" and badge.has_class("-unconfirmed")
        assert "no answer within 8 s" in str(badge.tooltip)
        assert detail.service.status is ServiceStatus.RUNNING  # the last known one stays
        # Another host's failure changes nothing; the next good poll confirms again.
        app.poller.deliver(HostPolled("bravo", down, None))
        app.poller.deliver(HostPolled("alpha", demo_health()["alpha"],
                                      {"erp-prod": ServiceStatus.RUNNING}))
        await pilot.pause()
        assert str(badge.content) == "Running" and not badge.has_class("-unconfirmed")
        assert badge.tooltip is None


class ExtraTab(DetailTab):
    TAB_TITLE = "Backups"
    TAB_ID = "tab-backups"
    seen: ClassVar[list[str]] = []

    def compose(self) -> ComposeResult:
        yield Static(f"backups of {self.service.name}", id="backups-text")

    def show_facts(self, facts: Any, error: str | None) -> None:
        self.seen.append(self.service.name)


async def test_a_tab_is_one_class_away(app: Any, monkeypatch: pytest.MonkeyPatch):
    # The screen's own tabs only: the feature tabs (widgets/*_tab.py) register themselves too.
    monkeypatch.setattr(service_detail, "DETAIL_TABS",
                        [t for t in DETAIL_TABS if t.__module__ == service_detail.__name__])
    register_tab(ExtraTab, after="tab-overview")
    register_tab(ExtraTab)  # twice: still once
    assert [t.TAB_ID for t in service_detail.DETAIL_TABS] == [
        "tab-overview", "tab-backups", "tab-steps", "tab-config"]
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot)
        assert "backups of erp-prod" in text_of(detail, "#backups-text")
        assert ExtraTab.seen == ["erp-prod"]


async def _at(pilot: Any, kind: type) -> Any:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, kind), what=kind.__name__)
    await pilot.pause()
    return pilot.app.screen


# -- snapshots --------------------------------------------------------------------------------


def _detail(name: str, tab: str | None = None, *, update: bool = False):
    async def run_before(pilot: Any) -> None:
        detail = await open_detail(pilot, name)
        # A fixed history, so the sparklines have a shape.
        detail.cpu.extend([2, 4, 3, 9, 14, 7, 5, 22, 18, 6, 4, 3, 8, 12, 5])
        detail.mem.extend(x * 10e6 for x in [20, 21, 21, 22, 24, 25, 25, 26, 24, 23])
        detail.query_one(service_detail.OverviewTab).show_sample(
            list(detail.cpu), list(detail.mem), detail.last_sample, None)
        if tab:
            detail.query_one(TabbedContent).active = tab
        if update:
            await pilot.press("u")
            await _at(pilot, UpdateImageDialog)
        await steady(pilot)

    return run_before


def test_snapshot_detail_overview(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_detail("erp-prod"))


def test_snapshot_detail_steps_of_a_failed_service(snap_compare, app: Any):
    seed_failed_steps(app.inventory)
    assert snap_compare(app, terminal_size=SIZE, run_before=_detail("erp-test", "tab-steps"))


def test_snapshot_detail_config(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_detail("shop-copy", "tab-config"))


def test_snapshot_detail_update_image(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_detail("erp-prod", update=True))


# -- the pure parts of ops/config, ops/detail and ops/update ---------------------------------------


def test_parse_config_text():
    from havsh_tui.ops.config import config_lines, parse_config_text
    from havsh_tui.ops.odoo import ConfigError

    text = "# tuning\n\nworkers = 2\n; old style comment\nlimit_time_real=600\n"
    assert parse_config_text(text) == {"workers": "2", "limit_time_real": "600"}
    assert parse_config_text(config_lines({"b": "2", "a": "1"})) == {"a": "1", "b": "2"}
    assert config_lines({"b": "2", "a": "1"}) == "a = 1\nb = 2\n"
    for bad, why in (("workers 2", "line 1: config 'workers 2' is not key=value"),
                     ("ok = 1\ndata_dir = /tmp", "line 2: config key 'data_dir' is managed"),
                     ("[options]", "sections are not needed")):
        with pytest.raises(ConfigError, match=why.replace("[", r"\[")):
            parse_config_text(bad)


def test_docker_stats_arithmetic():
    from havsh_tui.ops.detail import cpu_percent, memory_bytes

    stats = {
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000}, "system_cpu_usage": 20_000_000,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000},
                         "system_cpu_usage": 10_000_000},
        "memory_stats": {"usage": 300_000_000, "stats": {"inactive_file": 100_000_000}},
    }
    assert cpu_percent(stats) == pytest.approx(40.0)  # 2 of 10 ticks, on 2 CPUs
    assert memory_bytes(stats) == 200_000_000
    # cgroup v1 names the cache total_inactive_file; the first reading has no precpu.
    assert memory_bytes({"memory_stats": {"usage": 10, "stats": {"total_inactive_file": 4}}}) == 6
    assert cpu_percent({"cpu_stats": {}, "precpu_stats": {}}) == 0.0


@pytest.mark.parametrize("ref", ["odoo:17.0", "registry.example.com:5000/acme/odoo:17.0-b2",
                                 "havsh-test/odoo:17.0", "odoo", "odoo@sha256:" + "a" * 64])
def test_image_refs_accepted(ref: str):
    from havsh_tui.ops.update import validate_image_ref

    assert validate_image_ref(f" {ref} ") == ref


@pytest.mark.parametrize("ref", ["", "Odoo:17", "odoo:17 0", "odoo;rm -rf /", "-odoo:17.0"])
def test_image_refs_refused(ref: str):
    from havsh_tui.ops.hosts import OpsError
    from havsh_tui.ops.update import validate_image_ref

    with pytest.raises(OpsError):
        validate_image_ref(ref)
