"""The creation wizard: type, name, host, Odoo version and image, database options, extra
configuration, review; then the creation itself, step by step, in :class:`CreateScreen`.

The flow is :func:`run_create_wizard`, awaited from a worker of the dashboard. Each step is
validated before Next with the rules ops/ enforces again at Create (core.names, the
inventory, ops.odoo), so the wizard refuses early what Create would refuse late.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import (
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    Static,
    Switch,
    TextArea,
)
from textual.widgets.option_list import Option

from havsh_tui.core.model import Host, ServiceType
from havsh_tui.core.names import InvalidName, container_name, database_name, validate_slug
from havsh_tui.dialogs.wizard_base import (
    CANCEL,
    NEXT,
    CallableValidator,
    WizardStep,
    run_steps,
)
from havsh_tui.ops.backup.model import DEFAULT_KEEP
from havsh_tui.ops.odoo import VERSIONS, ConfigError, version_from_image
from havsh_tui.ops.services import name_taken
from havsh_tui.widgets.operation_log import OperationScreen, human_bytes

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp
    from havsh_tui.ops.services import CreateResult, CreateSpec

COPY = "copy"

TITLES = ("Type", "Name", "Host", "Odoo", "Database", "Config", "Review")

#: The steps of ops.services.create_service, shown before they start.
CREATE_STEPS = (
    "connect", "bootstrap", "check names", "image", "database", "volume", "init", "admin password",
    "container", "start", "health",
)

_LANG_RE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?(@[a-z]+)?")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")


def check_language(value: str) -> None:
    if not _LANG_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a language code like en_US or fr_BE")


def check_country(value: str) -> None:
    if value and not _COUNTRY_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a two-letter country code like BE or US")


def check_image(value: str) -> None:
    from havsh_tui.ops.hosts import OpsError
    from havsh_tui.ops.update import validate_image_ref

    try:
        validate_image_ref(value)
    except OpsError as exc:
        raise ValueError(str(exc)) from None


def default_image(host: Host | None, version: str, template: str = "odoo:{version}") -> str:
    """The host's Odoo image repository with the version as its tag (what Create uses)."""
    if host is None:
        return template.format(version=version)
    ref = host.odoo_image
    repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    return f"{repo}:{version}"


def health_line(health: Any) -> Text:
    """A host's last poll, one line: "up · load 0.21 · 41.2 GB free" or why it is down."""
    if health is None:
        return Text("not polled yet", "dim")
    if not getattr(health, "reachable", False):
        return Text(f"unreachable: {health.error or 'no answer'}", "bold")
    parts = ["up"]
    if health.load1 is not None:
        parts.append(f"load {health.load1:.2f}")
    if health.disk_free is not None:
        parts.append(f"{human_bytes(health.disk_free)} free")
    return Text(" · ".join(parts))


def last_health(app: Any, host: str) -> Any:
    """The host's last poll from the app's poller (workers.HostPoller), if it has one."""
    poller = getattr(app, "poller", None)
    latest = getattr(poller, "latest", None) or {}
    return latest.get(host)


@dataclass
class CreateDraft:
    """What the wizard has gathered so far."""

    hosts: list[Host]
    taken: set[tuple[str, str]]
    default_version: str = "17.0"
    type: ServiceType = ServiceType.TEST
    name: str = ""
    host: str | None = None
    odoo_version: str = ""
    image: str = ""
    #: The user typed an image of their own: changing the version no longer rewrites it.
    image_custom: bool = False
    demo: bool = False
    language: str = "en_US"
    country: str = ""
    config_text: str = ""
    config: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.odoo_version = self.odoo_version or self.default_version

    def host_obj(self) -> Host | None:
        return next((h for h in self.hosts if h.name == self.host), None)

    def hosts_with_name(self, name: str) -> list[str]:
        return sorted(h for h, n in self.taken if n == name)

    def spec(self) -> CreateSpec:
        from havsh_tui.ops.services import CreateSpec

        assert self.host is not None
        return CreateSpec(
            name=self.name, host=self.host, type=self.type, odoo_version=self.odoo_version,
            image=self.image or None,
            demo=self.demo if self.type.rules.demo_choice else None,
            language=self.language or None, country=self.country or None,
            config=dict(self.config),
        )


