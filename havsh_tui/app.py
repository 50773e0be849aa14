"""The Textual App. ``make_app`` builds it from its dependencies, so tests hand it a
temporary HAVSH_HOME, a fake inventory or a frozen clock (posting's ``make_posting``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from havsh_tui.commands import HavshCommands
from havsh_tui.core.inventory import InventoryError, open_inventory
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import Settings, SettingsError, load_settings
from havsh_tui.screens.dashboard import DashboardScreen
from havsh_tui.screens.help import HelpScreen

Clock = Callable[[], datetime]


def styles_dir() -> Path:
    """The .tcss directory: inside the package in a wheel (hatch force-include maps the
    repo's top-level styles/ there), beside the package in a checkout."""
    packaged = Path(__file__).parent / "styles"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "styles"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HavshApp(App[int]):
    """havsh's TUI. Build it with :func:`make_app`."""

    TITLE = "havsh"
    CSS_PATH = [styles_dir() / "havsh.tcss"]

    # Top-level sections are modes, each with its own screen stack. Adding one is a line
    # here: "hosts": HostsScreen, "previews": PreviewsScreen, "logs": LogsScreen.
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "services": DashboardScreen,
    }
    DEFAULT_MODE: ClassVar[str] = "services"

    COMMANDS = App.COMMANDS | {HavshCommands}

    # Every binding has an id so settings.keymap can remap it (App.set_keymap).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding(
            "ctrl+p",
            "command_palette",
            "Palette",
            id="command-palette",
            # The footer already shows the palette key at its right edge.
            show=False,
            priority=True,
        ),
    ]

    def __init__(
        self,
        paths: AppPaths,
        settings: Settings,
        inventory: Any,
        *,
        pool: Any = None,
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.settings = settings
        self.inventory = inventory
        #: The per-host SSH connection pool (remote/); None until a screen needs a host.
        self.pool = pool
        #: "Now" for ages and timestamps; tests freeze it so snapshots are stable.
        self.clock = clock
        if settings.keymap:
            self.set_keymap(settings.keymap)

    def on_mount(self) -> None:
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            self.notify(
                f"Unknown theme {self.settings.theme!r} in {self.paths.settings};"
                f" using {self.theme!r}.",
                severity="warning",
            )

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Textual's own Quit and Keys duplicate "app: Quit" and "app: Help"; keep the rest
        # (themes, screenshot, maximize).
        for command in super().get_system_commands(screen):
            if command.title not in {"Quit", "Keys"}:
                yield command


def make_app(
    paths: AppPaths | None = None,
    settings: Settings | None = None,
    *,
    inventory: Any = None,
    pool: Any = None,
    clock: Clock | None = None,
) -> HavshApp:
    """Build the app. Anything not given is read from ``paths`` (default: the environment).

    The inventory is opened here, before the first frame, so the dashboard paints from it
    at once; it is only a local file (no network).
    """
    if paths is None:
        paths = AppPaths.from_env()
    paths.ensure()
    if settings is None:
        settings = load_settings(paths)
    if inventory is None:
        inventory = open_inventory(paths)
    return HavshApp(paths, settings, inventory, pool=pool, clock=clock or _utcnow)


def run_tui() -> int:
    """What ``havsh`` with no arguments runs. Returns the process exit code."""
    try:
        app = make_app()
    except (SettingsError, InventoryError, OSError) as exc:
        # A bad settings.toml, a locked or too-new inventory: say it plainly, no traceback.
        print(f"havsh: {exc}", file=sys.stderr)
        return 1
    result = app.run()
    return app.return_code if app.return_code is not None else (result or 0)
