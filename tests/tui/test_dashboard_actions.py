"""Dashboard actions (fake ops): keys, greying out, confirmations, failures through the
app's handler, operations history, live status from HostPolled, the palette, snapshots."""

from __future__ import annotations

from typing import Any

from textual.widgets import Button, Input

from havsh_tui.commands import HavshCommands
from havsh_tui.core.model import ServiceStatus
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.ops.hosts import OpsError
from havsh_tui.screens.dashboard import (
    DashboardScreen,
    action_allowed,
    busy_services,
    polled_changes,
    rescan_summary,
)
from havsh_tui.screens.service_detail import ServiceDetailScreen
from havsh_tui.widgets.service_table import row_key_for
from havsh_tui.workers import HostPolled

from .conftest import demo_services
from .fakes import (
    Calls,
    demo_health,
    steady,
    wait_for,
)

SIZE = (120, 40)
ACTIONS = ("start_service", "stop_service", "restart_service", "copy_service",
           "neutralize_service", "delete_service", "service_logs", "open_service")


def dashboard(app: Any) -> DashboardScreen:
    assert isinstance(app.screen, DashboardScreen)
    return app.screen


async def select(pilot: Any, name: str) -> None:
    table = dashboard(pilot.app).table
    service = next(s for s in table.visible_services() if s.name == name)
    table.move_cursor(row=table.get_row_index(row_key_for(service)))
    await pilot.pause()


def notifications(app: Any) -> list[Any]:
    return list(app._notifications)


async def op_done(pilot: Any, name: str) -> None:
    await wait_for(pilot, lambda: not any(k[1] == name for k in busy_services(pilot.app)),
                   what=f"the operation on {name}")
    await pilot.pause()


def status_of(app: Any, name: str) -> ServiceStatus:
    return next(s.status for s in dashboard(app).table.services if s.name == name)


# -- what applies when ---------------------------------------------------------------------------


def test_action_rules():
    by = {s.name: s for s in demo_services()}
    running, stopped, failed, creating = by["erp-prod"], by["hr-prod"], by["erp-test"], by[
        "erp-copy"]
    assert not action_allowed("start_service", running)
    assert action_allowed("stop_service", running) and action_allowed("restart_service", running)
    assert action_allowed("start_service", stopped) and not action_allowed("stop_service", stopped)
    assert action_allowed("delete_service", failed) and not action_allowed("copy_service", failed)
    for action in ACTIONS:
        expected = action in ("open_service", "service_logs")
        assert action_allowed(action, creating) is expected, action
        assert action_allowed(action, running, busy=True) is expected, action
        assert action_allowed(action, None) is False


