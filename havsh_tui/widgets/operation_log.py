"""The operation-log pane: an operation's steps, a progress bar and its log lines, fed by
:class:`TUIReporter` (the ops/ Reporter of the TUI) from the operation's worker thread.

The reporter never posts a message per log line. Lines go into a bounded buffer, and one
``LinesReady`` message is in flight at a time: the pane takes every buffered line when it
handles it (toolong's batching). A fast stream therefore costs one message per frame or
so, and a slow UI costs memory no larger than the buffer. Progress works the same way.

:class:`OperationScreen` is the modal that runs one operation in a thread worker with this
pane, and shows its outcome (or its failing step and log) before it closes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Log, ProgressBar, Static
from textual.worker import Worker, get_current_worker

from havsh_tui.dialogs import Dialog

T = TypeVar("T")

#: Step states, as ops/ reports them (ops/reporter.py).
PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"

ICONS = {PENDING: "○", RUNNING: "▶", DONE: "✔", FAILED: "✘", SKIPPED: "–"}


def human_bytes(n: float | None, digits: int = 1) -> str:
    """1536 -> '1.5 KB' (decimal units, as disks are sold and `df -H` shows)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.{digits}f} {unit}"
        value /= 1000
    return f"{value:.{digits}f} TB"


def human_pair(a: float, b: float) -> tuple[str, str]:
    """Two sizes to compare, with enough digits that they do not read the same."""
    for digits in (1, 2, 3):
        pair = human_bytes(a, digits), human_bytes(b, digits)
        if pair[0] != pair[1] or a == b:
            return pair
    return pair


