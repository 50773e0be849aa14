"""The Textual App. ``make_app`` builds it from its dependencies, so tests hand it a
temporary HAVSH_HOME, a fake inventory or a frozen clock (posting's ``make_posting``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from havsh_tui.commands import HavshCommands
from havsh_tui.core.inventory import InventoryError, open_inventory
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import Settings, SettingsError, load_settings
from havsh_tui.dialogs import Dialog
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.screens.dashboard import DashboardScreen
from havsh_tui.screens.help import HelpScreen
from havsh_tui.screens.hosts import HostsScreen
from havsh_tui.screens.logs import LogsScreen
from havsh_tui.screens.previews import PreviewsScreen, start_reconciler
from havsh_tui.stylesheets import styles_dir
from havsh_tui.widgets import backups_tab, hostnames_tab, repos_tab  # noqa: F401 - add their tabs
from havsh_tui.widgets.operation_log import OperationScreen
from havsh_tui.workers import HostPoller, describe_error

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- operations in progress, for quitting -------------------------------------------------------

#: Worker groups whose work changes something on a host or in the inventory and has no
#: way to stop part-way: ServiceActions.run_service_op ("service-HOST-NAME"), the detail
#: tabs' operations ("backups-op", "repos-op"...), the hosts screen's, a rescan, a preview
#: pass. Workers that only read (polls, detail facts, log streams, copy plans) are not here:
#: quitting simply drops them. OperationScreen workers (group "operation") are found by
#: their screen, which can stop them (see running_operations).
_OPERATION_GROUPS = frozenset({"host-ops", "rescan", "preview-pass"})
_OPERATION_PREFIXES = ("service-", "bootstrap-")
#: Screen workers that only wait for a dialog (the wizard, the copy dialog): not operations;
#: the OperationScreen they open is.
_NOT_OPERATIONS = frozenset({"service-dialog"})

_ACTIVE = (WorkerState.PENDING, WorkerState.RUNNING)


@dataclass
class RunningOperation:
    """An operation of this app in progress, as quitting sees it."""

    name: str
    worker: Worker[Any]
    #: Asks it to stop at its next step (its reporter's cancelled() turns true), or None
    #: when it has no way to stop part-way (it is then waited for).
    cancel: Callable[[], None] | None
    #: What stopping it leaves behind, in the operation's own words (its FAILURE_NOTE).
    leaves: str

    @property
    def running(self) -> bool:
        return self.worker.state in _ACTIVE


def _is_operation_group(group: str) -> bool:
    if not group or group in _NOT_OPERATIONS:
        return False
    return (group in _OPERATION_GROUPS or group.startswith(_OPERATION_PREFIXES)
            or group.endswith("-op"))


def running_operations(app: App[Any]) -> list[RunningOperation]:
    """The operations running in ``app``'s workers (what quitting must not kill silently)."""
    found: list[RunningOperation] = []
    for worker in list(app.workers):
        if worker.state not in _ACTIVE:
            continue
        group = worker.group or ""
        node = worker.node
        if group == "operation" and isinstance(node, OperationScreen):
            if node.outcome is not None:
                continue
            found.append(RunningOperation(
                node.title_text, worker,
                None if node.cancel_event.is_set() else node.cancel_event.set,
                node.FAILURE_NOTE or "What it had done before that step stays done.",
            ))
        elif _is_operation_group(group):
            found.append(RunningOperation(
                worker.name or worker.description or group, worker, None,
                "It cannot stop part-way: quitting lets it finish.",
            ))
    return found


def quit_question(operations: list[RunningOperation], wait: float) -> Text:
    """The body of the "quit while operations run?" dialog: what runs, what quitting does."""
    text = Text()
    n = len(operations)
    text.append(f"{'This operation is' if n == 1 else f'These {n} operations are'} "
                "still running:\n")
    for op in operations:
        text.append(f"  • {op.name}\n", "bold")
        text.append(f"    {op.leaves}\n", "dim")
    text.append(
        "\nQuit anyway asks each that can to stop at its next step (as its Cancel button "
        f"does) and waits up to {wait:.0f} s for them to end and clean up. One still running "
        "after that keeps the havsh process (not its screen) alive until it has ended: "
        "nothing is cut off mid-step. Wait keeps havsh open and lets them finish."
    )
    return text


