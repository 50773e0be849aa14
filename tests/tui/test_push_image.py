"""Images for hosts that can't pull: the offer to push one when an operation fails for lack
of it (then the operation runs again in the same screen), and `p` on the hosts screen. Fake
ops (tests/tui/fakes.py): nothing dials a host; the real push is proven in
tests/integration/test_hosts.py and test_cli_hosts.py."""

from __future__ import annotations

from typing import Any

from textual.widgets import Button, Input, RadioButton

from havsh_tui.core.model import ServiceStatus
from havsh_tui.dialogs.create_wizard import CreateScreen
from havsh_tui.dialogs.push_image import PushImageDialog
from havsh_tui.screens.hosts import HostsScreen
from havsh_tui.widgets.operation_log import OperationScreen

from .fakes import Calls, steady, wait_for
from .test_wizard import at, to_image_step

SIZE = (120, 40)


async def _sources_shown(pilot: Any) -> PushImageDialog:
    dialog = await at(pilot, PushImageDialog)
    await wait_for(pilot, lambda: len(dialog.query(RadioButton)) > 0, what="the sources")
    await pilot.pause()
    return dialog


async def _failed_for_the_image(pilot: Any, calls: Calls, failure: Any = "image",
                                name: str = "air-gapped") -> CreateScreen:
    """Walk the wizard to a creation that fails: for its image (the default), or ``failure``
    as fakes.install takes it."""
    calls.fail["create"] = failure
    await to_image_step(pilot, name)
    await pilot.press("ctrl+n", "ctrl+n", "ctrl+n", "ctrl+n")
    creating = await at(pilot, CreateScreen)
    await wait_for(pilot, lambda: creating.outcome is not None, what="the failure")
    await pilot.pause()
    return creating


async def test_a_missing_image_is_offered_a_push_and_the_creation_runs_again(app: Any,
                                                                              calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        creating = await _failed_for_the_image(pilot, calls)
        assert not creating.outcome.ok
        push = creating.query_one("#operation-push", Button)
        assert push.display and app.focused is push
        await pilot.click("#operation-push")
        dialog = await _sources_shown(pilot)
        assert calls.of("sources") == [("alpha", "odoo:17.0")]
        radios = list(dialog.query(RadioButton))
        labels = [str(r.label) for r in radios]
        assert labels[0].startswith("this machine's Docker · has it")
        assert "bravo · can't tell: no answer within 10 s" in labels
        assert [r.disabled for r in radios] == [False, True]
        assert radios[0].value and dialog._source() == "local"
        assert not dialog.query_one("#push-ok", Button).disabled
        await pilot.click("#push-ok")
        # The same screen runs the push, then the creation again, which now passes.
        await wait_for(pilot, lambda: app.screen is creating and creating.outcome is not None
                       and creating.outcome.ok, what="the second run")
        assert calls.names()[-3:] == ["sources", "push", "create"]
        assert calls.of("push") == [("alpha", "odoo:17.0", "local")]
        states = dict(creating.pane.step_states())
        assert states["push odoo:17.0"] == "done" and states["health"] == "done"
        assert not creating.query_one("#operation-push", Button).display
        assert app.inventory.get_service("air-gapped", host="alpha").status \
            is ServiceStatus.RUNNING


async def test_cancelling_the_push_dialog_leaves_the_failure_as_it_was(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        creating = await _failed_for_the_image(pilot, calls)
        await pilot.click("#operation-push")
        await _sources_shown(pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is creating)
        assert "push" not in calls.names() and not creating.outcome.ok
        assert creating.query_one("#operation-push", Button).display


async def test_a_failure_of_another_kind_offers_no_push(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        creating = await _failed_for_the_image(pilot, calls, True, "will-fail")  # init fails
        assert not creating.outcome.ok
        assert not creating.query_one("#operation-push", Button).display


async def test_push_from_the_hosts_screen(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.screen, HostsScreen)
        await pilot.press("p")
        dialog = await _sources_shown(pilot)
        # The host's default Odoo image first; another one is typed in.
        assert calls.of("sources") == [("alpha", "odoo:17.0")]
        await pilot.click("#push-image-input")
        dialog.query_one("#push-image-input", Input).value = ""
        await pilot.press(*"odoo:18.0")
        assert dialog.query_one("#push-ok", Button).disabled, "not for the image typed yet"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(calls.of("sources")) == 2)
        dialog = await _sources_shown(pilot)
        assert calls.of("sources")[-1] == ("alpha", "odoo:18.0")
        await pilot.click("#push-ok")
        screen = await at(pilot, OperationScreen)
        await wait_for(pilot, lambda: screen.outcome is not None)
        assert screen.outcome.ok
        assert "odoo:18.0 is on alpha: 1.4 GB in 16.03 s." in str(
            screen.query_one("#operation-result").content)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostsScreen))


def test_snapshot_push_dialog(snap_compare, app: Any, calls: Calls):
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        await _failed_for_the_image(pilot, calls)
        await pilot.click("#operation-push")
        await _sources_shown(pilot)
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_creation_failed_for_its_image(snap_compare, app: Any, calls: Calls):
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        await _failed_for_the_image(pilot, calls)
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
