"""The log pane: a container's log (or any list of lines), followed, searched, filtered.

Rendering: :class:`LogView` is a ``ScrollView`` on the Line API (as toolong's LogLines). It
draws only the rows on screen, from :class:`LogBuffer`, so 100,000 lines cost one list of
tuples, never 100,000 widgets. Measured against Textual's own (tests/bench/test_log_ingest.py,
results/log_widget_choice.json): ``Log`` appends at about half this pane's rate and colours
nothing, with no filtered view; ``RichLog`` keeps a rendered line per line (14 times the
memory) and appends at a fifteenth of the pane's rate.

Ingest: a thread worker reads a :class:`~havsh_tui.ops.logs.LogStream` a batch at a time (one
network read) into a pending list, and posts one ``LinesReady`` at most every
:data:`BATCH_SECONDS` or :data:`BATCH_LINES`, with one message in flight at a time. While the
pending list holds :data:`PENDING_MAX` lines or the app's message queue is long, the reader
stops reading, and the SSH window then holds the engine back (toolong's back-pressure).

Following: ``tail`` is on while the view sits at the bottom. Scrolling up turns it off, and
an "N new lines ↓" marker (click it, or ``G``/``end``) turns it on again; ``space`` toggles
it. Memory: the buffer keeps ``max_lines`` lines (settings.log_max_lines) and drops the
oldest; the view keeps its place while lines go.
"""

from __future__ import annotations

import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.geometry import Region, Size
from textual.markup import escape
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static
from textual.worker import get_current_worker

from havsh_tui.ops.logs import LEVEL_RANK, LineParser, LogLine, StreamEvent, compile_pattern

#: A reader hands a batch over after this long, or this many lines, whichever comes first.
BATCH_SECONDS = 0.05
BATCH_LINES = 500
#: The reader stops reading while this many lines wait for the UI ...
PENDING_MAX = 10_000
#: ... or while the app's message queue is this long.
QUEUE_MAX = 20
#: Lines taken per message handled: a key press waits for one such step at most.
DRAIN_MAX = 2_000
#: Frames a second at most while following a log that grows.
FOLLOW_FPS = 15
#: Cells of one line that are drawn; the rest is cut with "…" (a 1 MB JSON line would
#: otherwise make every frame measure it).
MAX_LINE_CELLS = 2_000

# An entry is (text, level, kind): a tuple, the smallest thing Python has for it.
ODOO, CONTINUATION, PLAIN, MARKER = 0, 1, 2, 3
Entry = tuple[str, str | None, int]

#: The level filter's steps, in the order ``l`` goes through them (None: everything).
LEVEL_STEPS: tuple[str | None, ...] = (None, "INFO", "WARNING", "ERROR")

#: Marker lines for the stream's events.
MARKER_TEXT = {
    "disconnected": "connection lost ({detail}); reconnecting",
    "reconnected": "reconnected; {detail}",
    "waiting": "the container stopped; waiting for it to start",
    "restarted": "the container restarted ({detail}); following the new one",
    "ended": "{detail}",
}
#: What the pane's status says after each event.
EVENT_STATE = {
    "disconnected": "reconnecting",
    "reconnected": "following",
    "waiting": "stopped",
    "restarted": "following",
    "ended": "gone",
}

_NOT_PRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """What can be drawn: tabs expanded, control characters (escapes too) shown as �."""
    if text.isprintable():
        return text
    if "\t" in text:
        text = text.expandtabs()
    return _NOT_PRINTABLE.sub("\ufffd", text)


def entry_of(item: LogLine) -> Entry:
    if item.level is not None:
        return (clean(item.text), item.level, ODOO)
    if item.continuation and item.effective_level is not None:
        return (clean(item.text), item.effective_level, CONTINUATION)
    return (clean(item.text), None, PLAIN)


def marker_entry(event: StreamEvent, now: datetime | None = None) -> Entry:
    """A marker row. Its level slot carries the event's kind (markers have no level)."""
    body = MARKER_TEXT.get(event.kind, event.kind + " {detail}").format(detail=event.detail)
    stamp = (now or datetime.now()).astimezone().strftime("%H:%M:%S")
    return (f"── {stamp} {body} ──", event.kind, MARKER)


def entries_of(items: Iterable[LogLine | StreamEvent],
               clock: Callable[[], datetime] | None = None) -> list[Entry]:
    """Rows for stream items; no Textual here, so the reader thread does it."""
    out: list[Entry] = []
    append = out.append
    for item in items:
        if isinstance(item, LogLine):
            append(entry_of(item))
        else:
            append(marker_entry(item, clock() if clock is not None else None))
    return out


@dataclass
class Matcher:
    """A search or filter pattern as typed: plain text, or ``/regex/``."""

    text: str
    pattern: re.Pattern[str]

    @property
    def is_regex(self) -> bool:
        return is_regex_syntax(self.text)

    @property
    def label(self) -> str:
        return self.text if self.is_regex else f'"{self.text}"'


def is_regex_syntax(text: str) -> bool:
    return len(text) >= 2 and text.startswith("/") and text.endswith("/")


def parse_matcher(text: str) -> Matcher | None:
    """``/regex/`` is a regular expression, anything else plain text; case-insensitive.
    None for an empty text; ValueError (a message for the user) for a bad regex."""
    if not text:
        return None
    if is_regex_syntax(text):
        return Matcher(text, compile_pattern(text[1:-1]))
    return Matcher(text, compile_pattern(text, literal=True))


