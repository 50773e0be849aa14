"""Add a host, or edit one: the form, the connection test, and the key and passphrase steps.

The user picks an alias of their ~/.ssh/config or types an address (``[user@]host[:port]``
works too), and presses Test connection. The test runs ``ops.hosts.connect_and_verify`` and
``ops.hosts.docker_info`` on a thread, and walks the user through what SSH may ask:

- an unknown host key opens :class:`~havsh_tui.dialogs.host_key.HostKeyDialog`; Accept
  connects again with ``accept_fingerprint=`` (which saves the key), Reject stops there; a
  jump host's unknown key, which a pin does not cover, is saved under its own name once
  accepted (``UnknownHostKey.save_to``);
- a changed key shows OpenSSH's warning, and the test fails: nothing is sent;
- an encrypted key opens :class:`~havsh_tui.dialogs.passphrase.PassphraseDialog`.

Save is offered once the test has passed for the connection fields as they are now, and
dismisses with a :class:`HostDialogResult`; the hosts screen stores it. Editing a host
changes its user, port, key and images; a change to how it is reached needs a new test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Select, Static

from havsh_tui.core.model import Host
from havsh_tui.core.names import InvalidName, validate_host_name
from havsh_tui.core.settings import Settings
from havsh_tui.dialogs import Dialog
from havsh_tui.dialogs.host_key import HostKeyDialog
from havsh_tui.dialogs.passphrase import PassphraseDialog
from havsh_tui.ops.hosts import OpsError, connect_and_verify, docker_info
from havsh_tui.remote.hosts import SSHOptions, parse_destination, ssh_config_aliases
from havsh_tui.remote.ssh import ChangedHostKey, PassphraseRequired, RemoteError, UnknownHostKey
from havsh_tui.workers import describe_error, run_blocking

#: Wrong passphrases in a row before the test gives up.
PASSPHRASE_TRIES = 3


# -- the connection test (runs on a thread) -------------------------------------------------


@dataclass(frozen=True)
class ConnectionTest:
    """A connection test that passed."""

    fingerprint: str
    key_type: str
    #: The key was new and the user accepted it (it is now in the app's known_hosts).
    accepted_new_key: bool
    docker_version: str | None
    api_version: str | None
    docker_root: str | None

    def summary(self) -> str:
        docker = f"Docker {self.docker_version or '?'}"
        if self.api_version:
            docker += f" (API {self.api_version})"
        root = f" · root {self.docker_root}" if self.docker_root else ""
        return f"{self.key_type} {self.fingerprint} · {docker}{root}"


def try_connection(
    host: Host,
    opts: SSHOptions,
    *,
    accept_fingerprint: str | None = None,
    passphrase: str | None = None,
) -> ConnectionTest:
    """Connect (verifying the host key), ask the engine its version, close. Raises what the
    remote layer raises: UnknownHostKey, ChangedHostKey, PassphraseRequired, RemoteError."""
    # Only passed when there is one, for layers that predate the keyword.
    extra: dict[str, Any] = {"passphrase": passphrase} if passphrase is not None else {}
    session, fp, key_type, accepted = connect_and_verify(
        host, opts, accept_fingerprint=accept_fingerprint, **extra
    )
    try:
        info = docker_info(session)
    finally:
        session.close()
    version, engine = info.get("version") or {}, info.get("info") or {}
    return ConnectionTest(
        fingerprint=fp,
        key_type=key_type,
        accepted_new_key=accepted,
        docker_version=version.get("Version"),
        api_version=version.get("ApiVersion"),
        docker_root=engine.get("DockerRootDir"),
    )


# -- validators -----------------------------------------------------------------------------


class Check(Validator):
    """A validator from a function that returns the problem, or None when the value is fine."""

    def __init__(self, check: Callable[[str], str | None]) -> None:
        super().__init__()
        self.check = check

    def validate(self, value: str) -> ValidationResult:
        problem = self.check(value)
        return self.success() if problem is None else self.failure(problem)


def _no_options(value: str, what: str) -> str | None:
    """Values end up as SSH and Docker arguments: no spaces, and no leading dash."""
    if any(c.isspace() for c in value):
        return f"{what} may not contain spaces"
    if value.startswith("-"):
        return f"{what} may not start with '-'"
    return None


def check_name(existing: Iterable[str]) -> Callable[[str], str | None]:
    taken = set(existing)

    def check(value: str) -> str | None:
        if not value:
            return "a name is needed (the host's name in havsh: lowercase, digits, '-', '.')"
        try:
            validate_host_name(value)
        except InvalidName as exc:
            return str(exc)
        if value in taken:
            return f"a host named {value!r} exists already"
        return None

    return check


def check_destination(what: str, *, required: bool) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not value:
            return f"{what} is needed" if required else None
        problem = _no_options(value, what)
        if problem:
            return problem
        try:
            _user, address, port = parse_destination(value)
        except ValueError:
            return f"{what} {value!r}: the port after ':' must be a number"
        if not address:
            return f"{what} {value!r} has no host name or address"
        if port is not None and not 1 <= port <= 65535:
            return f"{what} {value!r}: the port must be 1-65535"
        return None

    return check


def check_user(value: str) -> str | None:
    if not value:
        return None
    if "@" in value:
        return "the user may not contain '@'"
    return _no_options(value, "the user")


def check_port(value: str) -> str | None:
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        return "the port is a number from 1 to 65535"
    return None


def check_identity(value: str) -> str | None:
    if not value:
        return None
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        return f"no key file at {value}"
    return None


def check_image(what: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not value:
            return f"{what} is needed"
        return _no_options(value, what)

    return check


# -- the dialog -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HostDialogResult:
    """What Save hands back: the host to store, and the test it passed (None when an edit
    did not touch how the host is reached)."""

    host: Host
    test: ConnectionTest | None
    editing: bool = False
    #: The passphrase the test needed, for the app's connection pool (memory only).
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FormField:
    key: str
    label: str
    placeholder: str
    #: Editable when editing an existing host.
    editable: bool = True
    #: Part of how the host is reached: changing it voids a passed test.
    connection: bool = True


FIELDS: tuple[FormField, ...] = (
    FormField("name", "Name", "the host's name in havsh, e.g. prod-1", editable=False,
              connection=False),
    FormField("address", "Address", "[user@]host[:port], or an ssh_config alias",
              editable=False),
    FormField("user", "User", "from ssh_config, else your login name"),
    FormField("port", "Port", "22, or the ssh_config's"),
    FormField("identity", "Key file", "~/.ssh/id_ed25519 (default: ssh_config, agent)"),
    FormField("jump", "Jump host", "[user@]host[:port] or alias (ProxyJump)", editable=False),
    FormField("postgres_image", "PostgreSQL image", "postgres:16", connection=False),
    FormField("odoo_image", "Odoo image", "odoo:17.0", connection=False),
)


def connection_of(host: Host) -> tuple[object, ...]:
    """The fields a connection test depends on."""
    return (host.address, host.port, host.user, host.identity_file, host.jump, host.ssh_alias)


class HostDialog(Dialog[HostDialogResult | None]):
    """``HostDialog(opts=..., settings=..., existing=names)`` adds; ``host=`` edits it."""

    DEFAULT_CSS = """
    HostDialog > .dialog {
        width: 84;
    }
    HostDialog .field-row {
        height: 1;
        width: 1fr;
        margin: 0 0 1 0;
    }
    HostDialog .field-row Label {
        width: 18;
        color: $text-muted;
    }
    HostDialog .field-row Input, HostDialog .field-row Select {
        width: 1fr;
    }
    HostDialog .field-row.-with-error {
        margin: 0;
    }
    HostDialog .field-error {
        color: $text-error;
        padding: 0 0 0 18;
        margin: 0 0 1 0;
        height: auto;
    }
    HostDialog .field-error.-hidden {
        display: none;
    }
    HostDialog #host-test-status {
        height: auto;
        min-height: 1;
        color: $text-muted;
    }
    HostDialog #host-test-status.-busy {
        color: $text-primary;
    }
    HostDialog #host-test-status.-ok {
        color: $text-success;
    }
    HostDialog #host-test-status.-error {
        color: $text-error;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "test", "Test connection", id="host-dialog-test", show=False),
    ]

    def __init__(
        self,
        *,
        opts: SSHOptions,
        settings: Settings | None = None,
        existing: Iterable[str] = (),
        host: Host | None = None,
        aliases: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.opts = opts
        self.settings = settings or Settings()
        self.original = host
        self.existing = [name for name in existing if host is None or name != host.name]
        if aliases is None:
            # A local file read (no network): what ~/.ssh/config calls its hosts.
            try:
                aliases = [] if host is not None else ssh_config_aliases(opts)
            except (OSError, ValueError):
                aliases = []
        self.aliases = aliases
        self.alias: str | None = host.ssh_alias if host is not None else None
        #: The host and result of the last test that passed.
        self.tested: tuple[Host, ConnectionTest] | None = None
        #: The passphrase the last test needed (memory only; handed to the pool on save).
        self.passphrase: str | None = None
        self.testing = False

    @property
    def editing(self) -> bool:
        return self.original is not None

    # -- building -------------------------------------------------------------------------

    def _initial(self) -> dict[str, str]:
        host = self.original
        if host is None:
            return {
                "postgres_image": self.settings.default_postgres_image,
                "odoo_image": self.settings.odoo_image(self.settings.default_odoo_version),
            }
        return {
            "name": host.name,
            "address": host.address,
            "user": host.user or "",
            "port": "" if host.port == 22 else str(host.port),
            "identity": host.identity_file or "",
            "jump": host.jump or "",
            "postgres_image": host.postgres_image,
            "odoo_image": host.odoo_image,
        }

    def _validators(self, key: str) -> list[Validator]:
        checks: dict[str, Callable[[str], str | None]] = {
            "name": check_name(self.existing),
            "address": check_destination("the address", required=True),
            "user": check_user,
            "port": check_port,
            "identity": check_identity,
            "jump": check_destination("the jump host", required=False),
            "postgres_image": check_image("the PostgreSQL image"),
            "odoo_image": check_image("the Odoo image"),
        }
        return [Check(checks[key])]

    def compose(self) -> ComposeResult:
        title = f"Edit host {self.original.name}" if self.original else "Add a host"
        initial = self._initial()
        with Vertical(id="host-dialog", classes="dialog"):
            yield Static(Text(title), id="host-dialog-title", classes="dialog-title")
            if self.aliases:
                with Horizontal(classes="field-row"):
                    yield Label("ssh_config alias")
                    yield Select(
                        [(alias, alias) for alias in self.aliases],
                        prompt="none: type an address below",
                        id="host-alias",
                        compact=True,
                    )
            for spec in FIELDS:
                with Horizontal(classes="field-row", id=f"host-{spec.key}-row"):
                    yield Label(spec.label)
                    yield Input(
                        initial.get(spec.key, ""),
                        placeholder=spec.placeholder,
                        id=f"host-{spec.key}",
                        compact=True,
                        validators=self._validators(spec.key),
                        validate_on=["changed", "submitted"],
                        valid_empty=True,
                        disabled=self.editing and not spec.editable,
                    )
                yield Static("", id=f"host-{spec.key}-error", classes="field-error -hidden")
            yield Static(self._idle_hint(), id="host-test-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="host-cancel")
                yield Button("Test connection", id="host-test", variant="primary")
                yield Button("Save", id="host-save", variant="success", disabled=not self.editing)

    def _idle_hint(self) -> Text:
        if self.editing:
            return Text("Changing the user, port or key needs a new connection test.")
        return Text("Test the connection (ctrl+t), then save.")

    def on_mount(self) -> None:
        first = "#host-user" if self.editing else ("#host-alias" if self.aliases else "#host-name")
        self.query_one(first).focus()

    # -- reading the form -----------------------------------------------------------------

    def field_input(self, key: str) -> Input:
        return self.query_one(f"#host-{key}", Input)

    def values(self) -> dict[str, str]:
        return {spec.key: self.field_input(spec.key).value.strip() for spec in FIELDS}

    def problems(self) -> dict[str, str]:
        """Every field's first problem, by field key (empty when the form is valid).

        The Inputs take an empty value as valid (``valid_empty``), so a field left empty is
        not painted red before the user has touched the form; the checks run here say what
        is missing when they press Test or Save.
        """
        found: dict[str, str] = {}
        for spec in FIELDS:
            widget = self.field_input(spec.key)
            if widget.disabled:
                continue
            for validator in widget.validators:
                result = validator.validate(widget.value.strip())
                if not result.is_valid:
                    found[spec.key] = result.failure_descriptions[0]
                    break
        return found

    def build_host(self) -> Host:
        """The Host the form describes (call when :meth:`problems` is empty)."""
        values = self.values()
        d_user, address, d_port = parse_destination(values["address"])
        port = int(values["port"]) if values["port"] else (d_port or 22)
        user = values["user"] or d_user or None
        fields: dict[str, Any] = dict(
            address=address,
            port=port,
            user=user,
            identity_file=values["identity"] or None,
            jump=values["jump"] or None,
            ssh_alias=self.alias if self.alias == address else None,
            postgres_image=values["postgres_image"],
            odoo_image=values["odoo_image"],
        )
        if self.original is not None:
            return replace(self.original, **fields)
        return Host(name=values["name"], **fields)

    def _show_problem(self, key: str, problem: str | None) -> None:
        error = self.query_one(f"#host-{key}-error", Static)
        error.update(Text(problem or ""))
        error.set_class(problem is None, "-hidden")
        self.query_one(f"#host-{key}-row").set_class(problem is not None, "-with-error")

    def _show_all(self) -> dict[str, str]:
        problems = self.problems()
        for spec in FIELDS:
            self._show_problem(spec.key, problems.get(spec.key))
            self.field_input(spec.key).set_class(spec.key in problems, "-invalid")
        if problems:
            self.field_input(next(iter(problems))).focus()
            self._set_status("Fix the fields marked in red first.", "-error")
        return problems

    def _set_status(self, text: str | Text, state: str = "") -> None:
        status = self.query_one("#host-test-status", Static)
        status.update(text if isinstance(text, Text) else Text(text))
        for name in ("-busy", "-ok", "-error"):
            status.set_class(name == state, name)

    def can_save(self) -> bool:
        if self.testing or self.problems():
            return False
        host = self.build_host()
        if self.tested is not None and connection_of(self.tested[0]) == connection_of(host):
            return True
        return self.original is not None and connection_of(self.original) == connection_of(host)

    def _refresh_save(self) -> None:
        self.query_one("#host-save", Button).disabled = not self.can_save()
        self.query_one("#host-test", Button).disabled = self.testing

    # -- events ---------------------------------------------------------------------------

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        key = (event.input.id or "").removeprefix("host-")
        result = event.validation_result
        self._show_problem(key, None if result is None or result.is_valid else
                           result.failure_descriptions[0])
        if key == "address" and self.alias is not None and event.value.strip() != self.alias:
            self.alias = None
        self._refresh_save()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    @on(Select.Changed, "#host-alias")
    def _alias_chosen(self, event: Select.Changed) -> None:
        if event.value is Select.NULL:
            return
        alias = str(event.value)
        self.alias = alias
        self.field_input("address").value = alias
        name = self.field_input("name")
        if not name.value:
            candidate = alias.lower()
            if check_name(self.existing)(candidate) is None:
                name.value = candidate
        self._refresh_save()

    @on(Button.Pressed, "#host-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    @on(Button.Pressed, "#host-test")
    def _test_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_test()

    @on(Button.Pressed, "#host-save")
    def _save_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_save()

    # -- actions --------------------------------------------------------------------------

    def action_test(self) -> None:
        if self.testing or self._show_all():
            return
        host = self.build_host()
        self.testing = True
        self.tested = None
        self._refresh_save()
        self._set_status(f"Connecting to {host.destination}…", "-busy")
        self.run_worker(
            self._test(host),
            name=f"test {host.destination}",
            group="host-test",
            exclusive=True,
            exit_on_error=False,
        )

    def action_save(self) -> None:
        if self._show_all():
            return
        if not self.can_save():
            self._set_status("Test the connection first: Save needs a test that passed.", "-error")
            return
        host = self.build_host()
        test = None
        if self.tested is not None and connection_of(self.tested[0]) == connection_of(host):
            test = self.tested[1]
        self.dismiss(
            HostDialogResult(
                host=host,
                test=test,
                editing=self.editing,
                passphrase=self.passphrase if test is not None else None,
            )
        )

    async def _test(self, host: Host) -> None:
        try:
            outcome = await self._walk(host)
        except Exception as exc:  # noqa: BLE001 - shown in the dialog, which stays open
            outcome = None
            self._set_status(describe_error(exc), "-error")
        finally:
            self.testing = False
        if outcome is not None:
            self.tested = (host, outcome)
            self._set_status(f"✓ Connected: {outcome.summary()}", "-ok")
        self._refresh_save()

    async def _walk(self, host: Host) -> ConnectionTest | None:
        """Connect, asking the user what SSH needs to know; None when they said no."""
        accept: str | None = None
        accepted: set[str] = set()
        saved: set[str] = set()
        passphrase: str | None = None
        tries = 0
        while True:
            try:
                outcome = await run_blocking(
                    _test_on_thread, host, self.opts, accept, passphrase,
                    name=f"havsh-test-{host.name}",
                )
                self.passphrase = passphrase
                return outcome
            except UnknownHostKey as exc:
                if exc.fingerprint in accepted:
                    # A key the user accepted is back: a jump host's, which a pin (it is
                    # for the target only) does not cover. Save it under its own name.
                    save = getattr(exc, "save_to", None)
                    if save is None or exc.fingerprint in saved:
                        raise  # saving did not make it known: say so rather than loop
                    saved.add(exc.fingerprint)
                    await run_blocking(save, self.opts.known_hosts, name="havsh-save-key")
                    if accept == exc.fingerprint:
                        accept = None
                    continue
                ok = await self.app.push_screen_wait(
                    HostKeyDialog.unknown(
                        exc.hostname, exc.key_type, exc.fingerprint, self.opts.known_hosts
                    )
                )
                if not ok:
                    self._set_status(
                        "Host key rejected: nothing was saved and nothing was sent.", "-error"
                    )
                    return None
                accepted.add(exc.fingerprint)
                if accept is None:
                    accept = exc.fingerprint
                self._set_status(f"Key accepted; connecting to {host.destination}…", "-busy")
            except ChangedHostKey as exc:
                await self.app.push_screen_wait(HostKeyDialog.changed(exc.hostname, str(exc)))
                self._set_status(
                    f"Refused: the host key of {exc.hostname} has changed. Nothing was sent.",
                    "-error",
                )
                return None
            except PassphraseRequired as exc:
                if tries >= PASSPHRASE_TRIES:
                    self._set_status(f"The key {exc.key_path} stayed locked.", "-error")
                    return None
                passphrase = await self.app.push_screen_wait(
                    PassphraseDialog(exc.key_path, retry=tries > 0)
                )
                if passphrase is None:
                    self._set_status("No passphrase given: not connected.", "-error")
                    return None
                tries += 1
                self._set_status(f"Connecting to {host.destination}…", "-busy")
            except (RemoteError, OpsError) as exc:
                self._set_status(str(exc), "-error")
                return None


def _test_on_thread(
    host: Host, opts: SSHOptions, accept: str | None, passphrase: str | None
) -> ConnectionTest:
    # Looked up at call time, so tests can replace try_connection on this module.
    return try_connection(host, opts, accept_fingerprint=accept, passphrase=passphrase)
