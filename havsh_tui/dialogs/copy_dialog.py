"""The copy dialog: the source (when none was selected), the new name and target host, the
options (neutralize, the Odoo image), a review of what will be copied, then the copy itself
in :class:`CopyScreen`.

Measuring (ops.copy.plan_copy) reaches the source's host, so it runs in thread workers of
the steps that show it; the steps stay usable while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Static, Switch
from textual.widgets.option_list import Option

from havsh_tui.core.model import Host, Service, ServiceStatus, ServiceType
from havsh_tui.core.names import InvalidName, container_name, database_name, validate_slug
from havsh_tui.dialogs.create_wizard import check_image, last_health, review_table
from havsh_tui.dialogs.wizard_base import NEXT, CallableValidator, WizardStep, run_steps
from havsh_tui.ops.odoo import major, version_from_image
from havsh_tui.widgets.operation_log import OperationScreen, human_bytes, human_pair

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp
    from havsh_tui.ops.copy import CopyPlan, CopySpec

#: Room asked for on the target beyond the data itself (indexes rebuilt, WAL, a margin).
DISK_MARGIN = 1.10

#: Statuses a source can be copied in: its database and volume exist and are consistent.
COPYABLE = {ServiceStatus.RUNNING, ServiceStatus.STOPPED}


def copy_steps(same_host: bool, neutralize: bool) -> list[str]:
    """The steps of ops.copy.copy_service, shown before they start."""
    steps = ["connect source"]
    if not same_host:
        steps.append("connect target")
    steps.append("measure")
    if not same_host:
        steps.append("bootstrap target")
    steps += ["check target", "image", "database", "snapshot", "volume", "container",
              "copy database", "copy filestore", "verify", "reset identity"]
    if neutralize:
        steps.append("neutralize")
    return [*steps, "start", "health"]


def neutralize_choice(source: Service) -> tuple[bool, str]:
    """Neutralize's default for a copy of ``source``, and the line that says why."""
    if source.type is ServiceType.LIVE:
        return True, "On: the source is Live. A copy must never email its customers."
    if source.type is ServiceType.COPY:
        origin = f" of {source.source}" if source.source else ""
        return True, f"On: the source is a copy{origin}, so it may hold production data."
    if source.type is ServiceType.PREVIEW:
        return True, "On: the source is a preview, itself a neutralized copy."
    return False, (f"Off: a {source.type.label} service holds no real customers. Turn it on "
                   "to archive the mail servers and stop the crons anyway.")


def upgrade_note(source: Service, image: str) -> tuple[str, str]:
    """("ok"|"upgrade"|"downgrade", the line under the image field)."""
    version = version_from_image(image)
    if version is None or version == source.odoo_version:
        return "ok", f"Same Odoo version as the source ({source.odoo_version})."
    if major(version) > major(source.odoo_version):
        return "upgrade", (f"⚑ Upgrade test: {source.odoo_version} → {version}. Test an "
                           "upgrade on a copy: the source is not touched.")
    return "downgrade", (f"Odoo {version} is older than the source's {source.odoo_version}: "
                         "a database cannot be downgraded.")


def needed_bytes(plan: CopyPlan) -> int:
    """The free disk the copy needs on its target: ops/copy's own figure when it gives one."""
    needed = getattr(plan, "disk_needed", 0)
    return int(needed) if needed else int((plan.database_bytes + plan.filestore_bytes)
                                          * DISK_MARGIN)


@dataclass
class CopyDraft:
    services: list[Service]
    hosts: list[Host]
    taken: set[tuple[str, str]]
    source: Service | None = None
    name: str = ""
    host: str | None = None
    neutralize: bool = True
    neutralize_why: str = ""
    image: str = ""
    #: What the source holds (database + filestore bytes), once measured.
    source_plan: CopyPlan | None = None
    source_error: str | None = None
    #: The review's measurement, for the chosen target.
    plan: CopyPlan | None = None

    def set_source(self, source: Service) -> None:
        self.source = source
        self.host = self.host or source.host
        self.neutralize, self.neutralize_why = neutralize_choice(source)
        self.image = source.image
        if not self.name:
            self.name = self.free_name(f"{source.name}-copy", source.host)

    def free_name(self, base: str, host: str) -> str:
        base = base[:36].rstrip("-")
        name, n = base, 2
        while (host, name) in self.taken:
            name, n = f"{base}-{n}", n + 1
        return name

    def spec(self) -> CopySpec:
        from havsh_tui.ops.copy import CopySpec

        assert self.source is not None
        return CopySpec(
            source_host=self.source.host, source=self.source.name, name=self.name,
            host=self.host, neutralize=self.neutralize,
            image=self.image if self.image != self.source.image else None,
        )


