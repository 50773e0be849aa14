"""The log pane with a fake stream: the buffer, batching, back-pressure, following, the keys
(space, g/G, /, n/N, l, f, y, v, s, esc), markers, operation-log use, and a snapshot."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Offset
from textual.pilot import Pilot
from textual.selection import Selection
from textual.widgets import Input

from havsh_tui.app import styles_dir
from havsh_tui.ops.logs import LineParser, LogLine, StreamEvent
from havsh_tui.widgets import log_pane as lp
from havsh_tui.widgets.log_pane import (
    MARKER,
    LogBuffer,
    LogPane,
    NewLinesMarker,
    SaveLogDialog,
    entry_of,
    parse_matcher,
)

from .conftest import FROZEN_NOW

SIZE = (100, 30)
LEVEL_OF = {0: "ERROR", 3: "WARNING", 6: "WARNING", 9: "DEBUG"}


def odoo_lines(first: int, last: int) -> list[str]:
    """The generator's lines (tests/integration/test_logs.py): levels mixed, a traceback
    after each ERROR."""
    out = []
    for i in range(first, last + 1):
        level = LEVEL_OF.get(i % 10, "INFO")
        out.append(f"2026-12-03 12:00:00,000 1 {level} gen odoo.gen: line {i}")
        if level == "ERROR":
            out += ["Traceback (most recent call last):", f'  File "x.py", line {i}, in f',
                    f"ValueError: boom {i}"]
    return out


def parsed(texts: list[str], parser: LineParser | None = None) -> list[LogLine]:
    parser = parser or LineParser()
    return [parser.parse(t) for t in texts]


class FakeStream:
    """A LogStream stand-in: the test pushes batches, the pane's worker reads them."""

    def __init__(self) -> None:
        self.q: queue.Queue[list[LogLine | StreamEvent] | None] = queue.Queue()
        self.stopped = threading.Event()
        self.parser = LineParser()

    def push_lines(self, texts: list[str], batch: int = 100) -> None:
        for i in range(0, len(texts), batch):
            self.q.put(parsed(texts[i:i + batch], self.parser))

    def push_event(self, kind: str, detail: str = "") -> None:
        self.q.put([StreamEvent(kind, detail)])

    def end(self) -> None:
        self.q.put(None)

    def stop(self) -> None:
        self.stopped.set()

    def batches(self) -> Iterator[list[LogLine | StreamEvent]]:
        while not self.stopped.is_set():
            try:
                item = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                return
            yield item


