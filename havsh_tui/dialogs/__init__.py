"""Modal dialogs: one file each. Every dialog is a ``ModalScreen[ResultT]`` that dismisses
with its result (a dataclass, a bool, or None for "cancelled").

:class:`Dialog` is the frame they share: centred over a dimmed screen, bordered, ``esc``
cancels. Its CSS lives here rather than in a .tcss file so that a dialog works wherever it
is pushed from, and it uses theme variables only.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from textual.binding import Binding, BindingType
from textual.screen import ModalScreen

ResultT = TypeVar("ResultT")


class Dialog(ModalScreen[ResultT], Generic[ResultT]):
    """A centred, bordered modal. ``esc`` dismisses it with :attr:`cancel_result`."""

    DEFAULT_CSS = """
    Dialog {
        align: center middle;
        background: $background 60%;
    }
    Dialog > .dialog {
        width: 76;
        max-width: 95%;
        height: auto;
        max-height: 95%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    Dialog > .dialog.-danger {
        border: thick $error;
    }
    Dialog .dialog-title {
        width: 1fr;
        text-style: bold;
        color: $text-primary;
        padding: 0 0 1 0;
    }
    Dialog .-danger > .dialog-title {
        color: $text-error;
    }
    Dialog .dialog-text {
        width: 1fr;
        padding: 0 0 1 0;
    }
    Dialog .dialog-hint {
        width: 1fr;
        color: $text-muted;
    }
    Dialog .dialog-buttons {
        width: 1fr;
        height: auto;
        align-horizontal: right;
        padding: 1 0 0 0;
    }
    Dialog .dialog-buttons Button {
        margin: 0 0 0 2;
        min-width: 10;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog-cancel"),
    ]

    #: What ``esc`` (and a Cancel button) dismisses with.
    cancel_result: ResultT | None = None

    def action_cancel(self) -> None:
        self.dismiss(self.cancel_result)
