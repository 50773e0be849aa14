"""Quitting while operations run: q / ctrl+q ask first (Wait is the default), Quit anyway
stops what can stop at its next step and waits, bounded, for the cleanup before exiting.
With nothing running, q quits at once (also tests/tui/test_dashboard.py::test_q_quits)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from textual.widgets import Button, Static

from havsh_tui.app import (
    QuitWaitScreen,
    _is_operation_group,
    running_operations,
)
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.ops.reporter import OperationCancelled
from havsh_tui.screens.dashboard import DashboardScreen, busy_services
from havsh_tui.widgets.operation_log import OperationScreen
from havsh_tui.widgets.service_table import row_key_for

from .fakes import Calls, install, no_polling, steady, wait_for

SIZE = (120, 40)


class SlowCreate(OperationScreen[Any]):
    FAILURE_NOTE = "What the creation had made on the host was removed."


class Steps:
    """An operation of steps that checks its reporter between steps, as ops/ do, and
    records its cleanup when it is cancelled."""

    def __init__(self, step_seconds: float = 0.2, steps: int = 10_000) -> None:
        self.step_seconds = step_seconds
        self.steps = steps
        self.done: list[str] = []
        self.cleaned = threading.Event()
        self.started = threading.Event()

    def __call__(self, reporter: Any) -> str:
        self.started.set()
        try:
            for i in range(self.steps):
                if reporter.cancelled():
                    raise OperationCancelled("cancelled by the user")
                reporter.step(f"step {i}", "running")
                time.sleep(self.step_seconds)
                reporter.step(f"step {i}", "done")
                self.done.append(f"step {i}")
        except OperationCancelled:
            time.sleep(0.2)  # the cleanup takes a moment
            self.cleaned.set()
            raise
        return "made"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    no_polling(monkeypatch.setattr)
    return install(monkeypatch.setattr, delay=0.6)


async def start_create(pilot: Any, op: Steps, title: str = "Creating erp-new") -> SlowCreate:
    screen = SlowCreate(title, op, expected_steps=["step 0"])
    pilot.app.push_screen(screen)
    await wait_for(pilot, op.started.is_set, what="the operation to start")
    await pilot.pause()
    return screen


async def select(pilot: Any, name: str) -> None:
    table = pilot.app.screen.table
    service = next(s for s in table.visible_services() if s.name == name)
    table.move_cursor(row=table.get_row_index(row_key_for(service)))
    await pilot.pause()


def test_which_worker_groups_are_operations():
    for group in ("service-alpha-erp-prod", "backups-op", "repos-op", "bootstrap-alpha",
                  "host-ops", "rescan", "preview-pass"):
        assert _is_operation_group(group), group
    for group in ("", "poll-alpha", "service-dialog", "detail-facts", "detail-stats",
                  "backups-read", "copy-plan", "copy-measure", "preview-reconciler",
                  "log-save", "host-test"):
        assert not _is_operation_group(group), group


async def test_nothing_running_quits_at_once(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert running_operations(app) == []
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


async def test_ctrl_q_during_a_create_asks_and_wait_is_the_default(app: Any):
    op = Steps()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = await start_create(pilot, op)
        # In the operation's modal only ctrl+q (a priority binding) reaches the app: it is
        # the key that used to cut the operation off.
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        dialog = app.screen
        text = str(dialog.query_one("#confirm-message", Static).render())
        assert "Creating erp-new" in text
        assert "What the creation had made on the host was removed." in text
        assert "next step" in text and "10 s" in text
        # Wait has the focus: a stray enter keeps everything running.
        assert isinstance(app.focused, Button) and app.focused.id == "confirm-cancel"
        assert str(app.focused.label) == "Wait"
        # Again does not stack another question.
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert len([s for s in app.screen_stack if isinstance(s, ConfirmDialog)]) == 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen)
        assert app.is_running and not screen.cancel_event.is_set()
        steps_before = len(op.done)
        await pilot.pause(0.2)
        assert len(op.done) > steps_before  # still going
        # esc answers Wait too.
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        assert app.is_running and not screen.cancel_event.is_set()
        screen.cancel_event.set()  # let it end before the test does
        await wait_for(pilot, lambda: screen.outcome is not None)


async def test_quit_anyway_cancels_and_waits_for_the_cleanup(app: Any):
    op = Steps()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = await start_create(pilot, op)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")  # Quit anyway
        await wait_for(pilot, lambda: isinstance(app.screen, QuitWaitScreen)
                       or not app.is_running)
        assert screen.cancel_event.is_set()
        # The pane says what it waits for, and for how long at most.
        if app.is_running:
            text = str(app.screen.query_one("#quit-wait-text", Static).render())
            assert "Waiting up to 10 s" in text and "Creating erp-new" in text
        await wait_for(pilot, lambda: not app.is_running, timeout=10,
                       what="the app to exit once the operation ended")
    # It exited after the cleanup, not before it.
    assert op.cleaned.is_set()
    assert app.return_code == 0


async def test_an_operation_that_cannot_stop_is_waited_for(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "showroom")
        await pilot.press("x")  # stop: a service op in a thread worker, 0.6 s here
        await wait_for(pilot, lambda: busy_services(app))
        ops = running_operations(app)
        assert [(o.name, o.cancel) for o in ops] == [("Stop showroom", None)]
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        text = str(app.screen.query_one("#confirm-message", Static).render())
        assert "Stop showroom" in text and "cannot stop part-way" in text
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, timeout=10)
    # It ran to its end: the stop reached the inventory.
    assert calls.of("stop") == [("alpha", "showroom")]
    assert app.inventory.get_service("showroom", host="alpha").status.value == "stopped"


async def test_the_wait_is_bounded(app: Any, monkeypatch: pytest.MonkeyPatch):
    release = threading.Event()
    started = threading.Event()

    def stuck(reporter: Any) -> None:
        started.set()
        release.wait(30)  # ignores the cancel, like a step stuck on a dead host

    monkeypatch.setattr(type(app), "QUIT_WAIT_SECONDS", 0.5)
    said: list[str] = []
    exit_ = app.exit

    def exit_spy(*args: Any, **kw: Any) -> None:
        said.append(str(kw.get("message") or ""))
        exit_(*args, **kw)

    monkeypatch.setattr(app, "exit", exit_spy)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.push_screen(SlowCreate("Updating shop-prod", stuck))
            await wait_for(pilot, started.is_set)
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            began = time.monotonic()
            await pilot.press("y")
            await wait_for(pilot, lambda: not app.is_running, timeout=5)
            assert time.monotonic() - began < 3
        # The terminal is told what still runs (Textual prints it once the screen is gone).
        assert said and "still ending" in said[-1] and "Updating shop-prod" in said[-1]
    finally:
        release.set()


async def test_an_operation_ended_while_asking_quits_at_once(app: Any):
    op = Steps(steps=1_000_000)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = await start_create(pilot, op)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        screen.cancel_event.set()  # its own Cancel, say, from elsewhere
        await wait_for(pilot, lambda: screen.outcome is not None)
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, timeout=5)


def test_snapshot_quit_question(snap_compare, app: Any, monkeypatch: pytest.MonkeyPatch):
    from havsh_tui.ops import services as services_ops

    release = threading.Event()

    def held_stop(inventory: Any, pool: Any, service: Any, audit: Any = None) -> Any:
        release.wait(30)
        return service

    # A service op under the dashboard (the frame underneath stays still) and a second,
    # cancellable one would need a moving step list: one op is enough to show the question.
    monkeypatch.setattr(services_ops, "stop_service", held_stop)
    # Let the stop end as the snapshot's app exits (Textual waits for its thread).
    exit_ = app.exit

    def exit_releasing(*args: Any, **kw: Any) -> None:
        release.set()
        exit_(*args, **kw)

    monkeypatch.setattr(app, "exit", exit_releasing)

    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        assert isinstance(pilot.app.screen, DashboardScreen)
        await select(pilot, "erp-prod")
        await pilot.press("x")
        await wait_for(pilot, lambda: busy_services(pilot.app))
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
        await steady(pilot)

    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    finally:
        release.set()
