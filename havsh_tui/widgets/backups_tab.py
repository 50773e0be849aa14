"""The Backups tab of the service detail screen, and what the other host-backed tabs share.

:class:`HostListTab` is a detail tab made of a status line, a table and a note: it reads its
rows in a thread worker the first time it is shown (opening the detail screen costs no host
round trip for a tab nobody looks at), and again after each of its operations. Operations
run in thread workers on the app (:func:`run_tab_op`), so their failures reach the app's one
failure handler; long ones with steps and progress run in an :class:`OperationScreen`.

The Backups tab lists the service's backups (time, kind, size, destination, format, sha256)
and offers: ``b`` backup now (with progress), ``R`` restore (a Live service needs its name
typed), ``w`` download to a local directory, ``X`` delete (asks first).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.validation import Function
from textual.widgets import Button, DataTable, Input, Label, Static

from havsh_tui.core.model import Service, ServiceStatus
from havsh_tui.dialogs import Dialog
from havsh_tui.screens.service_detail import DetailTab, register_tab
from havsh_tui.widgets.data_table import SettledDataTable
from havsh_tui.widgets.operation_log import OperationScreen, error_text, human_bytes

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp


class RowsLoaded(Message):
    """A tab's rows (or why there are none), read in its worker."""

    def __init__(self, tab_id: str, data: Any, error: str | None) -> None:
        super().__init__()
        self.tab_id = tab_id
        self.data = data
        self.error = error


class TabOpDone(Message):
    """One of a tab's operations ended well; ``message`` is said in a notification."""

    def __init__(self, tab_id: str, message: str, result: Any = None) -> None:
        super().__init__()
        self.tab_id = tab_id
        self.message = message
        self.result = result


def run_tab_op(tab: HostListTab, title: str, fn: Callable[[], Any],
               success: Callable[[Any], str]) -> None:
    """Run ``fn`` in a thread worker on the app. Success comes back to the tab as a
    TabOpDone; a failure is re-raised for the app's handler, which tells the user."""
    tab_id = tab.TAB_ID

    def work() -> Any:
        try:
            result = fn()
        finally:
            tab.busy = False
        tab.post_message(TabOpDone(tab_id, success(result), result))
        return result

    tab.busy = True
    tab.app.run_worker(work, name=title, group=f"{tab_id}-op", description=title,
                       thread=True, exclusive=True, exit_on_error=False)


