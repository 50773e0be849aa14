"""The logs section in the real app, with a fake stream per service: opening from a service,
several panes each with its own pause, search and filter, the layout key, closing, and
snapshots of the empty screen and the split view."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot

from havsh_tui.core.paths import AppPaths
from havsh_tui.ops.logs import LineParser, LogLine, StreamEvent
from havsh_tui.screens import logs as logs_screen
from havsh_tui.screens.logs import LogsScreen, pane_id
from havsh_tui.widgets.log_pane import LogPane

from .conftest import AppFactory, demo_services
from .test_log_pane import odoo_lines

SIZE = (120, 36)


class ScriptedStream:
    """Stands in for LogStream(session_factory, container, tail=...): gives the lines
    scripted for its container, then waits until stopped, as a follow does."""

    scripts: dict[str, list[str]] = {}
    made: list[ScriptedStream] = []

    def __init__(self, session_factory: Callable[[], object], container: str, **kw: object):
        self.container = container
        self.kw = kw
        self.stopped = threading.Event()
        ScriptedStream.made.append(self)

    def stop(self) -> None:
        self.stopped.set()

    def batches(self) -> Iterator[list[LogLine | StreamEvent]]:
        parser = LineParser()
        lines = self.scripts.get(self.container, [])
        for i in range(0, len(lines), 200):
            yield [parser.parse(t) for t in lines[i:i + 200]]
        self.stopped.wait()


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedStream]:
    ScriptedStream.scripts = {
        "havsh-erp-prod": odoo_lines(1, 300),
        "havsh-training": [f"training line {i}" for i in range(500)],
    }
    ScriptedStream.made = []
    monkeypatch.setattr(logs_screen, "LogStream", ScriptedStream)
    return ScriptedStream


def service(name: str):
    return next(s for s in demo_services() if s.name == name)


async def wait_until(pilot: Pilot, pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await pilot.pause(0.02)


def logs(app: object) -> LogsScreen:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, LogsScreen)
    return screen


async def test_open_logs_follows_the_service(populated_paths: AppPaths, build_app: AppFactory,
                                             scripted):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        app.action_open_logs(service("erp-prod"))
        await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen) and logs(app).panes)
        screen = logs(app)
        assert app.current_mode == "logs"
        (pane,) = screen.panes
        assert pane.id == pane_id("alpha", "erp-prod") and pane.border_title == "erp-prod @ alpha"
        await wait_until(pilot, lambda: pane.buffer.received == len(odoo_lines(1, 300)))
        assert pane.shown_lines() == odoo_lines(1, 300)
        (stream,) = scripted.made
        assert stream.container == "havsh-erp-prod" and stream.kw["tail"] == 2000
        assert pane.buffer.max_lines == app.settings.log_max_lines == 100_000
        await pilot.pause()
        assert app.focused is pane.view
        # The same service again: its pane, not a second one.
        app.action_open_logs(service("erp-prod"))
        await pilot.pause()
        assert len(screen.panes) == 1 and len(scripted.made) == 1


async def test_the_max_lines_setting_bounds_each_pane(populated_paths: AppPaths,
                                                      build_app: AppFactory, scripted):
    app = build_app(populated_paths, log_max_lines=250)
    async with app.run_test(size=SIZE) as pilot:
        app.action_open_logs("training")
        await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen) and logs(app).panes)
        (pane,) = logs(app).panes
        await wait_until(pilot, lambda: pane.buffer.received == 500)
        assert pane.line_count == 250
        assert pane.shown_lines()[0] == "training line 250"


async def test_panes_have_their_own_pause_search_and_filter(
    populated_paths: AppPaths, build_app: AppFactory, scripted
):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        app.action_open_logs(service("erp-prod"))
        app.action_open_logs("bravo/training")
        await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen)
                         and len(logs(app).panes) == 2)
        erp, training = logs(app).panes
        await wait_until(pilot, lambda: erp.buffer.received >= 390 and
                         training.buffer.received == 500)
        await pilot.pause()
        assert app.focused is training.view  # the last opened
        await pilot.press("space", "f", *"line 4", "enter")
        assert not training.tail and erp.tail
        assert training.shown_lines() == ["training line 4"] + [
            f"training line {i}" for i in range(40, 50)] + [
            f"training line {i}" for i in range(400, 500)]
        assert erp.buffer.filter is None
        await pilot.press("tab")
        assert app.focused is erp.view
        await pilot.press("l", "l", "l", "slash", *"boom", "enter")
        assert erp.min_level == "ERROR" and training.min_level is None
        assert erp.search_position == (30, 30) and training.buffer.search is None
        assert len(erp.shown_lines()) == 30 * 4


async def test_layout_toggles_and_panes_close(populated_paths: AppPaths, build_app: AppFactory,
                                              scripted):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        app.action_open_logs(service("erp-prod"))
        app.action_open_logs(service("training"))
        await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen)
                         and len(logs(app).panes) == 2)
        screen = logs(app)
        await pilot.pause()
        first, second = screen.panes
        # Side by side: same row, two columns.
        assert first.region.y == second.region.y and first.region.x < second.region.x
        assert screen.sub_title == "2 logs, side by side"
        await pilot.press("t")
        await pilot.pause()
        assert screen.stacked
        assert first.region.x == second.region.x and first.region.y < second.region.y
        assert screen.sub_title == "2 logs, stacked"
        # x closes the focused pane (the second) and stops its stream.
        await pilot.press("x")
        await wait_until(pilot, lambda: len(screen.panes) == 1)
        await wait_until(pilot, lambda: scripted.made[1].stopped.is_set())
        assert not scripted.made[0].stopped.is_set()
        await pilot.pause()
        assert app.focused is first.view
        await pilot.press("x")
        await wait_until(pilot, lambda: not screen.panes)
        assert screen.query_one("#logs-empty").display
        assert screen.sub_title == "no log open"


async def test_unknown_service_says_so(populated_paths: AppPaths, build_app: AppFactory,
                                       scripted):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        app.action_open_logs("no-such-service")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, LogsScreen) and not logs(app).panes
        assert any("no-such-service" in n.message for n in app._notifications)
        assert not scripted.made


async def test_logs_section_without_a_service(populated_paths: AppPaths, build_app: AppFactory):
    app = build_app(populated_paths)
    async with app.run_test(size=SIZE) as pilot:
        app.action_open_logs()
        await pilot.pause()
        screen = logs(app)
        assert screen.query_one("#logs-empty").display and not screen.panes
        # Nothing to close or lay out: the keys are off.
        assert screen.check_action("close_pane", ()) is False
        assert screen.check_action("toggle_layout", ()) is False


# -- snapshots --------------------------------------------------------------------------------


def _static_panes(app) -> None:
    app.action_open_logs()
    screen = app.get_screen_stack("logs")[0]
    erp = LogPane("erp-prod @ alpha", id=pane_id("alpha", "erp-prod"))
    training = LogPane("training @ bravo", id=pane_id("bravo", "training"))
    screen.add_pane(erp)
    screen.add_pane(training)
    erp.append_lines(odoo_lines(1, 40))
    training.append_lines(odoo_lines(41, 60))


def test_snapshot_logs_empty(snap_compare, populated_paths: AppPaths, build_app: AppFactory):
    async def run_before(pilot: Pilot) -> None:
        pilot.app.action_open_logs()
        await pilot.pause()

    assert snap_compare(build_app(populated_paths), run_before=run_before, terminal_size=SIZE)


def test_snapshot_split_view(snap_compare, populated_paths: AppPaths, build_app: AppFactory):
    async def run_before(pilot: Pilot) -> None:
        _static_panes(pilot.app)
        await pilot.pause()
        await pilot.press("l", "l")  # the focused (right) pane: ≥WARNING

    assert snap_compare(build_app(populated_paths), run_before=run_before, terminal_size=SIZE)


def test_snapshot_stacked_with_search(snap_compare, populated_paths: AppPaths,
                                      build_app: AppFactory):
    async def run_before(pilot: Pilot) -> None:
        _static_panes(pilot.app)
        await pilot.pause()
        await pilot.press("t", "slash", *"/line [45]5$/", "enter")

    assert snap_compare(build_app(populated_paths), run_before=run_before, terminal_size=SIZE)
