"""The Repositories tab of the service detail screen: the addons repositories connected to
the service, the commit deployed from each, and the eye mark of those with previews on.

``d`` deploys the branch head (the changed modules are updated, then a restart), ``p``
turns previews on or off (off destroys them), ``X`` disconnects (its previews go first).
The list is the inventory's (no host is asked); GitHub is asked only by the operations.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from havsh_tui.core.model import ServiceType
from havsh_tui.screens.service_detail import register_tab
from havsh_tui.widgets.backups_tab import BackupScreen, BackupsTab, HostListTab, run_tab_op

#: The eye mark of a repository with previews on.
EYE = "◉"  # a fisheye: the emoji eye is one cell in some terminals and two in others

DEPLOY_STEPS = ["fetch addons", "plan modules", "deploy addons", "stop", "update modules",
                "container", "start", "health"]


def github_client(app: Any) -> Any:
    """A GitHub client for the current login (GITHUB_TOKEN, else the stored token). Raises
    NotLoggedIn, whose message says how to log in. Call it from a thread."""
    from havsh_tui.core.secrets import SecretStore
    from havsh_tui.github.client import connect, resolve_connection

    conn = resolve_connection(app.inventory, SecretStore(app.paths.secrets))
    return connect(conn, timeout=15.0)


class DeployScreen(BackupScreen):
    FAILURE_NOTE = "The previous addons were put back."

    def describe_result(self, result: Any) -> Text:
        if result is None:
            return Text("Done.")
        return Text.assemble((f"{result.repo} at {result.sha[:12]}", "bold"),
                             f": {result.plan.describe()}, in {result.seconds:.0f} s.")


class ReposTab(HostListTab):
    TAB_TITLE = "Repositories"
    TAB_ID = "tab-repos"
    COLUMNS = ("Repository", "Branch", "Subdir", "Deployed", "At", "Previews", "Modules")
    LOADING = "Reading the connected repositories…"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "deploy_repo", "Deploy", id="repo-deploy"),
        Binding("p", "toggle_previews", "Previews on/off", id="repo-previews"),
        Binding("X", "disconnect_repo", "Disconnect", id="repo-disconnect"),
    ]

    def read_rows(self) -> Any:
        from havsh_tui.ops.repos import list_connections

        return list_connections(self.havsh.inventory, host=self.service.host,
                                service=self.service.name)

    def show_rows(self, data: Any) -> None:
        table = self.table
        table.clear()
        for c in data:
            eye = Text(f"{EYE} on" + (", forks" if c.forks else ""), "bold") if c.previews \
                else Text("off", "dim")
            table.add_row(c.repo, c.branch, c.subdir or "/",
                          (c.deployed_sha or "")[:12] or Text("not yet", "dim"),
                          (c.deployed_at or "")[:16].replace("T", " "), eye,
                          ", ".join(c.modules) or "—", key=c.repo)
        preview = self.service.type is ServiceType.PREVIEW
        if preview:
            self.set_status(Text(f"{self.service.name} is a preview: its addons come from "
                                 f"its pull request ({self.service.pr}).", "dim"))
        else:
            self.set_status(Text.assemble(
                (f"{len(data)} repositor{'y' if len(data) == 1 else 'ies'}", "bold"),
                "   d deploy · p previews on/off · X disconnect · g refresh"))
        self.set_note("" if data or preview else Text(
            f"None connected: `havsh repo connect {self.service.name} OWNER/REPO` deploys one "
            "at a pinned commit.", "dim"))

    def selected(self) -> Any:
        index = self.selected_index()
        if index is None or not self.data or index >= len(self.data):
            return None
        return self.data[index]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("deploy_repo", "toggle_previews", "disconnect_repo"):
            if self.busy or self.selected() is None:
                return None
            if self.service.type is ServiceType.PREVIEW and action != "disconnect_repo":
                return None
        return True

    def action_deploy_repo(self) -> None:
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.core.secrets import SecretStore

        conn, app, service = self.selected(), self.havsh, self.service
        if conn is None:
            return

        def run(reporter: Any) -> Any:
            from havsh_tui.ops import repos

            gh = github_client(app)
            try:
                return repos.deploy_repo(app.inventory, SecretStore(app.paths.secrets),
                                         app.pool, gh, service, conn.repo, reporter=reporter,
                                         audit=AuditLog(app.paths.audit_log))
            finally:
                gh.close()

        self.run_operation(DeployScreen(
            f"Deploying {conn.repo} ({conn.branch}) to {service.name}", run,
            expected_steps=DEPLOY_STEPS, subtitle=f"on {service.host}"))

    def action_toggle_previews(self) -> None:
        conn = self.selected()
        if conn is None:
            return
        if conn.previews:
            from havsh_tui.dialogs.confirm import ConfirmDialog

            dialog = ConfirmDialog(
                f"Previews off for {conn.repo}?",
                f"Every preview of {conn.repo}'s pull requests made from {self.service.name} "
                "is destroyed now (container, database, role and volume).",
                confirm="Turn off")
            self.app.push_screen(dialog, lambda ok: self._set_previews(conn, False) if ok
                                 else None)
        else:
            self._set_previews(conn, True)

    def _set_previews(self, conn: Any, enabled: bool) -> None:
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.core.secrets import SecretStore

        app, service = self.havsh, self.service

        def call() -> Any:
            from havsh_tui.ops import repos

            gh = github_client(app) if enabled else None
            try:
                return repos.set_previews(app.inventory, SecretStore(app.paths.secrets),
                                          app.pool, service, conn.repo, enabled=enabled, gh=gh,
                                          audit=AuditLog(app.paths.audit_log))
            finally:
                if gh is not None:
                    gh.close()

        run_tab_op(self, f"Previews {'on' if enabled else 'off'} for {conn.repo}", call,
                   lambda _c: f"Previews of {conn.repo} are {'on' if enabled else 'off'}"
                              + (": the next reconcile pass makes them." if enabled else "."))

    def after_op(self, event: Any) -> None:
        # Previews on: the app's reconciler starts if it was not running (a token is needed).
        starter = getattr(self.app, "ensure_reconciler", None)
        if callable(starter):
            starter()

    def action_disconnect_repo(self) -> None:
        conn = self.selected()
        if conn is None:
            return
        self.confirm_then(
            f"Disconnect {conn.repo} from {self.service.name}?",
            f"Its previews are destroyed first. The addons deployed at "
            f"{(conn.deployed_sha or '?')[:12]} stay in the addons volume.",
            "Disconnect", lambda: self._disconnect(conn))

    def _disconnect(self, conn: Any) -> None:
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.core.secrets import SecretStore

        app, service = self.havsh, self.service

        def call() -> Any:
            from havsh_tui.ops import repos

            return repos.disconnect_repo(app.inventory, SecretStore(app.paths.secrets),
                                         app.pool, service, conn.repo,
                                         audit=AuditLog(app.paths.audit_log))

        run_tab_op(self, f"Disconnect {conn.repo}", call,
                   lambda removed: f"Disconnected {conn.repo}"
                                   + (f" ({', '.join(removed)} removed)." if removed else "."))


register_tab(ReposTab, after=BackupsTab.TAB_ID)