class PaneApp(App[None]):
    CSS_PATH = [styles_dir() / "logs.tcss"]

    def __init__(self, stream: FakeStream | None = None, *, max_lines: int = 100_000,
                 lines: list[str] | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.max_lines = max_lines
        self.lines = lines
        self.clock = lambda: FROZEN_NOW

    def compose(self) -> ComposeResult:
        factory = (lambda: self.stream) if self.stream is not None else None
        yield LogPane("gen @ hosta", max_lines=self.max_lines, stream_factory=factory,
                      save_name="gen", id="pane")

    def on_mount(self) -> None:
        if self.lines:
            self.query_one(LogPane).append_lines(self.lines)


async def wait_until(pilot: Pilot, pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await pilot.pause(0.02)


def numbers(texts: list[str]) -> list[int]:
    return [int(t.rsplit(" ", 1)[1]) for t in texts if ": line " in t]


def pane_of(app: App) -> LogPane:
    return app.query_one(LogPane)


# -- the buffer (no Textual) ----------------------------------------------------------------


def entries(texts: list[str]):
    parser = LineParser()
    return [entry_of(parser.parse(t)) for t in texts]


def test_buffer_is_bounded_and_keeps_sequence_numbers():
    buf = LogBuffer(max_lines=100)
    total = 0
    for start in range(1, 1001, 50):
        texts = [f"plain {i}" for i in range(start, start + 50)]
        added, dropped = buf.append(entries(texts))
        total += added
        assert len(buf.entries) <= 100
    assert total == 1000 and buf.received == 1000
    assert buf.offset == 900 and buf.row_count == 100
    assert buf.entry(buf.seq_at(0))[0] == "plain 901"
    assert buf.row_of(950) == 50 and buf.row_of(10) is None


def test_buffer_filter_view_and_matches_follow_appends_and_drops():
    buf = LogBuffer(max_lines=200)
    buf.append(entries(odoo_lines(1, 50)))
    buf.set_filter("WARNING", None)
    # WARNING and ERROR lines, plus the 3 traceback lines of each ERROR.
    assert numbers(buf.shown_texts()) == [i for i in range(1, 51) if i % 10 in (0, 3, 6)]
    assert buf.row_count == 5 * 4 + 10
    buf.set_search(parse_matcher("boom"))
    assert len(buf.matches) == 5
    # New lines are filtered and searched as they come; old ones go past max_lines.
    buf.append(entries(odoo_lines(51, 200)))
    # 200 lines and 20 tracebacks of 3: 260 in all, the first 60 dropped.
    assert len(buf.entries) == 200 and buf.offset == 260 - 200
    shown = buf.shown_texts()
    assert all("INFO" not in t and "DEBUG" not in t for t in shown)
    assert len(buf.matches) == sum(1 for t in shown if "boom" in t)
    assert buf.matches == sorted(buf.matches) and buf.matches[0] >= buf.offset


def test_matcher_text_and_regex():
    assert parse_matcher("") is None
    text = parse_matcher("a.b")
    assert text is not None and not text.is_regex and text.pattern.search("A.B")
    assert not text.pattern.search("axb")
    rx = parse_matcher("/line 4\\d$/")
    assert rx is not None and rx.is_regex and rx.pattern.search("... line 42")
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_matcher("/(unclosed/")


def test_control_characters_are_drawn_safely():
    line = LineParser().parse("\x1b[31mred\x1b[0m\tend")
    text, _level, _kind = entry_of(line)
    assert "\x1b" not in text and "\t" not in text and text.startswith("\ufffd[31mred")


# -- following a stream -----------------------------------------------------------------------


async def test_lines_arrive_in_order_in_batches():
    stream = FakeStream()
    app = PaneApp(stream)
    posts = []
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        original = pane._drain

        def counting_drain() -> None:
            posts.append(len(pane._pending))
            original()

        pane._drain = counting_drain  # type: ignore[method-assign]
        expected = odoo_lines(1, 5000)
        stream.push_lines(expected, batch=50)
        await wait_until(pilot, lambda: pane.buffer.received == len(expected))
        assert pane.shown_lines() == expected
        # Batches, not a message per line (nor per read: reads of 50 go together).
        assert len([n for n in posts if n]) < len(expected) / 50
        assert pane.tail and pane.state == "following"
        view = pane.view
        # At the end (the scroll follows at most FOLLOW_FPS times a second).
        await wait_until(pilot, lambda: view.scroll_y == view.max_scroll_y > 0, 2)
        # A line that arrives alone after a burst is shown too (the idle flush).
        stream.push_lines(["a lonely line"])
        await wait_until(pilot, lambda: pane.shown_lines()[-1] == "a lonely line", 2)


async def test_back_pressure_bounds_the_pending_lines(monkeypatch):
    monkeypatch.setattr(lp, "PENDING_MAX", 400)
    stream = FakeStream()
    app = PaneApp(stream)
    high = [0]
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        original_add = pane.append_items

        def slow_add(items) -> None:
            high[0] = max(high[0], len(items))
            time.sleep(0.02)  # a UI that falls behind
            original_add(items)

        pane.append_items = slow_add  # type: ignore[method-assign]
        expected = [f"plain {i}" for i in range(20_000)]
        stream.push_lines(expected, batch=100)
        await wait_until(pilot, lambda: pane.buffer.received == len(expected), 30)
        assert pane.shown_lines() == expected
        # The reader stopped at the bound (plus the one read it had in hand).
        assert high[0] <= 400 + 100


async def test_memory_is_bounded_and_a_paused_view_keeps_its_place():
    stream = FakeStream()
    app = PaneApp(stream, max_lines=1000)
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        stream.push_lines([f"plain {i}" for i in range(900)])
        await wait_until(pilot, lambda: pane.buffer.received == 900)
        await pilot.press("space")
        assert not pane.tail
        view = pane.view
        top_text = pane.buffer.entry(pane.buffer.seq_at(int(view.scroll_y)))[0]
        stream.push_lines([f"plain {i}" for i in range(900, 1500)])
        await wait_until(pilot, lambda: pane.buffer.received == 1500)
        assert pane.line_count == 1000
        assert pane.buffer.entry(pane.buffer.seq_at(int(view.scroll_y)))[0] == top_text
        assert view.new_lines == 600


async def test_scrolling_up_pauses_and_the_marker_follows_again():
    stream = FakeStream()
    app = PaneApp(stream)
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        stream.push_lines([f"plain {i}" for i in range(200)])
        await wait_until(pilot, lambda: pane.buffer.received == 200)
        await pilot.press("pageup")
        assert not pane.tail
        marker = app.query_one(NewLinesMarker)
        assert not marker.display  # nothing new yet
        stream.push_lines([f"plain {i}" for i in range(200, 227)])
        await wait_until(pilot, lambda: pane.buffer.received == 227)
        await pilot.pause()
        assert marker.display
        assert marker.label == "27 new lines ↓"
        assert "‖ paused" in pane.status_text()
        await pilot.click(NewLinesMarker)
        assert pane.tail and not marker.display
        assert pane.view.scroll_y == pane.view.max_scroll_y
        # Scrolling back down to the end follows again too.
        await pilot.press("up")
        assert not pane.tail
        await pilot.press("down")
        assert pane.tail


async def test_space_g_and_G():
    app = PaneApp(lines=[f"plain {i}" for i in range(300)])
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        view = pane.view
        await wait_until(pilot, lambda: view.scroll_y == view.max_scroll_y > 0, 2)
        assert pane.tail
        await pilot.press("space")
        assert not pane.tail
        await pilot.press("space")
        assert pane.tail
        await pilot.press("g")
        assert view.scroll_y == 0 and not pane.tail
        await pilot.press("G")
        assert pane.tail and view.scroll_y == view.max_scroll_y


# -- search and filters -----------------------------------------------------------------------


async def test_search_highlights_counts_and_moves():
    app = PaneApp(lines=odoo_lines(1, 270))
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        await pilot.press("slash", *"boom", "enter")
        # 27 ERROR lines, each with "ValueError: boom N"; enter goes to the newest.
        assert pane.search_position == (27, 27)
        assert "27/27" in pane.status_text() and not pane.tail
        view = pane.view
        assert pane.buffer.entry(view.cursor)[0] == "ValueError: boom 270"
        await pilot.press("N", "N")
        assert pane.search_position == (25, 27)
        assert pane.buffer.entry(view.cursor)[0] == "ValueError: boom 250"
        assert '"boom" 25/27' in pane.status_text()
        await pilot.press("n")
        assert pane.search_position == (26, 27)
        await pilot.press("n", "n")  # past the last: wraps to the first
        assert pane.search_position == (1, 27)
        # The matched line is on screen.
        row = pane.buffer.row_of(view.cursor)
        assert view.scroll_y <= row < view.scroll_y + view.scrollable_content_region.height
        await pilot.press("escape", "escape")  # the cursor, then the search
        assert pane.buffer.search is None and pane.search_position == (None, 0)


async def test_search_regex_and_bad_regex_message():
    app = PaneApp(lines=odoo_lines(1, 100))
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        await pilot.press("slash", *"/line 4\\d$/", "enter")
        assert pane.search_position[1] == 10
        # The prompt opens with the search (all selected); an unclosed group before the "/".
        await pilot.press("slash", "end", "left", "(")
        prompt = pane.prompt_input
        assert prompt.value == "/line 4\\d$(/"
        assert prompt.has_class("-invalid")
        assert pane.search_position[1] == 10  # the last good search stays
        await pilot.press("enter")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any(m.startswith("bad regular expression 'line 4\\\\d$('")
                   and "missing )" in m for m in messages), messages
        assert not pane.query_one("#log-prompt").has_class("-hidden")  # still open
        await pilot.press("escape")
        assert pane.buffer.search is None


async def test_level_filter_cycles_and_keeps_tracebacks():
    app = PaneApp(lines=odoo_lines(1, 100))
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        all_lines = odoo_lines(1, 100)
        assert pane.shown_lines() == all_lines
        await pilot.press("l")  # ≥INFO: the DEBUG lines go
        assert numbers(pane.shown_lines()) == [i for i in range(1, 101) if i % 10 != 9]
        await pilot.press("l")  # ≥WARNING
        assert numbers(pane.shown_lines()) == [i for i in range(1, 101) if i % 10 in (0, 3, 6)]
        await pilot.press("l")  # ≥ERROR: each ERROR line with its traceback
        shown = pane.shown_lines()
        assert numbers(shown) == list(range(10, 101, 10))
        assert len(shown) == 10 * 4
        assert shown[:4] == odoo_lines(10, 10)
        assert "≥ERROR · 40 shown" in pane.status_text()
        await pilot.press("l")  # back to everything
        assert pane.shown_lines() == all_lines


async def test_text_and_regex_filter_while_the_stream_goes_on():
    stream = FakeStream()
    app = PaneApp(stream)
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        stream.push_lines(odoo_lines(1, 100))
        await wait_until(pilot, lambda: len(numbers(pane.shown_lines())) == 100)
        await pilot.press("f", *"boom 1", "enter")
        assert pane.shown_lines() == ["ValueError: boom 10", "ValueError: boom 100"]
        stream.push_lines(odoo_lines(101, 200))
        await wait_until(pilot, lambda: "line 200" in pane.buffer.entries[-4][0])
        assert pane.shown_lines() == ["ValueError: boom 10", "ValueError: boom 100"] + [
            f"ValueError: boom {i}" for i in range(110, 200, 10)]
        await pilot.press("f", "ctrl+u", *"/line 1[0-9]$/", "enter")
        assert numbers(pane.shown_lines()) == list(range(10, 20))
        await pilot.press("l", "l")  # with ≥WARNING on top
        assert numbers(pane.shown_lines()) == [10, 13, 16]
        assert 'filter /line 1[0-9]$/' in pane.status_text()
        await pilot.press("f", "escape")  # esc in the prompt clears the text filter
        assert numbers(pane.shown_lines()) == [i for i in range(1, 201) if i % 10 in (0, 3, 6)]
        # A bad regex leaves the filter as it was and says why.
        await pilot.press("f", *"/[a-/", "enter")
        await pilot.pause()
        assert pane.buffer.filter is None
        assert any("bad regular expression" in n.message for n in app._notifications)


# -- copy and save ----------------------------------------------------------------------------


async def test_copy_current_line_and_a_range():
    app = PaneApp(lines=[f"plain {i}" for i in range(100)])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("y")  # no cursor: the last line on screen
        assert app.clipboard == "plain 99"
        await pilot.press("enter", "up", "up")  # a cursor, two lines up
        await pilot.press("y")
        assert app.clipboard == "plain 97"
        await pilot.press("v", "up", "up", "y")
        assert app.clipboard == "plain 95\nplain 96\nplain 97"
        assert any("Copied 3 lines" in n.message for n in app._notifications)


async def test_mouse_selection_is_copied():
    app = PaneApp(lines=[f"plain {i}" for i in range(100)])
    async with app.run_test(size=SIZE) as pilot:
        view = pane_of(app).view
        await pilot.press("g")  # the top: row n shows "plain n"
        assert view.get_selection(Selection(Offset(2, 3), Offset(4, 5))) == (
            "ain 3\nplain 4\nplai", "\n")
        # Outside drawing, a row carries the offsets Textual's hit test reads.
        assert view.render_line(3)._segments[0].style.meta["offset"] == (0, 3)
        # A drag with the mouse, then y.
        await pilot.mouse_down(view, offset=(2, 3))
        await pilot.hover(view, offset=(4, 5))
        await pilot.mouse_up(view, offset=(4, 5))
        await pilot.pause()
        assert view.text_selection is not None
        await pilot.press("y")
        # Textual's drag takes the cell under the pointer too: columns 2..4 of rows 3..5.
        assert app.clipboard == "ain 3\nplain 4\nplain"


async def test_save_writes_the_filtered_lines(tmp_path: Path):
    app = PaneApp(lines=odoo_lines(1, 50))
    target = tmp_path / "out.log"
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        await pilot.press("l", "l", "l")  # ≥ERROR
        await pilot.press("s")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, SaveLogDialog) and dialog.count == 20
        dialog.query_one("#save-path", Input).value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, lambda: target.exists() and any(
            "Saved 20 lines" in n.message for n in app._notifications))
        assert target.read_text().splitlines() == pane.shown_lines()
        # The same name again asks before replacing the file.
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#save-path", Input).value = str(target)
        await pilot.press("enter")
        assert isinstance(app.screen, SaveLogDialog)
        assert "exists" in str(app.screen.query_one("#save-error").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SaveLogDialog)


