"""The services section: every service on every host, painted from the inventory at once,
with a key for every action on the selected service.

No network on the event loop: the inventory's cached statuses paint the first frame, live
statuses arrive from the host poller (workers.HostPoller, one labelled docker list per host
per poll), and every operation runs in a thread worker on the app, so that its failure
reaches the app's one failure handler. Results come back as :class:`ServiceOpFinished`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from havsh_tui.core.model import Service, ServiceStatus, utcnow
from havsh_tui.widgets.operation_log import error_text, record_end, record_start
from havsh_tui.widgets.service_table import ServiceKey, ServiceTable

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp

T = TypeVar("T")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def summary(services: list[Service], host_names: set[str]) -> str:
    """The sub-title: "N services on M hosts", in words that read right for 1."""
    hosts = host_names | {service.host for service in services}
    n, m = len(services), len(hosts)
    return f"{n} service{'' if n == 1 else 's'} on {m} host{'' if m == 1 else 's'}"


#: How often the Age column is recomputed; ages are shown in minutes at the finest.
AGE_REFRESH_SECONDS = 60.0

#: Statuses an operation in progress owns (perhaps in another havsh): polls leave them be.
BUSY_STATUSES = frozenset({ServiceStatus.CREATING, ServiceStatus.UPDATING,
                           ServiceStatus.DESTROYING})
#: Statuses in which the service's database and volume exist, so it can be copied.
COPYABLE = frozenset({ServiceStatus.RUNNING, ServiceStatus.STOPPED})

#: Actions on the selected service, by action name (what check_action and the palette see).
SERVICE_ACTIONS = frozenset({
    "open_service", "start_service", "stop_service", "restart_service", "copy_service",
    "neutralize_service", "delete_service", "service_logs", "backup_service",
})

_busy: weakref.WeakKeyDictionary[App[Any], set[ServiceKey]] = weakref.WeakKeyDictionary()


def busy_services(app: App[Any]) -> set[ServiceKey]:
    """Services with an operation of this app in progress (shared by every screen)."""
    return _busy.setdefault(app, set())


def action_allowed(action: str, service: Service | None, busy: bool = False) -> bool:
    """Whether ``action`` applies to ``service`` now (the footer greys out the rest)."""
    if service is None:
        return False
    if action in ("open_service", "service_logs"):
        return True
    status = service.status
    if busy or status in BUSY_STATUSES:
        return False
    if action == "start_service":
        return status not in (ServiceStatus.RUNNING, ServiceStatus.MISSING,
                              ServiceStatus.DESTROYED)
    if action == "stop_service":
        return status in (ServiceStatus.RUNNING, ServiceStatus.UNKNOWN)
    if action == "restart_service":
        return status in (ServiceStatus.RUNNING, ServiceStatus.UNKNOWN, ServiceStatus.FAILED)
    if action == "copy_service":
        return status in COPYABLE
    if action in ("neutralize_service", "backup_service"):
        return status in COPYABLE or status is ServiceStatus.UNKNOWN
    if action == "delete_service":
        return True
    return True


def polled_changes(
    services: list[Service],
    host: str,
    statuses: Mapping[str, ServiceStatus] | None,
    busy: set[ServiceKey] = frozenset(),  # type: ignore[assignment]
) -> dict[ServiceKey, ServiceStatus]:
    """What one poll of ``host`` changes: its reported statuses, and Missing for services
    the inventory has there but the host did not report. ``statuses`` None (the host did
    not answer) changes nothing: the services keep their last known status (the inventory's
    too); the dashboard shows them as unconfirmed (:meth:`DashboardScreen.apply_poll`).
    """
    if statuses is None:
        return {}
    changes: dict[ServiceKey, ServiceStatus] = {}
    for service in services:
        if service.host != host or service.key in busy or service.status in BUSY_STATUSES:
            continue
        new = statuses.get(service.name)
        if new is None:
            # A failed create or copy removed its container on purpose: it stays Failed.
            if service.status in (ServiceStatus.FAILED, ServiceStatus.DESTROYED):
                continue
            new = ServiceStatus.MISSING
        elif service.status is ServiceStatus.FAILED and new is ServiceStatus.STOPPED:
            # A Failed service's container is stopped: Failed says more (rescan agrees).
            continue
        if new is not service.status:
            changes[service.key] = new
    return changes


class ServiceOpFinished(Message):
    """An operation on one service ended (posted from its worker thread)."""

    def __init__(self, action: str, service: Service, *, ok: bool, result: Any = None,
                 message: str = "", error: BaseException | None = None) -> None:
        super().__init__()
        self.action = action
        self.service = service
        self.ok = ok
        self.result = result
        self.message = message
        self.error = error


class RescanFinished(Message):
    """rescan_all ended: its per-host results, or the error."""

    def __init__(self, results: list[Any] | None, error: BaseException | None) -> None:
        super().__init__()
        self.results = results
        self.error = error


def unreachable_reason(health: Any) -> str:
    """Why a poll gave no statuses, in a few words from the poll itself (HostHealth)."""
    error = (getattr(health, "error", None) or "").strip()
    if health is not None and not getattr(health, "reachable", False):
        return error or "the host did not answer"
    return error or "the host did not report its services"


def rescan_summary(results: list[Any]) -> str:
    """One line a host: "alpha: 2 adopted, 1 missing" or "bravo: unreachable (...)"."""
    lines = []
    for r in results:
        if not r.reachable:
            lines.append(f"{r.host}: unreachable ({r.error})")
            continue
        parts = [f"{len(getattr(r, k))} {k}" for k in ("adopted", "updated", "missing")
                 if getattr(r, k)]
        lines.append(f"{r.host}: " + (", ".join(parts) if parts else "no change"))
    return "\n".join(lines) or "No host to rescan: add one on the Hosts screen."


class ServiceActions:
    """The actions on one service, shared by the dashboard and the detail screen. A screen
    gives :meth:`acting_on` (the service the keys act on) and :meth:`after_service_op`."""

    app: App[Any]

    if TYPE_CHECKING:

        def notify(self, message: str, **kw: Any) -> None: ...
        def refresh_bindings(self) -> None: ...
        def post_message(self, message: Message) -> bool: ...

    @property
    def havsh(self) -> HavshApp:
        return cast("HavshApp", self.app)

    def acting_on(self) -> Service | None:
        raise NotImplementedError

    def after_service_op(self, event: ServiceOpFinished) -> None:
        """An operation ended: re-read what changed."""

    def service_action_enabled(self, action: str) -> bool | None:
        """check_action's answer for a service action: True, or None (greyed out)."""
        service = self.acting_on()
        busy = service is not None and service.key in busy_services(self.app)
        return True if action_allowed(action, service, busy) else None

    def _audit(self) -> Any:
        from havsh_tui.core.audit import AuditLog

        return AuditLog(self.havsh.paths.audit_log)

    def _secrets(self) -> Any:
        from havsh_tui.core.secrets import SecretStore

        return SecretStore(self.havsh.paths.secrets)

    def run_service_op(
        self,
        action: str,
        title: str,
        service: Service,
        fn: Callable[[], T],
        success: Callable[[T], str],
    ) -> None:
        """Run ``fn`` in a thread worker on the app; it is recorded in the operations
        history, and its end comes back as a ServiceOpFinished. A failure is re-raised
        for the app's failure handler, which tells the user."""
        app = self.app
        inventory = self.havsh.inventory
        busy = busy_services(app)
        busy.add(service.key)
        self.refresh_bindings()
        kind = f"service.{action}"

        def work() -> T:
            op_id = record_start(inventory, kind, service.host, service.name)
            try:
                result = fn()
            except BaseException as exc:
                record_end(inventory, op_id, "failed", error_text(exc))
                self.post_message(ServiceOpFinished(action, service, ok=False, error=exc))
                raise
            record_end(inventory, op_id, "done")
            self.post_message(ServiceOpFinished(action, service, ok=True, result=result,
                                                message=success(result)))
            return result

        app.run_worker(
            work, name=title, group=f"service-{service.host}-{service.name}",
            description=title, thread=True, exclusive=True, exit_on_error=False,
        )

    # By name, not @on: Textual collects @on handlers only from MessagePump subclasses.
    def on_service_op_finished(self, event: ServiceOpFinished) -> None:
        event.stop()
        busy_services(self.app).discard(event.service.key)
        if event.ok and event.message:
            self.notify(event.message, title=event.service.name, timeout=6)
        self.after_service_op(event)
        self.refresh_bindings()

    # -- the actions -----------------------------------------------------------------------

    def _lifecycle(self, action: str, verb: str) -> None:
        service = self.acting_on()
        if service is None or not action_allowed(f"{action}_service", service):
            return
        app = self.havsh
        audit = self._audit()

        def call() -> Service:
            from havsh_tui.ops import services as ops

            fn = {"start": ops.start_service, "stop": ops.stop_service,
                  "restart": ops.restart_service}[action]
            return fn(app.inventory, app.pool, service, audit=audit)

        self.run_service_op(action, f"{verb} {service.name}", service, call,
                            lambda s: f"{s.name} is {s.status_label}.")

    def action_start_service(self) -> None:
        self._lifecycle("start", "Start")

    def action_stop_service(self) -> None:
        self._lifecycle("stop", "Stop")

    def action_restart_service(self) -> None:
        self._lifecycle("restart", "Restart")

    def action_neutralize_service(self) -> None:
        from havsh_tui.dialogs.confirm import ConfirmDialog

        service = self.acting_on()
        if service is None or not action_allowed("neutralize_service", service):
            return
        live = service.type.rules.needs_typed_name
        message = (
            f"Odoo's neutralize runs on {service.database} on {service.host}: every mail "
            "server is archived and every scheduled action stopped, then havsh checks it. "
            "It cannot be undone."
        )
        if live:
            message += f"\n\n{service.name} is a Live service: it will stop sending its mail."
        dialog = ConfirmDialog(
            f"Neutralize {service.name}?", message, confirm="Neutralize",
            type_to_confirm=service.name if live else None,
        )
        self.app.push_screen(dialog, lambda ok: self._neutralize(service) if ok else None)

    def _neutralize(self, service: Service) -> None:
        app = self.havsh
        secrets, audit = self._secrets(), self._audit()

        def call() -> Any:
            from havsh_tui.ops import services as ops

            return ops.neutralize_service(app.inventory, secrets, app.pool, service,
                                          confirm_name=service.name, audit=audit)

        self.run_service_op(
            "neutralize", f"Neutralize {service.name}", service, call,
            lambda _check: f"{service.name} is neutralized (verified: mail servers archived, "
                           "crons off).",
        )

    def action_delete_service(self) -> None:
        from havsh_tui.core import names
        from havsh_tui.dialogs.confirm import ConfirmDialog

        service = self.acting_on()
        if service is None or not action_allowed("delete_service", service):
            return
        live = service.type.rules.needs_typed_name
        message = (
            f"This removes, on {service.host}: the container {names.container_name(service.name)},"
            f" the database {service.database or names.database_name(service.name)}, the role "
            f"{names.role_name(service.name)} and the volume {names.volume_name(service.name)}"
            " with its filestore. It cannot be undone."
        )
        dialog = ConfirmDialog(
            f"Delete {service.type.label} service {service.name}?", message, confirm="Delete",
            type_to_confirm=service.name if live else None,
            option="Back up before deleting (nothing is deleted if the backup fails)",
            option_value=service.type.rules.backups_default,
        )
        self.app.push_screen(
            dialog, lambda ok: self._delete(service, backup=dialog.option_checked) if ok else None)

    def _delete(self, service: Service, *, backup: bool = False) -> None:
        app = self.havsh
        secrets, audit = self._secrets(), self._audit()
        made: list[Any] = []  # the safety backup's record, once taken

        def call() -> list[str]:
            from havsh_tui.ops import services as ops
            from havsh_tui.ops.backup import backup_offer

            offer = None
            if backup:
                safety = backup_offer(app.inventory, secrets, app.pool, audit=audit)

                def offer(target: Service) -> Any:
                    made.append(safety(target))
                    return made[-1]

            return ops.delete_service(app.inventory, secrets, app.pool, service,
                                      confirm_name=service.name, audit=audit,
                                      backup_offer=offer)

        self.run_service_op(
            "delete", f"Delete {service.name}", service, call,
            lambda removed: f"Deleted {service.name}: "
                            + (", ".join(removed) or "nothing was left on the host") + "."
                            + (f" Safety backup: {made[0].where}." if made else ""),
        )

    def action_copy_service(self) -> None:
        service = self.acting_on()
        if service is None or not action_allowed("copy_service", service):
            return
        self.start_copy(service)

    def start_copy(self, source: Service | None) -> None:
        self._copy_flow(source)

    @work(exclusive=True, group="service-dialog", exit_on_error=False)
    async def _copy_flow(self, source: Service | None) -> None:
        """The copy dialog, then the copy (CopyScreen). A worker of the screen, because
        push_screen_wait must run in one."""
        from havsh_tui.dialogs.copy_dialog import CopyScreen, run_copy_dialog

        app = self.havsh
        spec = await run_copy_dialog(app, source)
        if spec is None:
            return
        target = spec.host or spec.source_host
        key = (target, spec.name)
        busy_services(app).add(key)
        try:
            await app.push_screen_wait(CopyScreen(app, spec, same_host=target == spec.source_host))
        finally:
            busy_services(app).discard(key)
        reload = getattr(self, "reload", None)
        if callable(reload):
            reload()

    def action_service_logs(self) -> None:
        service = self.acting_on()
        if service is None:
            return
        opener = getattr(self.app, "action_open_logs", None)
        if callable(opener):
            opener(service)
        else:
            self.notify(f"The logs screen is not in this build yet: `havsh logs {service.name}`"
                        " shows them.", title=service.name)


