"""Stream an image to a host that can't pull it: which image, and from where.

Opened from the hosts screen (``p``), and from an operation that failed because its host
lacks the image and could not pull it (the "Push image…" button of its OperationScreen). The
sources (this machine's engine, and every other host) are asked in a worker whether they
have the image; only those that have it can be chosen. Dismisses with a
:class:`PushRequest`, or None.

The push itself runs in an OperationScreen (``ops.images.push_image_to``: docker save on the
source, docker load on the target, through the SSH connections, with a progress bar).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static
from textual.worker import get_current_worker

from havsh_tui.dialogs import Dialog

if TYPE_CHECKING:
    from havsh_tui.ops.images import ImageSource


@dataclass
class PushRequest:
    host: str
    image: str
    #: "local" or the name of the host the image comes from.
    source: str


def _size(n: int | None) -> str:
    return f"{n / 1e6:,.0f} MB" if n else ""


class PushImageDialog(Dialog[PushRequest | None]):
    """Which image goes to ``host``, and from which engine that has it."""

    def __init__(self, host: str, image: str = "", *, reason: str = "") -> None:
        super().__init__()
        self.host = host
        self.image = image
        self.reason = reason
        #: The sources as last asked, in the order of the radio buttons.
        self.sources: list[ImageSource] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="push-dialog", classes="dialog"):
            yield Static(Text(f"Push an image to {self.host}"), classes="dialog-title")
            if self.reason:
                yield Static(Text(self.reason), id="push-reason", classes="dialog-text")
            yield Label("Image", classes="field-label")
            yield Input(self.image, placeholder="odoo:17.0", id="push-image-input",
                        compact=True)
            yield Label("From", classes="field-label")
            yield RadioSet(id="push-source")
            yield Static("", id="push-status", classes="dialog-hint")
            yield Static(
                "docker save on the source, docker load on the target, streamed through the "
                "SSH connections: nothing is held whole in memory, the host needs no registry.",
                classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="push-cancel")
                yield Button("Push", id="push-ok", variant="primary", disabled=True)

    def on_mount(self) -> None:
        if self.image:
            self._ask(self.image)
            self.query_one("#push-source", RadioSet).focus()
        else:
            self.query_one("#push-image-input", Input).focus()
            self._status("Type the image and press enter: the sources that have it are "
                         "then listed.")

    def _status(self, text: str) -> None:
        self.query_one("#push-status", Static).update(Text(text))

    # -- asking the sources --------------------------------------------------------------

    def _ask(self, image: str) -> None:
        self.image = image
        self.query_one("#push-ok", Button).disabled = True
        self._status(f"Asking this machine and the other hosts whether they have {image}…")
        self._find(image)

    @work(thread=True, exclusive=True, group="push-sources", exit_on_error=False)
    def _find(self, image: str) -> None:
        from havsh_tui.ops.images import find_image_sources

        app: Any = self.app
        worker = get_current_worker()
        found = find_image_sources(app.inventory, app.pool, self.host, image)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show_sources, image, found)

    async def _show_sources(self, image: str, found: list[ImageSource]) -> None:
        if image != self.image or not self.is_attached:
            return
        radio = self.query_one("#push-source", RadioSet)
        await radio.remove_children()
        self.sources = found
        first = True
        buttons = []
        for src in found:
            label = "this machine's Docker" if src.name == "local" else src.name
            if src.has:
                label += f" · has it {_size(src.size)}".rstrip()
            elif src.has is False:
                label += " · does not have it"
            else:
                label += f" · can't tell: {src.detail}"
            button = RadioButton(label, value=bool(src.has) and first, id=f"push-src-{src.name}",
                                 disabled=not src.has)
            if src.has:
                first = False
            buttons.append(button)
        await radio.mount_all(buttons)
        having = [s for s in found if s.has]
        self.query_one("#push-ok", Button).disabled = not having
        if having:
            self._status(f"{len(having)} of {len(found)} can send it.")
            radio.focus()
        else:
            self._status(f"Nowhere has {image}: pull it on one of them (or build it on this "
                         "machine) first, then try again.")

    def _source(self) -> str | None:
        # Buttons mounted into a RadioSet after it mounted are not in its pressed_button
        # bookkeeping until one is pressed: their values tell.
        radio = self.query_one("#push-source", RadioSet)
        pressed = radio.pressed_button or next(
            (b for b in radio.query(RadioButton) if b.value), None)
        if pressed is None or pressed.id is None or pressed.disabled:
            return None
        return pressed.id.removeprefix("push-src-")

    # -- events --------------------------------------------------------------------------

    @on(Input.Submitted, "#push-image-input")
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if value:
            self._ask(value)

    @on(Input.Changed, "#push-image-input")
    def _changed(self, event: Input.Changed) -> None:
        if event.value.strip() != self.image:
            self.query_one("#push-ok", Button).disabled = True

    @on(Button.Pressed, "#push-ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        source = self._source()
        if source is None or not self.image:
            return
        self.dismiss(PushRequest(self.host, self.image, source))

    @on(Button.Pressed, "#push-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)


def push_operation(app: Any, request: PushRequest):
    """The operation an OperationScreen runs for ``request`` (audited)."""

    def run(reporter: Any) -> dict:
        from havsh_tui.core.audit import AuditLog
        from havsh_tui.ops.images import push_image_to

        return push_image_to(app.inventory, app.pool, request.host, request.image,
                             request.source, reporter, audit=AuditLog(app.paths.audit_log))

    return run


def push_screen(app: Any, request: PushRequest):
    """The OperationScreen that runs ``request``, saying at the end what moved."""
    from havsh_tui.widgets.operation_log import OperationScreen, human_bytes

    class PushScreen(OperationScreen[dict]):
        def describe_result(self, result: dict | None) -> Text:
            if not result:
                return Text("Done.")
            if result.get("skipped"):
                return Text(f"{request.host} has {request.image} already (the same image ID).")
            return Text.assemble((f"{request.image} is on {request.host}", "bold"),
                                 f": {human_bytes(result.get('bytes'))} in "
                                 f"{result.get('seconds', '?')} s.")

    source = "this machine" if request.source == "local" else request.source
    return PushScreen(f"Pushing {request.image} to {request.host}", push_operation(app, request),
                      expected_steps=[f"push {request.image}"],
                      subtitle=f"from {source}: docker save there, docker load on "
                               f"{request.host}, over SSH")