async def test_keys_are_greyed_out_when_they_do_not_apply(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = dashboard(app)
        # The cursor starts on the Live heading: no service, every service key greyed.
        assert {a: screen.check_action(a, ()) for a in ACTIONS} == dict.fromkeys(ACTIONS)
        await select(pilot, "erp-prod")
        assert screen.check_action("start_service", ()) is None
        assert screen.check_action("stop_service", ()) is True
        assert screen.check_action("restart_service", ()) is True
        await select(pilot, "hr-prod")
        assert screen.check_action("start_service", ()) is True
        assert screen.check_action("stop_service", ()) is None
        # The footer follows (it is recomposed after the next refresh): s on, x greyed out.

        def footer() -> dict[str, Any]:
            return {key.key: key for key in app.screen.query("FooterKey")}

        await wait_for(pilot, lambda: "x" in footer() and footer()["x"].has_class("-disabled"),
                       what="the footer")
        assert not footer()["s"].has_class("-disabled")


async def test_footer_lists_the_service_keys(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-prod")
        await pilot.pause()
        shown = {key.key: key.description for key in app.screen.query("FooterKey")}
        for key, label in {"n": "New", "s": "Start", "x": "Stop", "r": "Restart", "c": "Copy",
                           "N": "Neutralize", "D": "Delete", "L": "Logs", "R": "Rescan"}.items():
            assert shown.get(key) == label, key


# -- lifecycle --------------------------------------------------------------------------------


async def test_restart_runs_in_a_worker_and_is_recorded(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-prod")
        await pilot.press("r")
        await op_done(pilot, "erp-prod")
        assert calls.of("restart") == [("alpha", "erp-prod")]
        assert any(n.message == "erp-prod is Running." for n in notifications(app))
        ops = app.inventory.list_operations(service="erp-prod", host="alpha")
        assert ops[0]["kind"] == "service.restart" and ops[0]["state"] == "done"


async def test_start_and_both_stop_keys(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "hr-prod")
        await pilot.press("s")
        await op_done(pilot, "hr-prod")
        assert status_of(app, "hr-prod") is ServiceStatus.RUNNING
        await select(pilot, "hr-prod")
        await pilot.press("x")
        await op_done(pilot, "hr-prod")
        assert status_of(app, "hr-prod") is ServiceStatus.STOPPED
        await select(pilot, "training")
        await pilot.press("S")
        await op_done(pilot, "training")
        assert calls.names() == ["start", "stop", "stop"]


async def test_a_key_that_does_not_apply_does_nothing(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-prod")  # running: start does not apply
        await pilot.press("s")
        await pilot.pause()
        assert calls.of("start") == []


async def test_a_failure_reaches_the_apps_handler(app: Any, calls: Calls):
    calls.fail["restart"] = OpsError("erp-prod: its container is missing on alpha")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-prod")
        await pilot.press("r")
        await op_done(pilot, "erp-prod")
        await wait_for(pilot, lambda: any(
            "container is missing" in n.message for n in notifications(app)), what="the error")
        failure = next(n for n in notifications(app) if "container is missing" in n.message)
        assert failure.severity == "error" and "Restart erp-prod" in failure.title
        ops = app.inventory.list_operations(service="erp-prod", host="alpha")
        assert ops[0]["state"] == "failed" and "container is missing" in ops[0]["detail"]
        # Not stuck busy: the key works again.
        assert dashboard(app).check_action("restart_service", ()) is True


async def test_a_failed_step_opens_a_dialog_with_its_log(app: Any, calls: Calls):
    from havsh_tui.ops.services import StepFailed
    from havsh_tui.widgets.operation_log import FailureDialog

    calls.fail["neutralize"] = StepFailed(
        "neutralize", "odoo neutralize exited 1",
        "2025-06-01 12:00:00,000 1 ERROR training odoo.modules: boom\n"
        "The database is NOT neutralized")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "training")
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, FailureDialog), what="the dialog")
        await pilot.pause()
        dialog = app.screen
        assert "Neutralize training failed" in str(dialog.query_one(".dialog-title").content)
        message = str(dialog.query_one("#failure-message").content)
        assert message == "Failed at step 'neutralize': odoo neutralize exited 1"
        assert "NOT neutralized" in str(dialog.query_one("#failure-log-text").content)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))


async def test_delete_a_test_service_asks_first(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "training")
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        dialog = app.screen
        assert dialog.type_to_confirm is None
        await pilot.press("n")  # no
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert calls.of("delete") == []
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await op_done(pilot, "training")
        assert calls.of("delete") == [(("bravo", "training"), "training")]
        assert "training" not in {s.name for s in dashboard(app).table.services}


