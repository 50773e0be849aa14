"""The hosts as a DataTable: one row per host, its health updated in place after each poll.

Metric columns have fixed widths, so a load going from 9.99 to 10.2 moves no column, and an
update is a few ``update_cell`` calls rather than a rebuild. The load column carries a
sparkline of the host's recent 1-minute loads (Textual's Sparkline renderable in a cell).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rich.style import Style
from rich.text import Text
from textual.coordinate import Coordinate
from textual.renderables.sparkline import Sparkline
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from havsh_tui.core.model import Host
from havsh_tui.ops.hosts import HostHealth

#: (label, key, width); width None means "as wide as the longest value".
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("Name", "name", None),
    ("Destination", "destination", None),
    ("State", "state", 11),
    ("Docker", "docker", 7),
    ("CPU", "cpus", 3),
    ("Load", "load", 5),
    ("Load history", "spark", 12),
    ("Mem free", "mem", 9),
    ("Disk free", "disk", 9),
    ("Ctrs", "containers", 4),
    ("RTT", "rtt", 7),
    ("Svcs", "services", 4),
)

HEALTH_COLUMNS = tuple(key for _label, key, _width in COLUMNS[2:-1])

NONE = "—"


def format_bytes(n: int | None) -> str:
    """``3.2 GiB``; binary units, like free(1) -h."""
    if n is None:
        return NONE
    size = float(n)
    unit = "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def format_rtt(ms: float | None) -> str:
    if ms is None:
        return NONE
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def format_load(load: float | None) -> str:
    if load is None:
        return NONE
    return f"{load:.2f}" if load < 10 else f"{load:.1f}"


def state_of(health: HostHealth | None, polling: bool) -> str:
    """``reachable``, ``unreachable``, or ``polling…`` before the first answer."""
    if health is None:
        return "polling…" if polling else "unknown"
    return "reachable" if health.reachable else "unreachable"


class HostTable(DataTable[object]):
    """Hosts, one per row (row key: the host name). Feed it with :meth:`set_hosts` and
    :meth:`update_health`."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "host-table--up",
        "host-table--down",
        "host-table--pending",
        "host-table--dim",
        "host-table--spark-min",
        "host-table--spark-max",
    }

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._hosts: dict[str, Host] = {}
        self._services: dict[str, int] = {}
        self._health: dict[str, HostHealth] = {}
        self._history: dict[str, Sequence[float]] = {}
        self._polling: set[str] = set()
        self._styles: dict[str, Style] = {}
        self._ready = False

    # -- public API ---------------------------------------------------------------------

    @property
    def hosts(self) -> list[Host]:
        return list(self._hosts.values())

    @property
    def selected_host(self) -> Host | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        except CellDoesNotExist:
            return None
        return self._hosts.get(key) if key is not None else None

    def health_of(self, name: str) -> HostHealth | None:
        return self._health.get(name)

    def set_hosts(self, hosts: Iterable[Host], services: Mapping[str, int]) -> None:
        """Replace the rows (hosts added, edited or removed); keeps the cursor's host."""
        self._hosts = {host.name: host for host in sorted(hosts, key=lambda h: h.name)}
        self._services = dict(services)
        for gone in set(self._health) - set(self._hosts):
            self._health.pop(gone, None)
            self._history.pop(gone, None)
        self._rebuild()

    def update_health(
        self,
        name: str,
        health: HostHealth | None,
        history: Sequence[float] = (),
        *,
        polling: bool = False,
    ) -> None:
        """Show one host's latest poll (in place: only its health cells change)."""
        if name not in self._hosts:
            return
        if health is not None:
            self._health[name] = health
        self._history[name] = tuple(history)
        self._polling.discard(name)
        if polling:
            self._polling.add(name)
        if not self._ready:
            return
        cells = self._health_cells(name)
        try:
            for key, cell in zip(HEALTH_COLUMNS, cells, strict=True):
                self.update_cell(name, key, cell)
        except CellDoesNotExist:
            self._rebuild()

    # -- rows ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._ready = True
        self._rebuild()
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: object) -> None:
        self._styles.clear()
        self._rebuild()

    def _style(self, component: str) -> Style:
        style = self._styles.get(component)
        if style is None:
            style = self.get_component_rich_style(component, partial=True)
            self._styles[component] = style
        return style

    def _dim(self, text: str) -> Text:
        return Text(text, style=self._style("host-table--dim") if text == NONE else "")

    def _health_cells(self, name: str) -> list[object]:
        health = self._health.get(name)
        state = state_of(health, name in self._polling)
        state_style = {
            "reachable": "host-table--up",
            "unreachable": "host-table--down",
        }.get(state, "host-table--pending")
        cells: list[object] = [Text(state, style=self._style(state_style))]
        if health is None or not health.reachable:
            return cells + [self._dim(NONE) for _ in HEALTH_COLUMNS[1:]]
        history = self._history.get(name) or ()
        spark: object
        if len(history) >= 2:
            low = self._style("host-table--spark-min").color
            high = self._style("host-table--spark-max").color
            spark = Sparkline(
                list(history),
                width=12,
                **({"min_color": low} if low is not None else {}),
                **({"max_color": high} if high is not None else {}),
            )
        else:
            spark = self._dim(NONE)
        return cells + [
            self._dim(health.docker_version or NONE),
            self._dim(str(health.cpus) if health.cpus is not None else NONE),
            self._dim(format_load(health.load1)),
            spark,
            self._dim(format_bytes(health.mem_available)),
            self._dim(format_bytes(health.disk_free)),
            self._dim(
                str(health.managed_containers) if health.managed_containers is not None else NONE
            ),
            self._dim(format_rtt(health.rtt_ms)),
        ]

    def _rebuild(self) -> None:
        if not self._ready:
            return
        keep = self.selected_host
        self.clear(columns=True)
        for label, key, width in COLUMNS:
            if width is None:
                values = [label]
                for host in self._hosts.values():
                    values.append(host.name if key == "name" else host.destination)
                width = max(len(v) for v in values)
            self.add_column(label, key=key, width=width)
        for name, host in self._hosts.items():
            self.add_row(
                Text(host.name, style="bold"),
                Text(host.destination),
                *self._health_cells(name),
                Text(str(self._services.get(name, 0)), justify="right"),
                key=name,
            )
        if keep is not None and keep.name in self._hosts:
            self.move_cursor(row=self.get_row_index(keep.name), scroll=False)
