"""The hosts as a DataTable: one row per host, its health updated in place after each poll.

Metric columns have fixed widths, so a load going from 9.99 to 10.2 moves no column, and an
update is a few ``update_cell`` calls rather than a rebuild. The load column carries a
sparkline of the host's recent 1-minute loads (Textual's Sparkline renderable in a cell).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rich.cells import set_cell_size
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
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
#: The load sparkline's width in the table (the history is bucketed into it).
SPARK_WIDTH = 12


class Cell:
    """A line of plain text in one style, rendered as a single segment.

    A DataTable re-renders every visible cell after any ``update_cell`` (its caches are
    keyed on an update counter), so cells must be cheap to render: this one skips Rich's
    Text wrapping and measuring (the columns have fixed widths), as ServiceTable's does.
    """

    __slots__ = ("plain", "style")

    def __init__(self, plain: str, style: Style | None = None) -> None:
        self.plain = plain
        self.style = style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Segment(self.plain, self.style)

    def __str__(self) -> str:
        return self.plain

    def __repr__(self) -> str:
        return f"Cell({self.plain!r}, {self.style!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and (self.plain, self.style) == (other.plain, other.style)

    __hash__ = None  # type: ignore[assignment]  # compared by value


class SparkCell:
    """Textual's Sparkline renderable, plus the samples it shows, so that an unchanged
    history compares equal and its cell is not updated."""

    __slots__ = ("samples", "sparkline")

    def __init__(self, samples: tuple[float, ...], sparkline: Sparkline[float]) -> None:
        self.samples = samples
        self.sparkline = sparkline

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.sparkline

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SparkCell) and self.samples == other.samples

    __hash__ = None  # type: ignore[assignment]


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
        #: What each row's health cells show now, to update only the cells that change.
        self._shown: dict[str, list[object]] = {}
        #: Rendered cells by (cell identity, how it is drawn); see _render_cell.
        self._cells_drawn: LRUCache[tuple[object, ...], tuple[object, list[list[Segment]]]] = (
            LRUCache(4096)
        )
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
        shown = self._shown.get(name)
        try:
            for index, (key, cell) in enumerate(zip(HEALTH_COLUMNS, cells, strict=True)):
                if shown is None or shown[index] != cell:
                    self.update_cell(name, key, cell)
        except CellDoesNotExist:
            self._rebuild()
            return
        self._shown[name] = cells

    # -- drawing ------------------------------------------------------------------------

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """DataTable's cell rendering, cached by the cell itself rather than by the table's
        update counter, which every ``update_cell`` bumps and which would make a poll of one
        host repaint every cell of every row (about 30 ms for ten hosts). Cells whose object
        did not change are drawn from the cache; a :class:`Cell` is drawn without Rich's
        padding and wrapping machinery (one line, fixed width)."""
        if column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        column_key = self._column_locations.get_key(column_index)
        if row_index < 0:
            cell: object = column_key  # header labels change only with the columns
        else:
            row_key = self._row_locations.get_key(row_index)
            if row_key is None or column_key is None:
                return super()._render_cell(
                    row_index, column_index, base_style, width, cursor, hover
                )
            cell = self.get_cell(row_key, column_key)
        key = (
            id(cell),
            row_index,
            base_style,
            width,
            cursor,
            hover,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        drawn = self._cells_drawn.get(key)
        if drawn is not None and drawn[0] is cell:
            return drawn[1]
        if row_index < 0 or not isinstance(cell, Cell):
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        else:
            component_style, post_style = self._get_styles_to_render_cell(
                False,
                False,
                False,
                hover,
                cursor,
                self.show_cursor,
                self._show_hover_cursor,
                self.cursor_foreground_priority == "css",
                self.cursor_background_priority == "css",
            )
            pre = base_style + Style.from_meta({"row": row_index, "column": column_index})
            pre += component_style
            pad = self.cell_padding
            plain = set_cell_size(cell.plain, max(0, width - 2 * pad))
            edge = pre + post_style if post_style else pre
            text_style = pre + cell.style if cell.style else pre
            if post_style:
                text_style += post_style
            lines = [[Segment(" " * pad, edge), Segment(plain, text_style),
                      Segment(" " * pad, edge)]]
        self._cells_drawn[key] = (cell, lines)
        return lines

    # -- rows ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._ready = True
        self._rebuild()
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: object) -> None:
        self._styles.clear()
        self._cells_drawn.clear()
        self._rebuild()

    def _style(self, component: str) -> Style:
        style = self._styles.get(component)
        if style is None:
            style = self.get_component_rich_style(component, partial=True)
            self._styles[component] = style
        return style

    def _dim(self, text: str) -> Cell:
        return Cell(text, self._style("host-table--dim") if text == NONE else None)

    def _health_cells(self, name: str) -> list[object]:
        health = self._health.get(name)
        state = state_of(health, name in self._polling)
        state_style = {
            "reachable": "host-table--up",
            "unreachable": "host-table--down",
        }.get(state, "host-table--pending")
        cells: list[object] = [Cell(state, self._style(state_style))]
        if health is None or not health.reachable:
            return cells + [self._dim(NONE) for _ in HEALTH_COLUMNS[1:]]
        history = tuple(self._history.get(name) or ())
        spark: object
        if len(history) >= 2:
            low = self._style("host-table--spark-min").color
            high = self._style("host-table--spark-max").color
            spark = SparkCell(
                history,
                Sparkline(
                    list(history),
                    width=SPARK_WIDTH,
                    min_color=low or Color.parse("green"),
                    max_color=high or Color.parse("yellow"),
                ),
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
        self._shown.clear()
        self._cells_drawn.clear()
        self.clear(columns=True)
        for label, key, width in COLUMNS:
            if width is None:
                values = [label]
                for host in self._hosts.values():
                    values.append(host.name if key == "name" else host.destination)
                width = max(len(v) for v in values)
            self.add_column(label, key=key, width=width)
        bold = Style(bold=True)
        for name, host in self._hosts.items():
            cells = self._health_cells(name)
            self._shown[name] = cells
            self.add_row(
                Cell(host.name, bold),
                Cell(host.destination),
                *cells,
                Cell(f"{self._services.get(name, 0):>{COLUMNS[-1][2]}}"),
                key=name,
            )
        if keep is not None and keep.name in self._hosts:
            self.move_cursor(row=self.get_row_index(keep.name), scroll=False)
