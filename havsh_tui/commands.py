"""The one command palette provider: commands for the current screen and selection.

Titles read "<scope>: <Verb> <object>" ("service: Restart erp-prod", "services: Filter"),
so typing the scope lists everything that applies to it. It grows as screens do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp


@dataclass(frozen=True)
class PaletteCommand:
    title: str
    run: Callable[[], object]
    help: str


class HavshCommands(Provider):
    """Built from ``self.screen`` (the screen the palette was opened on) every time."""

    def commands(self) -> Iterator[PaletteCommand]:
        # Imported here: screens import app-level pieces, and this module is imported by app.py.
        from havsh_tui.screens.dashboard import DashboardScreen

        app = cast("HavshApp", self.app)
        screen = self.screen
        if isinstance(screen, DashboardScreen):
            yield PaletteCommand(
                "services: Filter",
                screen.action_filter,
                "Filter the services by name, host or status",
            )
            if screen.table.filter_text:
                yield PaletteCommand(
                    "services: Clear filter", screen.action_clear_filter, "Show every service"
                )
            service = screen.selected_service
            if service is not None:
                # Service actions (restart, copy, backup...) join here as ops/ gains them.
                yield PaletteCommand(
                    f"service: Open {service.name}",
                    screen.table.action_select_cursor,
                    f"Details of {service.name} on {service.host}",
                )
        yield PaletteCommand("app: Help", app.action_help, "Every key of this screen")
        yield PaletteCommand("app: Quit", app.action_quit, "Leave havsh")

    async def discover(self) -> Hits:
        for command in self.commands():
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.title),
                    command.run,
                    text=command.title,
                    help=command.help,
                )