async def test_delete_a_live_service_needs_its_name_typed(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-prod")
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        dialog = app.screen
        assert dialog.type_to_confirm == "erp-prod"
        ok = dialog.query_one("#confirm-ok", Button)
        assert ok.disabled
        await pilot.press(*"erp-pro", "enter")  # wrong: nothing happens
        await pilot.pause()
        assert app.screen is dialog and ok.disabled and calls.of("delete") == []
        await pilot.press("d", "enter")
        await op_done(pilot, "erp-prod")
        assert calls.of("delete") == [(("alpha", "erp-prod"), "erp-prod")]


async def test_neutralize_live_needs_the_name_and_test_only_a_yes(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-prod")
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert app.screen.type_to_confirm == "erp-prod"
        app.screen.query_one("#confirm-input", Input).value = "erp-prod"
        await pilot.press("enter")
        await op_done(pilot, "erp-prod")
        await select(pilot, "training")
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert app.screen.type_to_confirm is None
        await pilot.press("y")
        await op_done(pilot, "training")
        assert [key for key, _ in calls.of("neutralize")] == [("alpha", "erp-prod"),
                                                              ("bravo", "training")]
        assert any("neutralized (verified" in n.message for n in notifications(app))


async def test_rescan_runs_and_reports(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("R")
        await wait_for(pilot, lambda: any(n.title == "Rescan" and "alpha" in n.message
                                          for n in notifications(app)), what="the rescan")
        assert calls.names() == ["rescan"]
        assert dashboard(app).check_action("rescan", ()) is True


def test_rescan_summary():
    from havsh_tui.ops.rescan import RescanResult

    text = rescan_summary([
        RescanResult("alpha", adopted=["a", "b"], missing=["c"]),
        RescanResult("bravo", reachable=False, error="timed out"),
        RescanResult("charlie"),
    ])
    assert text == "alpha: 2 adopted, 1 missing\nbravo: unreachable (timed out)\ncharlie: no change"


async def test_logs_key_opens_the_logs_of_the_service(app: Any):
    opened: list[Any] = []
    app.action_open_logs = opened.append  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "showroom")
        await pilot.press("L")
        await pilot.pause()
        assert [s.name for s in opened] == ["showroom"]


async def test_enter_opens_the_detail_screen(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "shop-copy")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceDetailScreen))
        assert app.screen.service.name == "shop-copy"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))


# -- live status ------------------------------------------------------------------------------


def test_polled_changes_rules():
    services = demo_services()
    reported = {"erp-prod": ServiceStatus.STOPPED, "erp-test": ServiceStatus.STOPPED,
                "showroom": ServiceStatus.RUNNING}
    changes = polled_changes(services, "alpha", reported)
    assert changes[("alpha", "erp-prod")] is ServiceStatus.STOPPED
    # A Failed service whose container is stopped stays Failed (rescan says the same).
    assert ("alpha", "erp-test") not in changes
    # Unchanged: no entry. Not reported: Missing. Busy (Creating, Updating): left alone.
    assert ("alpha", "showroom") not in changes
    assert changes[("alpha", "shop-copy")] is ServiceStatus.MISSING
    assert changes[("alpha", "erp-prod-pr42")] is ServiceStatus.MISSING
    assert ("alpha", "erp-copy") not in changes and ("alpha", "erp-prod-pr57") not in changes
    # Other hosts are untouched; an unreachable host changes nothing.
    assert all(host == "alpha" for host, _ in changes)
    assert polled_changes(services, "alpha", None) == {}
    # A service with an operation of ours in progress is left alone.
    assert ("alpha", "erp-prod") not in polled_changes(services, "alpha", reported,
                                                       {("alpha", "erp-prod")})


