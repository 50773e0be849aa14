"""Every service on every host in one DataTable, grouped by type under folding headings.

One DataTable with heading rows, not a Collapsible per group: 1,000 services must paint as
fast as a bare DataTable of 1,000 rows (tests/bench), and a DataTable renders only the rows
on screen, while a widget per group (or per row) costs a mount and a layout each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from textual import on
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowKey

from havsh_tui.core.model import Service, ServiceStatus, ServiceType
from havsh_tui.widgets.status_badge import (
    BADGE_COMPONENT_CLASSES,
    UNCONFIRMED_COMPONENT,
    badge_component,
    badge_label,
    unconfirmed_label,
)

Clock = Callable[[], datetime]
ServiceKey = tuple[str, str]

#: The order of the headings, fixed by the product (shared/DESIGN.md).
GROUP_ORDER: tuple[ServiceType, ...] = (
    ServiceType.LIVE,
    ServiceType.TEST,
    ServiceType.DEMO,
    ServiceType.COPY,
    ServiceType.PREVIEW,
)

#: (label, column key); the keys are what update_cell and tests use.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("Name", "name"),
    ("Host", "host"),
    ("Odoo", "odoo"),
    ("Status", "status"),
    ("URL", "url"),
    ("Age", "age"),
    ("Source/PR", "origin"),
)

#: Sort keys per column (ties broken by name, then host). Age sorts youngest first.
SORT_KEYS: dict[str, Callable[[Service], Any]] = {
    "name": lambda s: (s.name, s.host),
    "host": lambda s: (s.host, s.name),
    "odoo": lambda s: (_version_key(s.odoo_version), s.name, s.host),
    "status": lambda s: (s.status.value, s.name, s.host),
    "url": lambda s: (s.url or "\uffff", s.name, s.host),  # no URL last
    "age": lambda s: (-s.created_at.timestamp(), s.name, s.host),
    "origin": lambda s: ((s.pr if s.type is ServiceType.PREVIEW else s.source) or "\uffff",
                         s.name, s.host),
}
DEFAULT_SORT = "name"
SORT_UP, SORT_DOWN = "▲", "▼"


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


FOLDED = "▸"
UNFOLDED = "▾"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def format_age(created_at: datetime, now: datetime) -> str:
    """A short age like k9s shows: 45s, 12m, 5h, 3d, 7mo, 2y."""
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = int((now - created_at).total_seconds())
    if seconds < 0:
        # A host clock ahead of ours; say so briefly rather than print a negative age.
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    days = seconds // 86400
    if days < 60:
        return f"{days}d"
    if days < 730:
        return f"{days // 30}mo"
    return f"{days // 365}y"


def source_label(service: Service) -> str | None:
    """ "erp-prod@alpha" for a copy (the slug alone when the host is not recorded)."""
    if not service.source:
        return None
    host = getattr(service, "source_host", None)
    return f"{service.source}@{host}" if host and "@" not in service.source else service.source


def row_key_for(service: Service) -> str:
    # Host names and slugs cannot contain "/" (core/names.py), so the key is unambiguous.
    return f"svc/{service.host}/{service.name}"


def heading_key_for(service_type: ServiceType) -> str:
    return f"group/{service_type.value}"


class Cell:
    """One table cell: a line of plain text in one style, rendered as a single segment.

    Deliberately without ``__rich_measure__``: a DataTable measures every cell of every new
    row on its next idle (7,000 cells for 1,000 services, most of a bare table's first
    paint). This table knows its text, so it sets fixed column widths itself
    (``_column_widths``) and the measuring becomes a no-op.
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

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


EMPTY = Cell("")


