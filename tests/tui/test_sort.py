"""Sorting the dashboard by column (issue 4): within each group, by any column, either way,
with the keys o / O or a click on a header; the cursor stays on its service."""

from __future__ import annotations

from typing import Any

import pytest

from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.screens.dashboard import DashboardScreen
from havsh_tui.widgets.service_table import row_key_for

SIZE = (120, 40)


def group(app: Any, service_type: ServiceType) -> list[Any]:
    table = app.screen.table
    return [s for s in table.visible_services() if s.type is service_type]


def labels(app: Any) -> list[str]:
    return [str(c.label) for c in app.screen.table.ordered_columns]


async def test_o_cycles_the_column_and_O_reverses(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        live = group(app, ServiceType.LIVE)
        assert [s.name for s in live] == sorted(s.name for s in live)
        assert labels(app)[0] == "Name"  # the default order has no arrow
        await pilot.press("o")  # host
        await pilot.pause()
        assert app.screen.table.sort_column == "host"
        hosts = [(s.host, s.name) for s in group(app, ServiceType.LIVE)]
        assert hosts == sorted(hosts) and labels(app)[1] == "Host ▲"
        await pilot.press("O")
        await pilot.pause()
        assert [(s.host, s.name) for s in group(app, ServiceType.LIVE)] == sorted(hosts)[::-1]
        assert labels(app)[1] == "Host ▼"
        # Every column sorts; seven presses come back to the name.
        for _ in range(6):
            await pilot.press("o")
            await pilot.pause()
        assert app.screen.table.sort_column == "name" and labels(app)[0] == "Name"


async def test_age_sorts_youngest_first_and_status_keeps_sorted_as_it_changes(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.table
        table.sort_by("age")
        await pilot.pause()
        for t in ServiceType:
            ages = [s.created_at for s in group(app, t)]
            assert ages == sorted(ages, reverse=True)
        table.sort_by("status")
        await pilot.pause()
        live = group(app, ServiceType.LIVE)
        stopped = next(s for s in live if s.status is ServiceStatus.STOPPED)
        running = [s for s in live if s.status is ServiceStatus.RUNNING]
        assert [s.status.value for s in live] == sorted(s.status.value for s in live)
        # A poll changes statuses: the rows move to keep the order.
        table.update_statuses({stopped.key: ServiceStatus.RUNNING,
                               running[0].key: ServiceStatus.STOPPED})
        await pilot.pause()
        live = group(app, ServiceType.LIVE)
        assert [s.status.value for s in live] == sorted(s.status.value for s in live)
        assert live[-1].name == running[0].name


async def test_the_cursor_stays_on_its_service_and_a_header_click_sorts(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.table
        target = group(app, ServiceType.TEST)[-1]
        table.move_cursor(row=table.get_row_index(row_key_for(target)))
        await pilot.pause()
        table.sort_by("name", reverse=True)
        await pilot.pause()
        assert table.cursor_row == table.get_row_index(row_key_for(target))
        # A click on the Odoo header: by version; again: the other way.
        await pilot.click(table, offset=(_x_of(table, "odoo"), 0))
        await pilot.pause()
        assert table.sort_column == "odoo" and not table.sort_reverse
        await pilot.click(table, offset=(_x_of(table, "odoo"), 0))
        await pilot.pause()
        assert table.sort_column == "odoo" and table.sort_reverse
        with pytest.raises(ValueError):
            table.sort_by("nope")


def _x_of(table: Any, key: str) -> int:
    x = 0
    for column in table.ordered_columns:
        if column.key.value == key:
            return x + 1
        x += column.get_render_width(table)
    raise AssertionError(key)