# -- the steps ---------------------------------------------------------------------------------


class TypeStep(WizardStep):
    STEP_TITLE = "Type"

    CHOICES: ClassVar[tuple[ServiceType, ...]] = (
        ServiceType.LIVE, ServiceType.TEST, ServiceType.DEMO, ServiceType.COPY,
        ServiceType.PREVIEW,
    )
    HINTS: ClassVar[dict[ServiceType, str]] = {
        ServiceType.LIVE: f"Backed up daily on its host by default (the newest "
                          f"{DEFAULT_KEEP} kept); deleting it needs its name typed.",
        ServiceType.TEST: "Created without demo data (you may turn it on).",
        ServiceType.DEMO: "Created with Odoo's demo data.",
        ServiceType.COPY: "Copies an existing service, database and filestore: Next opens "
                          "the copy dialog.",
        ServiceType.PREVIEW: "Previews are made from GitHub pull requests, not here: connect "
                             "a repository on the Previews screen and each pull request gets "
                             "its own neutralized copy of its parent service.",
    }

    def compose_body(self) -> ComposeResult:
        yield Label("What kind of service?", classes="field-label")
        options = []
        for service_type in self.CHOICES:
            prompt = Text()
            prompt.append(f"{service_type.label:<9}", "bold")
            prompt.append(service_type.rules.description)
            options.append(Option(prompt, id=service_type.value))
        yield OptionList(*options, id="type-list")
        yield Static("", id="type-hint", classes="field-hint")

    def on_mount(self) -> None:
        options = self.query_one("#type-list", OptionList)
        options.highlighted = self.CHOICES.index(self.draft.type)
        options.focus()
        self._hint()

    def _selected(self) -> ServiceType:
        options = self.query_one("#type-list", OptionList)
        return self.CHOICES[options.highlighted or 0]

    def _hint(self) -> None:
        self.query_one("#type-hint", Static).update(self.HINTS[self._selected()])

    @on(OptionList.OptionHighlighted, "#type-list")
    def _on_highlight(self) -> None:
        self._hint()
        self.show_error(None)

    @on(OptionList.OptionSelected, "#type-list")
    def _on_select(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_next()

    def validate(self) -> str | None:
        chosen = self._selected()
        if chosen is ServiceType.PREVIEW:
            return "A Preview comes from a GitHub pull request; it cannot be created here."
        if chosen is not ServiceType.COPY:
            if chosen is not self.draft.type:
                # Demo data follows the type's rule until the user changes it (Test only).
                self.draft.demo = bool(chosen.rules.demo_default)
            self.draft.type = chosen
        return None

    def next_result(self) -> str:
        return COPY if self._selected() is ServiceType.COPY else NEXT


class NameStep(WizardStep):
    STEP_TITLE = "Name"

    def compose_body(self) -> ComposeResult:
        yield Label(f"Name of the new {self.draft.type.label} service", classes="field-label")
        yield Input(
            self.draft.name,
            compact=True,
            placeholder="erp-test",
            id="name-input",
            validators=[CallableValidator(validate_slug, strip=False)],
            validate_on=["changed", "submitted"],
        )
        yield Static("", id="name-hint", classes="field-hint")

    def on_mount(self) -> None:
        self.query_one("#name-input", Input).focus()
        self._hint(self.draft.name)

    def _hint(self, name: str) -> None:
        hint = "Lowercase letters, digits and '-', starting with a letter (2-40 characters)."
        try:
            validate_slug(name)
        except InvalidName:
            pass
        else:
            hint = f"Container {container_name(name)}, database {database_name(name)}."
            taken = self.draft.hosts_with_name(name)
            if taken:
                hint += f" Already on {', '.join(taken)}: pick another host next."
        self.query_one("#name-hint", Static).update(hint)

    @on(Input.Changed, "#name-input")
    def _on_change(self, event: Input.Changed) -> None:
        self._hint(event.value)
        self.show_error(None)

    def validate(self) -> str | None:
        name = self.query_one("#name-input", Input).value
        try:
            validate_slug(name)
        except InvalidName as exc:
            return str(exc).capitalize()
        hosts = {h.name for h in self.draft.hosts}
        if hosts and set(self.draft.hosts_with_name(name)) >= hosts:
            return f"A service named {name!r} exists on every host already."
        self.draft.name = name
        return None


class HostStep(WizardStep):
    STEP_TITLE = "Host"

    def compose_body(self) -> ComposeResult:
        yield Label(f"Host of {self.draft.name}", classes="field-label")
        options = []
        for host in self.draft.hosts:
            prompt = Text(no_wrap=True, overflow="ellipsis")
            prompt.append(f"{host.name:<14}", "bold")
            prompt.append(f"{host.destination:<28} ")
            if (host.name, self.draft.name) in self.draft.taken:
                prompt.append(f"{self.draft.name} exists here", "dim")
            else:
                prompt.append_text(health_line(last_health(self.app, host.name)))
            options.append(Option(prompt, id=host.name))
        yield OptionList(*options, id="host-list")
        yield Static(
            "Health is from the last poll of each host." if self.draft.hosts
            else "No host yet: add one on the Hosts screen first.",
            classes="field-hint",
        )

    def on_mount(self) -> None:
        options = self.query_one("#host-list", OptionList)
        names = [h.name for h in self.draft.hosts]
        free = [n for n in names if (n, self.draft.name) not in self.draft.taken]
        start = self.draft.host if self.draft.host in free else (free[0] if free else None)
        if start is not None:
            options.highlighted = names.index(start)
        options.focus()

    @on(OptionList.OptionHighlighted, "#host-list")
    def _on_highlight(self) -> None:
        self.show_error(None)

    @on(OptionList.OptionSelected, "#host-list")
    def _on_select(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_next()

    def validate(self) -> str | None:
        if not self.draft.hosts:
            return "There is no host to create it on: add one on the Hosts screen."
        options = self.query_one("#host-list", OptionList)
        if options.highlighted is None:
            return "Choose a host."
        host = self.draft.hosts[options.highlighted]
        if (host.name, self.draft.name) in self.draft.taken:
            return f"{host.name} has a service named {self.draft.name!r} already."
        if host.name != self.draft.host and not self.draft.image_custom:
            self.draft.image = ""
        self.draft.host = host.name
        return None


class ImageStep(WizardStep):
    STEP_TITLE = "Odoo"

    def compose_body(self) -> ComposeResult:
        yield Label("Odoo version", classes="field-label")
        with RadioSet(id="version-set"):
            for version in VERSIONS:
                yield RadioButton(version, value=version == self.draft.odoo_version,
                                  id=f"version-{version.replace('.', '-')}")
        yield Label("Image", classes="field-label")
        yield Input(
            self.draft.image or self._default(self.draft.odoo_version),
            compact=True,
            id="image-input",
            validators=[CallableValidator(check_image)],
        )
        yield Static(
            "The host's image for that version by default; any image built FROM an official "
            "Odoo image works (a registry path, a local tag).",
            classes="field-hint",
        )

    def _default(self, version: str) -> str:
        settings = getattr(self.app, "settings", None)
        template = getattr(settings, "default_odoo_image_template", "odoo:{version}")
        return default_image(self.draft.host_obj(), version, template)

    def on_mount(self) -> None:
        self.query_one("#version-set", RadioSet).focus()

    def _version(self) -> str:
        radio = self.query_one("#version-set", RadioSet)
        index = radio.pressed_index
        return VERSIONS[index] if index >= 0 else self.draft.odoo_version

    @on(RadioSet.Changed, "#version-set")
    def _on_version(self, event: RadioSet.Changed) -> None:
        image = self.query_one("#image-input", Input)
        version = self._version()
        if not self.draft.image_custom or version_from_image(image.value) not in (None, version):
            # The image follows the version unless the user wrote one of their own.
            image.value = self._default(version)
            self.draft.image_custom = False
        self.show_error(None)

    @on(Input.Changed, "#image-input")
    def _on_image(self, event: Input.Changed) -> None:
        if event.value != self._default(self._version()):
            self.draft.image_custom = True
        self.show_error(None)

    def validate(self) -> str | None:
        version = self._version()
        image = self.query_one("#image-input", Input).value.strip()
        try:
            check_image(image)
        except ValueError as exc:
            return str(exc)
        tagged = version_from_image(image)
        if tagged is not None and tagged != version:
            return f"The image {image} is Odoo {tagged}, but {version} is chosen."
        self.draft.odoo_version = version
        self.draft.image = image
        return None


class DatabaseStep(WizardStep):
    STEP_TITLE = "Database"

    def compose_body(self) -> ComposeResult:
        rules = self.draft.type.rules
        with Horizontal(classes="field-row"):
            yield Switch(self.draft.demo, id="demo-switch", disabled=not rules.demo_choice)
            yield Label("Demo data", classes="switch-label")
        if self.draft.type is ServiceType.DEMO:
            why = "A Demo service always has Odoo's demo data."
        elif self.draft.type is ServiceType.LIVE:
            why = "A Live service never has demo data: it holds real data."
        else:
            why = "A Test service starts without demo data; turn it on for a sandbox with samples."
        yield Static(why, classes="field-hint")
        yield Label("Language", classes="field-label")
        yield Input(self.draft.language, id="language-input", placeholder="en_US",
                    compact=True, validators=[CallableValidator(check_language)])
        yield Label("Country (optional)", classes="field-label")
        yield Input(self.draft.country, id="country-input", placeholder="BE",
                    compact=True, validators=[CallableValidator(check_country)])
        yield Static(
            "Admin password: generated, shown once when the service is ready, and kept in "
            "havsh's secrets (never in the inventory).",
            classes="field-hint",
        )

    def on_mount(self) -> None:
        switch = self.query_one("#demo-switch", Switch)
        (self.query_one("#language-input", Input) if switch.disabled else switch).focus()

    def validate(self) -> str | None:
        language = self.query_one("#language-input", Input).value.strip()
        country = self.query_one("#country-input", Input).value.strip().upper()
        try:
            check_language(language)
            check_country(country)
        except ValueError as exc:
            return str(exc)
        if self.draft.type.rules.demo_choice:
            self.draft.demo = self.query_one("#demo-switch", Switch).value
        else:
            self.draft.demo = bool(self.draft.type.rules.demo_default)
        self.draft.language = language
        self.draft.country = country
        return None


class ConfigStep(WizardStep):
    STEP_TITLE = "Config"

    def compose_body(self) -> ComposeResult:
        yield Label("Extra odoo.conf keys, one key = value a line (optional)",
                    classes="field-label")
        yield TextArea(self.draft.config_text, id="config-input", soft_wrap=False,
                       show_line_numbers=True)
        yield Static(
            "For example workers = 2 or limit_memory_hard = 2684354560. havsh sets the "
            "database, paths and db_* keys itself. Lines starting with # are ignored.",
            classes="field-hint",
        )

    def on_mount(self) -> None:
        self.query_one("#config-input", TextArea).focus()

    @on(TextArea.Changed, "#config-input")
    def _on_change(self) -> None:
        self.show_error(None)

    def validate(self) -> str | None:
        from havsh_tui.ops.config import parse_config_text

        text = self.query_one("#config-input", TextArea).text
        try:
            config = parse_config_text(text)
        except ConfigError as exc:
            return str(exc)
        self.draft.config_text = text
        self.draft.config = config
        return None


def review_table(rows: Iterable[tuple[str, RenderableType]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


class ReviewStep(WizardStep):
    STEP_TITLE = "Review"
    NEXT_LABEL = "Create"

    def compose_body(self) -> ComposeResult:
        d = self.draft
        config = ", ".join(f"{k}={v}" for k, v in sorted(d.config.items())) or "none"
        rows: list[tuple[str, RenderableType]] = [
            ("Type", Text(d.type.label, "bold" if d.type is ServiceType.LIVE else "")),
            ("Name", d.name),
            ("Host", d.host or "?"),
            ("Odoo", d.odoo_version),
            ("Image", d.image),
            ("Database", f"{database_name(d.name)} (role havsh_{database_name(d.name)})"),
            ("Demo data", "yes" if d.demo else "no"),
            ("Language", d.language),
            ("Country", d.country or "—"),
            ("Extra config", config),
            ("Admin password", "generated; shown once when the service is ready"),
        ]
        #: What the step shows, as text (for tests and screen readers of the future).
        self.rows = [(key, str(value)) for key, value in rows]
        yield Static(review_table(rows), id="review-table")
        yield Static(
            "Create makes the role and database, the volume, runs Odoo's init, starts the "
            "server and checks /web/health. If a step fails, what was made is removed.",
            classes="field-hint",
        )

    def on_mount(self) -> None:
        self.query_one("#wizard-next").focus()


WIZARD_STEPS = (TypeStep, NameStep, HostStep, ImageStep, DatabaseStep, ConfigStep, ReviewStep)


def new_draft(app: HavshApp) -> CreateDraft:
    snapshot = app.inventory.snapshot()
    settings = getattr(app, "settings", None)
    return CreateDraft(
        hosts=snapshot.hosts,
        taken={(s.host, s.name) for s in snapshot.services if name_taken(s)},
        default_version=getattr(settings, "default_odoo_version", "17.0"),
    )


async def run_create_wizard(app: HavshApp, draft: CreateDraft | None = None) -> CreateSpec | str:
    """Walk the steps; returns the CreateSpec to run, COPY when the user picked Copy, or
    CANCEL. Runs inside a worker (push_screen_wait)."""
    draft = draft or new_draft(app)
    outcome = await run_steps(app, draft, WIZARD_STEPS, titles=TITLES,
                              dialog_title="New service")
    if outcome == NEXT:
        return draft.spec()
    return outcome if outcome == COPY else CANCEL


# -- the creation ----------------------------------------------------------------------------


class CreateScreen(OperationScreen["CreateResult"]):
    """Runs ops.services.create_service with every step in view; shows the admin password
    once when it is done."""

    FAILURE_NOTE = ("What the creation had made on the host was removed. The service stays "
                    "listed as Failed with this error (its detail, Steps/Log) until deleted, "
                    "or created again under its name.")

    def __init__(self, app: HavshApp, spec: CreateSpec) -> None:
        self.spec = spec
        self.havsh = app
        super().__init__(
            f"Creating {spec.type.label} service {spec.name} on {spec.host}",
            self._create,
            expected_steps=CREATE_STEPS,
            subtitle=f"Odoo {spec.odoo_version} · {spec.image or 'the host image'}",
            record=(app.inventory, "service.create", spec.host, spec.name),
        )

    def _create(self, reporter: Any) -> CreateResult:
        # Looked up at call time, so tests can put a fake create_service in its place.
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.core.secrets import SecretStore
        from havsh_tui.ops import services

        app = self.havsh
        return services.create_service(
            app.inventory, SecretStore(app.paths.secrets), app.pool, self.spec, reporter,
            audit=AuditLog(app.paths.audit_log),
        )

    def describe_result(self, result: CreateResult | None) -> RenderableType:
        text = Text()
        if result is None:
            return Text("Created.")
        service = result.service
        text.append(f"{service.name} is {service.status_label} on {service.host}", "bold")
        text.append(f" (created in {result.seconds:.0f} s).")
        if service.url:
            text.append(f"\nURL: {service.url}")
        if result.generated_password:
            text.append("\nAdmin login: admin   password: ")
            text.append(result.admin_password, "bold reverse")
            text.append("\nShown this once. It is kept in havsh's secrets.")
        return text
