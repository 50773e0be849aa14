"""The previews section: every preview of a pull request, with its PR, branch, head, status,
URL, parent and age, and the steps, error and operations of the selected one.

``n`` creates one by hand (repository and PR number; the branch comes from GitHub), ``D``
destroys the selected one (asks first), ``R`` runs a reconcile pass now. The list is the
inventory's, read again every few seconds: the app's reconciler (:func:`start_reconciler`,
a thread worker running ``Reconciler.watch`` while the app is open) writes it there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.validation import Integer
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from havsh_tui.core.model import Service, ServiceStatus, ServiceType
from havsh_tui.dialogs import Dialog
from havsh_tui.ops.reporter import NullReporter
from havsh_tui.widgets.data_table import SettledDataTable
from havsh_tui.widgets.operation_log import ICONS, OperationScreen, error_text
from havsh_tui.widgets.service_table import format_age

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp

#: Seconds between two passes of the app's reconciler (as `havsh preview watch`).
RECONCILE_SECONDS = 60.0
#: Seconds between two reads of the inventory while the screen shows.
REFRESH_SECONDS = 5.0

COLUMNS = ("PR", "Title", "Branch", "Head", "Status", "URL", "Parent", "Age")


def github_client(app: Any) -> Any:
    from havsh_tui.widgets.repos_tab import github_client as client

    return client(app)


def make_reconciler(app: Any, gh: Any, reporter: Any = None) -> Any:
    """A Reconciler on the app's inventory, secrets and pool (as `havsh preview` makes it)."""
    from havsh_tui.core.audit import AuditLog
    from havsh_tui.core.secrets import SecretStore
    from havsh_tui.ops.preview import Reconciler

    return Reconciler(app.inventory, SecretStore(app.paths.secrets), app.pool, gh,
                      settings=app.settings, lock_dir=app.paths.data_dir / "locks",
                      reporter=reporter, audit=AuditLog(app.paths.audit_log))


def reconciler_wanted(app: Any) -> bool:
    """A GitHub token is configured and some connected repository has previews on (two
    local file reads, no network)."""
    from havsh_tui.core.secrets import SecretStore
    from havsh_tui.github.client import NotLoggedIn, resolve_connection
    from havsh_tui.ops.repos import list_connections

    try:
        if not any(c.previews for c in list_connections(app.inventory)):
            return False
        resolve_connection(app.inventory, SecretStore(app.paths.secrets))
    except NotLoggedIn:
        return False
    except Exception as exc:  # noqa: BLE001 - a bad file must not stop the app opening
        app.log.warning(f"preview reconciler not started: {exc}")
        return False
    return True


class _StopReporter(NullReporter):
    """The reconciler's reporter in the app: warnings to the app's log, and cancelled once
    the app is closing, so a pass stops at its next safe point."""

    def __init__(self, app: App[Any], stop: threading.Event) -> None:
        self.app = app
        self.stop = stop

    def warning(self, message: str) -> None:
        self.app.log.warning(f"preview reconciler: {message}")

    def cancelled(self) -> bool:
        return self.stop.is_set()


def start_reconciler(app: Any, interval: float = RECONCILE_SECONDS) -> threading.Event | None:
    """Start ``Reconciler.watch`` in a thread worker of the app, when it is wanted
    (:func:`reconciler_wanted`). Returns the stop Event (the app sets it when it exits), or
    None when nothing was started."""
    if not reconciler_wanted(app):
        return None
    stop = threading.Event()

    def said(result: Any) -> None:
        if result.changed or result.errors:
            lines = [a.line() for a in result.actions if a.action != "kept"][:6]
            lines += [f"error: {e}" for e in result.errors][:3]
            app.notify("\n".join(lines) or "changed", title="Previews",
                       severity="error" if result.errors or result.count("failed")
                       else "information", timeout=10)

    def on_pass(result: Any) -> None:
        app.last_preview_pass = result
        if stop.is_set():
            return
        try:
            app.call_from_thread(said, result)
        except RuntimeError:  # the app is closing
            pass

    def watch() -> int:
        gh = github_client(app)
        try:
            rec = make_reconciler(app, gh, _StopReporter(app, stop))
            return int(rec.watch(interval, stop, on_pass))
        finally:
            gh.close()

    app.run_worker(watch, name="Preview reconciler", group="preview-reconciler",
                   description="Reconciler.watch", thread=True, exclusive=True,
                   exit_on_error=False)
    return stop


