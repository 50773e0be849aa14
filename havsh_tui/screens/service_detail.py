"""One service: its settings, what its host says about it (containers, volume and database
sizes, odoo.conf), CPU and memory sparklines from docker stats, its recorded steps and
operations, and its extra configuration, editable. ``u`` updates its image.

The tabs are :class:`DetailTab` subclasses listed in :data:`DETAIL_TABS`: a new tab
(backups, repositories, hostnames) is a class with a ``compose`` and, if it shows host data,
a ``show_facts``, added with :func:`register_tab`. Every host read runs in a thread worker
of this screen; it reschedules itself with a timer (stats every few seconds), so reads
never overlap and a dead host only slows its own screen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import (
    Button,
    Footer,
    Header,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceType
from havsh_tui.dialogs import Dialog
from havsh_tui.screens.dashboard import ServiceActions, ServiceOpFinished, action_allowed
from havsh_tui.widgets.operation_log import (
    ICONS,
    OperationScreen,
    human_bytes,
    human_seconds,
)
from havsh_tui.widgets.service_table import format_age, source_label
from havsh_tui.widgets.status_badge import StatusBadge

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp
    from havsh_tui.ops.detail import ServiceFacts, StatsSample

#: Seconds between two docker stats readings (each takes about a second on the host).
STATS_SECONDS = 3.0
#: Seconds before trying again after a failed reading.
STATS_RETRY_SECONDS = 15.0
#: Samples kept for a sparkline: three minutes at the default interval.
STATS_HISTORY = 60
#: Operations listed, newest first.
OPERATIONS_SHOWN = 12


def key_values(rows: Iterable[tuple[str, RenderableType]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def _when(value: Any, now: datetime) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return "?"
    return f"{value:%Y-%m-%d %H:%M} ({format_age(value, now)} ago)"


class FactsLoaded(Message):
    def __init__(self, facts: ServiceFacts | None, error: str | None) -> None:
        super().__init__()
        self.facts = facts
        self.error = error


class StatsSampled(Message):
    def __init__(self, sample: StatsSample | None, error: str | None) -> None:
        super().__init__()
        self.sample = sample
        self.error = error


# -- the tabs ------------------------------------------------------------------------------------


class DetailTab(TabPane):
    """A tab of the detail screen. ``show_service`` runs whenever the record changes and
    ``show_facts`` when a look at the host arrives; both default to nothing."""

    TAB_TITLE: ClassVar[str] = ""
    TAB_ID: ClassVar[str] = ""

    def __init__(self, service: Service) -> None:
        super().__init__(self.TAB_TITLE, id=self.TAB_ID)
        self.service = service

    @property
    def detail(self) -> ServiceDetailScreen:
        return cast(ServiceDetailScreen, self.screen)

    def show_service(self, service: Service) -> None:
        self.service = service

    def show_facts(self, facts: ServiceFacts | None, error: str | None) -> None:
        pass


class OverviewTab(DetailTab):
    TAB_TITLE = "Overview"
    TAB_ID = "tab-overview"

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="detail-scroll"):
            with Horizontal(classes="detail-columns"):
                with Vertical(classes="detail-column"):
                    yield Label("Settings", classes="detail-section")
                    yield Static(id="detail-settings")
                with Vertical(classes="detail-column"):
                    yield Label("On the host", classes="detail-section")
                    yield Static(Text("Asking the host…", "dim"), id="detail-host")
            with Horizontal(id="detail-usage"):
                with Vertical(classes="detail-gauge"):
                    yield Static("CPU", id="cpu-label", classes="detail-section")
                    yield Sparkline([], id="cpu-spark", summary_function=max)
                with Vertical(classes="detail-gauge"):
                    yield Static("Memory", id="mem-label", classes="detail-section")
                    yield Sparkline([], id="mem-spark", summary_function=max)
            yield Label("Recent operations", classes="detail-section")
            yield Static(id="detail-operations")

    def on_mount(self) -> None:
        self.show_service(self.service)

    def show_service(self, service: Service) -> None:
        super().show_service(service)
        now = self.detail.havsh.clock()
        origin = service.pr if service.type is ServiceType.PREVIEW else source_label(service)
        rows: list[tuple[str, RenderableType]] = [
            ("Type", f"{service.type.label}: {service.type.rules.description}"),
            ("Host", service.host),
            ("Odoo", service.odoo_version),
            ("Image", service.image),
            ("URL", service.url or "—"),
            ("Database", f"{service.database} (role {names.role_name(service.name)})"),
            ("Container", names.container_name(service.name)),
            ("Volume", names.volume_name(service.name)),
            ("Demo data", "yes" if service.demo else "no"),
            ("Language", service.language + (f", {service.country}" if service.country else "")),
            ("Created", _when(service.created_at, now)),
        ]
        if origin:
            rows.append(("Source" if service.type is ServiceType.COPY else "Pull request",
                         origin))
        if service.snapshot_at:
            rows.append(("Snapshot", _when(service.snapshot_at, now)))
        extra = ", ".join(f"{k}={v}" for k, v in sorted(service.config.items()))
        rows.append(("Extra config", extra or "none"))
        self.query_one("#detail-settings", Static).update(key_values(rows))
        self.query_one("#detail-operations", Static).update(self.detail.operations_text())

    def show_facts(self, facts: ServiceFacts | None, error: str | None) -> None:
        target = self.query_one("#detail-host", Static)
        if facts is None:
            target.update(Text(f"Could not ask {self.service.host}: {error}", "bold"))
            return
        rows: list[tuple[str, RenderableType]] = []
        for c in facts.containers:
            rows.append((c.role or "container", Text(f"{c.name}  {c.status or c.state}\n{c.image}"
                                                     f"  {c.id}")))
        if not facts.containers:
            rows.append(("Containers", Text("none: the service is Missing on its host", "bold")))
        rows.append(("Volume size", human_bytes(facts.volume_bytes)
                     if facts.volume_bytes is not None else "?"))
        rows.append(("Database size", human_bytes(facts.database_bytes)
                     if facts.database_bytes is not None else "?"))
        if facts.started_at and not facts.started_at.startswith("0001"):
            rows.append(("Started", facts.started_at.split(".")[0].replace("T", " ") + " UTC"))
        for problem in facts.errors:
            rows.append(("Note", Text(problem, "dim")))
        target.update(key_values(rows))

    def show_sample(self, cpu: list[float], mem: list[float], sample: StatsSample | None,
                    error: str | None) -> None:
        self.query_one("#cpu-spark", Sparkline).data = cpu or [0.0]
        self.query_one("#mem-spark", Sparkline).data = mem or [0.0]
        if sample is None:
            why = error or "not running"
            self.query_one("#cpu-label", Static).update(f"CPU: {why}")
            self.query_one("#mem-label", Static).update("Memory")
            return
        self.query_one("#cpu-label", Static).update(f"CPU {sample.cpu_percent:.1f} %")
        limit = f" of {human_bytes(sample.memory_limit)}" if sample.memory_limit else ""
        self.query_one("#mem-label", Static).update(
            f"Memory {human_bytes(sample.memory_bytes)}{limit}")


class StepsTab(DetailTab):
    TAB_TITLE = "Steps/Log"
    TAB_ID = "tab-steps"

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="detail-scroll"):
            yield Label("Steps of the last operation", classes="detail-section")
            yield Static(id="detail-steps")
            yield Label("Last error", classes="detail-section", id="detail-error-label")
            yield Static(id="detail-error")
            yield Label("Operations", classes="detail-section")
            yield Static(id="detail-history")

    def on_mount(self) -> None:
        self.show_service(self.service)

    def show_service(self, service: Service) -> None:
        super().show_service(service)
        steps = Text()
        width = max((len(s.name) for s in service.steps), default=0)
        for i, step in enumerate(service.steps):
            if i:
                steps.append("\n")
            style = {"failed": "bold", "done": "", "running": "bold"}.get(step.state, "dim")
            steps.append(f"{ICONS.get(step.state, '?')} {step.name:<{width}}", style)
            if step.started_at and step.finished_at:
                seconds = (step.finished_at - step.started_at).total_seconds()
                steps.append(f" {human_seconds(seconds):>7}", "dim")
            if step.detail:
                steps.append(f"  {step.detail}", "dim")
        self.query_one("#detail-steps", Static).update(
            steps if service.steps else Text("No recorded steps (adopted by a rescan, or made "
                                             "before havsh recorded them).", "dim"))
        error = Text()
        if service.last_error:
            if service.failed_step:
                error.append(f"failed at step '{service.failed_step}':\n", "bold")
            error.append(service.last_error.strip()[-4000:])
        self.query_one("#detail-error-label").display = bool(service.last_error)
        self.query_one("#detail-error", Static).update(error)
        self.query_one("#detail-history", Static).update(self.detail.operations_text(50))


class ConfigTab(DetailTab):
    TAB_TITLE = "Config"
    TAB_ID = "tab-config"

    def compose(self) -> ComposeResult:
        from havsh_tui.ops.config import config_lines

        with VerticalScroll(classes="detail-scroll"):
            yield Label("Extra odoo.conf keys (key = value, one a line)",
                        classes="detail-section")
            yield TextArea(config_lines(self.service.config), id="config-edit",
                           soft_wrap=False, show_line_numbers=True)
            yield Static("", id="config-error", classes="field-error -hidden")
            yield Static("Odoo reads odoo.conf when it starts: a saved change applies at the "
                         "next restart. havsh manages db_*, data_dir, addons_path and dbfilter "
                         "itself.", classes="field-hint")
            with Horizontal(classes="detail-buttons"):
                yield Button("Save", id="config-save")
                yield Button("Save and restart", id="config-save-restart", variant="primary")
            yield Label("odoo.conf on the host", classes="detail-section")
            yield Static(Text("Asking the host…", "dim"), id="config-current")

    def show_facts(self, facts: ServiceFacts | None, error: str | None) -> None:
        target = self.query_one("#config-current", Static)
        if facts is None or facts.conf is None:
            target.update(Text(f"Could not read it: {error or 'no container'}", "dim"))
            return
        target.update(Text(facts.conf.rstrip()))

    def show_error(self, message: str | None) -> None:
        widget = self.query_one("#config-error", Static)
        widget.update(Text(message or ""))
        widget.set_class(not message, "-hidden")

    @on(TextArea.Changed, "#config-edit")
    def _changed(self) -> None:
        self.show_error(None)

    @on(Button.Pressed, "#config-save")
    def _save(self, event: Button.Pressed) -> None:
        event.stop()
        self.detail.save_config(restart=False)

    @on(Button.Pressed, "#config-save-restart")
    def _save_restart(self, event: Button.Pressed) -> None:
        event.stop()
        self.detail.save_config(restart=True)


#: The tabs, in order. Other features add theirs with register_tab.
DETAIL_TABS: list[type[DetailTab]] = [OverviewTab, StepsTab, ConfigTab]


def register_tab(tab: type[DetailTab], *, after: str | None = None) -> None:
    """Add a tab to every detail screen opened from now on (after the tab ``after``, by
    TAB_ID, or last). Adding it twice is a no-op."""
    if tab in DETAIL_TABS:
        return
    ids = [t.TAB_ID for t in DETAIL_TABS]
    at = ids.index(after) + 1 if after in ids else len(DETAIL_TABS)
    DETAIL_TABS.insert(at, tab)


# -- updating the image ------------------------------------------------------------------------


@dataclass
class UpdateImageRequest:
    image: str
    #: "pull", "local", or a host name to push the image from.
    source: str


class UpdateImageDialog(Dialog[UpdateImageRequest | None]):
    """Which image, and where it comes from: a pull, another host's engine, or this
    machine's (`docker save | docker load` through the connections, for hosts without a
    registry)."""

    def __init__(self, service: Service, hosts: list[str]) -> None:
        super().__init__()
        self.service = service
        self.hosts = [h for h in hosts if h != service.host]

    def compose(self) -> ComposeResult:
        with Vertical(id="update-dialog", classes="dialog"):
            yield Static(f"Update the image of {self.service.name}", classes="dialog-title")
            yield Label("Image", classes="field-label")
            yield Input(self.service.image, compact=True, id="update-image-input")
            yield Label("Get it by", classes="field-label")
            with RadioSet(id="update-source"):
                yield RadioButton(f"pulling it on {self.service.host}", value=True,
                                  id="source-pull")
                for host in self.hosts:
                    yield RadioButton(f"pushing it from {host}", id=f"source-host-{host}")
                yield RadioButton("pushing it from this machine's Docker", id="source-local")
            yield Static(
                f"Then {names.container_name(self.service.name)} is recreated from it on the "
                "same volume and checked; the old container comes back if that fails. Same "
                "Odoo major version only: test a new one on a copy.", classes="dialog-hint")
            yield Static("", id="update-error", classes="field-error -hidden")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="update-cancel")
                yield Button("Update", id="update-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#update-image-input", Input).focus()

    def _source(self) -> str:
        radio = self.query_one("#update-source", RadioSet)
        index = radio.pressed_index
        if index <= 0:
            return "pull"
        if index <= len(self.hosts):
            return self.hosts[index - 1]
        return "local"

    def _submit(self) -> None:
        from havsh_tui.ops.hosts import OpsError
        from havsh_tui.ops.odoo import major, version_from_image
        from havsh_tui.ops.update import validate_image_ref

        error = self.query_one("#update-error", Static)
        try:
            image = validate_image_ref(self.query_one("#update-image-input", Input).value)
        except OpsError as exc:
            error.update(Text(str(exc)))
            error.remove_class("-hidden")
            return
        version = version_from_image(image)
        if version and major(version) != major(self.service.odoo_version):
            error.update(Text(f"{image} is Odoo {version}; {self.service.name} runs "
                              f"{self.service.odoo_version}. Test a new major version on a "
                              "copy (c) first."))
            error.remove_class("-hidden")
            return
        self.dismiss(UpdateImageRequest(image, self._source()))

    @on(Input.Submitted, "#update-image-input")
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#update-ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#update-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)


UPDATE_STEPS = ("connect", "pull image", "stop", "set aside", "container", "start", "health",
                "remove previous")


class UpdateImageScreen(OperationScreen[Service]):
    """Runs ops.update.update_image with its steps in view."""

    FAILURE_NOTE = "The previous container was put back as it was."

    def __init__(self, app: HavshApp, service: Service, request: UpdateImageRequest) -> None:
        self.havsh = app
        self.service = service
        self.request = request
        steps = list(UPDATE_STEPS)
        if request.source != "pull":
            steps[1] = "push image"
        super().__init__(f"Updating {service.name} to {request.image}", self._update,
                         expected_steps=steps,
                         subtitle=f"on {service.host}, from "
                                  + ("a pull" if request.source == "pull"
                                     else "this machine" if request.source == "local"
                                     else request.source),
                         record=(app.inventory, "service.update-image", service.host,
                                 service.name))

    def _update(self, reporter: Any) -> Service:
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.core.secrets import SecretStore
        from havsh_tui.ops import update

        app = self.havsh
        push_from = None
        if self.request.source != "pull":
            from havsh_tui.ops.images import source_client

            push_from = source_client(app.inventory, app.pool, self.request.source,
                                      self.service.host)
        return update.update_image(
            app.inventory, SecretStore(app.paths.secrets), app.pool, self.service,
            self.request.image, reporter, push_from=push_from,
            push_from_name=self.request.source, audit=AuditLog(app.paths.audit_log),
        )

    def describe_result(self, result: Service | None) -> RenderableType:
        if result is None:
            return Text("Updated.")
        return Text.assemble((f"{result.name} runs {result.image}", "bold"),
                             f" and is {result.status_label}.")


# -- the screen ----------------------------------------------------------------------------------


class ServiceDetailScreen(ServiceActions, Screen[None]):
    """Pushed over the dashboard by enter; esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="detail-back"),
        Binding("s", "start_service", "Start", id="service-start"),
        Binding("x,S", "stop_service", "Stop", id="service-stop"),
        Binding("r", "restart_service", "Restart", id="service-restart"),
        Binding("c", "copy_service", "Copy", id="service-copy"),
        Binding("u", "update_image", "Update image", id="service-update-image"),
        Binding("e", "edit_config", "Edit config", id="service-edit-config"),
        Binding("N", "neutralize_service", "Neutralize", id="service-neutralize"),
        Binding("D,delete", "delete_service", "Delete", id="service-delete"),
        Binding("L", "service_logs", "Logs", id="service-logs"),
    ]

    def __init__(self, service: Service) -> None:
        super().__init__()
        self.service = service
        self.cpu: deque[float] = deque(maxlen=STATS_HISTORY)
        self.mem: deque[float] = deque(maxlen=STATS_HISTORY)
        self.facts: ServiceFacts | None = None
        self.facts_error: str | None = None
        self.last_sample: StatsSample | None = None

    # -- building ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        s = self.service
        yield Header(id="header")
        with Horizontal(id="detail-head"):
            yield Static(Text(s.name), id="detail-name", classes="-live"
                         if s.type is ServiceType.LIVE else "")
            yield StatusBadge(s.status, s.type, id="detail-status")
            yield Static(self._head_text(s), id="detail-summary")
        with TabbedContent(id="detail-tabs"):
            for tab in DETAIL_TABS:
                yield tab(s)
        yield Footer(id="footer", compact=True)

    @staticmethod
    def _head_text(s: Service) -> Text:
        text = Text(f"{s.type.label} · {s.host} · Odoo {s.odoo_version}")
        if s.url:
            text.append(f" · {s.url}")
        return text

    @property
    def tabs(self) -> list[DetailTab]:
        return list(self.query(DetailTab))

    def on_mount(self) -> None:
        self.title = self.service.name
        self.sub_title = f"{self.service.type.label} service on {self.service.host}"
        self.load_facts()
        self.sample_stats()
        poller = getattr(self.app, "poller", None)
        if poller is not None:
            poller.subscribe(self, self._on_host_polled)

    # -- reads from the host -------------------------------------------------------------------

    def _session(self) -> Any:
        app = self.havsh
        if app.pool is None:
            raise RuntimeError("no connection pool in this session")
        return app.pool.session(app.inventory.get_host(self.service.host))

    @work(thread=True, exclusive=True, group="detail-facts", exit_on_error=False)
    def load_facts(self) -> None:
        from havsh_tui.ops import detail
        from havsh_tui.widgets.operation_log import error_text

        try:
            facts = detail.service_facts(self._session(), self.service)
        except Exception as exc:  # noqa: BLE001 - shown in the tab, the screen stays usable
            self.post_message(FactsLoaded(None, error_text(exc)))
            return
        self.post_message(FactsLoaded(facts, None))

    @on(FactsLoaded)
    def _facts(self, event: FactsLoaded) -> None:
        event.stop()
        self.facts, self.facts_error = event.facts, event.error
        for tab in self.tabs:
            tab.show_facts(event.facts, event.error)

    @work(thread=True, exclusive=True, group="detail-stats", exit_on_error=False)
    def sample_stats(self) -> None:
        from havsh_tui.ops import detail
        from havsh_tui.widgets.operation_log import error_text

        try:
            client = self._session().docker()
            sample = detail.container_stats(client, names.container_name(self.service.name))
        except Exception as exc:  # noqa: BLE001 - the sparkline says so and tries later
            self.post_message(StatsSampled(None, error_text(exc)))
            return
        self.post_message(StatsSampled(sample, None))

    @on(StatsSampled)
    def _sampled(self, event: StatsSampled) -> None:
        event.stop()
        self.last_sample = event.sample
        if event.sample is not None:
            self.cpu.append(event.sample.cpu_percent)
            self.mem.append(float(event.sample.memory_bytes))
        overview = self.query(OverviewTab)
        if overview:
            overview.first().show_sample(list(self.cpu), list(self.mem), event.sample,
                                         event.error)
        # The next reading is armed only now, so two never overlap.
        delay = STATS_SECONDS if event.error is None else STATS_RETRY_SECONDS
        self.set_timer(delay, self.sample_stats, name="detail-stats")

    def _on_host_polled(self, message: Any) -> None:
        if message.host != self.service.host:
            return
        badge = self.query_one("#detail-status", StatusBadge)
        if message.statuses is None:
            health = getattr(message, "health", None)
            reason = getattr(health, "error", None) or f"{self.service.host} did not answer"
            badge.set_unconfirmed(reason)
            return
        badge.set_unconfirmed(None)
        status = message.statuses.get(self.service.name)
        if status is not None and status is not self.service.status:
            self.service.status = status
            badge.set_status(status)
            self.refresh_bindings()

    # -- the record ----------------------------------------------------------------------------

    def operations_text(self, limit: int = OPERATIONS_SHOWN) -> Text:
        """The service's operations history (inventory.list_operations), newest first."""
        try:
            ops = self.havsh.inventory.list_operations(
                service=self.service.name, host=self.service.host, limit=limit)
        except Exception as exc:  # noqa: BLE001
            return Text(f"Could not read the history: {exc}", "dim")
        if not ops:
            return Text("None recorded yet.", "dim")
        now = self.havsh.clock()
        text = Text()
        for i, op in enumerate(ops):
            if i:
                text.append("\n")
            state = op.get("state", "?")
            text.append(f"{ICONS.get(state, ICONS['done'] if state == 'ok' else '·')} ",
                        "bold" if state == "failed" else "")
            text.append(f"{str(op.get('kind', '?')):<24}")
            text.append(f" {_when(op.get('started_at'), now)}", "dim")
            if op.get("detail"):
                text.append(f"  {op['detail']}", "dim")
        return text

    def reload(self) -> None:
        """Re-read the record (after an operation) and show it everywhere."""
        from havsh_tui.core.inventory import NotFound

        try:
            service = self.havsh.inventory.get_service(self.service.name, host=self.service.host)
        except NotFound:
            # Deleted: nothing left to show.
            self.dismiss()
            return
        self.service = service
        self.query_one("#detail-status", StatusBadge).set_status(service.status)
        self.query_one("#detail-summary", Static).update(self._head_text(service))
        for tab in self.tabs:
            tab.show_service(service)
        self.refresh_bindings()

    def acting_on(self) -> Service | None:
        return self.service

    def after_service_op(self, event: ServiceOpFinished) -> None:
        if event.action == "delete" and event.ok:
            self.dismiss()
            return
        self.reload()
        self.load_facts()

    # -- keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("start_service", "stop_service", "restart_service", "copy_service",
                      "neutralize_service", "delete_service", "service_logs"):
            return self.service_action_enabled(action)
        if action in ("update_image", "edit_config"):
            # Both need the container there and no other operation on it.
            return self.service_action_enabled("neutralize_service")
        return True

    def action_back(self) -> None:
        self.dismiss()

    def action_edit_config(self) -> None:
        self.query_one("#detail-tabs", TabbedContent).active = ConfigTab.TAB_ID
        self.query_one("#config-edit", TextArea).focus()

    def save_config(self, *, restart: bool) -> None:
        from havsh_tui.ops.config import parse_config_text
        from havsh_tui.ops.odoo import ConfigError

        tab = self.query_one(ConfigTab)
        text = self.query_one("#config-edit", TextArea).text
        try:
            parse_config_text(text)
        except ConfigError as exc:
            tab.show_error(str(exc))
            return
        if not action_allowed("neutralize_service", self.service):
            tab.show_error(f"{self.service.name} is {self.service.status_label}: its odoo.conf "
                           "cannot be written now.")
            return
        app, service = self.havsh, self.service
        audit = self._audit()

        def call() -> Service:
            from havsh_tui.ops import config

            return config.set_service_config(app.inventory, app.pool, service, text,
                                             restart=restart, audit=audit)

        self.run_service_op(
            "config", f"Save the config of {service.name}", service, call,
            lambda s: f"Saved {len(s.config)} extra key{'s' if len(s.config) != 1 else ''}; "
                      + ("restarted." if restart else "applies at the next restart (r)."),
        )

    def action_update_image(self) -> None:
        hosts = [h.name for h in self.havsh.inventory.list_hosts()]
        self.app.push_screen(UpdateImageDialog(self.service, hosts), self._update_chosen)

    def _update_chosen(self, request: UpdateImageRequest | None) -> None:
        if request is not None:
            self._run_update(request)

    @work(exclusive=True, group="service-dialog", exit_on_error=False)
    async def _run_update(self, request: UpdateImageRequest) -> None:
        from havsh_tui.screens.dashboard import busy_services

        app = self.havsh
        busy = busy_services(app)
        busy.add(self.service.key)
        try:
            await app.push_screen_wait(UpdateImageScreen(app, self.service, request))
        finally:
            busy.discard(self.service.key)
        self.reload()
        self.load_facts()