class HostListTab(DetailTab):
    """A detail tab that lists what a host says (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "reload_rows", "Refresh", id="tab-refresh"),
    ]

    #: The table's columns.
    COLUMNS: ClassVar[tuple[str, ...]] = ()
    #: What the status line says while the rows are read.
    LOADING: ClassVar[str] = "Asking the host…"

    def __init__(self, service: Service) -> None:
        super().__init__(service)
        self.loaded = False
        self.busy = False
        self.data: Any = None

    @property
    def havsh(self) -> HavshApp:
        return self.detail.havsh

    def compose(self) -> ComposeResult:
        yield Static(Text(self.LOADING, "dim"), id=f"{self.TAB_ID}-status",
                     classes="tab-status")
        table: DataTable[Any] = SettledDataTable(id=f"{self.TAB_ID}-table", cursor_type="row",
                                          zebra_stripes=True)
        table.add_columns(*self.COLUMNS)
        yield table
        yield from self.compose_below()
        yield Static("", id=f"{self.TAB_ID}-note", classes="tab-note")

    def compose_below(self) -> ComposeResult:
        """Widgets between the table and the note (a tab's inputs)."""
        yield from ()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one(f"#{self.TAB_ID}-table", DataTable)

    def on_show(self) -> None:
        if not self.loaded:
            self.loaded = True
            self.load_rows()
        self.table.focus()

    def load_rows(self) -> None:
        """Read the rows again, in a thread worker of this tab."""
        tab_id = self.TAB_ID

        def work() -> None:
            try:
                data = self.read_rows()
            except Exception as exc:  # noqa: BLE001 - said in the tab, which stays usable
                self.post_message(RowsLoaded(tab_id, None, error_text(exc)))
                return
            self.post_message(RowsLoaded(tab_id, data, None))

        self.run_worker(work, name=f"read {self.TAB_TITLE.lower()}", group=f"{tab_id}-read",
                        thread=True, exclusive=True, exit_on_error=False)

    def read_rows(self) -> Any:
        """The rows' data, from the host or the inventory (runs in a thread)."""
        raise NotImplementedError

    def show_rows(self, data: Any) -> None:
        """Fill the table and the status line from ``data`` (on the event loop)."""
        raise NotImplementedError

    def set_status(self, text: str | Text) -> None:
        self.query_one(f"#{self.TAB_ID}-status", Static).update(
            text if isinstance(text, Text) else Text(text))

    def set_note(self, text: str | Text) -> None:
        self.query_one(f"#{self.TAB_ID}-note", Static).update(
            text if isinstance(text, Text) else Text(text))

    @on(RowsLoaded)
    def _loaded(self, event: RowsLoaded) -> None:
        if event.tab_id != self.TAB_ID:
            return
        event.stop()
        if event.error is not None:
            self.set_status(Text(f"Could not ask {self.service.host}: {event.error}", "bold"))
            return
        self.data = event.data
        table = self.table
        keep = table.cursor_row if table.row_count else 0
        self.show_rows(event.data)
        if table.row_count:
            # Read again after an operation: the cursor stays on the row it was on.
            table.move_cursor(row=min(keep, table.row_count - 1))
        self.refresh_bindings()

    @on(TabOpDone)
    def _op_done(self, event: TabOpDone) -> None:
        if event.tab_id != self.TAB_ID:
            return
        event.stop()
        if event.message:
            self.notify(event.message, title=self.service.name, timeout=8)
        self.after_op(event)
        self.load_rows()

    def after_op(self, event: TabOpDone) -> None:
        """An operation ended well, before the rows are read again."""

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        # What the keys act on changed: the footer greys out what does not apply to it.
        self.refresh_bindings()

    def action_reload_rows(self) -> None:
        self.set_status(Text(self.LOADING, "dim"))
        self.load_rows()

    def selected_index(self) -> int | None:
        table = self.table
        if not table.row_count:
            return None
        return table.cursor_row

    def confirm_then(self, title: str, body: str, confirm: str,
                     action: Callable[[], None]) -> None:
        """Ask (a ConfirmDialog with ``confirm`` on its button); run ``action`` on yes."""
        from havsh_tui.dialogs.confirm import ConfirmDialog

        self.app.push_screen(ConfirmDialog(title, body, confirm=confirm),
                             lambda ok: action() if ok else None)

    def run_operation(self, screen: OperationScreen[Any], then: Callable[[Any], None]
                      | None = None) -> None:
        """Push an OperationScreen; when it is closed, read the rows (and the record) again."""

        def closed(outcome: Any) -> None:
            if then is not None and outcome is not None and outcome.ok:
                then(outcome.result)
            self.detail.reload()
            self.load_rows()

        self.app.push_screen(screen, closed)


# -- backups -----------------------------------------------------------------------------------


def backup_now(app: HavshApp, service: Service,
               closed: Callable[[Any], None] | None = None) -> None:
    """``b`` on the dashboard and in the tab: a manual backup of ``service`` to its primary
    destination, with its progress in an OperationScreen."""
    from havsh_tui.core.audit import AuditLog
    from havsh_tui.core.secrets import SecretStore

    def run(reporter: Any) -> Any:
        from havsh_tui.ops import backup

        return backup.create_backup(app.inventory, SecretStore(app.paths.secrets), app.pool,
                                    service, kind="manual", reporter=reporter,
                                    audit=AuditLog(app.paths.audit_log))

    screen = BackupScreen(f"Backing up {service.name}", run, expected_steps=["backup"],
                          subtitle=f"{service.type.label} service on {service.host}, to its "
                                   "primary destination")
    app.push_screen(screen, closed)


class BackupScreen(OperationScreen[Any]):
    """A backup, a restore or a download, with its steps and progress."""

    def describe_result(self, result: Any) -> Text:
        if result is None:
            return Text("Done.")
        record = getattr(result, "safety", None)
        if hasattr(result, "outcome"):  # a RestoreResult
            text = Text.assemble((f"{result.service.name} is {result.outcome}", "bold"),
                                 f" from {result.backup_id} in {result.seconds:.0f} s.")
            if record is not None:
                text.append(f"\nSafety backup first: {record.id} ({record.where}).")
            return text
        return Text.assemble((f"{result.id}", "bold"),
                             f"  {human_bytes(result.size)}  sha256 {result.sha256[:16]}…\n"
                             f"in {result.where}")


def backups_allowed(service: Service) -> bool:
    """A backup reads the database and the volume: they exist, and nothing owns them."""
    return service.status in (ServiceStatus.RUNNING, ServiceStatus.STOPPED,
                              ServiceStatus.UNKNOWN)


class DownloadDialog(Dialog[str | None]):
    """Where on this machine a backup goes (DIR/<host>/<service>/<id>.zip)."""

    def __init__(self, backup_id: str, default: str) -> None:
        super().__init__()
        self.backup_id = backup_id
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="download-dialog", classes="dialog"):
            yield Static(Text(f"Download {self.backup_id}"), classes="dialog-title")
            yield Label("To the local directory")
            yield Input(self.default, id="download-dir", compact=True,
                        validators=[Function(lambda v: bool(v.strip()), "Say where.")])
            yield Static("It goes into DIR/<host>/<service>/, checked against its sha256 on "
                         "arrival; streamed, never held in memory.", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="download-cancel")
                yield Button("Download", id="download-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#download-dir", Input).focus()

    def _submit(self) -> None:
        value = self.query_one("#download-dir", Input).value.strip()
        if value:
            self.dismiss(str(Path(value).expanduser()))

    @on(Input.Submitted, "#download-dir")
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#download-ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#download-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)