class LogBuffer:
    """The lines of one pane, bounded, with the filtered view and search matches as
    indexes into it. No Textual here: the widget draws from it, the tests read it.

    Each line has a sequence number that never changes (``offset`` is the number of the
    first line kept), so the cursor, the matches and the cache survive dropped lines.
    """

    def __init__(self, max_lines: int = 100_000) -> None:
        self.max_lines = max(1, max_lines)
        self.entries: list[Entry] = []
        self.offset = 0
        self.min_rank: int | None = None
        self.filter: Matcher | None = None
        #: Sequence numbers of the lines the filter shows; None when nothing is filtered.
        self.view: list[int] | None = None
        self.search: Matcher | None = None
        #: Sequence numbers of shown lines that match the search, in order.
        self.matches: list[int] = []
        self.width = 0
        #: Lines taken in since the start (dropped ones included).
        self.received = 0

    # -- rows ---------------------------------------------------------------------------

    @property
    def end(self) -> int:
        return self.offset + len(self.entries)

    @property
    def row_count(self) -> int:
        return len(self.entries) if self.view is None else len(self.view)

    def seq_at(self, row: int) -> int:
        return self.offset + row if self.view is None else self.view[row]

    def row_of(self, seq: int) -> int | None:
        """The row that shows line ``seq``, or None (dropped, or filtered out)."""
        if seq < self.offset or seq >= self.end:
            return None
        if self.view is None:
            return seq - self.offset
        row = bisect_left(self.view, seq)
        return row if row < len(self.view) and self.view[row] == seq else None

    def row_at_or_after(self, seq: int) -> int:
        if self.view is None:
            return min(max(seq - self.offset, 0), len(self.entries))
        return bisect_left(self.view, seq)

    def entry(self, seq: int) -> Entry:
        return self.entries[seq - self.offset]

    def shown_texts(self, *, markers: bool = False) -> list[str]:
        """The text of every row shown (filtered when a filter is on)."""
        entries, offset = self.entries, self.offset
        rows: Iterable[Entry] = (
            entries if self.view is None else (entries[s - offset] for s in self.view)
        )
        return [e[0] for e in rows if markers or e[2] != MARKER]

    # -- filters ------------------------------------------------------------------------

    def shows(self, entry: Entry) -> bool:
        if entry[2] == MARKER:
            return True  # drops and restarts stay visible under any filter
        if self.min_rank is not None:
            level = entry[1]
            if level is None or LEVEL_RANK[level] < self.min_rank:
                return False
        if self.filter is not None and not self.filter.pattern.search(entry[0]):
            return False
        return True

    def set_filter(self, min_level: str | None, matcher: Matcher | None) -> None:
        self.min_rank = None if min_level is None else LEVEL_RANK[min_level]
        self.filter = matcher
        if self.min_rank is None and matcher is None:
            self.view = None
        else:
            shows, offset = self.shows, self.offset
            self.view = [offset + i for i, e in enumerate(self.entries) if shows(e)]
        self._rematch()

    def set_search(self, matcher: Matcher | None) -> None:
        self.search = matcher
        self._rematch()

    def _rematch(self) -> None:
        self.matches = []
        if self.search is None:
            return
        search, entries, offset = self.search.pattern.search, self.entries, self.offset
        seqs: Iterable[int] = range(offset, self.end) if self.view is None else self.view
        self.matches = [s for s in seqs
                        if entries[s - offset][2] != MARKER and search(entries[s - offset][0])]

    # -- appending ----------------------------------------------------------------------

    def append(self, new: Sequence[Entry]) -> tuple[int, int]:
        """Add lines; returns (rows added, rows dropped from the front) as shown."""
        if not new:
            return 0, 0
        base = self.end
        self.entries.extend(new)
        self.received += len(new)
        width = self.width
        for entry in new:
            text = entry[0]
            n = len(text) if text.isascii() else cell_len(text)
            if n > width:
                width = n
        self.width = min(width, MAX_LINE_CELLS)
        if self.view is None:
            added = len(new)
            new_seqs: Iterable[int] = range(base, base + added)
        else:
            shows = self.shows
            new_seqs = [base + i for i, e in enumerate(new) if shows(e)]
            self.view.extend(new_seqs)
            added = len(new_seqs)
        if self.search is not None:
            search = self.search.pattern.search
            entries, offset = self.entries, self.offset
            self.matches.extend(
                s for s in new_seqs
                if entries[s - offset][2] != MARKER and search(entries[s - offset][0])
            )
        return added, self._prune()

    def _prune(self) -> int:
        excess = len(self.entries) - self.max_lines
        if excess <= 0:
            return 0
        # One slice delete per batch: a memmove of pointers, cheap next to the batch.
        del self.entries[:excess]
        self.offset += excess
        if self.matches and self.matches[0] < self.offset:
            del self.matches[: bisect_left(self.matches, self.offset)]
        if self.view is None:
            return excess
        dropped = bisect_left(self.view, self.offset)
        del self.view[:dropped]
        return dropped

    def clear(self) -> None:
        self.offset = self.end
        self.entries.clear()
        self.matches.clear()
        if self.view is not None:
            self.view.clear()
        self.width = 0


