"""What every step of a multi-step dialog shares (the creation wizard, the copy dialog).

A step is a ModalScreen that edits a shared draft and dismisses with where to go next:
:data:`NEXT`, :data:`BACK` or :data:`CANCEL` (or a step's own word, such as the type step's
"copy"). The flow is one ``@work`` coroutine that awaits ``push_screen_wait`` on each step
in turn (Textual's screens guide), so going back is just an index moving down.

Next runs :meth:`WizardStep.validate`; a step with an error stays, and says why under its
fields. Enter in the last input of a step means Next; esc cancels the whole dialog.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Static

from havsh_tui.dialogs import Dialog

NEXT = "next"
BACK = "back"
CANCEL = "cancel"


def step_trail(titles: Sequence[str], index: int) -> Text:
    """ "Type › Name › Host ...", the current step in bold, those done in plain text."""
    text = Text()
    for i, title in enumerate(titles):
        if i:
            text.append(" › ", "dim")
        if i == index:
            text.append(title, "bold reverse")
        elif i < index:
            text.append(title)
        else:
            text.append(title, "dim")
    return text


class CallableValidator(Validator):
    """A Validator from a function that raises ValueError with the reason (validate_slug and
    its friends), so the Input and the step's own check say the same thing."""

    def __init__(self, check: Callable[[str], object], *, strip: bool = True) -> None:
        super().__init__()
        self.check = check
        self.strip = strip

    def validate(self, value: str) -> ValidationResult:
        try:
            self.check(value.strip() if self.strip else value)
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()


class WizardStep(Dialog[str]):
    """One step. Subclasses give :attr:`STEP_TITLE`, :meth:`compose_body`, and
    :meth:`validate`, which stores the step's values in the draft or returns an error."""

    STEP_TITLE: ClassVar[str] = ""
    #: The label of the Next button ("Create" on a review step).
    NEXT_LABEL: ClassVar[str] = "Next"

    #: esc (Dialog's binding) cancels the whole dialog.
    cancel_result = CANCEL

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+b", "back", "Back", id="wizard-back"),
        Binding("ctrl+n", "next", "Next", id="wizard-next"),
    ]

    def __init__(
        self,
        draft: Any,
        *,
        index: int,
        titles: Sequence[str],
        dialog_title: str,
    ) -> None:
        super().__init__(classes="wizard-screen")
        self.draft = draft
        self.index = index
        self.titles = list(titles)
        self.dialog_title = dialog_title
        self._error = ""

    # -- what subclasses provide ---------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        yield from ()

    def validate(self) -> str | None:
        """Check the fields and store them in the draft; an error message keeps the step."""
        return None

    def next_result(self) -> str:
        """What Next dismisses with once validate() passed (a step may branch)."""
        return NEXT

    # -- the frame -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="wizard-dialog", classes="dialog"):
            yield Static(self.dialog_title, id="wizard-title", classes="dialog-title")
            yield Static(step_trail(self.titles, self.index), id="wizard-trail")
            with VerticalScroll(id="wizard-body"):
                yield from self.compose_body()
            yield Static("", id="wizard-error", classes="-hidden")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Back", id="wizard-back", disabled=self.index == 0)
                yield Button("Cancel", id="wizard-cancel")
                yield Button(self.NEXT_LABEL, id="wizard-next", variant="primary")

    @property
    def error(self) -> str:
        """The error shown now ("" when none): what tests read."""
        return self._error

    def show_error(self, message: str | None) -> None:
        self._error = message or ""
        widget = self.query_one("#wizard-error", Static)
        if message:
            widget.update(Text(message))
            widget.remove_class("-hidden")
        else:
            widget.update("")
            widget.add_class("-hidden")

    def action_next(self) -> None:
        message = self.validate()
        self.show_error(message)
        if message is None:
            self.dismiss(self.next_result())

    def action_back(self) -> None:
        if self.index > 0:
            self.dismiss(BACK)

    def action_cancel(self) -> None:
        self.dismiss(CANCEL)

    @on(Button.Pressed, "#wizard-next")
    def _pressed_next(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_next()

    @on(Button.Pressed, "#wizard-back")
    def _pressed_back(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_back()

    @on(Button.Pressed, "#wizard-cancel")
    def _pressed_cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        # Enter in an input: to the next input of the step, or Next from the last one.
        event.stop()
        inputs = [w for w in self.query(Input) if w.display and not w.disabled]
        if event.input in inputs and event.input is not inputs[-1]:
            inputs[inputs.index(event.input) + 1].focus()
            return
        self.action_next()


StepFactory = Callable[..., WizardStep]


async def run_steps(
    app: App[Any],
    draft: Any,
    steps: Sequence[StepFactory],
    *,
    titles: Sequence[str],
    dialog_title: str,
    start: int = 0,
    on_branch: Callable[[str], Awaitable[str | None]] | None = None,
) -> str:
    """Walk ``steps`` (each pushed and awaited in turn) until the last one says Next, or one
    cancels. Returns NEXT, CANCEL or a branch word a step dismissed with; ``on_branch`` may
    turn a branch into NEXT/BACK/CANCEL to carry on. Must run inside a worker."""
    index = start
    while index < len(steps):
        screen = steps[index](draft, index=index, titles=titles, dialog_title=dialog_title)
        outcome = await app.push_screen_wait(screen)
        if outcome not in (NEXT, BACK, CANCEL) and on_branch is not None:
            outcome = await on_branch(outcome) or CANCEL
        if outcome == NEXT:
            index += 1
        elif outcome == BACK:
            index = max(index - 1, 0)
        else:
            return outcome
    return NEXT
