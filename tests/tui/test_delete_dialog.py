"""The delete confirmation's "back up before deleting" checkbox (fake ops): on by default for
a Live service, off otherwise; what it says reaches ops.services.delete_service as its
``backup_offer`` hook, from the dashboard and from a service's detail screen."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Checkbox

from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.screens.service_detail import ServiceDetailScreen

from .fakes import Calls, steady, wait_for
from .test_dashboard_actions import SIZE, dashboard, op_done, select


async def open_delete(pilot: Any, name: str) -> ConfirmDialog:
    await pilot.pause()
    await select(pilot, name)
    await pilot.press("D")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
    return pilot.app.screen


def option(dialog: ConfirmDialog) -> Checkbox:
    return dialog.query_one("#confirm-option", Checkbox)


async def test_live_backs_up_first_by_default(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_delete(pilot, "erp-prod")
        assert option(dialog).value is True and dialog.option_checked
        await pilot.press(*"erp-prod", "enter")
        await op_done(pilot, "erp-prod")
        assert calls.of("delete") == [(("alpha", "erp-prod"), "erp-prod")]
        assert calls.of("delete-backup") == [("alpha", "erp-prod")]


async def test_live_with_the_backup_unchecked_deletes_without_one(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_delete(pilot, "erp-prod")
        await pilot.press(*"erp-prod")
        await pilot.press("tab")  # from the name field to the checkbox
        assert app.focused is option(dialog)
        await pilot.press("space")
        await pilot.pause()
        assert dialog.option_checked is False
        await pilot.press("y")  # on the checkbox, y confirms (the name is typed)
        await op_done(pilot, "erp-prod")
        assert calls.of("delete") == [(("alpha", "erp-prod"), "erp-prod")]
        assert calls.of("delete-backup") == []


async def test_a_test_service_is_not_backed_up_unless_asked(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_delete(pilot, "training")
        assert option(dialog).value is False and not dialog.option_checked
        assert app.focused is dialog.query_one("#confirm-cancel")
        await pilot.press("y")
        await op_done(pilot, "training")
        assert calls.of("delete-backup") == []
        assert "training" not in {s.name for s in dashboard(app).table.services}


async def test_a_test_service_backed_up_when_checked(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_delete(pilot, "training")
        option(dialog).focus()
        await pilot.press("space")
        await pilot.pause()
        assert dialog.option_checked is True
        await pilot.press("y")
        await op_done(pilot, "training")
        assert calls.of("delete-backup") == [("bravo", "training")]


async def test_cancel_deletes_nothing_whatever_the_checkbox(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_delete(pilot, "erp-prod")
        assert dialog.option_checked
        await pilot.press("escape")
        await pilot.pause()
        assert calls.of("delete") == [] and calls.of("delete-backup") == []


async def test_from_the_detail_screen_too(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "shop-prod")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceDetailScreen))
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert app.screen.option_checked
        await pilot.press(*"shop-prod", "enter")
        await op_done(pilot, "shop-prod")
        assert calls.of("delete-backup") == [("bravo", "shop-prod")]


async def test_a_plain_confirmation_has_no_checkbox(app: Any, calls: Calls):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await select(pilot, "training")
        await pilot.press("N")  # neutralize asks with the same dialog, without the option
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert not app.screen.query("#confirm-option")


def test_snapshot_delete_test_service_unchecked(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await open_delete(pilot, "training")
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


class _Record:
    where = "alpha:/var/lib/havsh/backups/erp-prod/erp-prod_20250601T120000Z_safety.zip"


@pytest.fixture
def offered(monkeypatch: pytest.MonkeyPatch, calls: Calls) -> list[str]:
    """A delete that runs its ``backup_offer`` first, as ops.services.delete_service does,
    with a fake ops.backup.backup_offer (fails for a service named in ``calls.fail``)."""
    from havsh_tui.ops import backup as bk
    from havsh_tui.ops import services as services_ops

    taken: list[str] = []

    def backup_offer(inventory, secret_store, pool, *, dest=None, reporter=None, audit=None):
        def offer(service):
            if calls.fail.get("backup"):
                raise calls.fail["backup"]
            taken.append(service.name)
            return _Record()

        return offer

    fake_delete = services_ops.delete_service

    def delete_service(inventory, secret_store, pool, service, *, backup_offer=None, **kw):
        if backup_offer is not None:
            backup_offer(service)
        return fake_delete(inventory, secret_store, pool, service, backup_offer=backup_offer,
                           **kw)

    monkeypatch.setattr(bk, "backup_offer", backup_offer)
    monkeypatch.setattr(services_ops, "delete_service", delete_service)
    return taken


async def test_the_notice_says_where_the_safety_backup_went(app: Any, calls: Calls,
                                                           offered: list[str]):
    async with app.run_test(size=SIZE) as pilot:
        await open_delete(pilot, "erp-prod")
        await pilot.press(*"erp-prod", "enter")
        await op_done(pilot, "erp-prod")
        assert offered == ["erp-prod"]
        messages = [n.message for n in app._notifications]
        assert any(m.startswith("Deleted erp-prod: ") and m.endswith(
            f"Safety backup: {_Record.where}.") for m in messages), messages


async def test_a_failed_safety_backup_deletes_nothing(app: Any, calls: Calls,
                                                      offered: list[str]):
    from havsh_tui.ops.backup import BackupError

    calls.fail["backup"] = BackupError("the backup of erp-prod failed: disk full")
    async with app.run_test(size=SIZE) as pilot:
        await open_delete(pilot, "erp-prod")
        await pilot.press(*"erp-prod", "enter")
        await op_done(pilot, "erp-prod")
        assert offered == [] and calls.of("delete") == []
        # The user is told why (the app's failure handler), and the service is still listed.
        await wait_for(pilot, lambda: any("disk full" in n.message
                                          for n in app._notifications), what="the error")
        assert "erp-prod" in {s.name for s in dashboard(app).table.services}
