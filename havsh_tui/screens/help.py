"""``?``: every key binding of the screen underneath, read from its live bindings.

Built from ``Screen.active_bindings`` rather than a hand-written list, so it can never go
stale, and it shows the user's remapped keys (settings.keymap) rather than the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static


@dataclass(frozen=True)
class HelpEntry:
    keys: str
    description: str
    binding_id: str
    section: str
    enabled: bool


def _section_of(node: DOMNode) -> str:
    if isinstance(node, App):
        return "App"
    name = type(node).__name__
    if name.endswith("Screen") and name != "Screen":
        name = name[: -len("Screen")]
    # "ServiceTable" reads as "Service table".
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", name) or [name]
    return " ".join([words[0], *(w.lower() for w in words[1:])])


def _depth(node: DOMNode) -> int:
    return len(node.ancestors)


def help_entries(screen: Screen[object]) -> list[HelpEntry]:
    """One entry per action bound on ``screen`` (keys of one action are joined), the focused
    widget's first and the app's last: the order in which Textual looks a key up."""
    app = screen.app
    merged: dict[tuple[int, str], list[str]] = {}
    first: dict[tuple[int, str], tuple[Binding, DOMNode, bool]] = {}
    for _key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.system:
            # Textual's own plumbing (the ctrl+c hint and the like), nothing to learn.
            continue
        slot = (id(active.node), binding.action)
        merged.setdefault(slot, []).append(app.get_key_display(binding))
        known = first.get(slot)
        if known is None or (binding.id and not known[0].id):
            # Textual's own ctrl+q has no id; ours (q, id "quit") names the entry.
            first[slot] = (binding, active.node, active.enabled)
    entries: list[tuple[int, HelpEntry]] = []
    for slot, keys in merged.items():
        binding, node, enabled = first[slot]
        entry = HelpEntry(
            keys=" / ".join(dict.fromkeys(keys)),
            description=binding.description or binding.action.replace("_", " "),
            binding_id=binding.id or "",
            section=_section_of(node),
            enabled=enabled,
        )
        entries.append((_depth(node), entry))
    # sorted() is stable, so within one node the bindings keep their declared order.
    return [entry for _depth_, entry in sorted(entries, key=lambda pair: -pair[0])]


class HelpScreen(ModalScreen[None]):
    """A modal table of keys; esc (or ? or q) closes it."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", id="help-close"),
    ]

    def __init__(self, target: Screen[object]) -> None:
        super().__init__()
        # Captured now: once this modal is on top, app.screen is the modal itself.
        self.entries = help_entries(target)
        self.target_title = _section_of(target)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static(f"Keys: {self.target_title}", id="help-title")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            # Text, not markup: "[keymap]" must print as is.
            yield Static(
                Text("esc closes · remap any key by its id in settings.toml, under [keymap]"),
                id="help-hint",
            )

    def on_mount(self) -> None:
        table = self.query_one("#help-table", DataTable)
        table.add_column("Key", key="key")
        table.add_column("Action", key="action")
        table.add_column("Where", key="where")
        table.add_column("Id", key="id")
        for entry in self.entries:
            style = "" if entry.enabled else "dim"
            table.add_row(
                Text(entry.keys, style=f"bold {style}".strip()),
                Text(entry.description, style=style),
                Text(entry.section, style=style),
                Text(entry.binding_id, style="dim"),
            )

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
