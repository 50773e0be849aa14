"""The host-key dialog: an unknown key to accept or reject, or a changed key, refused.

An unknown key shows its type and SHA256 fingerprint, the way OpenSSH asks "Are you sure you
want to continue connecting?". Accept dismisses with True (the caller then connects again
with ``accept_fingerprint=``, which saves the key to the app's known_hosts); Reject, and
``esc``, with False. Reject has the focus, so accepting is always a deliberate act.

A changed key shows OpenSSH's warning (``ChangedHostKey``'s message) and has one button,
Close: nothing in the TUI accepts a changed key. The user removes the old key on purpose
(``k`` on the hosts screen, or ``havsh host forget-key``) and then meets it as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Label, Static

from havsh_tui.dialogs import Dialog


@dataclass(frozen=True)
class HostKeyInfo:
    """What the dialog shows. ``warning`` set means the key changed: refuse."""

    host: str
    key_type: str = ""
    fingerprint: str = ""
    known_hosts: Path | None = None
    warning: str | None = None

    @property
    def changed(self) -> bool:
        return self.warning is not None


class HostKeyDialog(Dialog[bool]):
    """Accept or reject an unknown host key; or read why a changed one is refused."""

    DEFAULT_CSS = """
    HostKeyDialog #host-key-facts {
        grid-size: 2;
        grid-columns: 14 1fr;
        grid-rows: 1;
        height: auto;
        padding: 0 0 1 0;
    }
    HostKeyDialog #host-key-fingerprint {
        text-style: bold;
        color: $text-warning;
    }
    HostKeyDialog #host-key-warning {
        color: $text-error;
        padding: 0 0 1 0;
    }
    """

    cancel_result = False

    def __init__(self, info: HostKeyInfo) -> None:
        super().__init__()
        self.info = info

    @classmethod
    def unknown(
        cls, host: str, key_type: str, fingerprint: str, known_hosts: Path | None = None
    ) -> HostKeyDialog:
        return cls(HostKeyInfo(host, key_type, fingerprint, known_hosts))

    @classmethod
    def changed(cls, host: str, warning: str) -> HostKeyDialog:
        return cls(HostKeyInfo(host, warning=warning))

    def compose(self) -> ComposeResult:
        info = self.info
        if info.changed:
            with Vertical(id="host-key-dialog", classes="dialog -danger"):
                yield Static(
                    Text(f"Host key of {info.host} has CHANGED"),
                    id="host-key-title",
                    classes="dialog-title",
                )
                yield Static(Text(info.warning or ""), id="host-key-warning")
                yield Static(
                    Text(
                        "havsh sent nothing to this host and will not, until the old key is "
                        "removed on purpose: k on the hosts screen, or "
                        "`havsh host forget-key NAME`."
                    ),
                    classes="dialog-hint",
                )
                with Horizontal(classes="dialog-buttons"):
                    yield Button("Close", id="host-key-close", variant="error")
            return
        with Vertical(id="host-key-dialog", classes="dialog"):
            yield Static(
                Text(f"Unknown host key: {info.host}"),
                id="host-key-title",
                classes="dialog-title",
            )
            yield Static(
                Text(
                    f"The authenticity of {info.host} can't be established: its key is in no "
                    "known_hosts file yet. Compare the fingerprint with the host's own "
                    "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host) before you "
                    "accept it."
                ),
                classes="dialog-text",
            )
            with Grid(id="host-key-facts"):
                yield Label("Key type")
                yield Label(Text(info.key_type), id="host-key-type")
                yield Label("Fingerprint")
                yield Label(Text(info.fingerprint), id="host-key-fingerprint")
            where = str(info.known_hosts) if info.known_hosts else "the app's known_hosts"
            yield Static(
                Text(f"Accept saves the key to {where}. Reject sends nothing."),
                classes="dialog-hint",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Reject", id="host-key-reject")
                yield Button("Accept", id="host-key-accept", variant="warning")

    def on_mount(self) -> None:
        button = "#host-key-close" if self.info.changed else "#host-key-reject"
        self.query_one(button, Button).focus()

    @on(Button.Pressed, "#host-key-accept")
    def _accept(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(True)

    @on(Button.Pressed, "#host-key-reject, #host-key-close")
    def _reject(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(False)
