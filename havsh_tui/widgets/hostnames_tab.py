"""The Hostnames tab of the service detail screen: the platform hostname and the custom
ones, which is primary (the URL everything uses), and each certificate's expiry, as the
host's proxy has them. ``a`` adds a custom hostname (validated as it is typed; the DNS
record to create is said after), ``X`` removes the selected one (asks first).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Static

from havsh_tui.screens.service_detail import register_tab
from havsh_tui.widgets.backups_tab import HostListTab, TabOpDone, run_tab_op

#: Fewer days left than this and the expiry is shown as a warning.
CERT_WARN_DAYS = 14


class HostnameValidator(Validator):
    """The proxy's own rules (ops.proxy.validate_hostname), as the user types."""

    def validate(self, value: str) -> ValidationResult:
        from havsh_tui.ops.proxy import InvalidHostname, validate_hostname

        if not value:
            return self.failure("Type a hostname, like erp.example.com.")
        try:
            validate_hostname(value)
        except InvalidHostname as exc:
            return self.failure(str(exc))
        return self.success()


def cert_text(cert: Any, now: datetime, tls: str) -> Text:
    if cert is None:
        return Text("—", "dim")
    if cert.error:
        return Text(cert.error, "dim")
    if cert.not_after is None:
        return Text("?", "dim")
    days = (cert.not_after - now).total_seconds() / 86400
    issuer = "internal CA" if tls == "internal" else (cert.issuer.split(",")[0] or "?")
    style = "bold" if days < CERT_WARN_DAYS else ""
    return Text(f"{cert.not_after:%Y-%m-%d} ({days:.0f} days) · {issuer}", style)


def dns_text(dns: dict[str, Any] | None, hostname: str) -> Text:
    if not dns:
        return Text("")
    text = Text.assemble(("Create this DNS record: ", "bold"),
                         f"{dns['name']}  {dns['type']}  {dns['value']}")
    if dns.get("note"):
        text.append(f"\n{dns['note']}.", "dim")
    text.append(f"\nUntil it exists, {hostname} cannot be reached (nor get an ACME "
                "certificate).", "dim")
    return text


