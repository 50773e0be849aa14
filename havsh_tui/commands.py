"""The one command palette provider: commands for the current screen and selection.

Titles read "<scope>: <Verb> <object>" ("service: Restart erp-prod", "services: Filter"),
so typing the scope lists everything that applies to it. A title ending in "…" opens a
dialog first. Only what applies now is listed: the same check_action that greys out a key
in the footer leaves its command out here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp
    from havsh_tui.core.model import Service

#: (action, title with {name}, help with {name} and {host}) for a selected service.
SERVICE_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("open_service", "service: Open {name}", "Details of {name} on {host}"),
    ("start_service", "service: Start {name}", "Start {name} on {host}"),
    ("stop_service", "service: Stop {name}", "Stop {name} on {host} (its data is kept)"),
    ("restart_service", "service: Restart {name}", "Restart {name} on {host}"),
    ("copy_service", "service: Copy {name}…",
     "Copy {name}'s database and filestore to a new service"),
    ("update_image", "service: Update image of {name}…",
     "Pull or push a new image and recreate {name}'s container"),
    ("edit_config", "service: Edit config of {name}", "{name}'s extra odoo.conf keys"),
    ("neutralize_service", "service: Neutralize {name}…",
     "Archive {name}'s mail servers and stop its crons"),
    ("delete_service", "service: Delete {name}…",
     "Remove {name}'s container, database, role and volume"),
    ("service_logs", "service: Logs of {name}", "Follow {name}'s Odoo log"),
)


@dataclass(frozen=True)
class PaletteCommand:
    title: str
    run: Callable[[], object]
    help: str


def _enabled(screen: Any, action: str) -> bool:
    """An action the screen has and allows now (check_action True)."""
    if not callable(getattr(screen, f"action_{action}", None)):
        return False
    return screen.check_action(action, ()) is True


def service_commands(screen: Any, service: Service) -> Iterator[PaletteCommand]:
    """The commands on ``service`` that ``screen`` offers and allows now."""
    for action, title, help_text in SERVICE_COMMANDS:
        if _enabled(screen, action):
            yield PaletteCommand(
                title.format(name=service.name),
                getattr(screen, f"action_{action}"),
                help_text.format(name=service.name, host=service.host),
            )


class HavshCommands(Provider):
    """Built from ``self.screen`` (the screen the palette was opened on) every time."""

    def commands(self) -> Iterator[PaletteCommand]:
        # Imported here: screens import app-level pieces, and this module is imported by app.py.
        from havsh_tui.screens.dashboard import DashboardScreen
        from havsh_tui.screens.service_detail import ServiceDetailScreen

        app = cast("HavshApp", self.app)
        screen = self.screen
        if isinstance(screen, DashboardScreen):
            yield PaletteCommand(
                "services: New service…", screen.action_new_service,
                "Create a Live, Test or Demo service (the wizard)",
            )
            yield PaletteCommand(
                "services: Filter",
                screen.action_filter,
                "Filter the services by name, host or status",
            )
            if screen.table.filter_text:
                yield PaletteCommand(
                    "services: Clear filter", screen.action_clear_filter, "Show every service"
                )
            if _enabled(screen, "rescan"):
                yield PaletteCommand(
                    "services: Rescan hosts", screen.action_rescan,
                    "Rebuild the service list from every host's labels",
                )
            service = screen.selected_service
            if service is not None:
                yield from service_commands(screen, service)
        elif isinstance(screen, ServiceDetailScreen):
            yield from service_commands(screen, screen.service)
            yield PaletteCommand("service: Back to the list", screen.action_back,
                                 "Close the detail screen")
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