KIND_STYLE = {"manual": "", "scheduled": "dim", "safety": "bold"}


class BackupsTab(HostListTab):
    TAB_TITLE = "Backups"
    TAB_ID = "tab-backups"
    COLUMNS = ("Time (UTC)", "Kind", "Size", "Destination", "Format", "SHA-256")
    LOADING = "Listing the backups in this service's destinations…"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "backup_now", "Backup now", id="backup-now"),
        Binding("R", "restore_backup", "Restore", id="backup-restore"),
        Binding("w", "download_backup", "Download", id="backup-download"),
        Binding("X", "delete_backup", "Delete backup", id="backup-delete"),
    ]

    def read_rows(self) -> Any:
        from havsh_tui.ops import backup

        return backup.list_backups(self.havsh.inventory, self.havsh.pool, service=self.service)

    def show_rows(self, data: Any) -> None:
        table = self.table
        table.clear()
        for r in data:
            table.add_row(
                r.created_at.strftime("%Y-%m-%d %H:%M"),
                Text(r.kind, KIND_STYLE.get(r.kind, "")),
                human_bytes(r.size),
                r.destination or r.destination_kind,
                r.format_label,
                r.sha256[:16],
                key=r.id,
            )
        total = sum(r.size for r in data)
        self.set_status(Text.assemble(
            (f"{len(data)} backup{'' if len(data) == 1 else 's'}", "bold"),
            f", {human_bytes(total)} in all" if data else "",
            "   b backup now · R restore · w download · X delete · g refresh", ))
        self.set_note("" if data else Text(
            "No backup yet. b makes one now, to the primary destination "
            "(`havsh backup dest ls` lists them).", "dim"))

    def selected(self) -> Any:
        index = self.selected_index()
        if index is None or not self.data or index >= len(self.data):
            return None
        return self.data[index]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "backup_now":
            return True if backups_allowed(self.service) and not self.busy else None
        if action in ("restore_backup", "download_backup", "delete_backup"):
            if self.busy or self.selected() is None:
                return None
            if action == "restore_backup":
                return True if backups_allowed(self.service) else None
        return True

    def action_backup_now(self) -> None:
        if not backups_allowed(self.service):
            return
        backup_now(self.havsh, self.service, lambda _outcome: self._after_screen())

    def _after_screen(self) -> None:
        self.detail.reload()
        self.load_rows()

    def action_restore_backup(self) -> None:
        from havsh_tui.dialogs.confirm import ConfirmDialog

        record, service = self.selected(), self.service
        if record is None:
            return
        live = service.type.rules.needs_typed_name
        message = (
            f"First a safety backup of {service.name} goes to its primary destination. Then "
            f"{service.name} stops, its database and filestore are replaced by the backup of "
            f"{record.created_at:%Y-%m-%d %H:%M} UTC ({record.kind}, {human_bytes(record.size)}"
            f", Odoo {record.odoo_version or '?'}), and it starts again and is checked."
        )
        if live:
            message += f"\n\n{service.name} is a Live service: its users lose what they did " \
                       "since that backup (the safety backup keeps it)."
        dialog = ConfirmDialog(f"Restore {service.name} from {record.id}?", message,
                               confirm="Restore", type_to_confirm=service.name if live else None)
        self.app.push_screen(dialog, lambda ok: self._restore(record) if ok else None)

    def _restore(self, record: Any) -> None:
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.core.secrets import SecretStore

        app, service = self.havsh, self.service

        def run(reporter: Any) -> Any:
            from havsh_tui.ops import backup

            spec = backup.RestoreSpec(backup_id=record.id, service=service.name,
                                      service_host=service.host, confirm_name=service.name)
            return backup.restore_backup(app.inventory, SecretStore(app.paths.secrets),
                                         app.pool, spec, reporter=reporter,
                                         audit=AuditLog(app.paths.audit_log))

        self.run_operation(BackupScreen(
            f"Restoring {service.name} from {record.id}", run,
            expected_steps=["check backup", "safety backup", "stop", "load", "swap", "start"],
            subtitle=f"on {service.host}"))

    def action_download_backup(self) -> None:
        record = self.selected()
        if record is None:
            return
        default = str(Path.home() / "havsh-backups")
        self.app.push_screen(DownloadDialog(record.id, default),
                             lambda where: self._download(record, where) if where else None)

    def _download(self, record: Any, directory: str) -> None:
        app = self.havsh

        def run(reporter: Any) -> Any:
            from havsh_tui.ops import backup

            return backup.download_backup(app.inventory, app.pool, record, directory,
                                          reporter=reporter)

        self.run_operation(BackupScreen(f"Downloading {record.id}", run,
                                        subtitle=f"to {directory}"))

    def action_delete_backup(self) -> None:
        record = self.selected()
        if record is None:
            return
        self.confirm_then(
            f"Delete backup {record.id}?",
            f"The {record.kind} backup of {record.created_at:%Y-%m-%d %H:%M} UTC "
            f"({human_bytes(record.size)}) is removed from {record.where}. It cannot be undone.",
            "Delete", lambda: self._delete(record))

    def _delete(self, record: Any) -> None:
        from havsh_tui.core.audit import AuditLog

        app = self.havsh

        def call() -> None:
            from havsh_tui.ops import backup

            backup.delete_backup(app.inventory, app.pool, record,
                                 audit=AuditLog(app.paths.audit_log))

        run_tab_op(self, f"Delete backup {record.id}", call,
                   lambda _r: f"Deleted backup {record.id}.")


register_tab(BackupsTab)
