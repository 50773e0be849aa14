"""The services section: every service on every host, painted from the inventory at once.

No network here: the inventory's cached statuses paint the first frame, and live statuses
arrive later through ``ServiceTable.update_statuses`` from the per-host workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from havsh_tui.core.model import Service
from havsh_tui.widgets.service_table import ServiceTable

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp


def summary(services: list[Service], host_names: set[str]) -> str:
    """The sub-title: "N services on M hosts", in words that read right for 1."""
    hosts = host_names | {service.host for service in services}
    n, m = len(services), len(hosts)
    return f"{n} service{'' if n == 1 else 's'} on {m} host{'' if m == 1 else 's'}"


#: How often the Age column is recomputed; ages are shown in minutes at the finest.
AGE_REFRESH_SECONDS = 60.0


class DashboardScreen(Screen[None]):
    """The base screen of the ``services`` mode."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "clear_filter", "Clear filter", id="clear-filter"),
    ]

    AUTO_FOCUS = "#service-table"

    @property
    def havsh(self) -> HavshApp:
        return cast("HavshApp", self.app)

    def compose(self) -> ComposeResult:
        app = self.havsh
        # One read of the local file for the first frame; no host is contacted.
        snapshot = app.inventory.snapshot()
        self._host_names = {host.name for host in snapshot.hosts}
        yield Header(id="header")
        yield Input(
            placeholder="Filter by name, host or status (esc clears)",
            id="filter-input",
            classes="-hidden",
        )
        yield ServiceTable(snapshot.services, clock=app.clock, id="service-table")
        yield Footer(id="footer")

    def on_mount(self) -> None:
        app = self.havsh
        table = self.table
        self.sub_title = summary(table.services, self._host_names)
        # Ages ("5m", "2h") go stale while the dashboard stays open.
        self.set_interval(AGE_REFRESH_SECONDS, table.refresh_ages)
        recovered = getattr(app.inventory, "recovered_from", None)
        if recovered is not None:
            # Loud and sticky: the user must know their inventory was damaged and where the
            # old file went, or they will wonder why services vanished.
            self.notify(
                f"The inventory file was corrupt. It was moved aside to {recovered} and a new,"
                " empty inventory was started. Run `havsh rescan` to rebuild it from the hosts.",
                title="Inventory recovered",
                severity="error",
                timeout=60,
            )

    def reload(self) -> None:
        """Re-read the inventory (after a rescan or an operation changed it)."""
        snapshot = self.havsh.inventory.snapshot()
        self._host_names = {host.name for host in snapshot.hosts}
        self.table.set_services(snapshot.services)
        self.sub_title = summary(self.table.services, self._host_names)

    @property
    def table(self) -> ServiceTable:
        return self.query_one("#service-table", ServiceTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#filter-input", Input)

    @property
    def selected_service(self) -> Service | None:
        """The service under the cursor (None on a heading row): what commands act on."""
        return self.table.selected_service

    # -- filter -------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.filter_input.remove_class("-hidden")
        self.filter_input.focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        self.filter_input.value = ""
        self.table.filter_text = ""
        self.filter_input.add_class("-hidden")
        self.table.focus()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            # Only offered (and shown in the footer) when there is something to clear.
            return bool(self.table.filter_text) or not self.filter_input.has_class("-hidden")
        return True

    @on(Input.Changed, "#filter-input")
    def _on_filter_changed(self, event: Input.Changed) -> None:
        # No refresh_bindings here: clear-filter is on for as long as the input shows, and
        # redrawing the footer on every keystroke is wasted work.
        self.table.filter_text = event.value

    @on(Input.Submitted, "#filter-input")
    def _on_filter_submitted(self, event: Input.Submitted) -> None:
        # k9s: enter keeps the filter and goes back to the list.
        if not event.value.strip():
            self.filter_input.add_class("-hidden")
        self.table.focus()
        self.refresh_bindings()

    # -- selection ----------------------------------------------------------------------

    @on(ServiceTable.ServiceSelected)
    def _on_service_selected(self, event: ServiceTable.ServiceSelected) -> None:
        # The detail screen comes later; until then say what would open.
        service = event.service
        self.notify(
            f"{service.type.label} service on {service.host}: {service.status_label}",
            title=service.name,
        )