class ServiceTable(DataTable[Cell]):
    """The service list. Give it services with ``set_services``; stream statuses into it with
    ``update_statuses``; narrow it with ``filter_text``; fold a group with ``toggle_group``;
    mark the services of a host that stopped answering with ``set_host_unreachable``."""

    COMPONENT_CLASSES = (
        DataTable.COMPONENT_CLASSES
        | {
            "service-table--heading",
            "service-table--heading-empty",
            "service-table--live",
            "service-table--dim",
        }
        | BADGE_COMPONENT_CLASSES
    )

    BINDINGS = [
        # DataTable's own enter (select_cursor), with an id for the keymap and a name in
        # the help; the footer has no room for the obvious key.
        Binding("enter", "select_cursor", "Open", id="service-open", show=False),
        # The headings' ▾/▸ show it; the help lists it.
        Binding("space", "toggle_group", "Fold", id="toggle-group", show=False),
        # Sort within each group: o cycles the column, O reverses; a click on a header too.
        Binding("o", "cycle_sort", "Sort", id="service-sort", show=False),
        Binding("O", "reverse_sort", "Reverse sort", id="service-sort-reverse", show=False),
    ]

    class ServiceSelected(Message):
        """Enter on a service row: the dashboard opens its detail screen."""

        def __init__(self, table: ServiceTable, service: Service) -> None:
            super().__init__()
            self.table = table
            self.service = service

        @property
        def control(self) -> ServiceTable:
            return self.table

    class ServiceHighlighted(Message):
        """The cursor moved; ``service`` is None on a heading row."""

        def __init__(self, table: ServiceTable, service: Service | None) -> None:
            super().__init__()
            self.table = table
            self.service = service

        @property
        def control(self) -> ServiceTable:
            return self.table

    def __init__(
        self,
        services: Iterable[Service] = (),
        *,
        clock: Clock = _utcnow,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            id=id,
            classes=classes,
            cursor_type="row",
            zebra_stripes=False,
        )
        self._clock = clock
        self._services: dict[ServiceKey, Service] = {}
        self._filter = ""
        #: Folds the user chose; a group without one is folded exactly when it is empty.
        self._fold_override: dict[ServiceType, bool] = {}
        #: What each row currently shown is: a Service, or a ServiceType for a heading.
        self._row_items: dict[str, Service | ServiceType] = {}
        self._style_cache: dict[str, Style] = {}
        #: Hosts whose last poll did not answer, with why: their services' statuses are shown
        #: as unconfirmed ("? Running"). Display only: the services keep their status.
        self._unreachable: dict[str, str] = {}
        self._ready = False
        self._widths: list[int] = []
        self._shown_labels: list[str] = []
        #: The column the rows of each group are sorted by, and whether reversed.
        self.sort_column = DEFAULT_SORT
        self.sort_reverse = False
        self._load(services)

    # -- public API ---------------------------------------------------------------------

    def set_services(self, services: Iterable[Service]) -> None:
        """Replace the whole list (after a rescan); keeps the cursor on the same service."""
        self._load(services)
        self._rebuild()

    def update_statuses(self, statuses: Mapping[ServiceKey, ServiceStatus]) -> None:
        """Change the Status cells of the given services in place, without rebuilding.

        Keys are ``(host, name)`` (``Service.key``). Unknown keys are ignored: a host may
        report a container the inventory does not know yet; a rescan adds it.
        """
        needs_rebuild = False
        for key, status in statuses.items():
            service = self._services.get(key)
            if service is None or service.status is status:
                continue
            was_match = self._matches(service)
            # A copy, so the caller's (inventory's) objects are never changed behind its back.
            service = replace(service, status=status)
            self._services[key] = service
            if self.sort_column == "status" or (self._filter
                                                and was_match != self._matches(service)):
                # The status is one of the filtered fields: the row appears or disappears.
                needs_rebuild = True
                continue
            row_key = row_key_for(service)
            if row_key in self._row_items:
                self._row_items[row_key] = service
                try:
                    # Badges have one width, so no column needs measuring again.
                    self.update_cell(row_key, "status", self._status_cell(service))
                except CellDoesNotExist:
                    needs_rebuild = True
        if needs_rebuild:
            self._rebuild()

    def set_host_unreachable(self, host: str, reason: str | None) -> bool:
        """Show ``host``'s services as unconfirmed (``reason``: why the host did not answer),
        or as they are again (``reason`` None). In place, like :meth:`update_statuses`.
        Returns whether anything changed."""
        if reason is None:
            if host not in self._unreachable:
                return False
            del self._unreachable[host]
        else:
            if self._unreachable.get(host) == reason:
                return False
            was = host in self._unreachable
            self._unreachable[host] = reason
            if was:
                return True  # only the reason changed: the badges stay as they are
        if not self._ready:
            return True
        if self._filter:
            # "unreachable" is one of the filtered words: rows may appear or disappear.
            self._rebuild()
            return True
        for row_key, item in self._row_items.items():
            if isinstance(item, Service) and item.host == host:
                self.update_cell(row_key, "status", self._status_cell(item))
        return True

    def unreachable_reason(self, host: str) -> str | None:
        """Why ``host``'s services are shown unconfirmed, or None when they are not."""
        return self._unreachable.get(host)

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted(self._unreachable)

    @property
    def services(self) -> list[Service]:
        return list(self._services.values())

    @property
    def filter_text(self) -> str:
        return self._filter

    @filter_text.setter
    def filter_text(self, text: str) -> None:
        text = text.strip()
        if text != self._filter:
            self._filter = text
            self._rebuild()

    def counts(self) -> dict[ServiceType, int]:
        """Services per type, all of them (not only those the filter lets through)."""
        counts = dict.fromkeys(GROUP_ORDER, 0)
        for service in self._services.values():
            counts[service.type] = counts.get(service.type, 0) + 1
        return counts

    def is_folded(self, service_type: ServiceType) -> bool:
        if self._filter:
            # While filtering, every group with a match is open: a filter that hid its hits
            # inside a folded group would look like it found nothing.
            return False
        return self._fold_override.get(service_type, self.counts()[service_type] == 0)

    def toggle_group(self, service_type: ServiceType) -> None:
        self._fold_override[service_type] = not self.is_folded(service_type)
        self._rebuild(cursor_to=heading_key_for(service_type))

    def visible_services(self) -> list[Service]:
        """The service rows shown now, top to bottom."""
        return [item for item in self._row_items.values() if isinstance(item, Service)]

    @property
    def selected_service(self) -> Service | None:
        item = self._item_at_cursor()
        return item if isinstance(item, Service) else None

    def refresh_ages(self) -> None:
        """Recompute the Age column (the clock moved on), in place like update_statuses."""
        if not self._ready:
            return
        now = self._clock()
        changed: list[tuple[str, Service, str]] = []
        for key, item in self._row_items.items():
            if isinstance(item, Service):
                age = format_age(item.created_at, now)
                if self.get_cell(key, "age").plain != age:
                    changed.append((key, item, age))
        if not changed:
            return
        if max(cell_len(age) for _key, _service, age in changed) > self._widths[5]:
            # "9d" became "10d" and no longer fits: the column must widen.
            self._rebuild()
            return
        live = self._style("service-table--live")
        for key, service, age in changed:
            style = live if service.type is ServiceType.LIVE else None
            self.update_cell(key, "age", Cell(age, style))

    # -- building rows ------------------------------------------------------------------

    def _load(self, services: Iterable[Service]) -> None:
        self._services = {service.key: service for service in services}

    def on_mount(self) -> None:
        # Component styles exist only once the CSS has been applied, so rows are made here.
        self._ready = True
        self._rebuild()
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: object) -> None:
        self._style_cache.clear()
        self._rebuild()

    def _style(self, component: str) -> Style:
        style = self._style_cache.get(component)
        if style is None:
            # partial: only what the .tcss sets, so the cursor's background still shows.
            style = self.get_component_rich_style(component, partial=True)
            self._style_cache[component] = style
        return style

    def _status_cell(self, service: Service) -> Cell:
        if self._unreachable and service.host in self._unreachable:
            return Cell(unconfirmed_label(service.status, service.type),
                        self._style(UNCONFIRMED_COMPONENT))
        return Cell(
            badge_label(service.status, service.type), self._style(badge_component(service.status))
        )

    def _service_row(self, service: Service, now: datetime) -> list[Cell]:
        row_style = self._style("service-table--live") if service.type is ServiceType.LIVE else None
        origin = service.pr if service.type is ServiceType.PREVIEW else source_label(service)
        url = (
            Cell(service.url, row_style)
            if service.url
            else Cell("—", row_style or self._style("service-table--dim"))
        )
        return [
            Cell(service.name, row_style),
            Cell(service.host, row_style),
            Cell(service.odoo_version, row_style),
            self._status_cell(service),
            url,
            Cell(format_age(service.created_at, now), row_style),
            Cell(origin or "", row_style),
        ]

    def _heading_row(self, service_type: ServiceType, shown: int, total: int) -> list[Cell]:
        folded = self.is_folded(service_type)
        count = f"{shown} of {total}" if self._filter else f"{total}"
        style = self._style("service-table--heading" if shown else "service-table--heading-empty")
        label = f"{FOLDED if folded else UNFOLDED} {service_type.label} ({count})"
        return [Cell(label, style), *([EMPTY] * (len(COLUMNS) - 1))]

    def _matches(self, service: Service) -> bool:
        if not self._filter:
            return True
        haystack = f"{service.name} {service.host} {service.status_label}".lower()
        if service.host in self._unreachable:
            haystack += " unreachable"
        # Every word must match somewhere: "prod fail" finds failed production services.
        return all(word in haystack for word in self._filter.lower().split())

    def _rebuild(self, *, cursor_to: str | None = None) -> None:
        if not self._ready:
            # Before mount there are no component styles yet.
            return
        keep = cursor_to or self._key_at_cursor()
        scroll_y = self.scroll_y
        now = self._clock()
        by_type: dict[ServiceType, list[Service]] = {t: [] for t in GROUP_ORDER}
        totals = dict.fromkeys(GROUP_ORDER, 0)
        for service in self._services.values():
            totals[service.type] += 1
            if self._matches(service):
                by_type[service.type].append(service)

        keys: list[str] = []
        rows: list[list[Cell]] = []
        items: dict[str, Service | ServiceType] = {}
        for service_type in GROUP_ORDER:
            members = by_type[service_type]
            key = heading_key_for(service_type)
            keys.append(key)
            rows.append(self._heading_row(service_type, len(members), totals[service_type]))
            items[key] = service_type
            if self.is_folded(service_type):
                continue
            for service in sorted(members, key=SORT_KEYS[self.sort_column],
                                  reverse=self.sort_reverse):
                key = row_key_for(service)
                keys.append(key)
                rows.append(self._service_row(service, now))
                items[key] = service

        headings = [rows[i][0].plain for i, key in enumerate(keys) if key.startswith("group/")]
        widths = self._column_widths(headings, now)
        labels = self._labels()
        if widths != self._widths or labels != self._shown_labels:
            self.clear(columns=True)
            for label, (_label, column_key), width in zip(labels, COLUMNS, widths, strict=True):
                self.add_column(label, width=width, key=column_key)
            self._widths = widths
            self._shown_labels = labels
        else:
            self.clear()
        for key, row in zip(keys, rows, strict=True):
            self.add_row(*row, key=key)
        self._row_items = items
        self._restore_cursor(keep, scroll_y)

    def _column_widths(self, headings: list[str], now: datetime) -> list[int]:
        """Fixed widths that fit every service, shown or not, so the columns stay put while
        the user filters or folds. Plain string lengths only: far cheaper than the
        DataTable's own measuring of rendered cells."""
        widths = [cell_len(label) for label in self._labels()]
        totals = self.counts()
        # Room for the filtered form ("▾ Live (3 of 12)") too, so filtering moves no column.
        widths[0] = max(
            widths[0],
            *(cell_len(h) for h in headings),
            *(cell_len(f"{UNFOLDED} {t.label} ({n} of {n})") for t, n in totals.items()),
        )
        widths[3] = max(widths[3], len(badge_label(ServiceStatus.UNKNOWN)))
        for service in self._services.values():
            origin = service.pr if service.type is ServiceType.PREVIEW else source_label(service)
            for index, text in (
                (0, service.name),
                (1, service.host),
                (2, service.odoo_version),
                (4, service.url or "—"),
                (5, format_age(service.created_at, now)),
                (6, origin or ""),
            ):
                width = cell_len(text)
                if width > widths[index]:
                    widths[index] = width
        return widths

    def _restore_cursor(self, key: str | None, scroll_y: float) -> None:
        index = 0
        if key is not None and key in self._row_items:
            index = self.get_row_index(key)
        self.move_cursor(row=index, scroll=False)
        # The new virtual height is known only after the table's next idle: put the view
        # back where it was then, and only scroll further if the cursor fell out of it.
        self.call_after_refresh(self._settle_scroll, scroll_y)

    def _settle_scroll(self, scroll_y: float) -> None:
        self.scroll_to(y=scroll_y, animate=False, force=True, immediate=True)
        self.move_cursor(row=self.cursor_row, scroll=True)

    # -- cursor and keys ----------------------------------------------------------------

    def _key_at_cursor(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        except CellDoesNotExist:
            return None
        return key.value

    def _item_at_cursor(self) -> Service | ServiceType | None:
        key = self._key_at_cursor()
        return self._row_items.get(key) if key is not None else None

    def _item_for(self, row_key: RowKey) -> Service | ServiceType | None:
        return self._row_items.get(row_key.value) if row_key.value is not None else None

    def _labels(self) -> list[str]:
        """Column labels; the sorted column has an arrow unless it is the default order."""
        out = []
        for label, key in COLUMNS:
            if key == self.sort_column and (key != DEFAULT_SORT or self.sort_reverse):
                label = f"{label} {SORT_DOWN if self.sort_reverse else SORT_UP}"
            out.append(label)
        return out

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort each group's rows by ``column`` (a key of SORT_KEYS); ``reverse`` None keeps
        the current direction. The cursor stays on the same service."""
        if column not in SORT_KEYS:
            raise ValueError(f"no column {column!r} to sort by")
        self.sort_column = column
        if reverse is not None:
            self.sort_reverse = reverse
        self._rebuild()

    def action_cycle_sort(self) -> None:
        keys = [key for _label, key in COLUMNS]
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)], reverse=False)
        self.notify(f"Sorted by {dict((k, lbl) for lbl, k in COLUMNS)[self.sort_column]}",
                    timeout=2)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by that column; a second click reverses."""
        event.stop()
        column = str(event.column_key.value)
        if column in SORT_KEYS:
            same = column == self.sort_column
            self.sort_by(column, reverse=(not self.sort_reverse) if same else False)

    def action_toggle_group(self) -> None:
        item = self._item_at_cursor()
        if item is None:
            return
        self.toggle_group(item if isinstance(item, ServiceType) else item.type)

    @on(DataTable.RowSelected)
    def _on_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        item = self._item_for(event.row_key)
        if isinstance(item, ServiceType):
            self.toggle_group(item)
        elif isinstance(item, Service):
            self.post_message(self.ServiceSelected(self, item))

    @on(DataTable.RowHighlighted)
    def _on_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        item = self._item_for(event.row_key)
        self.post_message(
            self.ServiceHighlighted(self, item if isinstance(item, Service) else None)
        )


#: Module-level names for importers: ``from havsh_tui.widgets.service_table import ...``.
ServiceSelected = ServiceTable.ServiceSelected
ServiceHighlighted = ServiceTable.ServiceHighlighted
