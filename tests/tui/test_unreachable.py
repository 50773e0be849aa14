"""The dashboard when a host stops answering: its services' last known statuses are shown
unconfirmed ("? Running", dimmed) with the host and the reason under the table, the
inventory keeps them as they were, and the next good poll restores the real badges."""

from __future__ import annotations

from typing import Any

from havsh_tui.core.model import ServiceStatus
from havsh_tui.core.paths import AppPaths
from havsh_tui.ops.hosts import HostHealth
from havsh_tui.screens.dashboard import DashboardScreen
from havsh_tui.widgets.service_table import row_key_for
from havsh_tui.widgets.status_badge import BADGE_WIDTH, badge_label, unconfirmed_label
from havsh_tui.workers import HostPolled

from .fakes import Calls, build_services_app, demo_health, wait_for

SIZE = (120, 40)
REASON = "cannot connect to 192.0.2.20:22: timed out"
BRAVO_OK = {"shop-prod": ServiceStatus.RUNNING, "training": ServiceStatus.RUNNING,
            "hr-prod": ServiceStatus.STOPPED}


def down(host: str = "bravo", error: str = REASON) -> HostPolled:
    return HostPolled(host, HostHealth(host=host, reachable=False, error=error,
                                       error_kind="host_unreachable"), None)


def dashboard(app: Any) -> DashboardScreen:
    assert isinstance(app.screen, DashboardScreen)
    return app.screen


def badge(app: Any, name: str) -> str:
    table = dashboard(app).table
    service = next(s for s in table.services if s.name == name)
    return table.get_cell(row_key_for(service), "status").plain


async def select(pilot: Any, name: str) -> None:
    table = dashboard(pilot.app).table
    service = next(s for s in table.visible_services() if s.name == name)
    table.move_cursor(row=table.get_row_index(row_key_for(service)))
    await pilot.pause()


def line(app: Any) -> Any:
    found = dashboard(app).query("#unreachable-line")
    return found.first() if found else None


def test_unconfirmed_label_is_as_wide_as_a_badge():
    for status in ServiceStatus:
        assert len(unconfirmed_label(status)) == len(badge_label(status)) == BADGE_WIDTH + 2
        assert unconfirmed_label(status).startswith("? ")


async def test_unreachable_host_shows_its_services_unconfirmed(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        # No line until a host stops answering (nothing extra in the first paint).
        assert line(app) is None
        app.poller.deliver(down())
        await pilot.pause()
        assert badge(app, "shop-prod").strip() == "? Running"
        assert badge(app, "hr-prod").strip() == "? Stopped"
        # The other host's services are untouched.
        assert badge(app, "erp-prod").strip() == "Running"
        # The services (and the inventory) keep the last known status: display only.
        table = dashboard(app).table
        assert next(s for s in table.services if s.name == "shop-prod").status is (
            ServiceStatus.RUNNING)
        assert app.inventory.get_service("shop-prod", host="bravo").status is (
            ServiceStatus.RUNNING)
        assert "not answering: bravo" in dashboard(app).sub_title
        # The row says which host and why, once the cursor is on it.
        await select(pilot, "shop-prod")
        shown = line(app)
        assert shown is not None and shown.display
        text = str(shown.render())
        assert "bravo is not answering since 12:00 UTC" in text
        assert REASON in text and "shop-prod was last known Running" in text
        # On a service of a host that answers, the line goes away.
        await select(pilot, "erp-prod")
        assert not line(app).display

        # The next good poll restores the real status, the line and the sub-title.
        app.poller.deliver(HostPolled("bravo", demo_health()["bravo"], dict(BRAVO_OK)))
        await pilot.pause()
        assert badge(app, "shop-prod").strip() == "Running"
        assert badge(app, "hr-prod").strip() == "Stopped"
        assert "not answering" not in dashboard(app).sub_title
        await select(pilot, "shop-prod")
        assert not line(app).display


async def test_statuses_call_failing_on_a_reachable_host_is_unconfirmed_too(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        health = demo_health()["alpha"]
        health.error = "service statuses: docker list timed out"
        app.poller.deliver(HostPolled("alpha", health, None))
        await pilot.pause()
        assert badge(app, "erp-prod").strip() == "? Running"
        await select(pilot, "erp-prod")
        text = str(line(app).render())
        assert "alpha did not list its services since 12:00 UTC" in text
        assert "docker list timed out" in text


async def test_the_reason_follows_the_latest_failed_poll_and_since_stays(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.poller.deliver(down())
        await pilot.pause()
        app.poller.deliver(down(error="authentication failed for deploy"))
        await pilot.pause()
        await select(pilot, "training")
        text = str(line(app).render())
        assert "authentication failed for deploy" in text and REASON not in text


async def test_filter_unreachable_finds_them(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.poller.deliver(down())
        await pilot.pause()
        await pilot.press("slash", *"unreachable")
        await pilot.pause()
        names = {s.name for s in dashboard(app).table.visible_services()}
        assert names == {"shop-prod", "hr-prod", "training"}
        # Back up: the rows of the filter follow.
        app.poller.deliver(HostPolled("bravo", demo_health()["bravo"], dict(BRAVO_OK)))
        await pilot.pause()
        assert dashboard(app).table.visible_services() == []


async def test_a_reload_keeps_the_unconfirmed_look(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.poller.deliver(down())
        await pilot.pause()
        dashboard(app).reload()
        await pilot.pause()
        assert badge(app, "shop-prod").strip() == "? Running"


async def test_a_host_already_down_before_the_dashboard_is_shown(
        populated_paths: AppPaths, calls: Calls):
    app = build_services_app(populated_paths, calls)
    app.poller.latest["bravo"] = down().health
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await wait_for(pilot, lambda: badge(app, "training").strip() == "? Running")


def test_snapshot_unreachable_host(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        pilot.app.poller.deliver(down())
        await pilot.pause()
        await select(pilot, "shop-prod")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