def error_text(error: BaseException) -> str:
    """An error for the user: ops/ and remote/ write their messages for users; anything else
    is a bug, so its type is shown too."""
    from havsh_tui.ops.hosts import OpsError
    from havsh_tui.remote.ssh import RemoteError

    text = str(error)
    if isinstance(error, (OpsError, RemoteError, ValueError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def human_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def record_start(inventory: Any, kind: str, host: str | None, service: str | None) -> int | None:
    """Put an operation in the inventory's history as running; its id, or None when the
    history could not be written (the operation matters more than its record)."""
    from havsh_tui.core.model import utcnow

    try:
        return int(inventory.record_operation({
            "kind": kind, "host": host, "service": service, "state": "running",
            "started_at": utcnow(),
        }))
    except Exception:  # noqa: BLE001
        return None


def record_end(inventory: Any, op_id: int | None, state: str, detail: str = "",
               steps: list[tuple[str, str]] | None = None) -> None:
    """Close a history entry: done or failed, with a short detail and the steps."""
    from havsh_tui.core.model import utcnow

    if op_id is None:
        return
    changes: dict[str, Any] = {"state": state, "finished_at": utcnow(), "detail": detail[:500]}
    if steps is not None:
        changes["steps"] = [{"name": name, "state": st} for name, st in steps]
    try:
        inventory.update_operation(op_id, **changes)
    except Exception:  # noqa: BLE001
        pass


@dataclass
class StepRecord:
    """One step as the pane shows it."""

    name: str
    state: str = PENDING
    detail: str = ""
    started: float | None = None
    finished: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return max(self.finished - self.started, 0.0)


class TUIReporter:
    """The ops/ Reporter that feeds an :class:`OperationLog` from a worker thread.

    ``cancel`` (or the worker's own cancellation) makes :meth:`cancelled` true, which long
    loops in ops/ check between chunks. ``post_message`` is thread-safe; nothing here
    touches a widget.
    """

    #: Above this many unread lines the operation waits (briefly) for the UI to catch up.
    HIGH_WATER = 5_000

    def __init__(
        self,
        pane: OperationLog,
        *,
        cancel: threading.Event | None = None,
        worker: Worker[Any] | None = None,
        max_buffer: int = 20_000,
    ) -> None:
        self.pane = pane
        self.cancel = cancel or threading.Event()
        self.worker = worker
        self._lock = threading.Lock()
        self._lines: deque[str] = deque(maxlen=max_buffer)
        self._dropped = 0
        self._lines_pending = False
        self._progress: tuple[float, float | None, str] | None = None
        self._progress_pending = False

    # -- the Reporter protocol (worker thread) -------------------------------------------------

    def step(self, name: str, state: str, detail: str = "") -> None:
        self.pane.post_message(OperationLog.StepChanged(name, state, detail))

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        with self._lock:
            self._progress = (done, total, message)
            if self._progress_pending:
                return
            self._progress_pending = True
        self.pane.post_message(OperationLog.ProgressReady(self))

    def log(self, line: str) -> None:
        with self._lock:
            if len(self._lines) == self._lines.maxlen:
                self._dropped += 1
            self._lines.append(line)
            backlog = len(self._lines)
            if self._lines_pending:
                post = False
            else:
                self._lines_pending = post = True
        if post:
            self.pane.post_message(OperationLog.LinesReady(self))
        elif backlog > self.HIGH_WATER:
            # Back-pressure: the UI is behind; give it a moment rather than race ahead.
            deadline = time.monotonic() + 0.5
            while self._lines_pending and time.monotonic() < deadline and not self.cancelled():
                time.sleep(0.005)

    def warning(self, message: str) -> None:
        self.pane.post_message(OperationLog.Warned(message))

    def cancelled(self) -> bool:
        return self.cancel.is_set() or bool(self.worker is not None and self.worker.is_cancelled)

    # -- the pane's side (event loop) ----------------------------------------------------------

    def take_lines(self) -> tuple[list[str], int]:
        with self._lock:
            lines = list(self._lines)
            self._lines.clear()
            dropped, self._dropped = self._dropped, 0
            self._lines_pending = False
        return lines, dropped

    def take_progress(self) -> tuple[float, float | None, str] | None:
        with self._lock:
            progress, self._progress = self._progress, None
            self._progress_pending = False
        return progress


class StepList(Widget):
    """The steps, one a line: icon, name, detail, duration. Colours come from the .tcss."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        f"step-list--{state}" for state in (PENDING, RUNNING, DONE, FAILED, SKIPPED)
    } | {"step-list--detail"}

    DEFAULT_CSS = "StepList { height: auto; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.steps: list[StepRecord] = []

    def render(self) -> RenderableType:
        text = Text(no_wrap=True, overflow="ellipsis")
        width = max((len(step.name) for step in self.steps), default=0)
        detail_style = self.get_component_rich_style("step-list--detail", partial=True)
        for index, step in enumerate(self.steps):
            if index:
                text.append("\n")
            style = self.get_component_rich_style(f"step-list--{step.state}", partial=True)
            text.append(f"{ICONS.get(step.state, '?')} {step.name:<{width}}", style)
            if step.seconds is not None:
                text.append(f" {human_seconds(step.seconds):>7}", detail_style)
            if step.detail:
                text.append(f"  {step.detail}", detail_style)
        return text

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return max(len(self.steps), 1)


class OperationLog(Vertical):
    """Steps, a progress bar and the log of one operation. Feed it with :meth:`reporter`."""

    class StepChanged(Message):
        def __init__(self, name: str, state: str, detail: str = "") -> None:
            super().__init__()
            self.name = name
            self.state = state
            self.detail = detail

    class LinesReady(Message):
        def __init__(self, reporter: TUIReporter) -> None:
            super().__init__()
            self.reporter = reporter

    class ProgressReady(Message):
        def __init__(self, reporter: TUIReporter) -> None:
            super().__init__()
            self.reporter = reporter

    class Warned(Message):
        def __init__(self, message: str) -> None:
            super().__init__()
            self.message = message

    def __init__(
        self,
        expected_steps: Iterable[str] = (),
        *,
        max_lines: int = 5_000,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._expected = list(expected_steps)
        self._max_lines = max_lines
        #: The last lines, kept for the failure summary even once the Log has pruned them.
        self.tail: deque[str] = deque(maxlen=200)
        self.warnings: list[str] = []
        self.line_count = 0
        self._unseen = 0
        self._progress_started: tuple[float, float] | None = None
        #: The operation ended: late progress (posted just before the end) is not shown.
        self.finished = False

    def compose(self) -> ComposeResult:
        steps = StepList(id="op-steps")
        steps.steps = [StepRecord(name) for name in self._expected]
        # Steps beside the log, not above it: a copy has seventeen steps, and the log must
        # keep enough lines to be read while they run.
        with Horizontal(id="op-main"):
            with VerticalScroll(id="op-steps-scroll"):
                yield steps
            yield Log(id="op-log", max_lines=self._max_lines, auto_scroll=False)
        with Horizontal(id="op-progress-row", classes="-hidden"):
            yield ProgressBar(id="op-progress", show_eta=False)
            yield Static("", id="op-rate")
        yield Static("", id="op-unseen", classes="-hidden")

    def reporter(
        self, *, cancel: threading.Event | None = None, worker: Worker[Any] | None = None
    ) -> TUIReporter:
        return TUIReporter(self, cancel=cancel, worker=worker)

    # -- state for screens and tests -----------------------------------------------------------

    @property
    def steps(self) -> list[StepRecord]:
        return self.query_one(StepList).steps

    def step_states(self) -> list[tuple[str, str]]:
        return [(step.name, step.state) for step in self.steps]

    @property
    def failed_step(self) -> StepRecord | None:
        return next((step for step in self.steps if step.state == FAILED), None)

    def finish(self, ok: bool) -> None:
        """The operation ended: settle what is still running and hide the progress bar."""
        self.finished = True
        now = self._now()
        for step in self.steps:
            if step.state == RUNNING:
                step.state = DONE if ok else FAILED
                step.finished = now
        self.query_one("#op-progress-row").add_class("-hidden")
        self.query_one(StepList).refresh(layout=True)

    # -- message handlers ----------------------------------------------------------------------

    def _now(self) -> float:
        # The app's clock when it has one (tests freeze it, so durations in snapshots are
        # stable); the monotonic clock otherwise.
        clock = getattr(self.app, "clock", None)
        return clock().timestamp() if callable(clock) else time.monotonic()

    @on(StepChanged)
    def _on_step(self, event: StepChanged) -> None:
        event.stop()
        step_list = self.query_one(StepList)
        steps = step_list.steps
        now = self._now()
        record = next((s for s in steps if s.name == event.name), None)
        if record is None:
            # A step nobody announced (a pull, bootstrap's own steps): it goes right before
            # the first step still to come, so the list keeps the order things happened in.
            record = StepRecord(event.name)
            at = next((i for i, s in enumerate(steps) if s.state == PENDING), len(steps))
            steps.insert(at, record)
        if event.state == RUNNING:
            record.started = now
            record.finished = None
            self._reset_progress()
        elif event.state in (DONE, FAILED, SKIPPED):
            if record.started is None:
                record.started = now
            record.finished = now
        record.state = event.state
        if event.detail or event.state == RUNNING:
            record.detail = event.detail
        step_list.refresh(layout=True)

    @on(LinesReady)
    def _on_lines(self, event: LinesReady) -> None:
        event.stop()
        lines, dropped = event.reporter.take_lines()
        if dropped:
            lines.insert(0, f"… {dropped} lines dropped (the display fell behind)")
        if not lines:
            return
        log = self.query_one("#op-log", Log)
        tailing = log.is_vertical_scroll_end or log.max_scroll_y == 0
        log.write_lines(lines, scroll_end=tailing)
        self.tail.extend(lines)
        self.line_count += len(lines)
        unseen = self.query_one("#op-unseen", Static)
        if tailing:
            self._unseen = 0
            unseen.add_class("-hidden")
        else:
            self._unseen += len(lines)
            unseen.update(f"↓ {self._unseen} new lines: press end to follow")
            unseen.remove_class("-hidden")

    @on(ProgressReady)
    def _on_progress(self, event: ProgressReady) -> None:
        event.stop()
        progress = event.reporter.take_progress()
        if progress is None or self.finished:
            return
        done, total, message = progress
        row = self.query_one("#op-progress-row")
        row.remove_class("-hidden")
        bar = self.query_one("#op-progress", ProgressBar)
        now = time.monotonic()
        if self._progress_started is None:
            self._progress_started = (now, done)
        bar.update(total=total if total else None, progress=done if total else 0)
        parts = [message] if message else []
        t0, d0 = self._progress_started
        elapsed = now - t0
        if total != 1:
            parts.append(human_bytes(done) + (f" of {human_bytes(total)}" if total else ""))
        if elapsed >= 0.5 and done > d0:
            rate = (done - d0) / elapsed
            if total != 1:
                parts.append(f"{human_bytes(rate)}/s")
            if total and total > done and rate > 0:
                parts.append(f"ETA {human_seconds((total - done) / rate)}")
        self.query_one("#op-rate", Static).update(" · ".join(parts))

    @on(Warned)
    def _on_warning(self, event: Warned) -> None:
        event.stop()
        self.warnings.append(event.message)
        self.query_one("#op-log", Log).write_line(f"WARNING: {event.message}")
        self.tail.append(f"WARNING: {event.message}")
        self.notify(event.message, severity="warning", timeout=8)

    def _reset_progress(self) -> None:
        self._progress_started = None
        self.query_one("#op-progress-row").add_class("-hidden")
        self.query_one("#op-rate", Static).update("")

    def follow(self) -> None:
        """Scroll to the end and keep following new lines."""
        self.query_one("#op-log", Log).scroll_end(animate=False)
        self._unseen = 0
        self.query_one("#op-unseen", Static).add_class("-hidden")


# -- the modal that runs one operation -------------------------------------------------------------


@dataclass
class OperationOutcome(Generic[T]):
    """How an :class:`OperationScreen` ended: the operation's result, or its error."""

    ok: bool
    result: T | None = None
    error: BaseException | None = None
    cancelled: bool = False
    steps: list[tuple[str, str]] = field(default_factory=list)


class OperationScreen(Dialog[OperationOutcome[T]]):
    """Runs ``operation(reporter)`` in a thread worker, shows its steps as they happen, then
    its outcome: :meth:`describe_result` on success, the failing step and the tail of its log
    on failure. The user closes it; esc while it runs asks the operation to stop."""

    #: The last line of a failure: what the operation undid (screens say it for theirs).
    FAILURE_NOTE: ClassVar[str] = ""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel / close", id="operation-close"),
        Binding("end", "follow", "Follow log", id="operation-follow", show=False),
    ]

    class Finished(Message):
        def __init__(self, outcome: OperationOutcome[Any]) -> None:
            super().__init__()
            self.outcome = outcome

    def __init__(
        self,
        title: str,
        operation: Callable[[TUIReporter], T],
        *,
        expected_steps: Iterable[str] = (),
        subtitle: str = "",
        record: tuple[Any, str, str | None, str | None] | None = None,
    ) -> None:
        super().__init__(classes="operation-screen")
        #: (inventory, kind, host, service): where the operation is put in the history.
        self.record = record
        self.title_text = title
        self.subtitle_text = subtitle
        self.operation = operation
        #: What the screen was opened to run (a retry after a push runs it again).
        self._first_operation = operation
        self.expected_steps = list(expected_steps)
        self.cancel_event = threading.Event()
        self.outcome: OperationOutcome[T] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="operation-dialog", classes="dialog"):
            yield Static(self.title_text, id="operation-title", classes="dialog-title")
            if self.subtitle_text:
                yield Static(self.subtitle_text, id="operation-subtitle", classes="dialog-hint")
            yield OperationLog(self.expected_steps, id="operation-log")
            yield Static("", id="operation-result", classes="-hidden")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="operation-cancel", variant="error")
                push = Button("Push image…", id="operation-push")
                push.display = False
                yield push
                yield Button("Close", id="operation-done", variant="primary", disabled=True)

    @property
    def pane(self) -> OperationLog:
        return self.query_one("#operation-log", OperationLog)

    def on_mount(self) -> None:
        self._run()

    @work(thread=True, exclusive=True, group="operation", exit_on_error=False)
    def _run(self) -> None:
        # The screen shows the failure itself (the failing step and its log), so nothing is
        # raised out of the worker: the app's central handler would report it a second time.
        reporter = self.pane.reporter(cancel=self.cancel_event, worker=get_current_worker())
        op_id = record_start(*self.record) if self.record else None
        try:
            result = self.operation(reporter)
        except BaseException as exc:  # noqa: BLE001 - shown in this screen
            outcome: OperationOutcome[T] = OperationOutcome(
                False, error=exc, cancelled=self.cancel_event.is_set()
            )
        else:
            outcome = OperationOutcome(True, result=result)
        if self.record:
            detail = "" if outcome.ok else error_text(outcome.error)  # type: ignore[arg-type]
            record_end(self.record[0], op_id, "done" if outcome.ok else "failed", detail)
        # Through the pane, from which it bubbles up to this screen: the pane handles every
        # step, line and progress the operation posted before it ended first (one queue).
        self.pane.post_message(self.Finished(outcome))

    @on(Finished)
    def _on_finished(self, event: Finished) -> None:
        event.stop()
        outcome = event.outcome
        pane = self.pane
        pane.finish(outcome.ok)
        outcome.steps = pane.step_states()
        self.outcome = outcome
        result = self.query_one("#operation-result", Static)
        result.remove_class("-hidden")
        result.set_class(outcome.ok, "-ok")
        result.set_class(not outcome.ok, "-failed")
        self.query_one("#operation-dialog").set_class(not outcome.ok, "-danger")
        result.update(self.describe_result(outcome.result) if outcome.ok
                      else self.describe_failure(outcome.error))
        self.query_one("#operation-cancel", Button).display = False
        done = self.query_one("#operation-done", Button)
        done.disabled = False
        done.focus()
        missing = None if outcome.ok or outcome.cancelled else self.image_missing()
        push = self.query_one("#operation-push", Button)
        push.display = missing is not None
        if missing is not None:
            push.focus()

    # -- an image the host lacks: push it, then run the operation again ----------------------

    def image_missing(self) -> Any:
        """The ImageMissing behind the failure, when a push can mend it (the app has an
        inventory to find the sources in)."""
        from havsh_tui.ops.images import image_missing_of

        if self.outcome is None or not hasattr(self.app, "inventory"):
            return None
        return image_missing_of(self.outcome.error)

    @on(Button.Pressed, "#operation-push")
    def _on_push(self, event: Button.Pressed) -> None:
        event.stop()
        from havsh_tui.dialogs.push_image import PushImageDialog

        missing = self.image_missing()
        if missing is None:
            return
        reason = (f"{missing.host} has no image {missing.ref} and could not pull it "
                  f"({missing.pull_error}). Stream it from an engine that has it; then this "
                  "operation runs again.")
        self.app.push_screen(PushImageDialog(missing.host, missing.ref, reason=reason),
                             self._push_then_retry)

    async def _push_then_retry(self, request: Any) -> None:
        if request is None:
            return
        from havsh_tui.dialogs.push_image import push_operation

        push = push_operation(self.app, request)
        again = self._first_operation

        def operation(reporter: TUIReporter) -> T:
            push(reporter)
            return again(reporter)

        await self.restart(operation, [f"push {request.image}"])

    async def restart(self, operation: Callable[[TUIReporter], T],
                      first_steps: Iterable[str] = ()) -> None:
        """Run ``operation`` in this screen again, on a fresh pane (the failed run's outcome
        goes)."""
        self.operation = operation
        self.outcome = None
        self.cancel_event = threading.Event()
        await self.pane.remove()
        pane = OperationLog([*first_steps, *self.expected_steps], id="operation-log")
        await self.query_one("#operation-dialog").mount(pane, before="#operation-result")
        result = self.query_one("#operation-result", Static)
        result.update("")
        result.add_class("-hidden")
        result.remove_class("-ok", "-failed")
        self.query_one("#operation-dialog").remove_class("-danger")
        self.query_one("#operation-push", Button).display = False
        cancel = self.query_one("#operation-cancel", Button)
        cancel.display = True
        cancel.disabled = False
        self.query_one("#operation-done", Button).disabled = True
        self._run()

    def describe_result(self, result: T | None) -> RenderableType:
        """What the user reads when the operation succeeded; screens override it."""
        return Text("Done.")

    def describe_failure(self, error: BaseException | None) -> RenderableType:
        """The failing step, the error and the tail of its log (StepFailed carries it)."""
        step = getattr(error, "step", None) or (
            self.pane.failed_step.name if self.pane.failed_step else None
        )
        text = Text()
        if self.outcome is not None and self.outcome.cancelled:
            text.append("Cancelled. ", "bold")
        text.append(f"Failed at step '{step}': " if step else "Failed: ", "bold")
        message = error_text(error) if error is not None else "unknown error"
        # StepFailed's own message starts with the step: say it once.
        text.append(message.removeprefix(f"step '{step}' failed: "))
        log = getattr(error, "log", "") or "\n".join(list(self.pane.tail)[-12:])
        if log:
            lines = log.strip().splitlines()[-12:]
            text.append("\n\n" + "\n".join(lines), "dim")
        if self.FAILURE_NOTE:
            text.append("\n\n" + self.FAILURE_NOTE)
        return text

    def action_close(self) -> None:
        if self.outcome is None:
            if not self.cancel_event.is_set():
                self.cancel_event.set()
                self.notify("Stopping at the next safe point…", timeout=4)
                self.query_one("#operation-cancel", Button).disabled = True
            return
        self.dismiss(self.outcome)

    def action_cancel(self) -> None:
        # Dialog binds esc to this: cancel the operation, never just hide it.
        self.action_close()

    def action_follow(self) -> None:
        self.pane.follow()

    @on(Button.Pressed, "#operation-cancel")
    def _on_cancel(self) -> None:
        self.action_close()

    @on(Button.Pressed, "#operation-done")
    def _on_done(self) -> None:
        self.action_close()


