"""Pilot tests (keys in, state out) and snapshots of the dashboard and help screens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.command import CommandList, CommandPalette
from textual.widgets import Input

from havsh_tui.app import make_app, run_tui, styles_dir
from havsh_tui.commands import HavshCommands
from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import Settings
from havsh_tui.screens.dashboard import DashboardScreen
from havsh_tui.screens.help import HelpScreen
from havsh_tui.widgets.service_table import (
    GROUP_ORDER,
    ServiceTable,
    heading_key_for,
    row_key_for,
)

from .conftest import (
    FROZEN_NOW,
    AppFactory,
    demo_hosts,
    demo_services,
    fill_inventory,
    frozen_clock,
)

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def _no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo hosts are TEST-NET addresses behind a blocked network: a real poll would
    find them unreachable and the dashboard would (rightly) show their services as
    unconfirmed. These tests are about the list itself; tests/tui/test_unreachable.py is
    about polls that do not answer."""
    from .fakes import no_polling

    no_polling(monkeypatch.setattr)


def headings(table: ServiceTable) -> list[str]:
    return [table.get_cell(heading_key_for(t), "name").plain for t in GROUP_ORDER]


def shown_names(table: ServiceTable) -> list[str]:
    return [service.name for service in table.visible_services()]


def dashboard(app: object) -> DashboardScreen:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, DashboardScreen)
    return screen


# -- structure ------------------------------------------------------------------------------


