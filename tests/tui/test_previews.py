"""The previews screen and the app's reconciler worker, on fakes (no GitHub, no host): the
list, the selected preview's log, create by hand (the branch from GitHub), destroy (asks
first), a pass now, and the watch loop that runs only with a token and previews on."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from havsh_tui.core.inventory import open_inventory
from havsh_tui.core.model import ServiceStatus, Step
from havsh_tui.core.paths import AppPaths
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.github.client import PullInfo
from havsh_tui.ops import preview as preview_ops
from havsh_tui.ops.preview import PassResult, PreviewAction
from havsh_tui.screens import previews as previews_screen
from havsh_tui.screens.previews import CreatePreviewDialog, PreviewOpScreen, PreviewsScreen
from havsh_tui.widgets import repos_tab

from .conftest import FROZEN_NOW
from .fakes import Calls, build_services_app, install, no_polling, wait_for
from .test_detail_tabs import seed_repos

SIZE = (120, 40)


def pull(number: int, *, state: str = "open", fork: bool = False) -> PullInfo:
    return PullInfo(repo="acme/erp-addons", number=number, title=f"Sales: faster quotes #{number}",
                    state=state, merged=False, head_sha=f"{number:02d}" * 20,
                    head_ref=f"feature/quotes-{number}",
                    head_repo="someone/erp-addons" if fork else "acme/erp-addons",
                    base_ref="main", base_sha="ab" * 20, user="dev",
                    html_url=f"https://github.example/acme/erp-addons/pull/{number}")


class FakeRepo:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def pull(self, number: int) -> PullInfo:
        self.calls.log.append(("gh.pull", number))
        if number == 404:
            from havsh_tui.github.client import NotFound

            raise NotFound("acme/erp-addons has no pull request #404")
        return pull(number, state="closed" if number == 13 else "open")


class FakeGitHub:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def repo(self, name: str) -> FakeRepo:
        return FakeRepo(self.calls)

    def close(self) -> None:
        self.calls.log.append(("gh.close", None))


def describe_previews(paths: AppPaths) -> None:
    """Titles, branches, heads, steps and a failure for the demo previews."""
    inventory = open_inventory(paths)
    inventory.update_service("alpha", "erp-prod-pr42", pr_title="Sales: faster quotes",
                             pr_branch="feature/quotes", head_sha="9f8e7d6c" * 5,
                             steps=[Step(n, "done", FROZEN_NOW, FROZEN_NOW) for n in
                                    ("copy", "deploy addons", "update modules", "start",
                                     "health")])
    inventory.update_service("alpha", "erp-prod-pr57", pr_title="Stock: lot numbers",
                             pr_branch="fix/lots", head_sha="1a2b3c4d" * 5,
                             status=ServiceStatus.FAILED, failed_step="update modules",
                             last_error="odoo -u erp_stock exited 1: ParseError in "
                                        "views/stock.xml line 12",
                             steps=[Step("copy", "done"), Step("deploy addons", "done"),
                                    Step("update modules", "failed", detail="exited 1")])
    inventory.record_operation({"kind": "preview.create", "host": "alpha",
                                "service": "erp-prod-pr42", "state": "done",
                                "started_at": FROZEN_NOW, "sha": "9f8e7d6c" * 5,
                                "reason": "PR opened"})


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    no_polling(monkeypatch.setattr)
    calls = install(monkeypatch.setattr)
    monkeypatch.setattr(repos_tab, "github_client", lambda app: FakeGitHub(calls))

    def create_one(self, parent, repo, number):
        calls.log.append(("create_one", (parent.key, repo, number)))
        self.reporter.step("copy", "running")
        self.reporter.step("copy", "done")
        return PassResult(actions=[PreviewAction("created", f"{repo}#{number}",
                                                 f"{parent.name}-pr{number}", parent.host,
                                                 parent.name, "42" * 20)])

    def destroy_one(self, service, *, dismiss=True):
        calls.log.append(("destroy_one", service.key))
        self.inventory.update_service(service.host, service.name,
                                      status=ServiceStatus.DESTROYED)
        return PassResult(actions=[PreviewAction("destroyed", service.pr or "", service.name,
                                                 service.host, service.source)])

    def reconcile(self):
        calls.log.append(("reconcile", None))
        return PassResult(repos=1, pulls=2, seconds=0.4, actions=[
            PreviewAction("kept", "acme/erp-addons#42", "erp-prod-pr42", "alpha"),
            PreviewAction("updated", "acme/erp-addons#57", "erp-prod-pr57", "alpha",
                          sha="57" * 20)])

    monkeypatch.setattr(preview_ops.Reconciler, "create_one", create_one)
    monkeypatch.setattr(preview_ops.Reconciler, "destroy_one", destroy_one)
    monkeypatch.setattr(preview_ops.Reconciler, "reconcile", reconcile)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    return calls


@pytest.fixture
def app(populated_paths: AppPaths, calls: Calls) -> Any:
    seed_repos(populated_paths)
    describe_previews(populated_paths)
    return build_services_app(populated_paths, calls)


async def open_previews(pilot: Any) -> PreviewsScreen:
    await pilot.pause()
    await pilot.press("3")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PreviewsScreen),
                   what="the previews screen")
    await pilot.pause()
    return pilot.app.screen


def rows(screen: PreviewsScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)]
            for i in range(table.row_count)]


async def at(pilot: Any, kind: type) -> Any:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, kind), what=kind.__name__)
    await pilot.pause()
    return pilot.app.screen


async def test_every_preview_is_listed_with_its_pr_and_status(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_previews(pilot)
        listed = rows(screen)
        assert listed[0] == ["acme/erp-addons#42", "Sales: faster quotes", "feature/quotes",
                             "9f8e7d6c", "Active", "https://erp-prod-pr42.alpha.example.com",
                             "erp-prod@alpha", "1d"]
        assert listed[1][4] == "Failed" and listed[1][2] == "fix/lots"
        assert screen.sub_title == "2 previews"


async def test_the_selected_previews_log_shows_below(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_previews(pilot)
        log = str(screen.query_one("#preview-log").content)
        assert "health" in log and "preview.create" in log and "PR opened" in log
        await pilot.press("down")
        await pilot.pause()
        log = str(screen.query_one("#preview-log").content)
        assert "Failed at step 'update modules'" in log and "ParseError" in log


async def test_create_by_hand_fills_the_branch_in_from_github(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await open_previews(pilot)
        await pilot.press("n")
        dialog = await at(pilot, CreatePreviewDialog)
        await pilot.press("6", "1")
        await wait_for(pilot, lambda: dialog.pull is not None, what="the PR looked up")
        assert dialog.query_one("#preview-branch", Input).value == "feature/quotes-61"
        assert "Sales: faster quotes #61" in str(dialog.query_one("#preview-pull").content)
        await pilot.press("enter")
        op = await at(pilot, PreviewOpScreen)
        await wait_for(pilot, lambda: op.outcome is not None, what="the creation")
        assert op.outcome.ok
        assert calls.of("create_one") == [(("alpha", "erp-prod"), "acme/erp-addons", 61)]
        assert "created" in str(op.query_one("#operation-result").content)


async def test_a_closed_or_missing_pr_cannot_be_created(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await open_previews(pilot)
        await pilot.press("n")
        dialog = await at(pilot, CreatePreviewDialog)
        await pilot.press("1", "3")
        await wait_for(pilot, lambda: dialog.pull is not None, what="the PR looked up")
        assert dialog.query_one("#preview-ok").disabled
        dialog.query_one("#preview-number", Input).value = "404"
        await wait_for(pilot, lambda: "no pull request" in str(
            dialog.query_one("#preview-pull").content), what="the 404 said")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CreatePreviewDialog) and not calls.of("create_one")


async def test_destroy_asks_first(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_previews(pilot)
        await pilot.press("D")
        await at(pilot, ConfirmDialog)
        await pilot.press("n")
        await pilot.pause()
        assert not calls.of("destroy_one")
        await pilot.press("D")
        await at(pilot, ConfirmDialog)
        await pilot.press("y")
        op = await at(pilot, PreviewOpScreen)
        await wait_for(pilot, lambda: op.outcome is not None, what="the destroy")
        await pilot.press("escape")
        await at(pilot, PreviewsScreen)
        assert calls.of("destroy_one") == [("alpha", "erp-prod-pr42")]
        assert [r[4] for r in rows(screen)] == ["Failed", "Destroyed"]
        assert screen.sub_title == "1 preview, 1 destroyed (history)"


async def test_a_pass_now(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_previews(pilot)
        await pilot.press("R")
        await wait_for(pilot, lambda: not screen.reconciling and calls.of("reconcile"),
                       what="the pass")
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert any("1 repositories, 2 open pull requests" in m and "updated" in m
                   for m in said)
        assert ("gh.close", None) in calls.log


# -- the app's reconciler ---------------------------------------------------------------------


def _watching(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def watch(self, interval=60.0, stop=None, on_pass=None, max_passes=None):
        seen["interval"], seen["stop"] = interval, stop
        on_pass(PassResult(actions=[PreviewAction("created", "acme/erp-addons#61",
                                                  "erp-prod-pr61", "alpha")]))
        while not stop.wait(0.01):
            pass
        seen["stopped"] = True
        return 1

    monkeypatch.setattr(preview_ops.Reconciler, "watch", watch)
    return seen


async def test_the_reconciler_runs_while_the_app_is_open(app: Any, calls: Calls,
                                                         monkeypatch: pytest.MonkeyPatch):
    seen = _watching(monkeypatch)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_fake")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.last_preview_pass is not None, what="a pass")
        await wait_for(pilot, lambda: any("erp-prod-pr61" in n.message
                                          for n in app._notifications), what="the pass said")
        assert seen["interval"] == previews_screen.RECONCILE_SECONDS
        stop: threading.Event = seen["stop"]
        assert not stop.is_set()
    assert stop.is_set()
    # The thread ends soon after the stop (it waits on the Event, 10 ms at a time).
    pause = threading.Event()
    for _ in range(200):
        if seen.get("stopped"):
            break
        pause.wait(0.01)
    assert seen.get("stopped")


async def test_no_reconciler_without_a_token(app: Any, monkeypatch: pytest.MonkeyPatch):
    seen = _watching(monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.reconciler_stop is None
    assert not seen


async def test_no_reconciler_without_previews_on(populated_paths: AppPaths, calls: Calls,
                                                 monkeypatch: pytest.MonkeyPatch):
    seen = _watching(monkeypatch)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_fake")
    app = build_services_app(populated_paths, calls)  # no connection at all
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.reconciler_stop is None
    assert not seen


# -- snapshots --------------------------------------------------------------------------------


def test_snapshot_previews(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await open_previews(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_previews_failed_selected(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await open_previews(pilot)
        await pilot.press("down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_create_preview(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await open_previews(pilot)
        await pilot.press("n")
        dialog = await at(pilot, CreatePreviewDialog)
        await pilot.press("6", "1")
        await wait_for(pilot, lambda: dialog.pull is not None, what="the PR looked up")
        for widget in dialog.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