# -- markers and operation logs -----------------------------------------------------------------


async def test_markers_for_drops_reconnects_and_restarts():
    stream = FakeStream()
    app = PaneApp(stream)
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        stream.push_lines(odoo_lines(1, 5))
        stream.push_event("disconnected", "the log stream ended; resuming")
        await wait_until(pilot, lambda: pane.state == "reconnecting")
        assert pane.has_class("-reconnecting") and "⚠ reconnecting" in pane.status_text()
        stream.push_event("reconnected", "resuming after 2026-12-03T12:00:00.000000001Z")
        stream.push_lines(odoo_lines(6, 9))
        stream.push_event("waiting")
        stream.push_event("restarted", "started at 2026-12-03T12:01:00Z")
        stream.push_lines(odoo_lines(10, 10))
        await wait_until(pilot, lambda: "boom 10" in pane.buffer.entries[-1][0])
        markers = [e[0] for e in pane.buffer.entries if e[2] == MARKER]
        assert len(markers) == 4
        assert markers[0].startswith("── ") and "connection lost" in markers[0]
        assert "reconnected" in markers[1] and "restarted" in markers[3]
        assert pane.state == "following"
        # Markers stay visible under any filter, but are not "lines" to save or search.
        await pilot.press("l", "l", "l")
        assert len(pane.shown_lines(markers=True)) == 4 + 4
        assert pane.shown_lines() == odoo_lines(10, 10)