class HostnamesTab(HostListTab):
    TAB_TITLE = "Hostnames"
    TAB_ID = "tab-hostnames"
    COLUMNS = ("Hostname", "Kind", "Primary", "Certificate")
    LOADING = "Asking the host's proxy, and reading each certificate…"

    DEFAULT_CSS = """
    HostnamesTab #hostname-add-row {
        height: auto;
        padding: 1 0 0 0;
    }
    HostnamesTab #hostname-add-label {
        padding: 0 1 0 0;
    }
    HostnamesTab #hostname-input {
        width: 48;
    }
    HostnamesTab #hostname-add-button {
        margin: 0 0 0 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_hostname", "Add hostname", id="hostname-add"),
        Binding("X", "remove_hostname", "Remove hostname", id="hostname-remove"),
    ]

    def compose_below(self) -> ComposeResult:
        with Horizontal(id="hostname-add-row"):
            yield Label("New custom hostname", id="hostname-add-label")
            yield Input(placeholder="erp.example.com", id="hostname-input", compact=True,
                        validators=[HostnameValidator()], validate_on=["changed", "submitted"])
            yield Button("Add", id="hostname-add-button", variant="primary", compact=True)
        yield Static("", id="hostname-error", classes="field-error")

    def read_rows(self) -> Any:
        from havsh_tui.ops import proxy

        return proxy.service_hostnames(self.havsh.inventory, self.havsh.pool, self.service,
                                       certs=True)

    def rows(self) -> list[tuple[str, str]]:
        """(hostname, "platform" | "custom"), in the order shown."""
        data = self.data
        if data is None:
            return []
        return ([(data.platform, "platform")] if data.platform else []) + [
            (h, "custom") for h in data.hostnames]

    def show_rows(self, data: Any) -> None:
        table = self.table
        table.clear()
        primary = data.url.split("://", 1)[-1].split("/", 1)[0] if data.url else ""
        now = self.havsh.clock()
        for hostname, kind in self.rows():
            table.add_row(hostname, kind, "✔" if hostname == primary else "",
                          cert_text(data.certs.get(hostname), now, data.tls), key=hostname)
        self.set_status(Text.assemble(
            ("URL ", "bold"), data.url or "none: reached through an SSH tunnel "
                                          f"(`havsh service open {self.service.name}`)",
            f"   TLS {data.tls}   a add · X remove · g refresh"))
        if not self.rows():
            self.set_note(Text("No hostname. Give the host a base domain (`havsh host set "
                               f"{self.service.host} --base-domain DOMAIN`) or add one.", "dim"))

    def selected(self) -> tuple[str, str] | None:
        index = self.selected_index()
        rows = self.rows()
        if index is None or index >= len(rows):
            return None
        return rows[index]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "remove_hostname":
            row = self.selected()
            return True if row is not None and row[1] == "custom" and not self.busy else None
        if action == "add_hostname":
            return None if self.busy else True
        return True

    def show_error(self, message: str) -> None:
        self.query_one("#hostname-error", Static).update(Text(message))

    def action_add_hostname(self) -> None:
        self.query_one("#hostname-input", Input).focus()

    @on(Input.Changed, "#hostname-input")
    def _typed(self, event: Input.Changed) -> None:
        result = event.validation_result
        self.show_error("" if result is None or result.is_valid or not event.value
                        else result.failure_descriptions[0])

    @on(Input.Submitted, "#hostname-input")
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._add()

    @on(Button.Pressed, "#hostname-add-button")
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._add()

    def _add(self) -> None:
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.ops.proxy import InvalidHostname, validate_hostname

        field = self.query_one("#hostname-input", Input)
        try:
            hostname = validate_hostname(field.value.strip())
        except InvalidHostname as exc:
            self.show_error(str(exc))
            return
        if self.busy:
            return
        if hostname in {h for h, _kind in self.rows()}:
            self.show_error(f"{hostname} is a hostname of {self.service.name} already.")
            return
        app, service = self.havsh, self.service
        self.show_error("")

        def call() -> Any:
            from havsh_tui.ops import proxy

            return proxy.add_hostname(app.inventory, app.pool, service, hostname,
                                      audit=AuditLog(app.paths.audit_log))

        run_tab_op(self, f"Add {hostname} to {service.name}", call,
                   lambda change: f"{hostname} is {change.action}; {service.name}'s URL is "
                                  f"{change.url or 'unchanged'}.")

    def after_op(self, event: TabOpDone) -> None:
        change = event.result
        if change is not None and getattr(change, "action", "") in ("added", "unchanged"):
            self.query_one("#hostname-input", Input).value = ""
            self.set_note(dns_text(change.dns, change.hostname))
        elif change is not None:
            self.set_note("")
        self.detail.reload()

    def action_remove_hostname(self) -> None:
        row = self.selected()
        if row is None or row[1] != "custom":
            return
        hostname = row[0]
        self.confirm_then(
            f"Remove {hostname} from {self.service.name}?",
            f"The proxy on {self.service.host} stops serving {hostname}; the service's other "
            "routes are untouched. Delete its DNS record yourself.",
            "Remove", lambda: self._remove(hostname))

    def _remove(self, hostname: str) -> None:
        from havsh_tui.core.audit import AuditLog

        app, service = self.havsh, self.service

        def call() -> Any:
            from havsh_tui.ops import proxy

            return proxy.remove_hostname(app.inventory, app.pool, service, hostname,
                                         audit=AuditLog(app.paths.audit_log))

        run_tab_op(self, f"Remove {hostname} from {service.name}", call,
                   lambda change: f"{hostname} removed; {service.name}'s URL is "
                                  f"{change.url or 'none (tunnel only)'}.")


register_tab(HostnamesTab)
