"""Ask for the passphrase of an encrypted private key, in a masked input.

Dismisses with the passphrase, or None when cancelled. The passphrase lives only as long as
the caller keeps it: the dialog never logs, stores or echoes it.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from havsh_tui.dialogs import Dialog


class PassphraseDialog(Dialog[str | None]):
    """``PassphraseDialog(key_path, retry=True)`` says the last passphrase did not work."""

    DEFAULT_CSS = """
    PassphraseDialog #passphrase-retry {
        color: $text-error;
    }
    PassphraseDialog #passphrase-input {
        margin: 1 0 0 0;
    }
    """

    def __init__(self, key_path: str, *, retry: bool = False) -> None:
        super().__init__()
        self.key_path = key_path
        self.retry = retry

    def compose(self) -> ComposeResult:
        with Vertical(id="passphrase-dialog", classes="dialog"):
            yield Static("Passphrase needed", id="passphrase-title", classes="dialog-title")
            yield Static(
                Text.assemble("The key ", (self.key_path, "bold"), " is encrypted."),
                classes="dialog-text",
            )
            if self.retry:
                yield Static(
                    "That passphrase did not open the key. Try again.", id="passphrase-retry"
                )
            yield Input(
                placeholder="passphrase",
                password=True,
                id="passphrase-input",
                compact=True,
            )
            yield Static(
                "Used for this connection only; never saved. An ssh-agent holding the key "
                "spares you this question.",
                classes="dialog-hint",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="passphrase-cancel")
                yield Button("Unlock", id="passphrase-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#passphrase-input", Input).focus()

    def _submit(self) -> None:
        value = self.query_one("#passphrase-input", Input).value
        if value:
            self.dismiss(value)

    @on(Input.Submitted, "#passphrase-input")
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#passphrase-ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#passphrase-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)