async def test_append_lines_for_operation_logs():
    app = PaneApp()
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        assert pane.status_text() == ""
        pane.append_lines(["step 1: pull image", "step 2: create\nstep 3: start"])
        pane.append_lines(odoo_lines(1, 1))
        await pilot.pause()
        assert pane.shown_lines() == ["step 1: pull image", "step 2: create", "step 3: start",
                                      *odoo_lines(1, 1)]
        assert pane.buffer.entries[-1][1] == "INFO"  # an Odoo line is parsed and coloured
        view = pane.view
        await wait_until(pilot, lambda: view.scroll_y == view.max_scroll_y, 2)


async def test_lines_added_before_mount_are_shown():
    pane = LogPane("early")
    pane.append_lines(["one", "two"])

    class Early(App[None]):
        CSS_PATH = [styles_dir() / "logs.tcss"]

        def compose(self) -> ComposeResult:
            yield pane

    async with Early().run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert pane.shown_lines() == ["one", "two"]
        assert pane.view.virtual_size.height == 2


async def test_the_worker_ends_with_the_pane():
    stream = FakeStream()
    app = PaneApp(stream)
    async with app.run_test(size=SIZE) as pilot:
        pane = pane_of(app)
        await pilot.pause()
        await pane.remove()
        await wait_until(pilot, lambda: stream.stopped.is_set())
        await wait_until(pilot, lambda: not any(w.is_running for w in app.workers))


# -- snapshot -----------------------------------------------------------------------------------


def test_snapshot_pane_with_search_highlights(snap_compare):
    app = PaneApp(lines=odoo_lines(1, 60))
    assert snap_compare(app, press=["slash", *"boom", "enter", "N"], terminal_size=SIZE)