class FailureDialog(Dialog[None]):
    """An operation failed at a step (ops.services.StepFailed): which step, what it said,
    and the tail of its log. The app's failure handler opens it for workers that raise one;
    esc, enter or Close dismisses it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "cancel", "Close", id="failure-close", show=False),
    ]

    def __init__(self, title: str, error: BaseException, *, lines: int = 40) -> None:
        super().__init__(classes="failure-screen")
        self.title_text = title
        self.error = error
        self.lines = lines

    def compose(self) -> ComposeResult:
        step = getattr(self.error, "step", None)
        message = error_text(self.error)
        if step:
            message = message.removeprefix(f"step '{step}' failed: ")
        log = (getattr(self.error, "log", "") or "").strip()
        with Vertical(id="failure-dialog", classes="dialog -danger"):
            yield Static(Text(self.title_text), classes="dialog-title")
            head = Text()
            if step:
                head.append(f"Failed at step '{step}': ", "bold")
            head.append(message)
            yield Static(head, id="failure-message", classes="dialog-text")
            if log:
                tail = "\n".join(log.splitlines()[-self.lines:])
                with VerticalScroll(id="failure-log"):
                    yield Static(Text(tail), id="failure-log-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="failure-close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#failure-close", Button).focus()

    @on(Button.Pressed, "#failure-close")
    def _close(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)