class QuitWaitScreen(Dialog[None]):
    """After "Quit anyway": the operations asked to stop, each until it ended, then exit;
    at most ``wait`` seconds, as it says."""

    def __init__(self, operations: list[RunningOperation], wait: float) -> None:
        super().__init__()
        self.operations = operations
        self.wait = wait
        self.deadline = time.monotonic() + wait
        self.exited = False

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-wait-dialog", classes="dialog"):
            yield Static("Stopping before quitting", id="quit-wait-title",
                         classes="dialog-title")
            yield Static(self._text(), id="quit-wait-text", classes="dialog-text")

    def on_mount(self) -> None:
        for op in self.operations:
            if op.cancel is not None:
                op.cancel()
        self.set_interval(0.1, self._tick)

    def _text(self) -> Text:
        left = max(0.0, self.deadline - time.monotonic())
        text = Text(f"Waiting up to {self.wait:.0f} s for their cleanup "
                    f"({left:.0f} s left); havsh exits as soon as they have ended.\n\n")
        for op in self.operations:
            state = ("ended" if not op.running else
                     "stopping at its next step…" if op.cancel is not None else
                     "finishing (it cannot stop part-way)…")
            text.append(f"  • {op.name}: ", "bold")
            text.append(f"{state}\n", "dim" if not op.running else "")
        return text

    def _tick(self) -> None:
        self.query_one("#quit-wait-text", Static).update(self._text())
        if self.exited:
            return
        running = [op for op in self.operations if op.running]
        if not running:
            self.exited = True
            self.app.exit()
        elif time.monotonic() >= self.deadline:
            # The process waits for their threads after the screen is gone (Textual joins
            # them): say so on the terminal rather than hang there without a word.
            self.exited = True
            self.app.exit(message=Text(
                "havsh: still ending, the process exits when they have: "
                + "; ".join(op.name for op in running)))

    def action_cancel(self) -> None:
        # esc cannot take the cancellation back: the operations are already stopping.
        pass


