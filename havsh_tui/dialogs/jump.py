"""``:`` — jump to a section by name, the k9s way (``:hosts``, ``:services``).

A one-line prompt at the top of the screen. A unique prefix is enough (``:h``); tab takes the
suggestion. Dismisses with the section's name, or None.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static

from havsh_tui.dialogs import Dialog


def match_section(text: str, sections: Sequence[str]) -> str | None:
    """The section ``text`` names: an exact name, else the only one it is a prefix of."""
    text = text.strip().lstrip(":").lower()
    if not text:
        return None
    if text in sections:
        return text
    hits = [section for section in sections if section.startswith(text)]
    return hits[0] if len(hits) == 1 else None


class JumpDialog(Dialog[str | None]):
    DEFAULT_CSS = """
    JumpDialog {
        align: center top;
    }
    JumpDialog > .dialog {
        width: 50;
        margin: 2 0 0 0;
        border: tall $primary;
        padding: 0 1;
    }
    JumpDialog #jump-row {
        height: 1;
    }
    JumpDialog #jump-colon {
        width: 1;
        color: $text-primary;
        text-style: bold;
    }
    JumpDialog #jump-input {
        width: 1fr;
    }
    JumpDialog #jump-hint {
        color: $text-muted;
    }
    JumpDialog #jump-hint.-error {
        color: $text-error;
    }
    """

    def __init__(self, sections: Sequence[str]) -> None:
        super().__init__()
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        with Vertical(id="jump-dialog", classes="dialog"):
            with Horizontal(id="jump-row"):
                yield Label(":", id="jump-colon")
                yield Input(
                    placeholder="section",
                    id="jump-input",
                    compact=True,
                    suggester=SuggestFromList(self.sections, case_sensitive=False),
                )
            yield Static(" · ".join(self.sections), id="jump-hint")

    def on_mount(self) -> None:
        self.query_one("#jump-input", Input).focus()

    @on(Input.Submitted, "#jump-input")
    def _go(self, event: Input.Submitted) -> None:
        event.stop()
        section = match_section(event.value, self.sections)
        if section is None:
            hint = self.query_one("#jump-hint", Static)
            hint.update(Text(f"no section {event.value.strip()!r}: " + " · ".join(self.sections)))
            hint.add_class("-error")
            return
        self.dismiss(section)
