"""The copy dialog: name and target, options, review, copy; bad input (a duplicate name, a
target without enough disk, a downgrade); a snapshot of each step. plan_copy and
copy_service are fakes (tests/tui/fakes.py): nothing dials a host."""

from __future__ import annotations

from typing import Any

from textual.widgets import Button, Input, OptionList, Switch

from havsh_tui.commands import HavshCommands
from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.dialogs.copy_dialog import (
    CopyReviewStep,
    CopyScreen,
    OptionsStep,
    TargetStep,
    neutralize_choice,
    upgrade_note,
)
from havsh_tui.screens.dashboard import DashboardScreen

from .fakes import Calls, steady, wait_for

SIZE = (120, 40)


async def at(pilot: Any, step: type) -> Any:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, step), what=step.__name__)
    await pilot.pause()
    return pilot.app.screen


async def select(pilot: Any, name: str) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, DashboardScreen)
    table = screen.table
    key = next(s for s in table.visible_services() if s.name == name)
    from havsh_tui.widgets.service_table import row_key_for

    table.move_cursor(row=table.get_row_index(row_key_for(key)))
    await pilot.pause()


async def open_copy(pilot: Any, source: str = "erp-prod") -> TargetStep:
    await pilot.pause()
    await select(pilot, source)
    await pilot.press("c")
    target = await at(pilot, TargetStep)
    # The source is measured in a worker: wait for its answer.
    await wait_for(pilot, lambda: target.draft.source_plan is not None, what="the measure")
    await pilot.pause()
    return target


# -- the rules, as plain functions ------------------------------------------------------------


def test_neutralize_defaults_per_source_type():
    from .conftest import demo_services

    by_name = {s.name: s for s in demo_services()}
    assert neutralize_choice(by_name["erp-prod"])[0] is True
    assert "Live" in neutralize_choice(by_name["erp-prod"])[1]
    assert neutralize_choice(by_name["shop-copy"]) == (
        True, "On: the source is a copy of shop-prod, so it may hold production data.")
    assert neutralize_choice(by_name["training"])[0] is False
    assert neutralize_choice(by_name["showroom"])[0] is False


def test_upgrade_note():
    from .conftest import demo_services

    erp = next(s for s in demo_services() if s.name == "erp-prod")
    assert upgrade_note(erp, "odoo:17.0")[0] == "ok"
    assert upgrade_note(erp, "odoo:18.0") == (
        "upgrade", "⚑ Upgrade test: 17.0 → 18.0. Test an upgrade on a copy: the source is "
                   "not touched.")
    assert upgrade_note(erp, "odoo:16.0")[0] == "downgrade"
    assert upgrade_note(erp, "acme/odoo:latest")[0] == "ok"


# -- the dialog -------------------------------------------------------------------------------


