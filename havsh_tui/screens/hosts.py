"""The hosts section: every host's health, polled live, the selected host's detail with a
sparkline of its load, and the audit log.

The table paints from the inventory at once; each host's health arrives from the poller
(havsh_tui/workers.py) as it answers, so a host stuck in its SSH timeout shows "polling…" or
"unreachable" while the others, and the keys, carry on. Every operation (add, edit, remove,
bootstrap, forget key) runs in a worker on the app, so a failure reaches the app's one
failure handler, which shows the message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Label, Sparkline, Static
from textual.worker import get_current_worker

from havsh_tui.core.audit import AuditLog
from havsh_tui.core.model import Host
from havsh_tui.dialogs.add_host import HostDialog, HostDialogResult
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.ops.hosts import HostHealth
from havsh_tui.stylesheets import styles_dir
from havsh_tui.widgets.data_table import SettledDataTable
from havsh_tui.widgets.host_table import (
    HostTable,
    format_bytes,
    format_load,
    format_rtt,
    state_of,
)
from havsh_tui.workers import (
    HostOperationReporter,
    HostPolled,
    OperationEvent,
    OperationUpdate,
    describe_error,
)

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp

T = TypeVar("T")

#: Audit entries listed, newest first.
AUDIT_ROWS = 50
#: How often the audit log file is checked for lines written by others (the CLI, a worker).
AUDIT_CHECK_SECONDS = 2.0
#: Polls that land within this long of each other are shown in one repaint (the poller polls
#: every host on one grid, so a round's answers arrive together).
FLUSH_SECONDS = 0.5

STEP_MARKS = {"running": "●", "done": "✓", "failed": "✕", "skipped": "–", "pending": "○"}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class Operation:
    """An operation in progress on one host, as the detail pane shows it."""

    title: str
    host: str
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)
    progress: str = ""
    outcome: str | None = None
    failed: bool = False

    def render(self) -> Text:
        parts: list[str] = []
        for name, (state, detail) in self.steps.items():
            label = f"{STEP_MARKS.get(state, '·')} {name}"
            if detail:
                label += f" ({detail})"
            if state == "running" and self.progress:
                label += f" {self.progress}"
            parts.append(label)
        text = Text(f"{self.title}: ", style="bold")
        text.append(" · ".join(parts) if parts else "starting…")
        if self.outcome:
            text.append(f"  → {self.outcome}")
        return text


def audit_detail(detail: object) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"


class HostsScreen(Screen[None]):
    """The base screen of the ``hosts`` mode."""

    CSS_PATH = styles_dir() / "hosts.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_host", "Add", id="host-add"),
        Binding("e", "edit_host", "Edit", id="host-edit"),
        Binding("d,delete", "remove_host", "Remove", id="host-remove"),
        Binding("b", "bootstrap", "Bootstrap", id="host-bootstrap"),
        Binding("p", "push_image", "Push image", id="host-push-image"),
        Binding("r", "refresh", "Refresh", id="host-refresh"),
        Binding("k", "forget_key", "Forget key", id="host-forget-key"),
    ]

    AUTO_FOCUS = "#host-table"

    def __init__(self) -> None:
        super().__init__()
        self.operations: dict[str, Operation] = {}
        #: (size, mtime) of the audit log when last read; "never" before the first read.
        self._audit_stamp: tuple[int, int] | str | None = "never"
        #: Hosts polled since the last repaint, and the timer of the next one.
        self._dirty: set[str] = set()
        self._flush_timer: Timer | None = None
        #: What each Static of the detail pane shows, so an unchanged one is not redrawn.
        self._shown: dict[str, Text] = {}

    @property
    def havsh(self) -> HavshApp:
        return cast("HavshApp", self.app)

    @property
    def table(self) -> HostTable:
        return self.query_one("#host-table", HostTable)

    @property
    def selected_host(self) -> Host | None:
        return self.table.selected_host

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.havsh.paths.audit_log)

    # -- building -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(id="header")
        yield HostTable(id="host-table")
        with Vertical(id="host-detail"):
            with Horizontal(id="host-heading"):
                yield Static(id="host-summary")
                yield Static(id="host-state")
            yield Static(id="host-facts")
            yield Static(id="host-error", classes="-hidden")
            with Horizontal(id="host-load-row"):
                yield Label("Load (1 min)", id="host-load-label")
                yield Sparkline([], id="host-load")
                yield Label("", id="host-load-range")
            yield Static(id="host-operation", classes="-hidden")
        with Vertical(id="audit-panel"):
            yield SettledDataTable(id="audit-table", cursor_type="none", zebra_stripes=True)
        yield Footer(id="footer")

    def on_mount(self) -> None:
        self.query_one("#audit-panel").border_title = "Audit log"
        audit = self.query_one("#audit-table", DataTable)
        for label, key in (
            ("Time (UTC)", "time"),
            ("Host", "host"),
            ("Action", "action"),
            ("Target", "target"),
            ("Outcome", "outcome"),
            ("Detail", "detail"),
        ):
            audit.add_column(label, key=key)
        self.reload()
        poller = self.havsh.poller
        poller.subscribe(self, self._on_polled)
        self._show_all_health()
        self.refresh_audit()
        self.set_interval(AUDIT_CHECK_SECONDS, self.refresh_audit)

    def on_screen_resume(self) -> None:
        # Services may have been added or removed on the dashboard meanwhile.
        if self.is_mounted:
            self.reload()

    # -- data -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the inventory: hosts and their service counts (a local file, no SSH)."""
        app = self.havsh
        snapshot = app.inventory.snapshot()
        counts: dict[str, int] = {}
        for service in snapshot.services:
            counts[service.host] = counts.get(service.host, 0) + 1
        self.table.set_hosts(snapshot.hosts, counts)
        if app.poller.running:
            app.poller.sync(snapshot.hosts)
        self._show_all_health()
        n = len(snapshot.hosts)
        interval = app.settings.poll_interval
        self.sub_title = f"{plural(n, 'host')} · polled every {interval:g} s"
        self.refresh_bindings()

    def _show_all_health(self) -> None:
        poller = self.havsh.poller
        self._dirty.clear()
        for host in self.table.hosts:
            self.table.update_health(
                host.name,
                poller.latest.get(host.name),
                poller.history.get(host.name, ()),
                polling=poller.running and host.name not in poller.latest,
            )
        self.show_detail()

    def _on_polled(self, message: HostPolled) -> None:
        self._dirty.add(message.host)
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(FLUSH_SECONDS, self._flush)

    @property
    def repaint_pending(self) -> bool:
        """Polls have arrived that the table does not show yet (a repaint is scheduled)."""
        return self._flush_timer is not None

    def _flush(self) -> None:
        self._flush_timer = None
        if self not in self.app.screen_stack:
            # Another section is showing: repaint nothing now; on_screen_resume reloads all.
            return
        dirty, self._dirty = self._dirty, set()
        poller = self.havsh.poller
        for name in sorted(dirty):
            self.table.update_health(name, poller.latest.get(name), poller.history.get(name, ()))
        selected = self.selected_host
        if selected is not None and selected.name in dirty:
            self.show_detail()

    # -- the detail pane ------------------------------------------------------------------

    def _set(self, widget: Static, text: Text) -> None:
        """Update a Static of the detail pane only if its text changed, and without a
        layout pass when it keeps its number of lines (polls change numbers, not shapes)."""
        key = widget.id or ""
        old = self._shown.get(key)
        if old is not None and old == text:
            return
        self._shown[key] = text
        same_shape = old is not None and old.plain.count("\n") == text.plain.count("\n")
        width = widget.styles.width
        if same_shape and width is not None and width.is_auto:
            # Sized to its text: a longer text needs a wider widget.
            same_shape = old is not None and len(old.plain) == len(text.plain)
        widget.update(text, layout=not same_shape)

    def show_detail(self) -> None:
        host = self.selected_host
        summary = self.query_one("#host-summary", Static)
        state = self.query_one("#host-state", Static)
        facts = self.query_one("#host-facts", Static)
        error = self.query_one("#host-error", Static)
        load_row = self.query_one("#host-load-row")
        operation = self.query_one("#host-operation", Static)
        if host is None:
            self._set(
                summary,
                Text("No hosts yet. Press a to add one: havsh reaches it over SSH, the way "
                     "your ~/.ssh/config does.")
                if not self.table.hosts
                else Text(""),
            )
            for widget in (state, facts):
                self._set(widget, Text(""))
            error.add_class("-hidden")
            load_row.display = False
            operation.add_class("-hidden")
            return
        poller = self.havsh.poller
        health = poller.latest.get(host.name)
        heading = Text(host.name, style="bold")
        heading.append(f"  {host.destination}")
        if host.jump:
            heading.append(f" via {host.jump}")
        self._set(summary, heading)
        word = state_of(health, poller.running)
        self._set(state, Text(word))
        state.set_class(word == "reachable", "-up")
        state.set_class(word == "unreachable", "-down")
        self._set(facts, self._facts(host, health))
        if health is not None and health.error:
            self._set(error, Text(self._error_text(health)))
            error.remove_class("-hidden")
        else:
            error.add_class("-hidden")
        history = list(poller.history.get(host.name, ()))
        show_load = bool(health is not None and health.reachable)
        if load_row.display != show_load:
            load_row.display = show_load
        self.query_one("#host-load", Sparkline).data = history
        if history:
            self._set(
                self.query_one("#host-load-range", Label),
                Text(f"now {format_load(history[-1])} · max {format_load(max(history))}"
                     f" · last {len(history)} polls"),
            )
        op = self._operation_for(host.name)
        if op is None:
            operation.add_class("-hidden")
        else:
            self._set(operation, op.render())
            operation.remove_class("-hidden")
            operation.set_class(op.failed, "-failed")

    def _facts(self, host: Host, health: HostHealth | None) -> Text:
        images = f"images: postgres {host.postgres_image} · odoo {host.odoo_image}"
        if health is None or not health.reachable:
            return Text(images)
        mem = format_bytes(health.mem_available)
        if health.mem_total:
            mem += f" free of {format_bytes(health.mem_total)}"
        disk = format_bytes(health.disk_free)
        if health.disk_total:
            disk += f" free of {format_bytes(health.disk_total)}"
        api = f" (API {health.api_version})" if health.api_version else ""
        loads = " ".join(
            format_load(x) for x in (health.load1, health.load5, health.load15) if x is not None
        )
        lines = [
            f"Docker {health.docker_version or '?'}{api} · root {health.docker_root or '?'}"
            f" · {plural(health.managed_containers or 0, 'managed container')}"
            f" · RTT {format_rtt(health.rtt_ms)}",
            f"{plural(health.cpus or 0, 'CPU')} · load {loads or '?'} · memory {mem}"
            f" · disk {disk}",
            images,
        ]
        platform = getattr(health, "platform", None) or {}
        if platform:
            roles = {"havsh-backups": " (backup scheduler)"}
            lines.append("platform: " + " · ".join(
                f"{name}{roles.get(name, '')} {state}" for name, state in platform.items()))
        return Text("\n".join(lines))

    @staticmethod
    def _error_text(health: HostHealth) -> str:
        text = health.error or ""
        kind = getattr(health, "error_kind", None)
        # The edit dialog's Test connection walks through both, then hands them to the pool.
        if kind == "unknown_host_key" or "can't be established" in text:
            text += "\nPress e, then Test connection, to review the key and accept it."
        elif kind in ("passphrase_required", "wrong_passphrase"):
            text += "\nPress e, then Test connection, to unlock the key."
        return text

    def _operation_for(self, host: str) -> Operation | None:
        for op in reversed(self.operations.values()):
            if op.host == host:
                return op
        return None

    # -- audit log ------------------------------------------------------------------------

    def refresh_audit(self, force: bool = False) -> None:
        """Re-read the audit log's tail when the file changed (one stat otherwise)."""
        path = self.havsh.paths.audit_log
        try:
            st = os.stat(path)
            stamp: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._audit_stamp and not force:
            return
        self._audit_stamp = stamp
        table = self.query_one("#audit-table", DataTable)
        table.clear()
        records = self.audit.tail(AUDIT_ROWS) if stamp is not None else []
        for record in reversed(records):
            table.add_row(
                Text(str(record.get("time", "")).replace("T", " ").rstrip("Z")),
                Text(str(record.get("host", ""))),
                Text(str(record.get("action", ""))),
                Text(str(record.get("target", ""))),
                Text(
                    str(record.get("outcome", "")),
                    style="" if record.get("outcome") == "ok" else "bold",
                ),
                Text(audit_detail(record.get("detail", ""))),
            )
        panel = self.query_one("#audit-panel")
        panel.border_subtitle = (
            f"last {len(records)} of {path.name}" if records else f"{path.name} is empty"
        )

    # -- keys -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("edit_host", "remove_host", "bootstrap", "forget_key", "push_image"):
            # None greys the key out in the footer rather than hiding it.
            return True if self.selected_host is not None else None
        if action == "refresh":
            return True if self.table.hosts else None
        return True

    @on(DataTable.RowHighlighted, "#host-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        self.refresh_bindings()

    def _existing(self) -> list[str]:
        return [host.name for host in self.havsh.inventory.list_hosts()]

    def action_add_host(self) -> None:
        app = self.havsh
        dialog = HostDialog(opts=app.pool.opts, settings=app.settings, existing=self._existing())
        self.app.push_screen(dialog, self._save_new)

    def action_edit_host(self) -> None:
        host = self.selected_host
        if host is None:
            return
        app = self.havsh
        dialog = HostDialog(
            opts=app.pool.opts, settings=app.settings, existing=self._existing(), host=host
        )
        self.app.push_screen(dialog, self._save_edit)

    def action_remove_host(self) -> None:
        host = self.selected_host
        if host is None:
            return
        dialog = ConfirmDialog(
            f"Remove host {host.name}?",
            f"havsh forgets {host.name} ({host.destination}). Nothing on the host is changed "
            "or removed. A host that still has services is not removed.",
            confirm="Remove",
        )
        self.app.push_screen(dialog, lambda ok: self._remove(host) if ok else None)

    def action_forget_key(self) -> None:
        host = self.selected_host
        if host is None:
            return
        dialog = ConfirmDialog(
            f"Forget the host key of {host.name}?",
            f"The key saved for {host.destination} is removed from "
            f"{self.havsh.paths.known_hosts}. The next connection shows the host's key as "
            "unknown, for you to check and accept again. Do this only when you know why "
            "the key changed.",
            confirm="Forget key",
        )
        self.app.push_screen(dialog, lambda ok: self._forget_key(host) if ok else None)

    def action_push_image(self) -> None:
        """Stream an image to the selected host (one that can't pull it) from this machine's
        engine or another host, with its progress in an OperationScreen."""
        from havsh_tui.dialogs.push_image import PushImageDialog

        host = self.selected_host
        if host is None:
            return
        self.app.push_screen(PushImageDialog(host.name, host.odoo_image or ""), self._push)

    def _push(self, request: Any) -> None:
        from havsh_tui.dialogs.push_image import push_screen

        if request is None:
            return
        screen = push_screen(self.app, request)

        def closed(_outcome: Any) -> None:
            self.refresh_audit()
            self.havsh.poller.poll_now(request.host)

        self.app.push_screen(screen, closed)

    def action_refresh(self) -> None:
        poller = self.havsh.poller
        if not poller.running:
            poller.start()
        poller.poll_now()
        self.notify(f"Polling {plural(len(self.table.hosts), 'host')}…", timeout=2)

    def action_bootstrap(self) -> None:
        host = self.selected_host
        if host is None:
            return
        title = f"bootstrap {host.name}"
        running = self.operations.get(title)
        if running is not None and running.outcome is None:
            self.notify(f"{host.name} is being bootstrapped already.", severity="warning")
            return
        self.operations[title] = Operation("Bootstrap", host.name)
        self.show_detail()
        app = self.havsh

        def work() -> None:
            from havsh_tui.core.secrets import open_secrets
            from havsh_tui.ops.bootstrap import bootstrap_host

            reporter = HostOperationReporter(self, title, get_current_worker())
            try:
                result = bootstrap_host(
                    app.pool.session(host), open_secrets(app.paths), reporter, audit=self.audit
                )
            except BaseException as exc:
                self.post_message(
                    OperationUpdate(OperationEvent(title, "failed", describe_error(exc)))
                )
                raise
            if result.noop:
                outcome = "already bootstrapped, nothing changed"
            else:
                outcome = "created " + (", ".join(result.created) or "nothing")
                if result.changed:
                    outcome += "; changed " + ", ".join(result.changed)
            self.post_message(OperationUpdate(OperationEvent(title, "finished", outcome)))

        app.run_worker(
            work,
            name=title,
            group=f"bootstrap-{host.name}",
            description=title,
            thread=True,
            exit_on_error=False,
        )

    # -- results --------------------------------------------------------------------------

    def _run(self, title: str, fn: Callable[[], T], done: Callable[[T], object]) -> None:
        """Run ``fn`` in a thread worker on the app (its failure goes to the app's handler)
        and then ``done(result)`` back on the event loop."""
        app = self.app

        def work() -> T:
            result = fn()
            app.call_from_thread(done, result)
            return result

        app.run_worker(
            work, name=title, group="host-ops", description=title, thread=True,
            exit_on_error=False,
        )

    def _save_new(self, result: HostDialogResult | None) -> None:
        if result is None:
            return
        app = self.havsh
        host, test = result.host, result.test

        def add() -> Any:
            from havsh_tui.ops.hosts import add_host

            # The dialog's test already verified (and saved) the key and saw the engine.
            added = add_host(
                app.inventory,
                host,
                app.pool.opts,
                accept_fingerprint=test.fingerprint if test and test.accepted_new_key else None,
                check=False,
                audit=self.audit,
            )
            self._remember_passphrase(host, result.passphrase)
            return added

        def added(_result: Any) -> None:
            self.reload()
            self._select(host.name)
            version = f" (Docker {test.docker_version})" if test and test.docker_version else ""
            self.notify(f"Added host {host.name}{version}.", title="Hosts")

        self._run(f"add host {host.name}", add, added)

    def _save_edit(self, result: HostDialogResult | None) -> None:
        if result is None:
            return
        app = self.havsh
        host = result.host
        old = next((h for h in self.table.hosts if h.name == host.name), None)
        changed = [
            name
            for name in ("user", "port", "identity_file", "postgres_image", "odoo_image")
            if old is None or getattr(old, name) != getattr(host, name)
        ]
        if not changed:
            if result.test is None:
                self.notify(f"{host.name}: nothing changed.", timeout=3)
                return

            # A test that passed with nothing to save: a key accepted, a key unlocked.
            def remember() -> None:
                self._remember_passphrase(host, result.passphrase)

            def checked(_result: None) -> None:
                app.poller.poll_now(host.name)
                self.notify(f"{host.name}: connection checked.", timeout=3)

            self._run(f"check host {host.name}", remember, checked)
            return

        def update() -> None:
            app.inventory.update_host(host)
            self._remember_passphrase(host, result.passphrase)
            detail = ", ".join(f"{name}={getattr(host, name)}" for name in changed)
            self.audit.append(host.name, "host.set", host.name, "ok", detail)

        def updated(_result: None) -> None:
            self.reload()
            self.notify(f"{host.name}: changed {', '.join(changed)}.", title="Hosts")

        self._run(f"edit host {host.name}", update, updated)

    def _remember_passphrase(self, host: Host, passphrase: str | None) -> None:
        """Hand the passphrase the dialog asked for to the pool (memory only), so the polls
        of this host can open its key too. Runs on the worker's thread."""
        if passphrase is not None:
            self.havsh.pool.session(host, passphrase=passphrase)

    def _remove(self, host: Host) -> None:
        app = self.havsh

        def remove() -> None:
            from havsh_tui.ops.hosts import remove_host

            remove_host(app.inventory, host.name, audit=self.audit)
            app.pool.drop(host.name)

        def removed(_result: None) -> None:
            self.reload()
            self.notify(f"Removed host {host.name}.", title="Hosts")

        self._run(f"remove host {host.name}", remove, removed)

    def _forget_key(self, host: Host) -> None:
        app = self.havsh

        def forget() -> tuple[str, int]:
            from havsh_tui.ops.hosts import forget_host_key

            entry, removed = forget_host_key(host, app.pool.opts)
            self.audit.append(host.name, "host.forget-key", entry, "ok", f"{removed} line(s)")
            # The open connection still trusts the old key: drop it, so the next one checks.
            app.pool.drop(host.name)
            return entry, removed

        def forgotten(result: tuple[str, int]) -> None:
            entry, removed = result
            if removed:
                message = f"Removed {plural(removed, 'key line')} for {entry}."
            else:
                message = (
                    f"No key for {entry} in {app.paths.known_hosts}. If it is in "
                    f"~/.ssh/known_hosts, remove it there with ssh-keygen -R '{entry}'."
                )
            self.notify(message, title=host.name)
            self.refresh_audit()
            app.poller.poll_now(host.name)

        self._run(f"forget key of {host.name}", forget, forgotten)

    def _select(self, name: str) -> None:
        table = self.table
        try:
            table.move_cursor(row=table.get_row_index(name))
        except Exception:  # noqa: BLE001 - a host removed meanwhile: keep the cursor
            return

    @on(OperationUpdate)
    def _operation_update(self, message: OperationUpdate) -> None:
        event = message.event
        op = self.operations.get(event.operation)
        if op is None:
            return
        if event.kind == "step":
            op.steps[event.text] = (event.state, event.detail)
            op.progress = ""
        elif event.kind == "progress":
            if event.total:
                op.progress = f"{100 * (event.done or 0) / event.total:.0f}%"
            elif event.text:
                op.progress = event.text
        elif event.kind == "warning":
            self.notify(event.text, title=op.title, severity="warning")
        elif event.kind in ("finished", "failed"):
            op.outcome = event.text
            op.failed = event.kind == "failed"
            if not op.failed:
                self.notify(f"{op.host}: {event.text}", title=op.title)
            self.refresh_audit()
            self.havsh.poller.poll_now(op.host)
        selected = self.selected_host
        if selected is not None and selected.name == op.host:
            self.show_detail()