async def test_host_polled_updates_statuses_and_marks_missing(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        health = demo_health()["alpha"]
        app.poller.deliver(HostPolled("alpha", health, {
            "erp-prod": ServiceStatus.STOPPED, "erp-test": ServiceStatus.STOPPED,
            "showroom": ServiceStatus.RUNNING, "shop-copy": ServiceStatus.RUNNING,
            "erp-prod-pr42": ServiceStatus.RUNNING, "stranger": ServiceStatus.RUNNING,
        }))
        await pilot.pause()
        table = dashboard(app).table
        assert status_of(app, "erp-prod") is ServiceStatus.STOPPED
        assert table.get_cell(row_key_for(next(
            s for s in table.services if s.name == "erp-prod")), "status").plain.strip() == (
            "Stopped")
        assert status_of(app, "erp-test") is ServiceStatus.FAILED
        # A labelled service the inventory does not know: the user is told to rescan.
        assert any("stranger" in n.message and "R to rescan" in n.message
                   for n in notifications(app))
        # A poll that did not reach the host changes nothing.
        app.poller.deliver(HostPolled("bravo", demo_health()["bravo"], None))
        await pilot.pause()
        assert status_of(app, "shop-prod") is ServiceStatus.RUNNING
        # bravo answers without hr-prod: Missing.
        app.poller.deliver(HostPolled("bravo", demo_health()["bravo"], {
            "shop-prod": ServiceStatus.RUNNING, "training": ServiceStatus.RUNNING}))
        await pilot.pause()
        assert status_of(app, "hr-prod") is ServiceStatus.MISSING
        # Missing: only delete (and open, logs) still apply.
        await select(pilot, "hr-prod")
        assert dashboard(app).check_action("start_service", ()) is None
        assert dashboard(app).check_action("delete_service", ()) is True


async def test_a_reload_keeps_the_polled_status_unless_an_operation_changed_it(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.poller.deliver(HostPolled("alpha", demo_health()["alpha"], {
            "erp-prod": ServiceStatus.STOPPED, "showroom": ServiceStatus.STOPPED,
            "erp-test": ServiceStatus.STOPPED, "shop-copy": ServiceStatus.RUNNING,
            "erp-prod-pr42": ServiceStatus.RUNNING}))
        await pilot.pause()
        # The inventory still says Running for both; showroom is then started by us.
        await select(pilot, "showroom")
        await pilot.press("s")
        await op_done(pilot, "showroom")  # the op reloads the list
        assert status_of(app, "erp-prod") is ServiceStatus.STOPPED  # the poll, kept
        assert status_of(app, "showroom") is ServiceStatus.RUNNING  # the operation's own


# -- palette ----------------------------------------------------------------------------------


async def test_palette_titles_follow_the_selection(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-prod")
        titles = [c.title for c in HavshCommands(app.screen).commands()]
        for title in ("service: Open erp-prod", "service: Stop erp-prod",
                      "service: Restart erp-prod", "service: Copy erp-prod…",
                      "service: Neutralize erp-prod…", "service: Delete erp-prod…",
                      "service: Logs of erp-prod", "services: New service…",
                      "services: Rescan hosts"):
            assert title in titles, title
        assert "service: Start erp-prod" not in titles  # it runs already
        await select(pilot, "hr-prod")
        titles = [c.title for c in HavshCommands(app.screen).commands()]
        assert "service: Start hr-prod" in titles and "service: Stop hr-prod" not in titles


async def test_palette_runs_a_restart(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "showroom")
        command = next(c for c in HavshCommands(app.screen).commands()
                       if c.title == "service: Restart showroom")
        command.run()
        await op_done(pilot, "showroom")
        assert calls.of("restart") == [("alpha", "showroom")]


# -- snapshots --------------------------------------------------------------------------------


def test_snapshot_a_live_service_selected(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        await select(pilot, "erp-prod")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_after_a_poll_with_missing(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        pilot.app.poller.deliver(HostPolled("bravo", demo_health()["bravo"], {
            "shop-prod": ServiceStatus.RUNNING, "training": ServiceStatus.STOPPED}))
        await select(pilot, "hr-prod")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_delete_live_confirmation(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        await select(pilot, "erp-prod")
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
        await pilot.press(*"erp")
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_failure_dialog(snap_compare, app: Any, calls: Calls):
    from havsh_tui.ops.services import StepFailed
    from havsh_tui.widgets.operation_log import FailureDialog

    calls.fail["neutralize"] = StepFailed(
        "verify neutralization", "the flags are not right: live_mail_servers=1",
        "2025-06-01 12:00:00,000 1 INFO training odoo.modules.loading: loading 12 modules\n"
        "2025-06-01 12:00:02,000 1 WARNING training odoo.addons.base: mail server kept\n"
        "The database is NOT neutralized")

    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        await select(pilot, "training")
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FailureDialog))
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