async def test_groups_in_order_with_counts(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        assert headings(table) == [
            "▾ Live (3)",
            "▾ Test (2)",
            "▾ Demo (1)",
            "▾ Copy (2)",
            "▾ Preview (2)",
        ]
        # Rows follow their heading: the Live heading, then the three Live services.
        assert table.get_row_index(heading_key_for(ServiceType.LIVE)) == 0
        assert table.row_count == 5 + 10
        assert dashboard(app).sub_title == "10 services on 2 hosts"


async def test_empty_group_is_collapsed(paths: AppPaths, build_app: AppFactory):
    services = [s for s in demo_services() if s.type in (ServiceType.LIVE, ServiceType.TEST)]
    fill_inventory(paths, demo_hosts(), services)
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        assert headings(table)[2:] == ["▸ Demo (0)", "▸ Copy (0)", "▸ Preview (0)"]
        for empty in (ServiceType.DEMO, ServiceType.COPY, ServiceType.PREVIEW):
            assert table.is_folded(empty)
        assert not table.is_folded(ServiceType.LIVE)


async def test_enter_on_heading_folds_and_unfolds(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        assert table.cursor_row == 0  # the Live heading
        await pilot.press("enter")
        await pilot.pause()
        assert table.is_folded(ServiceType.LIVE)
        assert "erp-prod" not in shown_names(table)
        assert headings(table)[0] == "▸ Live (3)"
        await pilot.press("space")
        await pilot.pause()
        assert not table.is_folded(ServiceType.LIVE)
        assert "erp-prod" in shown_names(table)


class TableHost(App[None]):
    """The widget alone, to check the messages it posts (its contract with screens)."""

    CSS_PATH = [styles_dir() / "havsh.tcss"]

    def __init__(self) -> None:
        super().__init__()
        self.selected: list[str] = []
        self.highlighted: list[str | None] = []

    def compose(self) -> ComposeResult:
        yield ServiceTable(demo_services(), clock=frozen_clock, id="service-table")

    def on_service_table_service_selected(self, event: ServiceTable.ServiceSelected) -> None:
        self.selected.append(event.service.name)

    def on_service_table_service_highlighted(self, event: ServiceTable.ServiceHighlighted) -> None:
        self.highlighted.append(event.service.name if event.service else None)


async def test_enter_on_a_service_posts_service_selected():
    app = TableHost()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down")  # from the Live heading to the first Live service
        await pilot.pause()
        assert app.highlighted[-1] == "erp-prod"
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == ["erp-prod"]
        await pilot.press("up", "enter")  # a heading: folds, selects nothing
        await pilot.pause()
        assert app.highlighted[-1] is None
        assert app.selected == ["erp-prod"]


async def test_dashboard_answers_service_selected(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = dashboard(app)
        await pilot.press("down")
        await pilot.pause()
        assert screen.selected_service is not None
        assert screen.selected_service.name == "erp-prod"
        await pilot.press("enter")
        await pilot.pause()
        from havsh_tui.screens.service_detail import ServiceDetailScreen

        assert isinstance(app.screen, ServiceDetailScreen)
        assert app.screen.service.name == "erp-prod"


async def test_theme_change_restyles_rows(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        prod = row_key_for(next(s for s in table.services if s.name == "erp-prod"))
        before = table.get_cell(prod, "name").style
        app.theme = "textual-light"
        await pilot.pause()
        after = table.get_cell(prod, "name").style
        assert after == table.get_component_rich_style("service-table--live", partial=True)
        assert after != before


async def test_live_rows_have_their_own_style(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        live = table.get_component_rich_style("service-table--live", partial=True)
        prod = next(s for s in table.services if s.name == "erp-prod")
        test = next(s for s in table.services if s.name == "training")
        assert table.get_cell(row_key_for(prod), "name").style == live
        assert table.get_cell(row_key_for(test), "name").style != live


async def test_preview_shows_active_and_failed_badge(
    populated_paths: AppPaths, build_app: AppFactory
):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        by_name = {s.name: s for s in table.services}
        status = lambda name: table.get_cell(row_key_for(by_name[name]), "status").plain.strip()  # noqa: E731
        assert status("erp-prod-pr42") == "Active"
        assert status("erp-prod") == "Running"
        assert status("erp-test") == "Failed"
        assert table.get_cell(row_key_for(by_name["erp-prod-pr42"]), "origin").plain == (
            "acme/erp-addons#42"
        )
        assert table.get_cell(row_key_for(by_name["erp-copy"]), "origin").plain == (
            "erp-prod@alpha"
        )
        # The frozen clock: erp-prod is 380 days old.
        assert table.get_cell(row_key_for(by_name["erp-prod"]), "age").plain == "12mo"


# -- live statuses --------------------------------------------------------------------------


async def test_update_statuses_changes_cells_without_rebuilding(
    populated_paths: AppPaths, build_app: AppFactory
):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        rebuilds: list[int] = []
        real_clear = table.clear
        table.clear = lambda *a, **k: (rebuilds.append(1), real_clear(*a, **k))[1]  # type: ignore[method-assign]
        table.update_statuses(
            {
                ("alpha", "erp-test"): ServiceStatus.RUNNING,
                ("alpha", "erp-prod-pr57"): ServiceStatus.RUNNING,
                ("nowhere", "ghost"): ServiceStatus.FAILED,  # unknown: ignored
            }
        )
        await pilot.pause()
        assert rebuilds == []
        by_name = {s.name: s for s in table.services}
        assert by_name["erp-test"].status is ServiceStatus.RUNNING
        assert table.get_cell(row_key_for(by_name["erp-test"]), "status").plain.strip() == (
            "Running"
        )
        assert table.get_cell(row_key_for(by_name["erp-prod-pr57"]), "status").plain.strip() == (
            "Active"
        )


async def test_refresh_ages_follows_the_clock_in_place(populated_paths: AppPaths):
    now = [FROZEN_NOW]
    app = make_app(populated_paths, Settings(), clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        by_name = {s.name: s for s in table.services}
        key = row_key_for(by_name["erp-test"])
        assert table.get_cell(key, "age").plain == "2d"
        cleared: list[int] = []
        real_clear = table.clear
        table.clear = lambda *a, **k: (cleared.append(1), real_clear(*a, **k))[1]  # type: ignore[method-assign]
        now[0] = FROZEN_NOW + timedelta(days=2)
        table.refresh_ages()
        await pilot.pause()
        assert table.get_cell(key, "age").plain == "4d"
        assert cleared == []


async def test_reload_picks_up_inventory_changes(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = dashboard(app)
        app.inventory.remove_service("alpha", "showroom")
        screen.reload()
        await pilot.pause()
        assert "showroom" not in shown_names(screen.table)
        assert headings(screen.table)[2] == "▸ Demo (0)"
        assert screen.sub_title == "9 services on 2 hosts"


# -- keys -----------------------------------------------------------------------------------


async def test_question_mark_opens_help_and_esc_closes(
    populated_paths: AppPaths, build_app: AppFactory
):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        ids = {entry.binding_id for entry in app.screen.entries}
        # Read from the live bindings: the dashboard's, the table's and the app's.
        assert {"filter", "help", "quit", "command-palette", "toggle-group"} <= ids
        keys = {entry.binding_id: entry.keys for entry in app.screen.entries}
        assert keys["filter"] == "/"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)


async def test_slash_filters_as_you_type_and_esc_clears(
    populated_paths: AppPaths, build_app: AppFactory
):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = dashboard(app)
        table = screen.table
        assert screen.filter_input.has_class("-hidden")
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.focused, Input)
        assert not screen.filter_input.has_class("-hidden")
        await pilot.press(*"shop")
        await pilot.pause()
        assert shown_names(table) == ["shop-prod", "shop-copy"]
        assert headings(table)[0] == "▾ Live (1 of 3)"
        # "q" is text while typing in the filter, not Quit.
        await pilot.press("space", "q")
        await pilot.pause()
        assert app.is_running
        assert shown_names(table) == []
        await pilot.press("escape")
        await pilot.pause()
        assert table.filter_text == ""
        assert screen.filter_input.has_class("-hidden")
        assert app.focused is table
        assert len(shown_names(table)) == 10


async def test_filter_matches_host_and_status(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        await pilot.press("slash", *"failed")
        await pilot.pause()
        assert shown_names(table) == ["erp-test"]
        await pilot.press("enter")  # keep the filter, back to the table
        await pilot.pause()
        assert app.focused is table
        assert table.filter_text == "failed"
        await pilot.press("slash", *["backspace"] * len("failed"), *"bravo")
        await pilot.pause()
        assert sorted(shown_names(table)) == ["hr-prod", "shop-prod", "training"]


async def test_status_change_under_a_filter_updates_the_rows(
    populated_paths: AppPaths, build_app: AppFactory
):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = dashboard(app).table
        table.filter_text = "failed"
        table.update_statuses({("alpha", "showroom"): ServiceStatus.FAILED})
        await pilot.pause()
        assert shown_names(table) == ["erp-test", "showroom"]


async def test_q_quits(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


async def test_keymap_from_settings_remaps_by_id(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths, keymap={"filter": "f", "quit": "x"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.focused, Input)
        await pilot.press("escape", "q")  # q is no longer Quit
        await pilot.pause()
        assert app.is_running
        await pilot.press("x")
        await pilot.pause()
        assert not app.is_running


async def test_corrupt_inventory_shows_a_loud_notification(paths: AppPaths, build_app: AppFactory):
    paths.inventory.write_text("{ this is not json", encoding="utf-8")
    app = build_app(paths)
    moved = app.inventory.recovered_from
    assert moved is not None and Path(moved).exists()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1
        assert str(moved) in errors[0].message
        assert errors[0].title == "Inventory recovered"


# -- command palette ------------------------------------------------------------------------


async def test_palette_commands_follow_screen_and_selection(
    populated_paths: AppPaths, build_app: AppFactory
):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        titles = [c.title for c in HavshCommands(app.screen).commands()]
        assert titles == [  # cursor on a heading: no service commands
            "services: New service…", "services: Filter", "services: Rescan hosts",
            "app: Help", "app: Quit",
        ]
        await pilot.press("down")
        await pilot.pause()
        titles = [c.title for c in HavshCommands(app.screen).commands()]
        assert "service: Open erp-prod" in titles


async def test_palette_runs_services_filter(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"services: filter")
        # The palette searches in a worker: wait for its first hit, never a blind sleep.
        hits = app.screen.query_one(CommandList)
        for _ in range(200):
            if hits.option_count:
                break
            await pilot.pause(0.01)
        assert "services: Filter" in str(hits.get_option_at_index(0).prompt)
        await pilot.press("down", "enter")
        await pilot.pause()
        screen = dashboard(app)
        assert not screen.filter_input.has_class("-hidden")
        assert app.focused is screen.filter_input


# -- snapshots ------------------------------------------------------------------------------


def test_snapshot_empty_inventory(snap_compare, paths: AppPaths, build_app: AppFactory):
    assert snap_compare(build_app(paths), terminal_size=SIZE)


def test_snapshot_populated(snap_compare, populated_paths: AppPaths, build_app: AppFactory):
    assert snap_compare(build_app(populated_paths), terminal_size=SIZE)


def test_snapshot_filtered(snap_compare, populated_paths: AppPaths, build_app: AppFactory):
    async def no_blink(pilot) -> None:
        # A loaded machine takes the picture after the cursor's first blink otherwise.
        pilot.app.screen.query_one("#filter-input", Input).cursor_blink = False

    assert snap_compare(build_app(populated_paths), press=["slash", *"prod"], terminal_size=SIZE,
                        run_before=no_blink)


def test_snapshot_help(snap_compare, populated_paths: AppPaths, build_app: AppFactory):
    assert snap_compare(build_app(populated_paths), press=["question_mark"], terminal_size=SIZE)


# -- packaging and entry point ----------------------------------------------------------------


def test_styles_are_found():
    # From a checkout: styles/ beside the package; in a wheel: havsh_tui/styles/.
    assert (styles_dir() / "havsh.tcss").is_file()


def test_run_tui_reports_a_bad_settings_file(paths: AppPaths, capsys):
    paths.settings.write_text("poll_interval = -1\n", encoding="utf-8")
    assert run_tui() == 1
    err = capsys.readouterr().err
    assert err.startswith("havsh: ") and "poll_interval" in err