class DashboardScreen(ServiceActions, Screen[None]):
    """The base screen of the ``services`` mode."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "clear_filter", "Clear filter", id="clear-filter"),
        Binding("n", "new_service", "New", id="service-new"),
        Binding("s", "start_service", "Start", id="service-start"),
        Binding("x,S", "stop_service", "Stop", id="service-stop"),
        Binding("r", "restart_service", "Restart", id="service-restart"),
        Binding("c", "copy_service", "Copy", id="service-copy"),
        Binding("N", "neutralize_service", "Neutralize", id="service-neutralize"),
        Binding("D,delete", "delete_service", "Delete", id="service-delete"),
        Binding("L", "service_logs", "Logs", id="service-logs"),
        Binding("b", "backup_service", "Backup", id="service-backup"),
        Binding("R", "rescan", "Rescan", id="services-rescan"),
    ]

    AUTO_FOCUS = "#service-table"

    def __init__(self) -> None:
        super().__init__()
        self._rescanning = False
        self._resumed_before = False
        self._action_signature: tuple[bool | None, ...] = ()
        #: Slugs a host reported that the inventory does not know, by host (rescan adopts).
        self.unknown_on_host: dict[str, set[str]] = {}
        #: The last answered poll of each host: when (real UTC time) and what it reported.
        self._polled: dict[str, tuple[datetime, dict[str, ServiceStatus]]] = {}
        #: Hosts whose polls stopped answering: since when (the app's clock), by host.
        self._unreachable_since: dict[str, datetime] = {}
        #: Of those, the ones whose SSH answered but whose service list failed.
        self._list_failed: set[str] = set()

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
        yield Footer(id="footer", compact=True)

    def on_mount(self) -> None:
        app = self.havsh
        table = self.table
        self.sub_title = summary(table.services, self._host_names)
        # What the footer's first compose shows: no redraw until the selection changes it.
        self._action_signature = self._actions_now()
        # Ages ("5m", "2h") go stale while the dashboard stays open.
        self.set_interval(AGE_REFRESH_SECONDS, table.refresh_ages)
        poller = getattr(app, "poller", None)
        if poller is not None:
            # Hosts already known not to answer (polled before this screen was made).
            for name, health in list(poller.latest.items()):
                if not health.reachable:
                    self.apply_poll(name, None, health)
            # Live status: every poll of every host, delivered on the event loop.
            poller.subscribe(self, self._on_host_polled)
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

    def on_screen_resume(self) -> None:
        # Back from the detail screen or another section: an operation may have changed the
        # list. Not at the first resume, which is the first paint: compose just read it.
        if self._resumed_before:
            self.reload()
        self._resumed_before = True

    def reload(self) -> None:
        """Re-read the inventory (after a rescan or an operation changed it)."""
        snapshot = self.havsh.inventory.snapshot()
        self._host_names = {host.name for host in snapshot.hosts}
        self.table.set_services(snapshot.services)
        for host in [h for h in self.table.unreachable_hosts if h not in self._host_names]:
            self._mark_reachable(host)  # removed from the inventory
        # The inventory caches statuses; the last polls are fresher, except for a record an
        # operation changed since (its own status wins until the next poll).
        for host, (at, statuses) in self._polled.items():
            fresh = [s for s in self.table.services if s.host == host and _aware(
                s.updated_at) < at]
            changes = polled_changes(fresh, host, statuses, busy_services(self.app))
            if changes:
                self.table.update_statuses(changes)
        self.sub_title = self._summary()
        self._refresh_actions(force=True)
        self._update_unreachable_line()

    def _summary(self) -> str:
        text = summary(self.table.services, self._host_names)
        down = self.table.unreachable_hosts
        if down:
            text += f" · not answering: {', '.join(down[:3])}{'…' if len(down) > 3 else ''}"
        return text

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

    def acting_on(self) -> Service | None:
        return self.selected_service

    def after_service_op(self, event: ServiceOpFinished) -> None:
        self.reload()

    # -- live status ----------------------------------------------------------------------

    def _on_host_polled(self, message: Any) -> None:
        self.apply_poll(message.host, message.statuses, message.health)

    def apply_poll(self, host: str, statuses: Mapping[str, ServiceStatus] | None,
                   health: Any = None) -> None:
        """One poll of one host: its services' live statuses in place, Missing for those it
        no longer has (see :func:`polled_changes`). A poll without statuses (the host did
        not answer, or its list failed) shows its services as unconfirmed, "? Running",
        with the reason under the table, until a poll answers again; the services and the
        inventory keep their last known status."""
        table = self.table
        services = table.services
        if statuses is None:
            if health is not None and getattr(health, "reachable", False):
                self._list_failed.add(host)
            else:
                self._list_failed.discard(host)
            self._mark_unreachable(host, unreachable_reason(health))
        else:
            self._mark_reachable(host)
            self._polled[host] = (utcnow(), dict(statuses))
        changes = polled_changes(services, host, statuses, busy_services(self.app))
        if changes:
            table.update_statuses(changes)
            self._refresh_actions()
        if statuses is not None:
            known = {s.name for s in services if s.host == host}
            unknown = set(statuses) - known
            if unknown and unknown != self.unknown_on_host.get(host):
                self.notify(
                    f"{host} runs {len(unknown)} service{'s' if len(unknown) > 1 else ''} this"
                    f" inventory does not know ({', '.join(sorted(unknown)[:3])}"
                    f"{'…' if len(unknown) > 3 else ''}). Press R to rescan and adopt them.",
                    title="Rescan", timeout=10,
                )
            self.unknown_on_host[host] = unknown

    def _mark_unreachable(self, host: str, reason: str) -> None:
        self._unreachable_since.setdefault(host, self.havsh.clock())
        if self.table.set_host_unreachable(host, reason):
            self.sub_title = self._summary()
            self._update_unreachable_line()

    def _mark_reachable(self, host: str) -> None:
        self._unreachable_since.pop(host, None)
        self._list_failed.discard(host)
        if self.table.set_host_unreachable(host, None):
            self.sub_title = self._summary()
            self._update_unreachable_line()

    def unreachable_text(self, service: Service | None) -> str | None:
        """The line under the table for ``service`` when its host is not answering."""
        if service is None:
            return None
        reason = self.table.unreachable_reason(service.host)
        if reason is None:
            return None
        since = self._unreachable_since.get(service.host)
        when = f" since {_aware(since).astimezone(UTC):%H:%M} UTC" if since else ""
        what = ("did not list its services" if service.host in self._list_failed
                else "is not answering")
        return (f"{service.host} {what}{when}: {reason}. {service.name} was last known "
                f"{service.status_label}; unconfirmed until the host answers again.")

    def _update_unreachable_line(self) -> None:
        if not self.is_mounted:
            return
        text = self.unreachable_text(self.selected_service)
        lines = self.query("#unreachable-line")
        if text is None:
            for line in lines:
                line.add_class("-hidden")
            return
        if lines:
            line = lines.first(Static)
            line.update(text)
            line.remove_class("-hidden")
        else:
            # Made the first time a host stops answering: the first paint has one widget
            # less to lay out (tests/bench/test_first_paint.py).
            self.mount(Static(text, id="unreachable-line", markup=False), before="#footer")

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
        if action in SERVICE_ACTIONS:
            return self.service_action_enabled(action)
        if action == "rescan":
            return None if self._rescanning else True
        return True

    def _actions_now(self) -> tuple[bool | None, ...]:
        return tuple(self.service_action_enabled(a) for a in sorted(SERVICE_ACTIONS))

    def _refresh_actions(self, *, force: bool = False) -> None:
        """Redraw the footer only when what it greys out changed: the cursor moves far more
        often than that, and the footer is recomposed on every refresh."""
        signature = self._actions_now()
        if force or signature != self._action_signature:
            self._action_signature = signature
            self.refresh_bindings()

    @on(ServiceTable.ServiceHighlighted)
    def _on_service_highlighted(self, event: ServiceTable.ServiceHighlighted) -> None:
        self._refresh_actions()
        if self.table.unreachable_hosts:
            self._update_unreachable_line()

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

    # -- service actions ----------------------------------------------------------------

    @on(ServiceTable.ServiceSelected)
    def _on_service_selected(self, event: ServiceTable.ServiceSelected) -> None:
        self.open_detail(event.service)

    def open_detail(self, service: Service) -> None:
        from havsh_tui.screens.service_detail import ServiceDetailScreen

        self.app.push_screen(ServiceDetailScreen(service))

    def action_open_service(self) -> None:
        service = self.selected_service
        if service is not None:
            self.open_detail(service)

    def action_backup_service(self) -> None:
        from havsh_tui.widgets.backups_tab import backup_now

        service = self.selected_service
        if service is not None and action_allowed("backup_service", service):
            backup_now(self.havsh, service, lambda _outcome: self.reload())

    def action_new_service(self) -> None:
        self._new_service()

    @work(exclusive=True, group="service-dialog", exit_on_error=False)
    async def _new_service(self) -> None:
        """The creation wizard, then the creation (CreateScreen), then a fresh list."""
        from havsh_tui.dialogs.create_wizard import COPY, CreateScreen, run_create_wizard

        app = self.havsh
        spec = await run_create_wizard(app)
        if spec == COPY:
            self.start_copy(self.selected_service)
            return
        if isinstance(spec, str):
            return
        key = (spec.host, spec.name)
        busy_services(app).add(key)
        try:
            await app.push_screen_wait(CreateScreen(app, spec))
        finally:
            busy_services(app).discard(key)
        self.reload()

    def action_rescan(self) -> None:
        if self._rescanning:
            return
        app = self.havsh
        audit = self._audit()
        self._rescanning = True
        self.refresh_bindings()
        self.notify("Rescanning every host's labels…", timeout=3)

        def work() -> list[Any]:
            from havsh_tui.ops import rescan as ops

            try:
                results = ops.rescan_all(app.inventory, app.pool, audit)
            except BaseException as exc:
                self.post_message(RescanFinished(None, exc))
                raise
            self.post_message(RescanFinished(results, None))
            return results

        app.run_worker(work, name="Rescan", group="rescan", description="rescan every host",
                       thread=True, exclusive=True, exit_on_error=False)

    @on(RescanFinished)
    def _on_rescan_finished(self, event: RescanFinished) -> None:
        event.stop()
        self._rescanning = False
        if event.results is not None:
            self.reload()
            self.notify(rescan_summary(event.results), title="Rescan", timeout=10)
        self.refresh_bindings()