class LogView(ScrollView, can_focus=True):
    """The Line API widget: draws the rows of a :class:`LogBuffer` that are on screen."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-view--timestamp",
        "log-view--debug",
        "log-view--info",
        "log-view--warning",
        "log-view--error",
        "log-view--critical",
        "log-view--warning-text",
        "log-view--error-text",
        "log-view--traceback",
        "log-view--marker",
        "log-view--match",
        "log-view--match-current",
        "log-view--cursor",
        "log-view--range",
    }

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        overflow: auto auto;
        scrollbar-gutter: stable;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "toggle_cursor", "Line cursor", id="log-cursor", show=False),
    ]

    #: Following the end of the log.
    tail: reactive[bool] = reactive(True, init=False, repaint=False)
    #: The line under the cursor (a sequence number), or None.
    cursor: reactive[int | None] = reactive(None, init=False, repaint=False)
    #: The other end of a range selection started with ``v`` (a sequence number).
    range_start: reactive[int | None] = reactive(None, init=False, repaint=False)

    class TailChanged(Message):
        def __init__(self, view: LogView, tail: bool) -> None:
            super().__init__()
            self.view = view
            self.tail = tail

    class CursorMoved(Message):
        def __init__(self, view: LogView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, buffer: LogBuffer, *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.buffer = buffer
        #: Rows added while not following: the "N new lines" count.
        self.new_lines = 0
        self._cache: LRUCache[tuple[int, int, int, int], Strip] = LRUCache(256)
        self._styles: dict[str, Style] | None = None
        self._combos: dict[tuple[int, str | None], Style] = {}
        self._drawing = False
        #: True while the widget itself moves the scroll position (not the user).
        self._auto_scroll = False
        self._at_end = False
        self._sync_timer: Any = None
        self._last_sync = 0.0

    # -- styles and cache ---------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._combos = {}
        self._cache.clear()

    def _style(self, name: str) -> Style:
        if self._styles is None:
            self._styles = {n[len("log-view--"):]: self._component(n)
                            for n in self.COMPONENT_CLASSES}
        return self._styles[name]

    def _component(self, name: str) -> Style:
        # The full style blends translucent theme colours ($primary 30%) over the widget's
        # background; the partial one says which properties the class sets. Keep only those,
        # so a timestamp's colour does not paint over the cursor's background.
        full = self.get_component_rich_style(name)
        part = self.get_component_rich_style(name, partial=True)
        return Style.from_color(
            full.color if part.color is not None else None,
            full.bgcolor if part.bgcolor is not None else None,
        ) + part.without_color

    def invalidate(self) -> None:
        """Forget every drawn line (search or filter changed) and redraw."""
        self._cache.clear()
        self.refresh()

    # -- data in ------------------------------------------------------------------------

    def rows_changed(self, added: int, dropped: int) -> None:
        """After the buffer grew (and maybe dropped lines): size, scroll, marker."""
        buffer = self.buffer
        self._resize_content(Size(buffer.width, buffer.row_count), scrollbars=False)
        if not self.tail:
            if dropped:
                # Keep the rows on screen where they are while older ones go.
                self._scroll_quietly(y=max(0, self.scroll_y - dropped))
            elif added:
                bottom = self.scroll_y + self.scrollable_content_region.height
                if bottom + added >= self.virtual_size.height:
                    self.refresh()
            self.new_lines += added
        self._sync_soon()

    def _sync_soon(self) -> None:
        """Bring scrollbars (and, following, the scroll position) up to the new size, at most
        FOLLOW_FPS times a second.

        A frame of a moving log redraws every row (about 10 ms here), and the scrollbars
        redraw whenever their size is set; at one a batch, the frames alone would take a
        third of the event loop while a container is chatty, and keys would wait behind
        them. Nobody reads a firehose at 60 frames a second.
        """
        if self._sync_timer is not None:
            return
        wait = self._last_sync + 1 / FOLLOW_FPS - time.monotonic()
        if wait <= 0:
            self._sync_now()
        else:
            self._sync_timer = self.set_timer(wait, self._sync_now)

    def _sync_now(self) -> None:
        self._sync_timer = None
        self._last_sync = time.monotonic()
        if self.container_size:
            self._scroll_update(self.virtual_size)
        if self.tail:
            self._scroll_quietly(y=self.max_scroll_y)
            self.refresh()

    def rows_rebuilt(self) -> None:
        """After the filter changed: every row may be another line."""
        self._resize_content(Size(self.buffer.width, self.buffer.row_count))
        self._cache.clear()
        if self.tail:
            self._scroll_quietly(y=self.max_scroll_y)
        elif self.cursor is not None:
            self.scroll_to_seq(self.cursor)
        self.refresh()

    def _resize_content(self, size: Size, *, scrollbars: bool = True) -> None:
        """Set the virtual size without a layout of the screen.

        ``virtual_size`` is a layout reactive: each batch would lay the whole screen out
        again (14 ms a time here, measured), though only the scrollbars change. So the size
        is set quietly and the scrollbars updated as Textual's own resize does (now, or by
        :meth:`_sync_soon`); a scrollbar that appears or goes still asks for its layout
        (those are layout reactives too).
        """
        if size == self.virtual_size:
            return
        if not self.container_size:
            self.virtual_size = size  # not laid out yet: the first layout sizes everything
            return
        self.set_reactive(Widget.virtual_size, size)
        if scrollbars:
            self._scroll_update(size)

    def _scroll_quietly(self, *, y: float) -> None:
        self._auto_scroll = True
        try:
            # force: right after a batch, layout has not yet shown the scrollbar that
            # allows scrolling; the position is clamped to the new size all the same.
            self.scroll_to(y=y, animate=False, force=True)
        finally:
            self._auto_scroll = False

    # -- following ----------------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._auto_scroll:
            return
        if new_value < old_value and new_value < self.max_scroll_y:
            self.tail = False  # the user scrolled up: stop following
        elif new_value > old_value and new_value >= self.max_scroll_y and self.cursor is None:
            # ... and back down to the end: follow again. Already at the end, and this may
            # run inside a scroll animation's step, which a new scroll must not stop.
            self._at_end = True
            try:
                self.tail = True
            finally:
                self._at_end = False

    def watch_tail(self, tail: bool) -> None:
        if tail:
            self.new_lines = 0
            self.cursor = None
            self.range_start = None
            if not self._at_end:
                self._scroll_quietly(y=self.max_scroll_y)  # redraws if it moves
        self.post_message(self.TailChanged(self, tail))

    def on_resize(self, event: events.Resize) -> None:
        if self.tail:
            self.call_after_refresh(self._end_if_following)

    def _end_if_following(self) -> None:
        # Called later: the user may have scrolled away meanwhile.
        if self.tail:
            self._scroll_quietly(y=self.max_scroll_y)

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size,
                      layout: bool = True) -> bool:
        changed = super()._size_updated(size, virtual_size, container_size, layout)
        # A horizontal scrollbar that just appeared takes a row: stay on the last line.
        if self.tail and self.scroll_y != self.max_scroll_y:
            self._scroll_quietly(y=self.max_scroll_y)
        return changed

    # -- cursor -------------------------------------------------------------------------

    def watch_cursor(self, old: int | None, new: int | None) -> None:
        self._cache.clear()
        self.refresh()
        self.post_message(self.CursorMoved(self))

    def watch_range_start(self) -> None:
        self._cache.clear()
        self.refresh()

    def scroll_to_seq(self, seq: int, *, center: bool = True) -> None:
        row = self.buffer.row_of(seq)
        if row is None:
            return
        height = self.scrollable_content_region.height
        top = self.scroll_y
        if center:
            if row < top or row >= top + height:
                self._scroll_quietly(y=max(0, row - height // 2))
        elif row < top:
            self._scroll_quietly(y=row)
        elif row >= top + height:
            self._scroll_quietly(y=row - height + 1)

    def bottom_seq(self) -> int | None:
        """The last line on screen (the newest while following)."""
        buffer = self.buffer
        if not buffer.row_count:
            return None
        height = max(1, self.scrollable_content_region.height)
        row = min(int(self.scroll_y) + height, buffer.row_count) - 1
        return buffer.seq_at(max(row, 0))

    def move_cursor(self, rows: int) -> None:
        buffer = self.buffer
        if not buffer.row_count:
            return
        if self.cursor is None:
            self.cursor = self.bottom_seq()
            return
        row = buffer.row_of(self.cursor)
        if row is None:
            row = min(buffer.row_at_or_after(self.cursor), buffer.row_count - 1)
        row = max(0, min(buffer.row_count - 1, row + rows))
        self.tail = False
        self.cursor = buffer.seq_at(row)
        self.scroll_to_seq(self.cursor, center=False)

    def action_toggle_cursor(self) -> None:
        if self.cursor is None:
            self.tail = False
            self.cursor = self.bottom_seq()
        else:
            self.cursor = None
            self.range_start = None

    def action_scroll_up(self) -> None:
        if self.cursor is not None:
            self.move_cursor(-1)
        else:
            super().action_scroll_up()

    def action_scroll_down(self) -> None:
        if self.cursor is not None:
            self.move_cursor(+1)
        else:
            super().action_scroll_down()

    def action_page_up(self) -> None:
        if self.cursor is not None:
            self.move_cursor(-max(1, self.scrollable_content_region.height - 1))
        else:
            super().action_page_up()

    def action_page_down(self) -> None:
        if self.cursor is not None:
            self.move_cursor(max(1, self.scrollable_content_region.height - 1))
        else:
            super().action_page_down()

    def action_scroll_end(self) -> None:
        self.tail = True

    def action_scroll_home(self) -> None:
        self.tail = False
        if self.cursor is not None and self.buffer.row_count:
            self.cursor = self.buffer.seq_at(0)
        self._scroll_quietly(y=0)

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_y) + event.y
        if 0 <= row < self.buffer.row_count and event.chain == 1:
            self.tail = False
            self.cursor = self.buffer.seq_at(row)

    # -- the v range: from range_start to the cursor -------------------------------------

    def selected_range(self) -> tuple[int, int] | None:
        """(first, last) sequence numbers of the ``v`` selection, or None."""
        if self.cursor is None or self.range_start is None:
            return None
        return (min(self.cursor, self.range_start), max(self.cursor, self.range_start))

    # -- mouse selection (Textual's text selection) --------------------------------------

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        buffer = self.buffer
        if not buffer.row_count:
            return None
        first = 0 if selection.start is None else max(0, selection.start.y)
        last = buffer.row_count - 1 if selection.end is None else selection.end.y
        last = min(last, buffer.row_count - 1)
        if last < first:
            return None
        texts = [buffer.entry(buffer.seq_at(r))[0] for r in range(first, last + 1)]
        start = None if selection.start is None else selection.start._replace(y=0)
        end = None if selection.end is None else selection.end._replace(y=last - first)
        return Selection(start, end).extract("\n".join(texts)), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self._cache.clear()
        self.refresh()

    # -- drawing ------------------------------------------------------------------------
    #
    # A following pane draws every row anew each frame (the rows move), so a row must be
    # cheap: segments are cut from the text directly, cropped to the screen and padded in
    # one pass, one Strip per row. Rich's Text (spans, render) serves only rows with search
    # hits or a mouse selection. The selection's offsets (Style meta) go on a row only when
    # Textual asks for one row outside drawing (a mouse hit test), not on every frame.

    def render_lines(self, crop: Region) -> list[Strip]:
        self._drawing = True
        try:
            return super().render_lines(crop)
        finally:
            self._drawing = False

    def _combined(self, mark: int, name: str | None) -> Style:
        """The widget's style (with the cursor's or range's background) plus a component."""
        key = (mark, name)
        style = self._combos.get(key)
        if style is None:
            base = self.rich_style
            if mark:
                base = base + self._style("cursor" if mark == 1 else "range")
            style = base if name is None else base + self._style(name)
            self._combos[key] = style
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.size.width
        buffer = self.buffer
        if row >= buffer.row_count:
            return Strip.blank(width, self._combined(0, None))
        seq = buffer.seq_at(row)
        mark = 0
        if seq == self.cursor:
            mark = 1
        elif self.range_start is not None:
            span = self.selected_range()
            if span is not None and span[0] <= seq <= span[1]:
                mark = 2
        selection = self.text_selection
        drawing = self._drawing
        key = (seq, mark, scroll_x, width)
        if drawing and selection is None:
            strip = self._cache.get(key)
            if strip is not None:
                return strip
        strip = self._draw(buffer.entry(seq), row, mark, scroll_x, width, selection,
                           None if drawing else row)
        if drawing and selection is None:
            self._cache[key] = strip
        return strip

    def _pieces(self, entry: Entry, mark: int) -> list[tuple[str, Style]]:
        """The row's text in styled pieces, uncropped (no search, no selection)."""
        text, level, kind = entry
        combined = self._combined
        if kind == MARKER:
            return [(text, combined(mark, "marker"))]
        if kind == ODOO and level is not None:
            at = text.find(level, 24)
            if at > 0:
                lname = level.lower()
                rest = ("warning-text" if lname == "warning" else
                        "error-text" if lname in ("error", "critical") else None)
                after = at + len(level)
                return [(text[:23], combined(mark, "timestamp")),
                        (text[23:at], combined(mark, None)),
                        (text[at:after], combined(mark, lname)),
                        (text[after:], combined(mark, rest))]
        if kind == CONTINUATION and level in ("ERROR", "CRITICAL"):
            return [(text, combined(mark, "traceback"))]
        return [(text, combined(mark, None))]

    def _rich_pieces(self, entry: Entry, row: int, mark: int,
                     selection: Selection | None) -> list[tuple[str, Style]]:
        """The same through Rich's Text, with search hits and the mouse selection."""
        text, _level, kind = entry
        line = Text(no_wrap=True, end="")
        for piece, style in self._pieces(entry, mark):
            line.append(piece, style)
        search = self.buffer.search
        if search is not None and kind != MARKER:
            hit = self._style("match-current" if mark == 1 else "match")
            for m in search.pattern.finditer(text):
                if m.end() > m.start():
                    line.stylize(hit, m.start(), m.end())
        if selection is not None:
            span = selection.get_span(row)
            if span is not None:
                start, end = span
                if end == -1:
                    end = len(line)
                line.stylize(self.screen.get_component_rich_style("screen--selection"),
                             start, end)
        return [(seg.text, seg.style or Style()) for seg in line.render(self.app.console)]

    def _draw(self, entry: Entry, row: int, mark: int, scroll_x: int, width: int,
              selection: Selection | None, offsets_row: int | None) -> Strip:
        text = entry[0]
        if len(text) > MAX_LINE_CELLS:
            entry = (text[: MAX_LINE_CELLS - 1] + "…", entry[1], entry[2])
            text = entry[0]
        if selection is not None or (self.buffer.search is not None and entry[2] != MARKER
                                     and self.buffer.search.pattern.search(text)):
            pieces = self._rich_pieces(entry, row, mark, selection)
        else:
            pieces = self._pieces(entry, mark)
        fill = self._combined(mark, None)
        if not text.isascii():
            # Wide characters: let Strip measure cells.
            strip = Strip([Segment(t, st) for t, st in pieces]).crop_extend(
                scroll_x, scroll_x + width, fill)
            return strip if offsets_row is None else strip.apply_offsets(scroll_x, offsets_row)
        end = scroll_x + width
        out: list[Segment] = []
        pos = 0
        for piece, style in pieces:
            n = len(piece)
            stop = pos + n
            if stop > scroll_x and pos < end and n:
                a = scroll_x - pos if pos < scroll_x else 0
                b = end - pos if stop > end else n
                out.append(Segment(piece[a:b], style))
            pos = stop
            if pos >= end:
                break
        used = max(0, min(pos, end) - scroll_x)
        if used < width:
            out.append(Segment(" " * (width - used), fill))
        if offsets_row is not None:
            x = scroll_x
            with_offsets = []
            for seg in out:
                meta = Style.from_meta({"offset": (x, offsets_row)})
                with_offsets.append(Segment(seg.text, seg.style + meta if seg.style else meta))
                x += len(seg.text)
            out = with_offsets
        return Strip(out, width)