# -- creating one by hand ----------------------------------------------------------------------


@dataclass
class CreatePreviewRequest:
    parent_host: str
    parent: str
    repo: str
    number: int


class PullLooked(Message):
    def __init__(self, number: int, pull: Any, error: str | None) -> None:
        super().__init__()
        self.number = number
        self.pull = pull
        self.error = error


class CreatePreviewDialog(Dialog[CreatePreviewRequest | None]):
    """Which repository (a connection with previews on) and which pull request; the branch
    and title are looked up on GitHub as soon as the number is complete."""

    def __init__(self, choices: list[tuple[str, tuple[str, str, str]]]) -> None:
        super().__init__()
        #: (label, (parent host, parent, repo)).
        self.choices = choices
        self.pull: Any = None

    def compose(self) -> ComposeResult:
        with Vertical(id="preview-create-dialog", classes="dialog"):
            yield Static("Create a preview", classes="dialog-title")
            yield Label("Repository (parent service)")
            yield Select([(label, i) for i, (label, _v) in enumerate(self.choices)],
                         id="preview-repo", allow_blank=False, compact=True)
            yield Label("Pull request number")
            yield Input(id="preview-number", compact=True, type="integer",
                        validators=[Integer(minimum=1)], placeholder="42")
            yield Label("Branch")
            yield Input(id="preview-branch", compact=True, disabled=True,
                        placeholder="filled in from GitHub")
            yield Static("", id="preview-pull", classes="dialog-hint")
            yield Static("A neutralized copy of the parent, with the PR's addons at its head "
                         "commit. The same rules as a pass: the PR open and based on the "
                         "connected branch, forks only where allowed, the cap respected.",
                         classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="preview-cancel")
                yield Button("Create", id="preview-ok", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#preview-number", Input).focus()

    def _choice(self) -> tuple[str, str, str]:
        index = self.query_one("#preview-repo", Select).value
        return self.choices[int(index) if isinstance(index, int) else 0][1]

    def _number(self) -> int | None:
        value = self.query_one("#preview-number", Input).value.strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @on(Input.Changed, "#preview-number")
    @on(Select.Changed, "#preview-repo")
    def _changed(self, event: Message) -> None:
        self.pull = None
        self.query_one("#preview-ok", Button).disabled = True
        self.query_one("#preview-branch", Input).value = ""
        number = self._number()
        hint = self.query_one("#preview-pull", Static)
        if number is None:
            hint.update("")
            return
        hint.update(Text(f"Asking GitHub about #{number}…", "dim"))
        self._look_up(self._choice()[2], number)

    def _look_up(self, repo: str, number: int) -> None:
        app = self.app

        def work() -> None:
            try:
                gh = github_client(app)
                try:
                    pull = gh.repo(repo).pull(number)
                finally:
                    gh.close()
            except Exception as exc:  # noqa: BLE001 - said in the dialog
                self.post_message(PullLooked(number, None, error_text(exc)))
                return
            self.post_message(PullLooked(number, pull, None))

        self.run_worker(work, name="look up the pull request", group="preview-pull",
                        thread=True, exclusive=True, exit_on_error=False)

    @on(PullLooked)
    def _looked(self, event: PullLooked) -> None:
        event.stop()
        if event.number != self._number():
            return  # typed on since
        hint = self.query_one("#preview-pull", Static)
        if event.pull is None:
            hint.update(Text(event.error or "not found", "bold"))
            return
        pull = event.pull
        self.pull = pull
        self.query_one("#preview-branch", Input).value = pull.head_ref
        state = "open" if pull.is_open else ("merged" if pull.merged else "closed")
        hint.update(Text.assemble((f"{pull.key}", "bold"), f" {pull.title}  ({state}, into "
                                  f"{pull.base_ref}, head {pull.head_sha[:8]}"
                                  + (", from a fork" if pull.is_fork else "") + ")"))
        self.query_one("#preview-ok", Button).disabled = not pull.is_open

    @on(Input.Submitted, "#preview-number")
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def _submit(self) -> None:
        number = self._number()
        if self.pull is None or number is None or not self.pull.is_open:
            return
        host, parent, repo = self._choice()
        self.dismiss(CreatePreviewRequest(host, parent, repo, number))

    @on(Button.Pressed, "#preview-ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#preview-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)


class PreviewOpScreen(OperationScreen[Any]):
    """A create or a destroy by hand, with what the reconciler did about the PR."""

    def describe_result(self, result: Any) -> Text:
        if result is None:
            return Text("Done.")
        text = Text()
        for i, action in enumerate(result.actions):
            if i:
                text.append("\n")
            text.append(action.line(), "bold" if action.action in ("failed", "busy") else "")
        for error in result.errors:
            text.append(f"\nGitHub: {error}", "dim")
        return text or Text("Nothing to do.")


class PassDone(Message):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


# -- the screen --------------------------------------------------------------------------------


class PreviewsScreen(Screen[None]):
    """The base screen of the ``previews`` mode."""

    DEFAULT_CSS = """
    PreviewsScreen #preview-table {
        height: 1fr;
        min-height: 6;
    }
    PreviewsScreen #preview-log-pane {
        height: 14;
        border-top: solid $primary;
        padding: 0 1;
    }
    PreviewsScreen #preview-log-title {
        text-style: bold;
        color: $text-primary;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "create_preview", "New preview", id="preview-create"),
        Binding("D,delete", "destroy_preview", "Destroy", id="preview-destroy"),
        Binding("R", "reconcile", "Reconcile now", id="preview-reconcile"),
        Binding("enter", "open_preview", "Details", id="preview-open", show=False),
        Binding("L", "preview_logs", "Logs", id="preview-logs"),
        Binding("g", "reload", "Refresh", id="preview-refresh", show=False),
    ]

    AUTO_FOCUS = "#preview-table"

    def __init__(self) -> None:
        super().__init__()
        self.previews: list[Service] = []
        self._signature: tuple[Any, ...] = ()
        self.reconciling = False

    @property
    def havsh(self) -> HavshApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(id="header")
        table: DataTable[Any] = SettledDataTable(id="preview-table", cursor_type="row",
                                          zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        with VerticalScroll(id="preview-log-pane"):
            yield Static("", id="preview-log-title")
            yield Static("", id="preview-log")
        yield Footer(id="footer", compact=True)

    def on_mount(self) -> None:
        self.title = "Previews"
        self.reload()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.reload()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#preview-table", DataTable)

    def _tick(self) -> None:
        if self.is_current:
            self.reload()

    def reload(self) -> None:
        """Read the previews from the inventory; repaint only when something changed."""
        from havsh_tui.ops.preview import list_previews

        previews = list_previews(self.havsh.inventory)
        # Active ones first, then by PR.
        previews.sort(key=lambda s: (s.status is ServiceStatus.DESTROYED, s.pr or "", s.host))
        signature = tuple((s.key, s.status, s.head_sha, s.url, s.pr_title, s.updated_at)
                          for s in previews)
        if signature == self._signature:
            return
        self._signature = signature
        self.previews = previews
        table = self.table
        keep = table.cursor_row if table.row_count else 0
        table.clear()
        now = self.havsh.clock()
        for s in previews:
            from havsh_tui.ops.preview import parse_pr

            parsed = parse_pr(s.pr)
            pr = Text(f"{parsed[0]}#{parsed[1]}" if parsed else (s.pr or "?"))
            status = Text(s.status_label, {"running": "bold", "failed": "bold reverse",
                                           "destroyed": "dim"}.get(s.status.value, ""))
            table.add_row(pr, (s.pr_title or "")[:32], s.pr_branch or "",
                          (s.head_sha or "")[:8], status, s.url or "",
                          f"{s.source}@{s.source_host or s.host}",
                          format_age(s.created_at, now), key=f"{s.host}/{s.name}")
        if previews:
            table.move_cursor(row=min(keep, len(previews) - 1))
        live = sum(1 for s in previews if s.status is not ServiceStatus.DESTROYED)
        self.sub_title = f"{live} preview{'' if live == 1 else 's'}" + (
            f", {len(previews) - live} destroyed (history)" if len(previews) > live else "")
        self.show_selected()
        self.refresh_bindings()

    @property
    def selected(self) -> Service | None:
        table = self.table
        if not self.previews or not table.row_count:
            return None
        return self.previews[min(table.cursor_row, len(self.previews) - 1)]

    @on(DataTable.RowHighlighted, "#preview-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_selected()
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#preview-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_preview()

    def show_selected(self) -> None:
        """The selected preview's steps, last error and operations, below the list."""
        s = self.selected
        title = self.query_one("#preview-log-title", Static)
        log = self.query_one("#preview-log", Static)
        if s is None:
            title.update("No previews")
            log.update(Text("Turn previews on for a connected repository (Repositories tab of "
                            "a service, p) and every open pull request gets one; n makes one "
                            "now.", "dim"))
            return
        title.update(Text(f"{s.name} on {s.host}: {s.status_label}"))
        text = Text()
        for step in s.steps:
            text.append(f"{ICONS.get(step.state, '·')} {step.name}",
                        "bold" if step.state == "failed" else "")
            if step.detail:
                text.append(f"  {step.detail}", "dim")
            text.append("\n")
        if s.last_error:
            text.append(f"Failed at step '{s.failed_step or '?'}': ", "bold")
            text.append(s.last_error.strip()[-1500:] + "\n")
        try:
            ops = self.havsh.inventory.list_operations(service=s.name, host=s.host, limit=8)
        except Exception:  # noqa: BLE001 - the history is a nicety here
            ops = []
        now = self.havsh.clock()
        for op in ops:
            state = str(op.get("state", "?"))
            text.append(f"{ICONS.get(state, ICONS['done'] if state == 'ok' else '·')} "
                        f"{str(op.get('kind', '?')):<22}")
            started = op.get("started_at")
            if started is not None and hasattr(started, "tzinfo"):
                text.append(f" {format_age(started, now)} ago", "dim")
            detail = op.get("reason") or op.get("detail") or op.get("error") or ""
            if op.get("sha"):
                detail = f"{str(op['sha'])[:8]} {detail}"
            if detail:
                text.append(f"  {str(detail)[:120]}", "dim")
            text.append("\n")
        text.rstrip()
        log.update(text if text.plain else Text("Nothing recorded yet.", "dim"))

    # -- keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        s = self.selected
        if action == "destroy_preview":
            return True if s is not None and s.status not in (
                ServiceStatus.DESTROYED, ServiceStatus.DESTROYING) else None
        if action in ("open_preview", "preview_logs"):
            return True if s is not None and s.status is not ServiceStatus.DESTROYED else None
        if action == "reconcile":
            return None if self.reconciling else True
        return True

    def action_reload(self) -> None:
        self._signature = ()
        self.reload()

    def action_open_preview(self) -> None:
        from havsh_tui.screens.service_detail import ServiceDetailScreen

        s = self.selected
        if s is not None and s.status is not ServiceStatus.DESTROYED:
            self.app.push_screen(ServiceDetailScreen(s))

    def action_preview_logs(self) -> None:
        s = self.selected
        opener = getattr(self.app, "action_open_logs", None)
        if s is not None and callable(opener):
            opener(s)

    def _choices(self) -> list[tuple[str, tuple[str, str, str]]]:
        from havsh_tui.ops.repos import list_connections

        return [(f"{c.repo}  (previews of {c.service}@{c.host}, branch {c.branch})",
                 (c.host, c.service, c.repo))
                for c in list_connections(self.havsh.inventory) if c.previews]

    def action_create_preview(self) -> None:
        choices = self._choices()
        if not choices:
            self.notify("No repository has previews on: connect one in a service's "
                        "Repositories tab (or `havsh repo connect`), then p turns them on.",
                        title="Previews", severity="warning", timeout=10)
            return
        self.app.push_screen(CreatePreviewDialog(choices), self._create)

    def _create(self, request: CreatePreviewRequest | None) -> None:
        if request is None:
            return
        app = self.havsh
        parent = app.inventory.get_service(request.parent, host=request.parent_host)

        def run(reporter: Any) -> Any:
            gh = github_client(app)
            try:
                return make_reconciler(app, gh, reporter).create_one(parent, request.repo,
                                                                     request.number)
            finally:
                gh.close()

        screen = PreviewOpScreen(
            f"Preview of {request.repo}#{request.number}", run,
            expected_steps=["copy", "deploy addons", "update modules", "start", "health"],
            subtitle=f"a neutralized copy of {parent.name} on {parent.host}")
        self.app.push_screen(screen, lambda _o: self.action_reload())

    def action_destroy_preview(self) -> None:
        from havsh_tui.dialogs.confirm import ConfirmDialog

        s = self.selected
        if s is None or s.type is not ServiceType.PREVIEW:
            return
        dialog = ConfirmDialog(
            f"Destroy the preview {s.name}?",
            f"Its container, database, role and volume on {s.host} are removed, and its "
            f"GitHub deployment marked inactive. Passes leave it destroyed until {s.pr} gets "
            "a new push (or n makes it again). The row stays in the history.",
            confirm="Destroy")
        self.app.push_screen(dialog, lambda ok: self._destroy(s) if ok else None)

    def _destroy(self, service: Service) -> None:
        app = self.havsh

        def run(reporter: Any) -> Any:
            from havsh_tui.github.client import NotLoggedIn

            try:
                gh = github_client(app)
            except NotLoggedIn:
                gh = None  # destroy anyway; the deployment status waits for a login
            try:
                return make_reconciler(app, gh, reporter).destroy_one(service)
            finally:
                if gh is not None:
                    gh.close()

        screen = PreviewOpScreen(f"Destroying {service.name}", run,
                                 subtitle=f"{service.pr} on {service.host}")
        self.app.push_screen(screen, lambda _o: self.action_reload())

    def action_reconcile(self) -> None:
        if self.reconciling:
            return
        app = self.havsh
        self.reconciling = True
        self.refresh_bindings()
        self.notify("Reconciling the previews with GitHub…", title="Previews", timeout=3)

        def work() -> Any:
            try:
                gh = github_client(app)
                try:
                    result = make_reconciler(app, gh).reconcile()
                finally:
                    gh.close()
            except BaseException:
                self.post_message(PassDone(None))
                raise
            self.post_message(PassDone(result))
            return result

        app.run_worker(work, name="Reconcile previews", group="preview-pass",
                       description="one reconcile pass", thread=True, exclusive=True,
                       exit_on_error=False)

    @on(PassDone)
    def _pass_done(self, event: PassDone) -> None:
        event.stop()
        self.reconciling = False
        self.refresh_bindings()
        result = event.result
        if result is not None:
            lines = [f"{result.repos} repositories, {result.pulls} open pull requests, "
                     f"{result.seconds:.1f} s"]
            lines += [a.line() for a in result.actions if a.action != "kept"][:8]
            lines += [f"error: {e}" for e in result.errors][:3]
            self.notify("\n".join(lines), title="Reconcile pass", timeout=10,
                        severity="error" if result.errors or result.count("failed")
                        else "information")
        self.action_reload()
