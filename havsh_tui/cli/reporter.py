"""The CLI's Reporter: steps and a progress line on stderr, or JSON lines with --json."""

from __future__ import annotations

import sys
import threading
import time

import click

from havsh_tui.cli import dumps


class CLIReporter:
    """With --json every event is one JSON object per line on stdout (then the result)."""

    def __init__(self, as_json: bool, verbose: bool = False) -> None:
        self.as_json = as_json
        self.verbose = verbose
        self._cancel = threading.Event()
        self._last_progress = 0.0
        self._tty = sys.stderr.isatty()

    def _emit(self, event: dict) -> None:
        click.echo(dumps(event))

    def step(self, name: str, state: str, detail: str = "") -> None:
        if self.as_json:
            self._emit({"event": "step", "step": name, "state": state, "detail": detail})
            return
        mark = {"running": "…", "done": "✓", "failed": "✗", "skipped": "-"}.get(state, state)
        if state == "running":
            text = f"{mark} {name}" + (f"  ({detail})" if detail else "")
            click.secho(text, err=True, dim=True)
        elif state == "failed":
            click.secho(f"{mark} {name}: {detail}", err=True, fg="red")
        else:
            click.secho(f"{mark} {name}" + (f"  {detail}" if detail else ""), err=True,
                        fg="green" if state == "done" else None)

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last_progress < 0.25:
            return
        self._last_progress = now
        if self.as_json:
            self._emit({"event": "progress", "done": done, "total": total, "message": message})
        elif self._tty:
            pct = f"{100 * done / total:5.1f}% " if total else ""
            click.echo(f"\r  {pct}{done / 1e6:,.1f} MB {message}\033[K", err=True, nl=False)

    def log(self, line: str) -> None:
        if self.as_json:
            if self.verbose:
                self._emit({"event": "log", "line": line})
        elif self.verbose:
            click.echo(f"  | {line}", err=True)

    def warning(self, message: str) -> None:
        if self.as_json:
            self._emit({"event": "warning", "message": message})
        else:
            click.secho(f"warning: {message}", err=True, fg="yellow")

    def cancelled(self) -> bool:
        return self._cancel.is_set()
