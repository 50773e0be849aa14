"""The services TUI on the real testbed: create a Test service on host A through the
wizard, see it Running (from the creation and from a live poll of the host), then delete
it from the dashboard. The app is the real one, with the real pool and poller."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from havsh_tui.app import make_app
from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.core.settings import Settings

pytestmark = pytest.mark.usefixtures("clean_hosts")

SLUG = "tuisvc-a"
SIZE = (120, 40)


@pytest.fixture(autouse=True)
def _names(cleanup):
    cleanup.add(SLUG)


async def wait_for(pilot: Any, predicate: Callable[[], object], timeout: float,
                   what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.1)


async def on(pilot: Any, kind: type, timeout: float = 10.0) -> Any:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, kind), timeout, kind.__name__)
    await pilot.pause()
    return pilot.app.screen


@pytest.mark.slow
async def test_create_in_the_wizard_then_delete_from_the_dashboard(
        havsh_paths, inventory, pool, host_a, sql):
    from havsh_tui.dialogs.confirm import ConfirmDialog
    from havsh_tui.dialogs.create_wizard import (
        ConfigStep,
        CreateScreen,
        DatabaseStep,
        HostStep,
        ImageStep,
        NameStep,
        ReviewStep,
        TypeStep,
    )
    from havsh_tui.screens.dashboard import DashboardScreen
    from havsh_tui.widgets.service_table import row_key_for

    app = make_app(havsh_paths, Settings(poll_interval=1.0), inventory=inventory, pool=pool)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await on(pilot, TypeStep)
        await pilot.press("enter")  # Test
        await on(pilot, NameStep)
        await pilot.press(*SLUG, "enter")
        host_step = await on(pilot, HostStep)
        assert [h.name for h in host_step.draft.hosts] == ["hosta", "hostb"]
        await pilot.press("enter")  # hosta, the first
        image = await on(pilot, ImageStep)
        # The host's image repository with the version's tag.
        assert image.query_one("#image-input").value == "havsh-test/odoo:17.0"
        await pilot.press("ctrl+n")
        await on(pilot, DatabaseStep)
        await pilot.press("ctrl+n")
        config = await on(pilot, ConfigStep)
        config.query_one("#config-input").text = "workers = 0\n"
        await pilot.press("ctrl+n")
        await on(pilot, ReviewStep)
        await pilot.press("ctrl+n")

        creating = await on(pilot, CreateScreen)
        await wait_for(pilot, lambda: creating.outcome is not None, 600, "the creation")
        outcome = creating.outcome
        assert outcome.ok, creating.query_one("#operation-result").content
        done = [name for name, state in outcome.steps if state == "done"]
        for step in ("database", "volume", "init", "container", "start", "health"):
            assert step in done, step
        result = outcome.result
        assert result.generated_password
        assert result.admin_password in str(creating.query_one("#operation-result").content)
        await pilot.press("enter")
        dashboard = await on(pilot, DashboardScreen)

        created = next(s for s in dashboard.table.services if s.name == SLUG)
        assert (created.host, created.type, created.status) == (
            "hosta", ServiceType.TEST, ServiceStatus.RUNNING)
        assert inventory.get_service(SLUG, host="hosta").config == {"workers": "0"}
        # A live poll of host A reports it running too.
        polled = app.poller
        await wait_for(pilot, lambda: getattr(polled.latest.get("hosta"), "reachable", False),
                       60, "a poll of host A")
        attrs = pool.session(host_a).docker().api.inspect_container(f"havsh-{SLUG}")
        assert attrs["State"]["Running"]
        assert attrs["Config"]["Labels"]["sh.hav.type"] == "test"

        # Delete it from the dashboard: a Test service needs a plain yes.
        row = dashboard.table.get_row_index(row_key_for(created))
        dashboard.table.move_cursor(row=row)
        await pilot.pause()
        await pilot.press("D")
        await on(pilot, ConfirmDialog)
        await pilot.press("y")
        await on(pilot, DashboardScreen)
        await wait_for(pilot, lambda: SLUG not in {s.name for s in dashboard.table.services},
                       180, "the delete")

    client = pool.session(host_a).docker()
    assert client.api.containers(all=True, filters={"label": f"sh.hav.service={SLUG}"}) == []
    assert sql(host_a, "SELECT 1 FROM pg_database WHERE datname = 'tuisvc_a';") == []
    assert sql(host_a, "SELECT 1 FROM pg_roles WHERE rolname = 'havsh_tuisvc_a';") == []
    ops = inventory.list_operations(service=SLUG, host="hosta")
    assert ops[0]["kind"] == "service.delete" and ops[0]["state"] == "done"
