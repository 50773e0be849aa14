"""A yes/no question before anything destructive, optionally "type the name to confirm".

    ok = await app.push_screen_wait(ConfirmDialog("Remove host alpha?", "...", confirm="Remove"))
    ok = await app.push_screen_wait(
        ConfirmDialog("Delete erp-prod?", "...", confirm="Delete", type_to_confirm="erp-prod")
    )

It dismisses with True only on an explicit confirmation. ``esc``, ``n`` and Cancel give
False. In the simple form the Cancel button has the focus, so a stray ``enter`` never
destroys anything; ``y`` confirms. With ``type_to_confirm`` the confirm button stays disabled
until the text typed is exactly the name (the rule for Live services in shared/DESIGN.md).

``option`` adds one checkbox above the buttons (such as "back up before deleting"); the
caller reads :attr:`ConfirmDialog.option_checked` once the dialog confirmed:

    dialog = ConfirmDialog("Delete erp-prod?", option="Back up first", option_value=True)
    app.push_screen(dialog, lambda ok: ok and delete(backup=dialog.option_checked))
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Static

from havsh_tui.dialogs import Dialog


class ConfirmDialog(Dialog[bool]):
    """Ask before doing something. Title and message are plain text, never markup, so a
    name with brackets prints as it is."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes", id="confirm-yes", show=False),
        Binding("n", "cancel", "No", id="confirm-no", show=False),
    ]

    DEFAULT_CSS = """
    ConfirmDialog #confirm-option.-after-input {
        margin: 1 0 0 0;
    }
    """

    cancel_result = False

    def __init__(
        self,
        title: str,
        message: str | Text = "",
        *,
        confirm: str = "OK",
        cancel: str = "Cancel",
        danger: bool = True,
        type_to_confirm: str | None = None,
        option: str | None = None,
        option_value: bool = False,
    ) -> None:
        super().__init__()
        self.option = option
        #: The checkbox's state (``option_value`` until the user changes it).
        self.option_checked = option_value
        self.title_text = title
        self.message = message
        self.confirm_label = confirm
        self.cancel_label = cancel
        self.danger = danger
        self.type_to_confirm = type_to_confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog -danger" if self.danger else "dialog"):
            yield Static(Text(self.title_text), id="confirm-title", classes="dialog-title")
            if self.message:
                message = self.message if isinstance(self.message, Text) else Text(self.message)
                yield Static(message, id="confirm-message", classes="dialog-text")
            if self.type_to_confirm is not None:
                yield Static(
                    Text.assemble("Type ", (self.type_to_confirm, "bold"), " to confirm:"),
                    id="confirm-prompt",
                )
                yield Input(placeholder=self.type_to_confirm, id="confirm-input", compact=True)
            if self.option is not None:
                yield Checkbox(self.option, self.option_checked, id="confirm-option",
                               compact=True,
                               classes="-after-input" if self.type_to_confirm else "")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.cancel_label, id="confirm-cancel")
                yield Button(
                    self.confirm_label,
                    id="confirm-ok",
                    variant="error" if self.danger else "primary",
                    disabled=self.type_to_confirm is not None,
                )

    def on_mount(self) -> None:
        if self.type_to_confirm is not None:
            self.query_one("#confirm-input", Input).focus()
        else:
            self.query_one("#confirm-cancel", Button).focus()

    @property
    def confirmable(self) -> bool:
        if self.type_to_confirm is None:
            return True
        return self.query_one("#confirm-input", Input).value == self.type_to_confirm

    def action_confirm(self) -> None:
        if self.confirmable:
            self.dismiss(True)

    @on(Input.Changed, "#confirm-input")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#confirm-ok", Button).disabled = not self.confirmable

    @on(Checkbox.Changed, "#confirm-option")
    def _option(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.option_checked = event.value

    @on(Input.Submitted, "#confirm-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#confirm-ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_confirm()

    @on(Button.Pressed, "#confirm-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(False)