async def test_copy_a_live_service_on_its_host(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        target = await open_copy(pilot)
        assert target.query_one("#copy-name-input", Input).value == "erp-prod-copy"
        hosts = target.query_one("#copy-host-list", OptionList)
        assert hosts.highlighted == 0  # the source's host by default
        bravo = str(hosts.get_option_at_index(1).prompt)
        assert "2.1 GB free" in bravo and "the source is 1.9 GB" in bravo
        assert "4812 files" in str(target.query_one("#copy-size-hint").content)
        await pilot.press("enter")  # Input.Submitted on the name: Next

        options = await at(pilot, OptionsStep)
        switch = options.query_one("#neutralize-switch", Switch)
        assert switch.value is True
        assert "the source is Live" in str(options.query_one("#neutralize-why").content)
        await pilot.press("ctrl+n")

        review = await at(pilot, CopyReviewStep)
        await wait_for(pilot, lambda: review.draft.plan is not None, what="the plan")
        await pilot.pause()
        assert not review.query_one("#wizard-next", Button).disabled
        assert review.error == ""
        await pilot.press("ctrl+n")

        copying = await at(pilot, CopyScreen)
        await wait_for(pilot, lambda: copying.outcome is not None, what="the copy")
        assert copying.outcome.ok
        assert "neutralize" in [name for name, _ in copying.pane.step_states()]
        spec = calls.of("copy")[0]
        assert (spec.source, spec.source_host, spec.name, spec.host, spec.neutralize,
                spec.image) == ("erp-prod", "alpha", "erp-prod-copy", "alpha", True, None)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.pause()
        copy = next(s for s in app.screen.table.services if s.name == "erp-prod-copy")
        assert copy.type is ServiceType.COPY and copy.status is ServiceStatus.RUNNING


async def test_a_duplicate_name_is_refused(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        target = await open_copy(pilot)
        target.query_one("#copy-name-input", Input).value = "erp-test"  # on alpha already
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is target
        assert "'erp-test' exists on alpha already" in target.error
        target.query_one("#copy-name-input", Input).value = "Not_A_Slug"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is target and "lowercase" in target.error
        # The same name on another host is fine.
        target.query_one("#copy-name-input", Input).value = "erp-test"
        target.query_one("#copy-host-list", OptionList).highlighted = 1
        await pilot.press("ctrl+n")
        await at(pilot, OptionsStep)


async def test_a_target_without_enough_disk_is_refused(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        target = await open_copy(pilot)
        target.query_one("#copy-host-list", OptionList).highlighted = 1  # bravo: 2.1 GB free
        await pilot.press("ctrl+n")
        await at(pilot, OptionsStep)
        await pilot.press("ctrl+n")
        review = await at(pilot, CopyReviewStep)
        await wait_for(pilot, lambda: review.draft.plan is not None, what="the plan")
        await pilot.pause()
        assert "Not enough disk on bravo" in review.error
        assert review.query_one("#wizard-next", Button).disabled
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is review and calls.of("copy") == []


async def test_turning_neutralize_off_for_live_warns(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await open_copy(pilot)
        await pilot.press("ctrl+n")
        options = await at(pilot, OptionsStep)
        warning = options.query_one("#neutralize-warning")
        assert warning.has_class("-hidden")
        options.query_one("#neutralize-switch", Switch).value = False
        await pilot.pause()
        assert not warning.has_class("-hidden")
        assert "will send mail" in str(warning.content)


async def test_a_newer_image_is_an_upgrade_test_and_an_older_one_is_refused(app: Any,
                                                                            calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await open_copy(pilot)
        await pilot.press("ctrl+n")
        options = await at(pilot, OptionsStep)
        image = options.query_one("#copy-image-input", Input)
        image.value = "odoo:16.0"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is options and "cannot be downgraded" in options.error
        image.value = "odoo:18.0"
        await pilot.pause()
        note = options.query_one("#image-note")
        assert note.has_class("-upgrade") and "Upgrade test: 17.0 → 18.0" in str(note.content)
        await pilot.press("ctrl+n")
        review = await at(pilot, CopyReviewStep)
        await wait_for(pilot, lambda: review.draft.plan is not None)
        await pilot.press("ctrl+n")
        copying = await at(pilot, CopyScreen)
        await wait_for(pilot, lambda: copying.outcome is not None)
        assert calls.of("copy")[0].image == "odoo:18.0"


async def test_a_test_source_is_not_neutralized_by_default(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await open_copy(pilot, "training")
        await pilot.press("ctrl+n")
        options = await at(pilot, OptionsStep)
        assert options.query_one("#neutralize-switch", Switch).value is False
        assert str(options.query_one("#neutralize-why").content).startswith("Off:")


async def test_a_failed_measure_is_shown_and_blocks_the_copy(app: Any, calls: Calls):
    from havsh_tui.ops.hosts import OpsError

    async with app.run_test(size=SIZE) as pilot:
        await open_copy(pilot)
        await pilot.press("ctrl+n")
        await at(pilot, OptionsStep)
        calls.fail["plan"] = OpsError("alpha: the Docker engine said: 500 boom")
        await pilot.press("ctrl+n")
        review = await at(pilot, CopyReviewStep)
        await wait_for(pilot, lambda: review.error != "", what="the error")
        assert "Could not measure the copy: alpha: the Docker engine said: 500 boom" in (
            review.error)
        assert review.query_one("#wizard-next", Button).disabled


async def test_a_failed_copy_shows_its_step(app: Any, calls: Calls):
    from havsh_tui.ops.services import StepFailed

    calls.fail["copy"] = StepFailed("copy database", "pg_restore exited 1",
                                    "pg_restore: error: could not write: No space left")
    async with app.run_test(size=SIZE) as pilot:
        await open_copy(pilot)
        await pilot.press("ctrl+n")
        await at(pilot, OptionsStep)
        await pilot.press("ctrl+n")
        review = await at(pilot, CopyReviewStep)
        await wait_for(pilot, lambda: review.draft.plan is not None)
        await pilot.press("ctrl+n")
        copying = await at(pilot, CopyScreen)
        await wait_for(pilot, lambda: copying.outcome is not None)
        text = str(copying.query_one("#operation-result").content)
        assert "Failed at step 'copy database': pg_restore exited 1" in text
        assert "No space left" in text and "source was not touched" in text


async def test_palette_lists_copy_and_runs_it(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-prod")
        commands = {c.title: c for c in HavshCommands(app.screen).commands()}
        assert "service: Copy erp-prod…" in commands
        commands["service: Copy erp-prod…"].run()
        target = await at(pilot, TargetStep)
        assert target.draft.source.name == "erp-prod"


async def test_copy_is_greyed_out_for_a_service_that_cannot_be_copied(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "erp-copy")  # Creating
        assert app.screen.check_action("copy_service", ()) is None
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)


# -- snapshots --------------------------------------------------------------------------------


def _to(step: str, *, host: int = 0, image: str | None = None):
    async def run_before(pilot: Any) -> None:
        await _steps(pilot)
        await steady(pilot)

    async def _steps(pilot: Any) -> None:
        await open_copy(pilot)
        if step == "target":
            return
        pilot.app.screen.query_one("#copy-host-list", OptionList).highlighted = host
        await pilot.press("ctrl+n")
        options = await at(pilot, OptionsStep)
        if image:
            options.query_one("#copy-image-input", Input).value = image
            await pilot.pause()
        if step == "options":
            return
        await pilot.press("ctrl+n")
        review = await at(pilot, CopyReviewStep)
        await wait_for(pilot, lambda: review.draft.plan is not None)
        await pilot.pause()
        if step == "review":
            return
        await pilot.press("ctrl+n")
        copying = await at(pilot, CopyScreen)
        await wait_for(pilot, lambda: copying.outcome is not None)
        await pilot.pause()

    return run_before


def test_snapshot_copy_target(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_to("target"))


def test_snapshot_copy_options_upgrade(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_to("options", image="odoo:18.0"))


def test_snapshot_copy_review(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_to("review"))


def test_snapshot_copy_review_not_enough_disk(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_to("review", host=1))


def test_snapshot_copy_done(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_to("copy"))