class StatusLine(Widget):
    """One line of markup whose changes repaint it alone (a Static lays out again)."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
    }
    """

    markup: reactive[str] = reactive("", layout=False)

    def render(self) -> Content:
        return Content.from_markup(self.markup)


class NewLinesMarker(Widget):
    """ "1,234 new lines ↓": shown while the pane does not follow; a click follows again.

    The count changes with every batch; its width only with the number of digits, so only
    then does it ask for a layout.
    """

    label: reactive[str] = reactive("", layout=False)

    class Clicked(Message):
        pass

    def show_count(self, n: int) -> None:
        text = f"{n:,} new line{'s' if n != 1 else ''} ↓"
        if len(text) != len(self.label):
            self.styles.width = len(text) + 2  # its padding
        self.label = text

    def render(self) -> Content:
        return Content(self.label)

    def on_click(self) -> None:
        self.post_message(self.Clicked())


class SaveLogDialog(ModalScreen[Path | None]):
    """Asks where to save the shown lines. Dismisses with the path, or None (esc).

    Its frame matches dialogs/Dialog's, but it stands alone: a pane embedded anywhere (an
    operation's log) can save without the app's dialogs.
    """

    DEFAULT_CSS = """
    SaveLogDialog {
        align: center middle;
        background: $background 60%;
    }
    SaveLogDialog > .dialog {
        width: 76;
        max-width: 95%;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    SaveLogDialog .dialog-title {
        text-style: bold;
        color: $text-primary;
        padding: 0 0 1 0;
    }
    SaveLogDialog .dialog-hint {
        color: $text-warning;
        height: auto;
    }
    SaveLogDialog .dialog-buttons {
        height: auto;
        align-horizontal: right;
        padding: 1 0 0 0;
    }
    SaveLogDialog .dialog-buttons Button {
        margin: 0 0 0 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="save-log-cancel"),
    ]

    def __init__(self, default: Path, count: int) -> None:
        super().__init__()
        self.default = default
        self.count = count
        self._confirm_overwrite: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Save the log", classes="dialog-title")
            yield Static(f"{self.count:,} line{'s' if self.count != 1 else ''} to write.",
                         classes="dialog-text")
            yield Input(str(self.default), id="save-path")
            yield Static("", id="save-error", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="save-cancel")
                yield Button("Save", id="save-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#save-path", Input).focus()

    @on(Button.Pressed, "#save-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save-ok")
    @on(Input.Submitted, "#save-path")
    def _submit(self) -> None:
        raw = self.query_one("#save-path", Input).value.strip()
        error = self.query_one("#save-error", Static)
        if not raw:
            error.update("Give a file name.")
            return
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        if path.is_dir():
            error.update(f"{path} is a folder; give a file name in it.")
            return
        if not path.parent.is_dir():
            error.update(f"There is no folder {path.parent}.")
            return
        if path.exists() and self._confirm_overwrite != path:
            self._confirm_overwrite = path
            error.update(f"{path.name} exists. Press enter again to replace it.")
            return
        self.dismiss(path)


class LogPane(Widget, can_focus=False):
    """One log: a title, a search/filter prompt, the :class:`LogView`, its status.

    Feed it from a stream (``LogPane(stream_factory=...)``: a thread worker follows it from
    mount to unmount), or from code with :meth:`append_lines` (operation logs).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_tail", "Pause", id="log-pause"),
        Binding("slash", "search", "Search", id="log-search"),
        Binding("n", "next_match", "Next", id="log-next", show=False),
        Binding("N", "previous_match", "Previous", id="log-previous", show=False),
        Binding("f", "filter", "Filter", id="log-filter"),
        Binding("l", "cycle_level", "Level", id="log-level"),
        Binding("G", "follow", "End", id="log-end", show=False),
        Binding("g", "start", "Start", id="log-start", show=False),
        Binding("v", "select_range", "Select", id="log-select", show=False),
        Binding("y", "copy", "Copy", id="log-copy"),
        Binding("s", "save", "Save", id="log-save"),
        Binding("escape", "clear", "Clear", id="log-clear", show=False),
    ]

    DEFAULT_CSS = """
    LogPane {
        height: 1fr;
        width: 1fr;
    }
    LogPane > LogView {
        height: 1fr;
    }
    LogPane > #log-prompt {
        dock: top;
        height: 1;
    }
    LogPane > #log-prompt.-hidden {
        display: none;
    }
    LogPane #log-prompt-label {
        width: auto;
        padding: 0 1;
    }
    LogPane #log-prompt-input {
        width: 1fr;
        height: 1;
        border: none;
        padding: 0;
    }
    LogPane > #log-status-bar {
        dock: bottom;
        height: 1;
    }
    LogPane #log-status {
        width: 1fr;
        height: 1;
        padding: 0 1;
    }
    LogPane NewLinesMarker {
        height: 1;
        padding: 0 1;
    }
    """

    #: What the stream does: idle (no stream), connecting, following, reconnecting,
    #: stopped (the container), gone (no container), ended, failed.
    state: reactive[str] = reactive("idle", init=False, repaint=False)

    class LinesReady(Message):
        """Posted by the reader thread: pending lines wait (one message in flight)."""

    class StateChanged(Message):
        def __init__(self, pane: LogPane, state: str) -> None:
            super().__init__()
            self.pane = pane
            self.state = state

    def __init__(
        self,
        title: str = "",
        *,
        max_lines: int = 100_000,
        stream_factory: Callable[[], Any] | None = None,
        save_name: str = "havsh",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.border_title = title
        self.save_name = save_name
        self.buffer = LogBuffer(max_lines)
        self.stream_factory = stream_factory
        self._stream: Any = None
        self._parser = LineParser()
        self.min_level: str | None = None
        self._prompt_kind: str | None = None  # "search" or "filter" while the prompt shows
        self._lock = threading.Lock()
        self._pending: list[Entry] = []
        self._in_flight = False
        self._last_post = 0.0
        self._closing = False
        self._flush_timer: Any = None
        self._status_markup: str | None = None

    # -- composition --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-prompt", classes="-hidden"):
            yield Label("", id="log-prompt-label")
            # Disabled while hidden, or auto-focus would give it the keys.
            yield Input(id="log-prompt-input", disabled=True)
        yield LogView(self.buffer, id="log-view")
        # The status has a line of its own, not the border's subtitle: a change then
        # redraws one line, not the whole pane (keys answer faster while lines pour in).
        with Horizontal(id="log-status-bar"):
            yield StatusLine(id="log-status")
            marker = NewLinesMarker(id="log-new-lines")
            marker.display = False
            yield marker

    @property
    def view(self) -> LogView:
        return self.query_one("#log-view", LogView)

    @property
    def prompt_input(self) -> Input:
        return self.query_one("#log-prompt-input", Input)

    def on_mount(self) -> None:
        if self.buffer.row_count:
            self.view.rows_rebuilt()
        self._update_status()
        if self.stream_factory is not None:
            self.start_following()

    def on_unmount(self) -> None:
        self.stop()

    def focus(self, scroll_visible: bool = True) -> LogPane:  # type: ignore[override]
        self.view.focus(scroll_visible)
        return self

    # -- public API ---------------------------------------------------------------------

    @property
    def tail(self) -> bool:
        return self.view.tail

    @tail.setter
    def tail(self, value: bool) -> None:
        self.view.tail = value

    @property
    def line_count(self) -> int:
        """Lines held (at most max_lines)."""
        return len(self.buffer.entries)

    def shown_lines(self, *, markers: bool = False) -> list[str]:
        """The text of every line the pane shows, filters applied."""
        return self.buffer.shown_texts(markers=markers)

    @property
    def search_position(self) -> tuple[int | None, int]:
        """(1-based index of the cursor's match or None, number of matches)."""
        matches = self.buffer.matches
        cursor = self.view.cursor
        if cursor is None or not matches:
            return None, len(matches)
        i = bisect_left(matches, cursor)
        return (i + 1 if i < len(matches) and matches[i] == cursor else None), len(matches)

    def append_lines(self, lines: Iterable[str]) -> None:
        """Add lines from code (an operation's log, a static text). Odoo lines are parsed
        and coloured as in a container's log. Call it on the event loop."""
        parse = self._parser.parse
        self._add([entry_of(parse(text)) for raw in lines for text in raw.split("\n")])

    def append_items(self, items: Iterable[LogLine | StreamEvent]) -> None:
        """Add parsed lines and stream events (markers)."""
        self._add(entries_of(items, self._clock()))

    def _clock(self) -> Callable[[], datetime] | None:
        # The app's clock (frozen in tests) stamps markers.
        clock = getattr(self.app, "clock", None)
        return clock if callable(clock) else None

    def clear(self) -> None:
        self.buffer.clear()
        self.view.rows_rebuilt()
        self._update_status()

    def start_following(self) -> None:
        """Start (or restart) the reader worker on a new stream from stream_factory."""
        if self.stream_factory is None:
            raise ValueError("this pane has no stream")
        self.stop()
        self._closing = False
        stream = self.stream_factory()
        self._stream = stream
        self.state = "connecting"
        app = self.app
        self.run_worker(lambda: self._read(stream, app), thread=True, exclusive=True,
                        group=f"log-pane-{id(self)}", name=f"logs {self.title}",
                        exit_on_error=False)
        # Lines that came just after a post wait for the next one; at the end of a burst
        # there is none, so this timer takes them.
        self._flush_timer = self.set_interval(BATCH_SECONDS, self._flush_idle)

    def stop(self) -> None:
        """Stop following (the worker ends; the lines stay)."""
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None

    # -- the reader (a thread) ----------------------------------------------------------

    def _read(self, stream: Any, app: Any) -> None:
        worker = get_current_worker()
        batches = stream.batches() if hasattr(stream, "batches") else (
            [item] for item in stream.lines())
        clock = self._clock()
        try:
            for batch in batches:
                if worker.is_cancelled or self._closing:
                    break
                rows = entries_of(batch, clock)
                with self._lock:
                    self._pending.extend(rows)
                    waiting = len(self._pending)
                self._post_if_due(waiting)
                # Back-pressure: read no further while the UI is behind. The SSH window
                # fills, and the engine waits for us.
                while ((len(self._pending) >= PENDING_MAX
                        or app.message_queue_size > QUEUE_MAX)
                       and not worker.is_cancelled and not self._closing):
                    self._post_if_due(PENDING_MAX)
                    time.sleep(0.005)
        finally:
            stream.stop()
            self._post_if_due(BATCH_LINES)

    def _post_if_due(self, waiting: int) -> None:
        with self._lock:
            if self._in_flight or not self._pending:
                return
            if waiting < BATCH_LINES and time.monotonic() - self._last_post < BATCH_SECONDS:
                return  # the idle flush (a timer on the UI side) takes it
            self._in_flight = True
        self.post_message(self.LinesReady())

    def _flush_idle(self) -> None:
        if self._pending and not self._in_flight:
            self._drain()

    @on(LinesReady)
    def _on_lines_ready(self, event: LinesReady) -> None:
        event.stop()
        self._drain()

    def _drain(self) -> None:
        with self._lock:
            rows = self._pending[:DRAIN_MAX]
            del self._pending[:DRAIN_MAX]
            more = bool(self._pending)
            # More waiting: one more message (behind any key already queued), not a loop.
            self._in_flight = more
            self._last_post = time.monotonic()
        if more:
            self.post_message(self.LinesReady())
        if not rows:
            return
        if self.state in ("connecting", "idle"):
            self.state = "following"
        self._add(rows)

    def on_worker_state_changed(self, event: Any) -> None:
        # The stream ends by itself only without follow, or on an error LogStream does
        # not retry (a bug): say so instead of failing silently.
        from textual.worker import WorkerState

        if event.worker.group != f"log-pane-{id(self)}":
            return
        event.stop()
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.append_items([StreamEvent("ended", f"the log stream failed: {error}")])
            self.state = "failed"
        elif event.state == WorkerState.SUCCESS and not self._closing:
            self.state = "ended"

    # -- drawing the status ---------------------------------------------------------------

    def _add(self, entries: list[Entry]) -> None:
        added, dropped = self.buffer.append(entries)
        for entry in reversed(entries):
            if entry[2] == MARKER:
                self.state = EVENT_STATE.get(entry[1] or "", self.state)
                break
        if not self.is_mounted:
            return  # on_mount sizes the view from the buffer
        view = self.view
        view.rows_changed(added, dropped)
        self._update_marker()
        if self.buffer.search is not None and added:
            self._update_status()

    def watch_state(self) -> None:
        self._update_status()
        self.post_message(self.StateChanged(self, self.state))

    def _update_marker(self) -> None:
        view = self.view
        marker = self.query_one("#log-new-lines", NewLinesMarker)
        hidden = view.tail or view.new_lines == 0
        if not hidden:
            marker.show_count(view.new_lines)
        if marker.display == hidden:
            marker.display = not hidden

    def status_parts(self) -> list[tuple[str, str | None]]:
        """The pane's bottom line, as (text, theme colour variable) pieces."""
        parts: list[tuple[str, str | None]] = []
        view = self.view
        state = self.state
        if state == "reconnecting":
            parts.append(("⚠ reconnecting", "$text-warning"))
        elif state == "stopped":
            parts.append(("■ container stopped", "$text-warning"))
        elif state in ("gone", "failed"):
            parts.append(("✘ no stream", "$text-error"))
        elif state == "connecting":
            parts.append(("… connecting", None))
        elif state == "ended":
            parts.append(("■ end of log", None))
        if not view.tail:
            parts.append(("‖ paused", "$text-warning"))
        elif state == "following":
            parts.append(("● following", "$text-success"))
        if self.min_level is not None:
            parts.append((f"≥{self.min_level}", "$text-primary"))
        if self.buffer.filter is not None:
            parts.append((f"filter {self.buffer.filter.label}", "$text-primary"))
        if self.buffer.filter is not None or self.min_level is not None:
            parts.append((f"{self.buffer.row_count:,} shown", None))
        if self.buffer.search is not None:
            index, total = self.search_position
            parts.append((f"{self.buffer.search.label} {index or '–'}/{total}", "$text-accent"))
        return parts

    def status_text(self) -> str:
        """The pane's bottom line as plain text."""
        return " · ".join(text for text, _ in self.status_parts())

    def _update_status(self) -> None:
        if not self.is_mounted:
            return
        # Colours by markup, not by a class on the pane: a class change restyles the whole
        # pane (40 ms here, measured), and space would wait for it.
        markup = " · ".join(
            f"[{colour}]{escape(text)}[/]" if colour else escape(text)
            for text, colour in self.status_parts())
        if markup != self._status_markup:
            self._status_markup = markup
            self.query_one("#log-status", StatusLine).markup = markup
        reconnecting = self.state == "reconnecting"
        if reconnecting != self.has_class("-reconnecting"):
            self.set_class(reconnecting, "-reconnecting")

    @on(LogView.TailChanged)
    def _on_tail_changed(self, event: LogView.TailChanged) -> None:
        event.stop()
        self._update_marker()
        self._update_status()

    @on(LogView.CursorMoved)
    def _on_cursor_moved(self, event: LogView.CursorMoved) -> None:
        event.stop()
        if self.buffer.search is not None:
            self._update_status()

    @on(NewLinesMarker.Clicked)
    def _on_marker_clicked(self, event: NewLinesMarker.Clicked) -> None:
        event.stop()
        self.view.tail = True
        self.view.focus()

    # -- actions ------------------------------------------------------------------------

    def action_toggle_tail(self) -> None:
        self.view.tail = not self.view.tail

    def action_follow(self) -> None:
        self.view.tail = True

    def action_start(self) -> None:
        self.view.action_scroll_home()

    def action_cycle_level(self) -> None:
        i = LEVEL_STEPS.index(self.min_level) if self.min_level in LEVEL_STEPS else 0
        self.set_level(LEVEL_STEPS[(i + 1) % len(LEVEL_STEPS)])

    def set_level(self, level: str | None) -> None:
        """Show only lines at ``level`` or above (None: all); tracebacks go with their line."""
        if level is not None and level not in LEVEL_RANK:
            raise ValueError(f"unknown level {level!r}")
        self.min_level = level
        self.buffer.set_filter(level, self.buffer.filter)
        self.view.rows_rebuilt()
        self._update_status()

    def set_filter(self, text: str) -> None:
        """Show only lines containing ``text`` (``/regex/`` for a regex); "" shows all.
        Raises ValueError for a bad regex, the filter unchanged."""
        matcher = parse_matcher(text)
        self.buffer.set_filter(self.min_level, matcher)
        self.view.rows_rebuilt()
        self._update_status()

    def set_search(self, text: str) -> None:
        """Highlight ``text`` (``/regex/`` for a regex); "" ends the search.
        Raises ValueError for a bad regex, the search unchanged."""
        matcher = parse_matcher(text)
        self.buffer.set_search(matcher)
        self.view.invalidate()
        self._update_status()
        self.refresh_bindings()

    def action_search(self) -> None:
        self._open_prompt("search")

    def action_filter(self) -> None:
        self._open_prompt("filter")

    def action_next_match(self) -> None:
        self._jump_match(+1)

    def action_previous_match(self) -> None:
        self._jump_match(-1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_match", "previous_match"):
            return self.buffer.search is not None
        return True

    def _jump_match(self, direction: int) -> None:
        matches = self.buffer.matches
        if not matches:
            if self.buffer.search is not None:
                self.notify(f"No line matches {self.buffer.search.label}.", timeout=3)
            return
        view = self.view
        cursor = view.cursor
        if cursor is None:
            # From the bottom of the screen: n finds the next one below, N the one above.
            cursor = view.bottom_seq() or matches[-1]
            target = (bisect_left(matches, cursor + 1) if direction > 0
                      else bisect_left(matches, cursor + 1) - 1)
        elif direction > 0:
            target = bisect_left(matches, cursor + 1)
        else:
            target = bisect_left(matches, cursor) - 1
        if target >= len(matches):
            target = 0
            self.notify("Search wrapped to the first match.", timeout=2)
        elif target < 0:
            target = len(matches) - 1
            self.notify("Search wrapped to the last match.", timeout=2)
        view.tail = False
        view.cursor = matches[target]
        view.scroll_to_seq(matches[target])
        self._update_status()

    def action_select_range(self) -> None:
        view = self.view
        if view.cursor is None:
            view.tail = False
            view.cursor = view.bottom_seq()
        view.range_start = None if view.range_start is not None else view.cursor

    def copy_text(self) -> tuple[str, int] | None:
        """What ``y`` copies: the mouse selection, else the ``v`` range, else the cursor's
        line, else the last line on screen. (text, number of lines)."""
        view = self.view
        buffer = self.buffer
        if view.text_selection is not None:
            got = view.get_selection(view.text_selection)
            if got and got[0]:
                return got[0], got[0].count("\n") + 1
        span = view.selected_range()
        if span is not None:
            first = buffer.row_at_or_after(span[0])
            rows = range(first, buffer.row_count)
            texts = []
            for row in rows:
                seq = buffer.seq_at(row)
                if seq > span[1]:
                    break
                texts.append(buffer.entry(seq)[0])
            return "\n".join(texts), len(texts)
        line: int | None = view.cursor if view.cursor is not None else view.bottom_seq()
        if line is None or buffer.row_of(line) is None:
            return None
        return buffer.entry(line)[0], 1

    def action_copy(self) -> None:
        got = self.copy_text()
        if got is None:
            self.notify("Nothing to copy.", timeout=3)
            return
        text, n = got
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {n:,} line{'s' if n != 1 else ''} to the clipboard.", timeout=3)

    def action_save(self) -> None:
        texts = self.shown_lines()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        default = Path.cwd() / f"{self.save_name}-{stamp}.log"

        def chosen(path: Path | None) -> None:
            if path is not None:
                self._save(path, texts)

        self.app.push_screen(SaveLogDialog(default, len(texts)), chosen)

    def _save(self, path: Path, texts: list[str]) -> None:
        def write() -> None:
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    for text in texts:
                        fh.write(text)
                        fh.write("\n")
            except OSError as exc:
                self.app.call_from_thread(
                    self.notify, f"Could not save {path}: {exc.strerror or exc}",
                    severity="error")
                return
            self.app.call_from_thread(
                self.notify, f"Saved {len(texts):,} lines to {path}.", timeout=5)

        self.run_worker(write, thread=True, group="log-save", exit_on_error=False)

    def action_clear(self) -> None:
        view = self.view
        if self._prompt_kind is not None:
            self._close_prompt(clear=True)
        elif view.range_start is not None or view.cursor is not None:
            view.range_start = None
            view.cursor = None
        elif self.buffer.search is not None:
            self.set_search("")
        elif self.buffer.filter is not None:
            self.set_filter("")

    # -- the prompt ---------------------------------------------------------------------

    def _open_prompt(self, kind: str) -> None:
        self._prompt_kind = kind
        current = self.buffer.search if kind == "search" else self.buffer.filter
        label = self.query_one("#log-prompt-label", Label)
        label.update("Search" if kind == "search" else "Filter")
        prompt = self.prompt_input
        prompt.placeholder = "text, or /regex/  (enter: done · esc: clear)"
        with prompt.prevent(Input.Changed):
            prompt.value = current.text if current is not None else ""
        prompt.cursor_position = len(prompt.value)
        self.query_one("#log-prompt").remove_class("-hidden")
        prompt.disabled = False
        prompt.remove_class("-invalid")
        prompt.focus()

    def _close_prompt(self, *, clear: bool = False) -> None:
        kind = self._prompt_kind
        self._prompt_kind = None
        self.query_one("#log-prompt").add_class("-hidden")
        self.prompt_input.disabled = True
        if clear and kind == "search":
            self.set_search("")
        elif clear and kind == "filter":
            self.set_filter("")
        self.view.focus()

    def _apply_prompt(self, text: str) -> str | None:
        """Apply the prompt's text; the error message for a bad regex, else None."""
        try:
            if self._prompt_kind == "search":
                self.set_search(text)
            elif self._prompt_kind == "filter":
                self.set_filter(text)
        except ValueError as exc:
            return str(exc)
        return None

    @on(Input.Changed, "#log-prompt-input")
    def _on_prompt_changed(self, event: Input.Changed) -> None:
        event.stop()
        text = event.value
        if text.startswith("/") and not is_regex_syntax(text):
            # A /regex/ on its way: nothing to apply until its closing slash (enter takes
            # it as plain text, such as a URL path "/web/login").
            return
        # A regex is often half-typed ("/fo(/" on the way to "/fo(o|x)/"): say so in the
        # prompt's colour and keep the last good pattern, with no message yet.
        error = self._apply_prompt(text)
        self.prompt_input.set_class(error is not None, "-invalid")

    @on(Input.Submitted, "#log-prompt-input")
    def _on_prompt_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        error = self._apply_prompt(event.value)
        if error is not None:
            self.prompt_input.add_class("-invalid")
            self.notify(error, title="Bad regular expression", severity="error")
            return
        kind = self._prompt_kind
        self._close_prompt()
        if kind == "search" and self.buffer.matches:
            self._jump_match(-1 if self.view.cursor is None else +1)
        elif kind == "search" and self.buffer.search is not None:
            self.notify(f"No line matches {self.buffer.search.label}.", timeout=3)