class HavshApp(App[int]):
    """havsh's TUI. Build it with :func:`make_app`."""

    TITLE = "havsh"
    # The dashboard's styles. The hosts and logs screens bring their own (CSS_PATH on the
    # screen), read when first shown: fewer rules to parse and match before the first paint.
    CSS_PATH = [
        styles_dir() / "havsh.tcss",
        styles_dir() / "services.tcss",
    ]

    # Top-level sections are modes, each with its own screen stack. Adding one is a line
    # here: "hosts": HostsScreen, "previews": PreviewsScreen, "logs": LogsScreen.
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "services": DashboardScreen,
        "hosts": HostsScreen,
        "previews": PreviewsScreen,
        "logs": LogsScreen,
    }
    DEFAULT_MODE: ClassVar[str] = "services"

    COMMANDS = App.COMMANDS | {HavshCommands}

    #: How long "Quit anyway" waits for the operations it stopped to clean up.
    QUIT_WAIT_SECONDS: ClassVar[float] = 10.0

    # Every binding has an id so settings.keymap can remap it (App.set_keymap).
    BINDINGS: ClassVar[list[BindingType]] = [
        # ctrl+q (Textual's own) runs the same action_quit.
        Binding("q", "quit", "Quit", id="quit",
                tooltip="Asks first while an operation runs."),
        Binding("question_mark", "help", "Help", id="help"),
        # Sections: a digit each, and ":" to type one (k9s). Listed by "?", not the footer.
        Binding("1", "switch_section('services')", "Services", id="section-services", show=False),
        Binding("2", "switch_section('hosts')", "Hosts", id="section-hosts", show=False),
        Binding("3", "switch_section('previews')", "Previews", id="section-previews",
                show=False),
        Binding("colon", "jump", "Jump to section", id="section-jump", show=False),
        Binding(
            "ctrl+p",
            "command_palette",
            "Palette",
            id="command-palette",
            # The footer already shows the palette key at its right edge.
            show=False,
            priority=True,
        ),
    ]

    def __init__(
        self,
        paths: AppPaths,
        settings: Settings,
        inventory: Any,
        *,
        pool: Any = None,
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.settings = settings
        self.inventory = inventory
        #: The per-host SSH connection pool (remote/); make_app always gives one.
        self.pool = pool
        #: Polls every host on its own schedule, once a screen subscribes (workers.py).
        self.poller = HostPoller(self)
        #: "Now" for ages and timestamps; tests freeze it so snapshots are stable.
        self.clock = clock
        if settings.keymap:
            self.set_keymap(settings.keymap)
        #: Set on exit: stops the preview reconciler's loop (screens/previews.py).
        self.reconciler_stop: Any = None
        #: The last pass of that loop (a PassResult), for the curious.
        self.last_preview_pass: Any = None
        #: The quit question (or the wait after it) is on screen: q again does nothing.
        self._quitting = False

    def on_mount(self) -> None:
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            self.notify(
                f"Unknown theme {self.settings.theme!r} in {self.paths.settings};"
                f" using {self.theme!r}.",
                severity="warning",
            )
        self.ensure_reconciler()

    def ensure_reconciler(self) -> None:
        """Run the preview reconciler while the app is open, if a GitHub token is configured
        and some repository has previews on (checked again when previews are turned on)."""
        if self.reconciler_stop is None:
            self.reconciler_stop = start_reconciler(self)

    def on_unmount(self) -> None:
        if self.reconciler_stop is not None:
            self.reconciler_stop.set()

    # -- quitting -------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """q, ctrl+q and the palette's Quit: at once when nothing runs; with operations in
        progress, ask first ("Wait" is the default) rather than cut them off mid-way."""
        if self._quitting:
            return
        operations = running_operations(self)
        if not operations:
            self.exit()
            return
        self._quitting = True
        n = len(operations)
        dialog = ConfirmDialog(
            f"Quit while {n} operation{'' if n == 1 else 's'} run{'s' if n == 1 else ''}?",
            quit_question(operations, self.QUIT_WAIT_SECONDS),
            confirm="Quit anyway", cancel="Wait",
        )
        self.push_screen(dialog, self._quit_answered)

    def _quit_answered(self, quit_anyway: bool | None) -> None:
        if not quit_anyway:
            self._quitting = False
            return
        # Asked again now: some may have ended while the question was open, others begun.
        operations = running_operations(self)
        if not operations:
            self.exit()
            return
        self.push_screen(QuitWaitScreen(operations, self.QUIT_WAIT_SECONDS))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    # -- sections -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("switch_section", "jump") and isinstance(self.screen, ModalScreen):
            # Switching under an open dialog would hide it in another section's stack.
            return False
        return True

    def action_switch_section(self, section: str) -> None:
        if section in self.MODES and section != self.current_mode:
            self.switch_mode(section)

    def action_open_logs(self, service: Any = None) -> None:
        """Go to the logs section; with a service (a Service, "name" or "host/name"),
        follow it there in a pane, or focus the pane it has. The dashboard binds L here."""
        self.switch_mode("logs")
        if service is not None:
            screen = self.get_screen_stack("logs")[0]
            if isinstance(screen, LogsScreen):
                screen.open_service(service)

    def action_jump(self) -> None:
        from havsh_tui.dialogs.jump import JumpDialog

        def go(section: str | None) -> None:
            if section is not None:
                self.action_switch_section(section)

        self.push_screen(JumpDialog(list(self.MODES)), go)

    # -- the one place where a worker's failure meets the user --------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed: say what went wrong, in the words of the layer that knew.

        Worker.StateChanged does not bubble, so this sees the workers run on the app:
        screens start their operations with ``self.app.run_worker(...,
        exit_on_error=False)`` (without it Textual would quit the app on the error).
        RemoteError and OpsError messages are written for users and are shown as they are;
        anything else is a bug, shown with its type, and logged with its traceback.
        """
        if event.state is not WorkerState.ERROR:
            return
        worker = event.worker
        error = worker.error
        if error is None:
            return
        self.log.error(f"worker {worker.name!r} failed", error)
        if getattr(error, "step", None) and getattr(error, "log", None):
            # A multi-step operation failed at a step (StepFailed): the step and the tail of
            # its log need more room than a notification.
            from havsh_tui.widgets.operation_log import FailureDialog

            self.push_screen(FailureDialog(f"{worker.name or 'A task'} failed", error))
            return
        self.notify(
            describe_error(error),
            title=f"{worker.name or 'A task'} failed",
            severity="error",
            timeout=20,
        )

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Textual's own Quit and Keys duplicate "app: Quit" and "app: Help"; keep the rest
        # (themes, screenshot, maximize).
        for command in super().get_system_commands(screen):
            if command.title not in {"Quit", "Keys"}:
                yield command


def make_app(
    paths: AppPaths | None = None,
    settings: Settings | None = None,
    *,
    inventory: Any = None,
    pool: Any = None,
    clock: Clock | None = None,
) -> HavshApp:
    """Build the app. Anything not given is read from ``paths`` (default: the environment).

    The inventory is opened here, before the first frame, so the dashboard paints from it
    at once; it is only a local file (no network).
    """
    if paths is None:
        paths = AppPaths.from_env()
    paths.ensure()
    if settings is None:
        settings = load_settings(paths)
    if inventory is None:
        inventory = open_inventory(paths)
    if pool is None:
        from havsh_tui.remote.hosts import HostPool, SSHOptions

        # No connection is opened here: sessions connect on first use, from workers.
        pool = HostPool(
            SSHOptions.default(
                paths.known_hosts,
                connect_timeout=settings.ssh_connect_timeout,
                command_timeout=settings.ssh_command_timeout,
            )
        )
    return HavshApp(paths, settings, inventory, pool=pool, clock=clock or _utcnow)


def run_tui() -> int:
    """What ``havsh`` with no arguments runs. Returns the process exit code."""
    try:
        app = make_app()
    except (SettingsError, InventoryError, OSError) as exc:
        # A bad settings.toml, a locked or too-new inventory: say it plainly, no traceback.
        print(f"havsh: {exc}", file=sys.stderr)
        return 1
    result = app.run()
    return app.return_code if app.return_code is not None else (result or 0)
