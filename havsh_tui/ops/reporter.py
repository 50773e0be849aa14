"""The one channel from an operation to whoever watches it: the TUI, the CLI, or a test."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class OperationCancelled(Exception):
    """Raised inside an operation when its reporter says it was cancelled."""


@runtime_checkable
class Reporter(Protocol):
    def step(self, name: str, state: str, detail: str = "") -> None:
        """A named step changes state: running, done, failed or skipped."""

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Progress of the current step (bytes, rows, or a fraction when total is 1)."""

    def log(self, line: str) -> None:
        """A line of output from the host (a container's log, a command's output)."""

    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the operation."""

    def cancelled(self) -> bool:
        """True when the user asked to stop; long loops check it between chunks."""


class NullReporter:
    def step(self, name: str, state: str, detail: str = "") -> None:
        pass

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


@dataclass
class RecordingReporter:
    """Keeps everything it is told; for tests, and for the operation history."""

    events: list[tuple[str, tuple]] = field(default_factory=list)
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def step(self, name: str, state: str, detail: str = "") -> None:
        self.events.append(("step", (name, state, detail)))

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        self.events.append(("progress", (done, total, message)))

    def log(self, line: str) -> None:
        self.events.append(("log", (line,)))

    def warning(self, message: str) -> None:
        self.events.append(("warning", (message,)))

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def steps(self) -> list[tuple[str, str]]:
        return [(a[0], a[1]) for k, a in self.events if k == "step"]

    def lines(self) -> list[str]:
        return [a[0] for k, a in self.events if k == "log"]


def check_cancelled(reporter: Reporter) -> None:
    if reporter.cancelled():
        raise OperationCancelled("cancelled by the user")
