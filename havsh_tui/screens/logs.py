"""The logs section: one or more services' container logs, side by side or stacked.

Each pane (widgets/log_pane.py) follows its own service with its own search, filter and
pause. ``app.action_open_logs(service)`` (``L`` on the dashboard) lands here and adds a pane,
or focuses the one that service already has.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from havsh_tui.core.model import Service
from havsh_tui.core.names import container_name
from havsh_tui.ops.logs import LogStream
from havsh_tui.stylesheets import styles_dir
from havsh_tui.widgets.log_pane import LogPane

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp

#: Lines of history a new pane starts with, before it follows.
INITIAL_TAIL = 2_000

EMPTY_TEXT = (
    "No log is open.\n\n"
    "In the services section (1), select a service and press L to follow its log here. "
    "Open several to see them side by side; t stacks them."
)


def pane_id(host: str, name: str) -> str:
    """A DOM id for a service's pane (ids take letters, digits, - and _ only)."""
    safe = re.compile(r"[^A-Za-z0-9_-]")
    return f"log-{safe.sub('-', host)}--{safe.sub('-', name)}"


class LogsScreen(Screen[None]):
    """The base screen of the ``logs`` mode."""

    CSS_PATH = styles_dir() / "logs.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "toggle_layout", "Layout", id="logs-layout"),
        Binding("x", "close_pane", "Close", id="logs-close"),
    ]

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        #: What was opened before the screen was composed.
        self._queued: list[Service | str | LogPane] = []
        #: Set in on_mount (is_mounted only turns true after on_mount returns).
        self._ready = False

    @property
    def havsh(self) -> HavshApp:
        return cast("HavshApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(id="header")
        yield Static(EMPTY_TEXT, id="logs-empty")
        yield Container(id="log-panes")
        yield Footer(id="footer")

    def on_mount(self) -> None:
        self._ready = True
        self._update()
        queued, self._queued = self._queued, []
        for item in queued:
            if isinstance(item, LogPane):
                self.add_pane(item)
            else:
                self.open_service(item)

    @property
    def panes(self) -> list[LogPane]:
        """The open panes, in order (none before the screen is composed)."""
        return list(self.query("#log-panes > LogPane").results(LogPane))

    @property
    def stacked(self) -> bool:
        return any(c.has_class("-stacked") for c in self.query("#log-panes"))

    def pane_for(self, host: str, name: str) -> LogPane | None:
        for pane in self.panes:
            if pane.id == pane_id(host, name):
                return pane
        return None

    # -- opening ------------------------------------------------------------------------

    def _resolve(self, service: Service | str) -> Service | None:
        if isinstance(service, Service):
            return service
        host = None
        name = service
        if "/" in service:
            host, name = service.split("/", 1)
        try:
            return cast(Service, self.havsh.inventory.get_service(name, host=host))
        except Exception as exc:  # noqa: BLE001 - NotFound, Ambiguous: their text is for users
            self.notify(str(exc), title="No such service", severity="error")
            return None

    def open_service(self, service: Service | str) -> LogPane | None:
        """Follow ``service`` (a Service, "name" or "host/name") in a pane; focus its
        pane if it has one. Returns the pane (None before mount or for an unknown name)."""
        if not self._ready:
            self._queued.append(service)
            return None
        resolved = self._resolve(service)
        if resolved is None:
            return None
        existing = self.pane_for(resolved.host, resolved.name)
        if existing is not None:
            existing.focus()
            return existing
        app = self.havsh
        try:
            host = app.inventory.get_host(resolved.host)
        except Exception as exc:  # noqa: BLE001 - NotFound: its text is for users
            self.notify(str(exc), title=f"Cannot follow {resolved.name}", severity="error")
            return None
        pool = app.pool
        container = container_name(resolved.name)

        def stream() -> Any:
            return LogStream(lambda: pool.session(host), container, tail=INITIAL_TAIL)

        pane = LogPane(
            f"{resolved.name} @ {resolved.host}",
            max_lines=app.settings.log_max_lines,
            stream_factory=stream,
            save_name=resolved.name,
            id=pane_id(resolved.host, resolved.name),
        )
        self.add_pane(pane)
        return pane

    def add_pane(self, pane: LogPane) -> None:
        """Add a pane (from a stream, or lines given by code) and focus it."""
        if not self._ready:
            self._queued.append(pane)
            return
        self.query_one("#log-panes").mount(pane)
        self._update()
        self.call_after_refresh(pane.focus)

    # -- actions ------------------------------------------------------------------------

    def action_toggle_layout(self) -> None:
        container = self.query_one("#log-panes")
        container.toggle_class("-stacked")
        self._update()

    def _focused_pane(self) -> LogPane | None:
        node = self.focused
        while node is not None and not isinstance(node, LogPane):
            node = node.parent  # type: ignore[assignment]
        return node

    async def action_close_pane(self) -> None:
        pane = self._focused_pane()
        if pane is None:
            return
        panes = self.panes
        index = panes.index(pane)
        await pane.remove()  # its stream stops on unmount
        rest = self.panes
        if rest:
            rest[min(index, len(rest) - 1)].focus()
        self._update()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_pane":
            return bool(self.panes)
        if action == "toggle_layout":
            return len(self.panes) > 1
        return True

    def _update(self) -> None:
        panes = self.panes
        self.query_one("#logs-empty").display = not panes
        self.query_one("#log-panes").display = bool(panes)
        n = len(panes)
        how = "stacked" if self.stacked else "side by side"
        self.sub_title = (
            "no log open" if not n else f"{n} log{'s' if n != 1 else ''}"
            + (f", {how}" if n > 1 else "")
        )
        self.refresh_bindings()
