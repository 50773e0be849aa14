"""The creation wizard: every step with good and bad input, the creation in its operation
pane (fake ops: nothing dials a host), and a snapshot of each step."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input, Log, OptionList, RadioSet, Static, Switch, TextArea

from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.core.paths import AppPaths
from havsh_tui.dialogs.copy_dialog import SourceStep, TargetStep
from havsh_tui.dialogs.create_wizard import (
    ConfigStep,
    CreateScreen,
    DatabaseStep,
    HostStep,
    ImageStep,
    NameStep,
    ReviewStep,
    TypeStep,
)
from havsh_tui.screens.dashboard import DashboardScreen
from havsh_tui.widgets.operation_log import OperationLog, TUIReporter, human_bytes, human_pair

from .fakes import (
    FAKE_PASSWORD,
    Calls,
    build_services_app,
    install,
    no_polling,
    steady,
    wait_for,
)

SIZE = (120, 40)


async def at(pilot: Any, step: type) -> Any:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, step), what=step.__name__)
    await pilot.pause()
    return pilot.app.screen


async def to_name_step(pilot: Any, type_moves: tuple[str, ...] = ()) -> NameStep:
    await pilot.press("n")
    await at(pilot, TypeStep)
    await pilot.press(*type_moves, "enter")
    return await at(pilot, NameStep)


async def to_image_step(pilot: Any, name: str = "erp-try") -> ImageStep:
    await to_name_step(pilot)
    await pilot.press(*name, "enter")
    await at(pilot, HostStep)
    await pilot.press("enter")
    return await at(pilot, ImageStep)


def typed(screen: Any, selector: str, value: str) -> None:
    screen.query_one(selector, Input).value = value


# -- the happy path ---------------------------------------------------------------------------


async def test_walk_every_step_and_create(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_name_step(pilot)  # Test is highlighted first
        await pilot.press(*"erp-try", "enter")
        host = await at(pilot, HostStep)
        # erp-try is free everywhere; the first host is proposed.
        assert host.query_one("#host-list", OptionList).highlighted == 0
        await pilot.press("enter")
        image = await at(pilot, ImageStep)
        assert image.query_one("#image-input", Input).value == "odoo:17.0"
        await pilot.press("ctrl+n")
        database = await at(pilot, DatabaseStep)
        switch = database.query_one("#demo-switch", Switch)
        assert switch.value is False and not switch.disabled  # a Test may turn it on
        typed(database, "#country-input", "BE")
        await pilot.press("ctrl+n")
        config = await at(pilot, ConfigStep)
        config.query_one("#config-input", TextArea).text = (
            "# tuned for a 2-core host\nworkers = 2\nlimit_memory_hard = 2684354560\n")
        await pilot.press("ctrl+n")
        review = await at(pilot, ReviewStep)
        assert dict(review.rows)["Extra config"] == "limit_memory_hard=2684354560, workers=2"
        await pilot.press("ctrl+n")
        creating = await at(pilot, CreateScreen)
        await wait_for(pilot, lambda: creating.outcome is not None, what="the creation")

        assert creating.outcome.ok
        spec = calls.of("create")[0]
        assert (spec.name, spec.host, spec.type, spec.odoo_version, spec.image) == (
            "erp-try", "alpha", ServiceType.TEST, "17.0", "odoo:17.0")
        assert spec.demo is False and spec.country == "BE" and spec.language == "en_US"
        assert spec.config == {"workers": "2", "limit_memory_hard": "2684354560"}
        # Every step is shown as done, in the order ops/ ran them.
        states = creating.pane.step_states()
        assert [name for name, _ in states][:4] == ["connect", "bootstrap", "check names", "image"]
        assert {state for _, state in states} == {"done"}
        # The admin password, shown once.
        assert FAKE_PASSWORD in str(creating.query_one("#operation-result").content)

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.pause()
        table = app.screen.table
        created = next(s for s in table.services if s.name == "erp-try")
        assert created.status is ServiceStatus.RUNNING


async def test_back_keeps_what_was_typed(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_name_step(pilot)
        await pilot.press(*"kept-name", "enter")
        await at(pilot, HostStep)
        await pilot.press("ctrl+b")
        name = await at(pilot, NameStep)
        assert name.query_one("#name-input", Input).value == "kept-name"
        await pilot.press("ctrl+b")
        await at(pilot, TypeStep)


async def test_escape_cancels_without_creating(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_image_step(pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert calls.of("create") == []


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Bad_Name", "lowercase"),
        ("x", "too short"),
        ("postgres", "reserved"),
        ("9lives", "start with a letter"),
        ("trailing-", "end with"),
        ("", "empty"),
    ],
)
async def test_invalid_names_are_refused(app: Any, name: str, why: str):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        step = await to_name_step(pilot)
        typed(step, "#name-input", name)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is step, "an invalid name must not pass"
        assert why in step.error


async def test_a_name_taken_on_a_host_is_refused_there(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        step = await to_name_step(pilot)
        typed(step, "#name-input", "erp-prod")  # exists on alpha
        await pilot.pause()
        assert "Already on alpha" in str(step.query_one("#name-hint").content)
        await pilot.press("enter")
        host = await at(pilot, HostStep)
        options = host.query_one("#host-list", OptionList)
        assert options.highlighted == 1, "the host that has the name is not proposed"
        options.highlighted = 0
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is host and "alpha has a service named 'erp-prod'" in host.error
        options.highlighted = 1
        await pilot.press("ctrl+n")
        await at(pilot, ImageStep)


async def test_a_name_taken_on_every_host_stops_at_the_name(app: Any):
    from dataclasses import replace

    erp = next(s for s in app.inventory.list_services() if s.name == "erp-prod")
    app.inventory.add_service(replace(erp, host="bravo"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        step = await to_name_step(pilot)
        typed(step, "#name-input", "erp-prod")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is step and "every host" in step.error


async def test_version_sets_the_image_and_a_mismatched_tag_is_refused(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        step = await to_image_step(pilot)
        radios = step.query_one("#version-set", RadioSet)
        radios.query_one("#version-18-0").value = True
        await pilot.pause()
        assert step.query_one("#image-input", Input).value == "odoo:18.0"
        typed(step, "#image-input", "registry.example.com/acme/odoo:17.0")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is step and "is Odoo 17.0, but 18.0 is chosen" in step.error
        typed(step, "#image-input", "Not An Image")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is step and "not an image reference" in step.error
        typed(step, "#image-input", "registry.example.com/acme/odoo:18.0-custom")
        await pilot.press("ctrl+n")
        await at(pilot, DatabaseStep)


@pytest.mark.parametrize(("moves", "expected"), [(("down",), True), (("up",), False)],
                         ids=["demo-always", "live-never"])
async def test_demo_data_follows_the_type(app: Any, moves: tuple[str, ...], expected: bool):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_name_step(pilot, moves)
        await pilot.press(*"demo-rule", "enter")
        await at(pilot, HostStep)
        await pilot.press("enter")
        await at(pilot, ImageStep)
        await pilot.press("ctrl+n")
        step = await at(pilot, DatabaseStep)
        switch = step.query_one("#demo-switch", Switch)
        assert (switch.value, switch.disabled) == (expected, True)


async def test_a_test_service_may_turn_demo_data_on(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_image_step(pilot)
        await pilot.press("ctrl+n")
        step = await at(pilot, DatabaseStep)
        step.query_one("#demo-switch", Switch).value = True
        await pilot.press("ctrl+n", "ctrl+n")
        await at(pilot, ReviewStep)
        await pilot.press("ctrl+n")
        creating = await at(pilot, CreateScreen)
        await wait_for(pilot, lambda: creating.outcome is not None)
        assert calls.of("create")[0].demo is True


async def test_bad_language_and_country_are_refused(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_image_step(pilot)
        await pilot.press("ctrl+n")
        step = await at(pilot, DatabaseStep)
        typed(step, "#language-input", "english")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is step and "not a language code" in step.error
        typed(step, "#language-input", "fr_BE")
        typed(step, "#country-input", "Belgium")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is step and "two-letter country code" in step.error


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("workers = 2\ndb_host = evil\n", "line 2: config key 'db_host' is managed by havsh"),
        ("nonsense\n", "line 1: config 'nonsense' is not key=value"),
        ("Workers = 2\n", "not a valid odoo.conf key"),
        ("[options]\nworkers = 2\n", "sections are not needed"),
    ],
)
async def test_bad_extra_config_is_refused(app: Any, text: str, why: str):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_image_step(pilot)
        await pilot.press("ctrl+n")
        await at(pilot, DatabaseStep)
        await pilot.press("ctrl+n")
        step = await at(pilot, ConfigStep)
        step.query_one("#config-input", TextArea).text = text
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is step and why in step.error


async def test_preview_is_explained_and_not_created(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        step = await at(pilot, TypeStep)
        await pilot.press("down", "down", "down")  # Test → Demo → Copy → Preview
        await pilot.pause()
        assert "GitHub pull requests" in str(step.query_one("#type-hint").content)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is step and "GitHub pull request" in step.error


async def test_copy_opens_the_copy_dialog(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await at(pilot, TypeStep)
        await pilot.press("down", "down", "enter")  # Copy
        # The cursor is on a heading: the copy dialog asks for the source first.
        source = await at(pilot, SourceStep)
        await pilot.press("enter")
        target = await at(pilot, TargetStep)
        assert target.draft.source is not None and source.draft is target.draft


async def test_a_failed_creation_shows_the_step_and_its_log(app: Any, calls: Calls):
    calls.fail["create"] = True
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_image_step(pilot, "will-fail")
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n", "ctrl+n")
        creating = await at(pilot, CreateScreen)
        await wait_for(pilot, lambda: creating.outcome is not None)
        assert not creating.outcome.ok
        assert creating.pane.failed_step is not None
        assert creating.pane.failed_step.name == "init"
        result = str(creating.query_one("#operation-result").content)
        assert "Failed at step 'init'" in result
        assert "psycopg2.OperationalError: boom" in result  # the log's tail
        assert "removed" in result
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.pause()
        failed = next(s for s in app.screen.table.services if s.name == "will-fail")
        assert failed.status is ServiceStatus.FAILED


async def test_the_creation_can_be_cancelled_while_it_runs(populated_paths: AppPaths,
                                                           monkeypatch: pytest.MonkeyPatch):
    no_polling(monkeypatch.setattr)
    calls = install(monkeypatch.setattr, delay=0.05)
    from havsh_tui.ops import services as services_ops
    from havsh_tui.ops.reporter import check_cancelled

    real = services_ops.create_service

    def cancellable(inventory, secret_store, pool, spec, reporter=None, audit=None):
        for _ in range(200):
            check_cancelled(reporter)
            import time

            time.sleep(0.01)
        return real(inventory, secret_store, pool, spec, reporter, audit)

    monkeypatch.setattr(services_ops, "create_service", cancellable)
    app = build_services_app(populated_paths, calls)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await to_image_step(pilot, "slow-one")
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n", "ctrl+n")
        creating = await at(pilot, CreateScreen)
        await pilot.press("escape")  # asks the operation to stop
        await wait_for(pilot, lambda: creating.outcome is not None)
        assert not creating.outcome.ok and creating.outcome.cancelled
        assert "Cancelled" in str(creating.query_one("#operation-result").content)


# -- snapshots --------------------------------------------------------------------------------


def _walk(*keys: str, until: type, text: dict[str, str] | None = None):
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        await pilot.press("n")
        await at(pilot, TypeStep)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await at(pilot, until)
        await steady(pilot)

    return run_before


STEP_KEYS: dict[str, tuple[tuple[str, ...], type]] = {
    "type": ((), TypeStep),
    "name": (("enter", *"erp-try"), NameStep),
    "host": (("enter", *"erp-try", "enter"), HostStep),
    "odoo": (("enter", *"erp-try", "enter", "enter"), ImageStep),
    "database": (("enter", *"erp-try", "enter", "enter", "ctrl+n"), DatabaseStep),
    "config": (("enter", *"erp-try", "enter", "enter", "ctrl+n", "ctrl+n", *"workers=2"),
               ConfigStep),
    "review": (("enter", *"erp-try", "enter", "enter", "ctrl+n", "ctrl+n", *"workers=2",
                "ctrl+n"), ReviewStep),
}


@pytest.mark.parametrize("step", list(STEP_KEYS))
def test_snapshot_wizard_step(snap_compare, app: Any, step: str):
    keys, until = STEP_KEYS[step]
    assert snap_compare(app, terminal_size=SIZE, run_before=_walk(*keys, until=until))


def test_snapshot_name_error(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await _walk("enter", *"Bad_Name", until=NameStep)(pilot)
        await pilot.press("enter")
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def _created(fail: bool):
    async def run_before(pilot: Any) -> None:
        keys, _until = STEP_KEYS["review"]
        await _walk(*keys, until=ReviewStep)(pilot)
        await pilot.press("ctrl+n")
        creating = await at(pilot, CreateScreen)
        await wait_for(pilot, lambda: creating.outcome is not None)
        await steady(pilot)

    return run_before


def test_snapshot_creation_done(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_created(False))


def test_snapshot_creation_failed(snap_compare, app: Any, calls: Calls):
    calls.fail["create"] = True
    assert snap_compare(app, terminal_size=SIZE, run_before=_created(True))



# -- the operation pane (what CreateScreen and CopyScreen show) --------------------------------


class PaneApp(App[None]):
    def __init__(self, steps: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.steps = steps

    def compose(self) -> ComposeResult:
        yield OperationLog(self.steps, id="pane")


async def test_log_lines_arrive_in_batches_and_in_order():
    app = PaneApp()
    async with app.run_test() as pilot:
        pane = app.query_one(OperationLog)
        reporter = pane.reporter()
        posted: list[object] = []
        real_post = pane.post_message

        def counting(message: object) -> bool:
            posted.append(message)
            return real_post(message)  # type: ignore[arg-type]

        pane.post_message = counting  # type: ignore[method-assign]

        def produce() -> None:
            for i in range(5000):
                reporter.log(f"line {i}")

        thread = threading.Thread(target=produce)
        thread.start()
        while thread.is_alive():
            await pilot.pause(0.01)
        await wait_for(pilot, lambda: pane.line_count == 5000, what="every line")
        lines = pane.query_one("#op-log", Log).lines
        assert lines[0] == "line 0" and lines[-1] == "line 4999"
        assert list(pane.tail)[-1] == "line 4999"
        batches = [m for m in posted if isinstance(m, OperationLog.LinesReady)]
        # One message in flight at a time: far fewer messages than lines.
        assert 1 <= len(batches) < 500


async def test_a_slow_display_drops_the_oldest_lines_and_says_so():
    app = PaneApp()
    async with app.run_test() as pilot:
        pane = app.query_one(OperationLog)
        reporter = TUIReporter(pane, max_buffer=100)
        # Written from this (the loop's) thread: the pane cannot take any line until it
        # runs again, so the buffer overflows.
        for i in range(250):
            reporter.log(f"line {i}")
        await wait_for(pilot, lambda: pane.line_count > 0)
        lines = pane.query_one("#op-log", Log).lines
        assert lines[0] == "… 150 lines dropped (the display fell behind)"
        assert lines[1] == "line 150" and lines[-1] == "line 249"


async def test_steps_progress_and_cancel():
    app = PaneApp(("connect", "init", "health"))
    async with app.run_test() as pilot:
        pane = app.query_one(OperationLog)
        cancel = threading.Event()
        reporter = pane.reporter(cancel=cancel)
        reporter.step("connect", "running")
        reporter.step("connect", "done")
        reporter.step("pull odoo:17.0", "running")  # not announced: goes before "init"
        reporter.progress(50, 100, "pulling")
        await pilot.pause()
        assert pane.step_states() == [("connect", "done"), ("pull odoo:17.0", "running"),
                                      ("init", "pending"), ("health", "pending")]
        assert not pane.query_one("#op-progress-row").has_class("-hidden")
        assert "pulling" in str(pane.query_one("#op-rate", Static).content)
        reporter.warning("no registry: using the local image")
        await pilot.pause()
        assert pane.warnings == ["no registry: using the local image"]
        assert not reporter.cancelled()
        cancel.set()
        assert reporter.cancelled()
        pane.finish(ok=False)
        assert pane.failed_step is not None and pane.failed_step.name == "pull odoo:17.0"
        assert pane.query_one("#op-progress-row").has_class("-hidden")


def test_human_sizes():
    assert human_bytes(None) == "?"
    assert human_bytes(999) == "999 B"
    assert human_bytes(1_536) == "1.5 KB"
    assert human_bytes(41_200_000_000) == "41.2 GB"
    assert human_pair(2_100_000_000, 2_145_000_000) == ("2.10 GB", "2.15 GB")
    assert human_pair(1e9, 2e9) == ("1.0 GB", "2.0 GB")
