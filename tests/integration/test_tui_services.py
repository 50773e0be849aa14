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


# -- a host that stops answering (task: TUI robustness) -------------------------------------------

GHOST = "u4-ghost"


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_host_shows_its_services_unconfirmed_then_recovers(
        havsh_paths, inventory, pool, host_a, cleanup):
    """A fake host entry (u4-dead: host A's address with a closed port, nothing shared is
    stopped) with a Running service row: the real poller finds it unreachable and the
    dashboard shows "? Running" with the host and the reason, the inventory keeps Running.
    Pointed at host A's sshd, the next good poll brings the real status (Missing: host A
    has no such container)."""
    from dataclasses import replace

    from havsh_tui.core.model import Service
    from havsh_tui.screens.dashboard import DashboardScreen
    from havsh_tui.widgets.service_table import row_key_for

    cleanup.add(GHOST)
    dead = replace(host_a, name="u4-dead", port=_closed_port())
    inventory.add_host(dead)
    inventory.add_service(Service(name=GHOST, host="u4-dead", type=ServiceType.TEST,
                                  odoo_version="17.0", image="havsh-test/odoo:17.0",
                                  status=ServiceStatus.RUNNING, database="u4_ghost"))
    app = make_app(havsh_paths, Settings(poll_interval=1.0, ssh_connect_timeout=3.0),
                   inventory=inventory, pool=pool)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dashboard = await on(pilot, DashboardScreen)
        table = dashboard.table
        ghost = next(s for s in table.services if s.name == GHOST)
        key = row_key_for(ghost)
        await wait_for(pilot, lambda: table.unreachable_reason("u4-dead") is not None, 60,
                       "the poll of the dead host")
        assert table.get_cell(key, "status").plain.strip() == "? Running"
        # The poll's own words: "root@127.0.0.1:PORT: connection refused (is sshd running?)".
        assert f":{dead.port}" in table.unreachable_reason("u4-dead")
        table.move_cursor(row=table.get_row_index(key))
        await pilot.pause()
        line = dashboard.query_one("#unreachable-line")
        text = str(line.render())
        assert line.display and "u4-dead is not answering" in text
        assert table.unreachable_reason("u4-dead") in text
        assert "not answering: u4-dead" in dashboard.sub_title
        # Display only: the inventory keeps the last known status.
        assert inventory.get_service(GHOST, host="u4-dead").status is ServiceStatus.RUNNING
        # Host A answers for real on its own sshd: unconfirmed no more.
        assert table.unreachable_reason("hosta") is None

        # The host "comes back": the same entry pointed at host A's sshd.
        inventory.update_host(replace(dead, port=host_a.port))
        app.poller.sync()
        await wait_for(pilot, lambda: table.unreachable_reason("u4-dead") is None, 60,
                       "a good poll of the host")
        await pilot.pause()
        assert table.get_cell(key, "status").plain.strip() == "Missing"
        assert not dashboard.query_one("#unreachable-line").display
        assert "not answering" not in dashboard.sub_title