class PlanMeasured(Message):
    """A plan_copy finished (or failed: ``error``)."""

    def __init__(self, plan: CopyPlan | None, error: str | None) -> None:
        super().__init__()
        self.plan = plan
        self.error = error


def _measure(app: Any, spec: CopySpec) -> CopyPlan:
    from havsh_tui.ops import copy as copy_ops

    return copy_ops.plan_copy(app.inventory, app.pool, spec)


def _error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# -- the steps ---------------------------------------------------------------------------------


class SourceStep(WizardStep):
    STEP_TITLE = "Source"

    def compose_body(self) -> ComposeResult:
        yield Label("Copy which service?", classes="field-label")
        options = []
        for service in self.draft.services:
            prompt = Text()
            prompt.append(f"{service.name:<20}", "bold" if service.type is ServiceType.LIVE
                          else "")
            prompt.append(f"{service.host:<10} {service.type.label:<8} {service.status_label}")
            options.append(Option(prompt, id=f"{service.host}/{service.name}",
                                  disabled=service.status not in COPYABLE))
        yield OptionList(*options, id="source-list")
        yield Static("Only a Running or Stopped service can be copied; the source keeps "
                     "running while it is copied.", classes="field-hint")

    def on_mount(self) -> None:
        options = self.query_one("#source-list", OptionList)
        for index, service in enumerate(self.draft.services):
            if service.status in COPYABLE:
                options.highlighted = index
                break
        options.focus()

    @on(OptionList.OptionSelected, "#source-list")
    def _on_select(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_next()

    def validate(self) -> str | None:
        options = self.query_one("#source-list", OptionList)
        if options.highlighted is None or not self.draft.services:
            return "There is no service to copy yet."
        source = self.draft.services[options.highlighted]
        if source.status not in COPYABLE:
            return f"{source.name} is {source.status_label}: it cannot be copied now."
        if self.draft.source is None or self.draft.source.key != source.key:
            self.draft.source, self.draft.name, self.draft.host = None, "", None
            self.draft.source_plan = None
            self.draft.set_source(source)
        return None


class TargetStep(WizardStep):
    STEP_TITLE = "Target"

    def compose_body(self) -> ComposeResult:
        source = self.draft.source
        yield Label(f"Name of the copy of {source.name}", classes="field-label")
        yield Input(self.draft.name, compact=True, id="copy-name-input",
                    validators=[CallableValidator(validate_slug, strip=False)])
        yield Static("", id="copy-name-hint", classes="field-hint")
        yield Label("Target host", classes="field-label")
        yield OptionList(*self._host_options(), id="copy-host-list")
        yield Static("", id="copy-size-hint", classes="field-hint")

    def _host_options(self) -> list[Option]:
        source = self.draft.source
        plan, options = self.draft.source_plan, []
        size = (human_bytes(plan.database_bytes + plan.filestore_bytes) if plan else None)
        for host in self.draft.hosts:
            prompt = Text(no_wrap=True, overflow="ellipsis")
            prompt.append(f"{host.name:<14}", "bold")
            health = last_health(self.app, host.name)
            free = getattr(health, "disk_free", None)
            if host.name == source.host:
                free = plan.target_disk_free if plan and plan.target_disk_free else free
                prompt.append("the source's host  ", "italic")
            else:
                prompt.append(" " * 19)
            prompt.append(f"{human_bytes(free)} free" if free is not None
                          else "free disk unknown")
            if size is not None:
                prompt.append(f" · the source is {size}", "dim")
            options.append(Option(prompt, id=host.name))
        return options

    def on_mount(self) -> None:
        hosts = [h.name for h in self.draft.hosts]
        options = self.query_one("#copy-host-list", OptionList)
        if self.draft.host in hosts:
            options.highlighted = hosts.index(self.draft.host)
        self.query_one("#copy-name-input", Input).focus()
        self._hint(self.draft.name)
        if self.draft.source_plan is None:
            self._size_hint()
            self._measure_source()
        else:
            self._size_hint()

    def _size_hint(self) -> None:
        plan = self.draft.source_plan
        if plan is not None:
            text = (f"{self.draft.source.name} holds a {human_bytes(plan.database_bytes)} "
                    f"database and {plan.filestore_files} files "
                    f"({human_bytes(plan.filestore_bytes)}).")
        elif self.draft.source_error:
            text = f"Could not measure the source: {self.draft.source_error}"
        else:
            text = f"Measuring {self.draft.source.name}…"
        self.query_one("#copy-size-hint", Static).update(text)

    @work(thread=True, exclusive=True, group="copy-measure", exit_on_error=False)
    def _measure_source(self) -> None:
        from havsh_tui.ops.copy import CopySpec

        source = self.draft.source
        spec = CopySpec(source_host=source.host, source=source.name, name=self.draft.name,
                        host=source.host)
        try:
            self.post_message(PlanMeasured(_measure(self.app, spec), None))
        except Exception as exc:  # noqa: BLE001 - shown as a hint; the review measures again
            self.post_message(PlanMeasured(None, _error_text(exc)))

    @on(PlanMeasured)
    def _on_measured(self, event: PlanMeasured) -> None:
        event.stop()
        self.draft.source_plan = event.plan
        self.draft.source_error = event.error
        options = self.query_one("#copy-host-list", OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options(self._host_options())
        options.highlighted = highlighted
        self._size_hint()

    def _hint(self, name: str) -> None:
        try:
            validate_slug(name)
        except InvalidName:
            text = "Lowercase letters, digits and '-', starting with a letter."
        else:
            text = f"Container {container_name(name)}, database {database_name(name)}."
        self.query_one("#copy-name-hint", Static).update(text)

    @on(Input.Changed, "#copy-name-input")
    def _on_name(self, event: Input.Changed) -> None:
        self._hint(event.value)
        self.show_error(None)

    @on(OptionList.OptionHighlighted, "#copy-host-list")
    def _on_host(self) -> None:
        self.show_error(None)

    @on(OptionList.OptionSelected, "#copy-host-list")
    def _on_select(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_next()

    def validate(self) -> str | None:
        name = self.query_one("#copy-name-input", Input).value
        try:
            validate_slug(name)
        except InvalidName as exc:
            return str(exc).capitalize()
        options = self.query_one("#copy-host-list", OptionList)
        if options.highlighted is None:
            return "Choose the target host."
        host = self.draft.hosts[options.highlighted].name
        if (host, name) in self.draft.taken:
            return f"A service named {name!r} exists on {host} already."
        if host != self.draft.host or name != self.draft.name:
            self.draft.plan = None
        self.draft.name, self.draft.host = name, host
        return None


class OptionsStep(WizardStep):
    STEP_TITLE = "Options"

    def compose_body(self) -> ComposeResult:
        source = self.draft.source
        with Horizontal(classes="field-row"):
            yield Switch(self.draft.neutralize, id="neutralize-switch")
            yield Label("Neutralize the copy", classes="switch-label")
        yield Static(self.draft.neutralize_why, id="neutralize-why", classes="field-hint")
        yield Static("", id="neutralize-warning", classes="field-warning -hidden")
        yield Label("Odoo image", classes="field-label")
        yield Input(self.draft.image, compact=True, id="copy-image-input",
                    validators=[CallableValidator(check_image)])
        yield Static("", id="image-note", classes="field-hint")
        yield Static(f"The source runs {source.image}. Neutralizing happens before the copy's "
                     "server first starts, and is verified.", classes="field-hint")

    def on_mount(self) -> None:
        self.query_one("#neutralize-switch", Switch).focus()
        self._warn(self.draft.neutralize)
        self._note(self.draft.image)

    def _warn(self, on_: bool) -> None:
        warning = self.query_one("#neutralize-warning", Static)
        default, _why = neutralize_choice(self.draft.source)
        if default and not on_:
            warning.update("Off: the copy will send mail and run scheduled actions like its "
                           "source does.")
            warning.remove_class("-hidden")
        else:
            warning.add_class("-hidden")

    def _note(self, image: str) -> None:
        kind, text = upgrade_note(self.draft.source, image.strip())
        note = self.query_one("#image-note", Static)
        note.update(text)
        note.set_class(kind == "upgrade", "-upgrade")

    @on(Switch.Changed, "#neutralize-switch")
    def _on_switch(self, event: Switch.Changed) -> None:
        self._warn(event.value)

    @on(Input.Changed, "#copy-image-input")
    def _on_image(self, event: Input.Changed) -> None:
        self._note(event.value)
        self.show_error(None)

    def validate(self) -> str | None:
        image = self.query_one("#copy-image-input", Input).value.strip()
        try:
            check_image(image)
        except ValueError as exc:
            return str(exc)
        kind, text = upgrade_note(self.draft.source, image)
        if kind == "downgrade":
            return text
        neutralize = self.query_one("#neutralize-switch", Switch).value
        if neutralize != self.draft.neutralize or image != self.draft.image:
            self.draft.plan = None
        self.draft.neutralize, self.draft.image = neutralize, image
        return None


class CopyReviewStep(WizardStep):
    STEP_TITLE = "Review"
    NEXT_LABEL = "Copy"

    def compose_body(self) -> ComposeResult:
        yield Static(self._table(), id="copy-review-table")
        yield Static("", id="copy-plan", classes="field-hint")

    def _table(self) -> RenderableType:
        d = self.draft
        source = d.source
        kind, note = upgrade_note(source, d.image)
        rows: list[tuple[str, RenderableType]] = [
            ("Source", Text(f"{source.name} on {source.host} ({source.type.label}, "
                            f"{source.status_label}: it keeps running)")),
            ("Copy", f"{d.name} on {d.host}" + (" (the same host)" if d.host == source.host
                                                else " (across hosts, compressed)")),
            ("Neutralize", "yes, before it first starts" if d.neutralize else "no"),
            ("Image", Text(d.image + ("  ⚑ upgrade test" if kind == "upgrade" else ""))),
        ]
        plan = d.plan
        if plan is not None:
            disk = "free space unknown"
            if plan.target_disk_free is not None:
                free_text, needed_text = human_pair(plan.target_disk_free, needed_bytes(plan))
                disk = f"{free_text} free on {d.host}, about {needed_text} needed"
            rows += [
                ("Database", human_bytes(plan.database_bytes)),
                ("Filestore", f"{plan.filestore_files} files, "
                              f"{human_bytes(plan.filestore_bytes)}"),
                ("Target disk", disk),
            ]
        return review_table(rows)

    def on_mount(self) -> None:
        if self.draft.plan is None:
            self.query_one("#copy-plan", Static).update(
                f"Measuring what {self.draft.source.name} holds…")
            self.query_one("#wizard-next").disabled = True
            self._plan()
        else:
            self._show_plan()

    @work(thread=True, exclusive=True, group="copy-plan", exit_on_error=False)
    def _plan(self) -> None:
        try:
            self.post_message(PlanMeasured(_measure(self.app, self.draft.spec()), None))
        except Exception as exc:  # noqa: BLE001 - the step says it and refuses to copy
            self.post_message(PlanMeasured(None, _error_text(exc)))

    @on(PlanMeasured)
    def _on_measured(self, event: PlanMeasured) -> None:
        event.stop()
        self.draft.plan = event.plan
        if event.plan is None:
            self.query_one("#copy-plan", Static).update("")
            self.show_error(f"Could not measure the copy: {event.error}")
            return
        self._show_plan()

    def _show_plan(self) -> None:
        self.query_one("#copy-review-table", Static).update(self._table())
        next_button = self.query_one("#wizard-next")
        problem = self.disk_problem()
        self.show_error(problem)
        next_button.disabled = problem is not None
        self.query_one("#copy-plan", Static).update(
            "The database is dumped from a snapshot while the source runs; the filestore "
            "follows; the copy is verified (row counts, files, bytes) before it starts.")
        if problem is None:
            next_button.focus()

    def disk_problem(self) -> str | None:
        """Why the copy cannot go ahead (too little disk on the target, or a problem
        plan_copy found), or None."""
        plan = self.draft.plan
        if plan is None:
            return None
        if plan.target_disk_free is not None:
            needed = needed_bytes(plan)
            if plan.target_disk_free < needed:
                free_text, needed_text = human_pair(plan.target_disk_free, needed)
                return (f"Not enough disk on {self.draft.host}: {free_text} free, about "
                        f"{needed_text} needed. Free some space or pick another host.")
        problems = [p for p in getattr(plan, "problems", None) or []
                    if "free; the copy needs" not in p]
        if problems:
            return "Cannot copy: " + "; ".join(problems) + "."
        return None

    def validate(self) -> str | None:
        if self.draft.plan is None:
            return "Still measuring the source…"
        return self.disk_problem()


def new_copy_draft(app: HavshApp, source: Service | None) -> CopyDraft:
    snapshot = app.inventory.snapshot()
    draft = CopyDraft(
        services=sorted(snapshot.services, key=lambda s: (s.name, s.host)),
        hosts=snapshot.hosts,
        taken={(s.host, s.name) for s in snapshot.services},
    )
    if source is not None:
        draft.set_source(source)
    return draft


async def run_copy_dialog(app: HavshApp, source: Service | None = None,
                          draft: CopyDraft | None = None) -> CopySpec | None:
    """Walk the copy steps; returns the CopySpec to run, or None when cancelled. Runs in a
    worker (push_screen_wait). Without a source, the first step picks one."""
    draft = draft or new_copy_draft(app, source)
    steps: list[Any] = [TargetStep, OptionsStep, CopyReviewStep]
    titles = ["Target", "Options", "Review"]
    if draft.source is None:
        steps.insert(0, SourceStep)
        titles.insert(0, "Source")
    title = f"Copy {draft.source.name}" if draft.source else "Copy a service"
    outcome = await run_steps(app, draft, steps, titles=titles, dialog_title=title)
    return draft.spec() if outcome == NEXT else None


class CopyScreen(OperationScreen["Service"]):
    """Runs ops.copy.copy_service with its steps in view (bytes, rate and ETA as it goes)."""

    FAILURE_NOTE = ("Everything the copy had made on the target was removed; the source was "
                    "not touched. The copy stays listed as Failed; copying again under the "
                    "same name retries it.")

    def __init__(self, app: HavshApp, spec: CopySpec, *, same_host: bool) -> None:
        self.spec = spec
        self.havsh = app
        neutralize = bool(spec.neutralize)
        super().__init__(
            f"Copying {spec.source} to {spec.name} on {spec.host or spec.source_host}",
            self._copy,
            expected_steps=copy_steps(same_host, neutralize),
            subtitle=("neutralized before it starts" if neutralize else "not neutralized")
            + (f" · {spec.image}" if spec.image else ""),
            record=(app.inventory, "service.copy", spec.host or spec.source_host, spec.name),
        )

    def _copy(self, reporter: Any) -> Service:
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.core.secrets import SecretStore
        from havsh_tui.ops import copy as copy_ops

        app = self.havsh
        return copy_ops.copy_service(
            app.inventory, SecretStore(app.paths.secrets), app.pool, self.spec, reporter,
            audit=AuditLog(app.paths.audit_log),
        )

    def describe_result(self, result: Service | None) -> RenderableType:
        if result is None:
            return Text("Copied.")
        text = Text()
        text.append(f"{result.name} is {result.status_label} on {result.host}", "bold")
        text.append(f", a copy of {self.spec.source}@{self.spec.source_host}")
        if result.snapshot_at:
            text.append(f" as of {result.snapshot_at:%Y-%m-%d %H:%M:%S} UTC")
        text.append(".")
        return text
