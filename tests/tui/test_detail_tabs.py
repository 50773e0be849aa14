"""The Backups, Repositories and Hostnames tabs of the service detail screen, and the
dashboard's ``b``, on fake ops (nothing dials a host or GitHub): what each lists, every
action with its confirmation, and snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from textual.widgets import DataTable, Input, TabbedContent

from havsh_tui.core.inventory import open_inventory
from havsh_tui.core.paths import AppPaths
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.ops import backup as backup_ops
from havsh_tui.ops import proxy as proxy_ops
from havsh_tui.ops import repos as repos_ops
from havsh_tui.ops.backup import BackupRecord
from havsh_tui.ops.proxy import CertInfo, HostnameChange, ServiceHostnames
from havsh_tui.ops.repos import REPOS_KEY, DeployResult, ModulePlan, RepoConnection
from havsh_tui.screens import service_detail
from havsh_tui.screens.dashboard import DashboardScreen
from havsh_tui.widgets import repos_tab
from havsh_tui.widgets.backups_tab import BackupScreen, BackupsTab, DownloadDialog
from havsh_tui.widgets.hostnames_tab import HostnamesTab
from havsh_tui.widgets.repos_tab import ReposTab
from havsh_tui.widgets.service_table import row_key_for

from .conftest import FROZEN_NOW
from .fakes import Calls, build_services_app, install, no_polling, wait_for
from .test_service_detail import open_detail

SIZE = (120, 40)


def demo_backups(service: Any) -> list[BackupRecord]:
    def rec(i: int, kind: str, hours: float, size: int, dest: str, where: str | None,
            ) -> BackupRecord:
        at = (FROZEN_NOW - timedelta(hours=hours)).replace(microsecond=0)
        bid = f"{service.name}_{at:%Y%m%dT%H%M%SZ}_{kind[0]}{i}"
        return BackupRecord(
            id=bid, service=service.name, host=service.host, kind=kind, format="zip",
            compression="deflate", created_at=at, size=size,
            sha256=f"{i:x}" * 64, odoo_version=service.odoo_version, destination=dest,
            destination_kind="host" if where else "local", location_host=where,
            path=f"/var/lib/havsh/backups/{service.name}/{bid}.zip")
    return [
        rec(1, "manual", 1, 1_830_000_000, "host", service.host),
        rec(2, "scheduled", 14, 1_790_000_000, "host", service.host),
        rec(3, "safety", 50, 1_750_000_000, "local:/srv/backups", None),
    ]


@dataclass
class TabFakes:
    calls: Calls
    backups: dict[str, list[BackupRecord]] = field(default_factory=dict)
    hostnames: dict[str, list[str]] = field(default_factory=dict)
    gh_closed: int = 0


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> TabFakes:
    no_polling(monkeypatch.setattr)
    monkeypatch.setattr(service_detail, "STATS_SECONDS", 3600.0)
    f = TabFakes(install(monkeypatch.setattr))
    log = f.calls.log

    def list_backups(inventory, pool, *, service=None, host=None, service_name=None,
                     reporter=None):
        log.append(("list_backups", service.key))
        return list(f.backups.setdefault(service.name, demo_backups(service)))

    def create_backup(inventory, secret_store, pool, service, *, dest=None, kind="manual",
                      format=None, compression=None, reporter=None, audit=None):
        log.append(("create_backup", (service.key, kind)))
        reporter.step("backup", "running", f"{service.name} -> host ({kind})")
        reporter.progress(900_000_000, None, "backup bytes written")
        reporter.step("backup", "done")
        new = demo_backups(service)[0]
        new.id = new.id.replace("_m1", "_m9")
        new.created_at = FROZEN_NOW
        f.backups.setdefault(service.name, demo_backups(service)).insert(0, new)
        return new

    def restore_backup(inventory, secret_store, pool, spec, reporter=None, audit=None):
        log.append(("restore", (spec.backup_id, spec.service, spec.confirm_name)))
        for name in ("check backup", "safety backup", "stop", "load", "swap", "start"):
            reporter.step(name, "running")
            reporter.step(name, "done")
        service = inventory.get_service(spec.service, host=spec.service_host)
        safety = demo_backups(service)[2]
        return backup_ops.RestoreResult(service, "restored", spec.backup_id, safety, 12.0,
                                        "", {})

    def delete_backup(inventory, pool, record, *, audit=None):
        log.append(("delete_backup", record.id))
        f.backups[record.service] = [r for r in f.backups[record.service] if r.id != record.id]

    def download_backup(inventory, pool, record, directory, reporter=None):
        log.append(("download", (record.id, directory)))
        reporter.progress(record.size, record.size, "copying")
        return record

    def hostnames_of(service):
        return f.hostnames.setdefault(service.name, ["erp.example.com"]
                                      if service.name == "erp-prod" else [])

    def service_hostnames(inventory, pool, service, *, certs=False):
        log.append(("hostnames", service.key))
        custom = hostnames_of(service)
        plat = f"{service.name}.{service.host}.example.com"
        primary = custom[0] if custom else plat
        certs_by = {h: CertInfo(h, FROZEN_NOW + timedelta(days=80 if h == plat else 9),
                                "CN=Caddy Local Authority - ECC Intermediate")
                    for h in [plat, *custom]}
        return ServiceHostnames(service.name, service.host, f"https://{primary}", plat,
                                list(custom), "internal", certs_by)

    def add_hostname(inventory, pool, service, hostname, *, reporter=None, audit=None):
        log.append(("add_hostname", (service.key, hostname)))
        for other, names in f.hostnames.items():
            if hostname in names and other != service.name:
                raise proxy_ops.HostnameTaken(f"{hostname} belongs to {other} on alpha already")
        hostnames_of(service).append(hostname)
        return HostnameChange(service.name, service.host, hostname, "added",
                              f"https://{hostnames_of(service)[0]}", None,
                              hostnames_of(service),
                              proxy_ops.dns_record(hostname, "203.0.113.7"))

    def remove_hostname(inventory, pool, service, hostname, *, reporter=None, audit=None):
        log.append(("remove_hostname", (service.key, hostname)))
        hostnames_of(service).remove(hostname)
        return HostnameChange(service.name, service.host, hostname, "removed", "", None,
                              hostnames_of(service))

    class FakeGitHub:
        def close(self) -> None:
            f.gh_closed += 1

    def deploy_repo(inventory, secret_store, pool, gh, service, repo, *, ref=None,
                    reporter=None, audit=None):
        log.append(("deploy", (service.key, repo)))
        reporter.step("fetch addons", "running")
        reporter.step("fetch addons", "done")
        conn = repos_ops.get_connection(inventory, service.host, service.name, repo)
        repos_ops.update_connection(inventory, conn, deployed_sha="f00dfeed" * 5)
        return DeployResult(repo, "f00dfeed" * 5, conn.deployed_sha, ["erp_sale"],
                            ModulePlan(update=["erp_sale"]), True, 8.0)

    def set_previews(inventory, secret_store, pool, service, repo, *, enabled, forks=None,
                     gh=None, reporter=None, audit=None):
        log.append(("previews", (service.key, repo, enabled, gh is not None)))
        conn = repos_ops.get_connection(inventory, service.host, service.name, repo)
        return repos_ops.update_connection(inventory, conn, previews=enabled)

    def disconnect_repo(inventory, secret_store, pool, service, repo, *, remove_addons=False,
                        gh=None, reporter=None, audit=None):
        log.append(("disconnect", (service.key, repo)))
        inventory.update_value(REPOS_KEY, lambda v: [c for c in v if c["repo"] != repo], [])
        return ["preview erp-prod-pr42"]

    patch = monkeypatch.setattr
    patch(backup_ops, "list_backups", list_backups)
    patch(backup_ops, "create_backup", create_backup)
    patch(backup_ops, "restore_backup", restore_backup)
    patch(backup_ops, "delete_backup", delete_backup)
    patch(backup_ops, "download_backup", download_backup)
    patch(proxy_ops, "service_hostnames", service_hostnames)
    patch(proxy_ops, "add_hostname", add_hostname)
    patch(proxy_ops, "remove_hostname", remove_hostname)
    patch(repos_ops, "deploy_repo", deploy_repo)
    patch(repos_ops, "set_previews", set_previews)
    patch(repos_ops, "disconnect_repo", disconnect_repo)
    patch(repos_tab, "github_client", lambda app: FakeGitHub())
    return f


def seed_repos(paths: AppPaths) -> None:
    inventory = open_inventory(paths)
    conns = [
        RepoConnection("alpha", "erp-prod", "acme/erp-addons", "main", previews=True,
                       deployed_sha="3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b",
                       deployed_at="2025-05-30T09:12:00+00:00",
                       modules=["erp_sale", "erp_stock"], connected_at="2025-05-01T00:00:00"),
        RepoConnection("alpha", "erp-prod", "acme/theme", "17.0", subdir="addons",
                       deployed_sha="0123456789abcdef0123456789abcdef01234567",
                       deployed_at="2025-05-20T10:00:00+00:00", modules=["acme_theme"],
                       connected_at="2025-05-01T00:00:00"),
    ]
    inventory.set_value(REPOS_KEY, [c.to_dict() for c in conns])


@pytest.fixture
def app(populated_paths: AppPaths, fakes: TabFakes) -> Any:
    seed_repos(populated_paths)
    return build_services_app(populated_paths, fakes.calls)


async def open_tab(pilot: Any, tab_id: str, name: str = "erp-prod") -> Any:
    detail = await open_detail(pilot, name)
    detail.query_one(TabbedContent).active = tab_id
    await pilot.pause()
    tab = detail.query_one(f"#{tab_id}")
    await wait_for(pilot, lambda: tab.data is not None, what=f"the rows of {tab_id}")
    await pilot.pause()
    return tab


def cells(tab: Any) -> list[list[str]]:
    table = tab.query_one(DataTable)
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)]
            for i in range(table.row_count)]


async def at(pilot: Any, kind: type) -> Any:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, kind), what=kind.__name__)
    await pilot.pause()
    return pilot.app.screen


async def finished(pilot: Any, screen: Any) -> None:
    await wait_for(pilot, lambda: screen.outcome is not None, what="the operation")
    await pilot.pause()


def test_the_tabs_are_registered_in_order():
    ids = [t.TAB_ID for t in service_detail.DETAIL_TABS]
    assert ids[:3] == ["tab-overview", "tab-steps", "tab-config"]
    assert ids[3:] == ["tab-backups", "tab-repos", "tab-hostnames"]


async def test_tabs_read_nothing_until_shown(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot)
        assert not fakes.calls.of("list_backups") and not fakes.calls.of("hostnames")


# -- backups ----------------------------------------------------------------------------------


async def test_backups_are_listed_with_size_destination_kind_and_sha(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-backups")
        rows = cells(tab)
        assert rows[0][:5] == ["2025-06-01 11:00", "manual", "1.8 GB", "host", "odoo-zip"]
        assert rows[0][5] == "1" * 16
        assert [r[1] for r in rows] == ["manual", "scheduled", "safety"]
        assert rows[2][3] == "local:/srv/backups"
        assert fakes.calls.of("list_backups") == [("alpha", "erp-prod")]


async def test_backup_now_shows_progress_and_lists_the_new_backup(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-backups")
        await pilot.press("b")
        screen = await at(pilot, BackupScreen)
        await finished(pilot, screen)
        assert screen.outcome.ok
        assert ("backup", "done") in screen.outcome.steps
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(cells(tab)) == 4, timeout=30,
                       what="the new backup listed")
        assert cells(tab)[0][0] == "2025-06-01 12:00"
        assert fakes.calls.of("create_backup") == [(("alpha", "erp-prod"), "manual")]


async def test_restore_into_a_live_service_needs_the_name_typed(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-backups")
        tab.table.move_cursor(row=1)
        await pilot.press("R")
        dialog = await at(pilot, ConfirmDialog)
        assert dialog.type_to_confirm == "erp-prod"
        await pilot.press("y")  # typed into the field: not a confirmation
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog) and not fakes.calls.of("restore")
        dialog.query_one("#confirm-input", Input).value = "erp-prod"
        await pilot.press("enter")
        screen = await at(pilot, BackupScreen)
        await finished(pilot, screen)
        assert screen.outcome.ok
        record = fakes.backups["erp-prod"][1]
        assert fakes.calls.of("restore") == [(record.id, "erp-prod", "erp-prod")]
        assert "Safety backup first" in str(screen.query_one("#operation-result").content)


async def test_restore_into_a_test_service_asks_without_typing(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        await open_tab(pilot, "tab-backups", "training")
        await pilot.press("R")
        dialog = await at(pilot, ConfirmDialog)
        assert dialog.type_to_confirm is None
        await pilot.press("n")
        await pilot.pause()
        assert not fakes.calls.of("restore")


async def test_download_goes_to_the_directory_given(app: Any, fakes: TabFakes, tmp_path):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-backups")
        await pilot.press("w")
        dialog = await at(pilot, DownloadDialog)
        dialog.query_one("#download-dir", Input).value = str(tmp_path / "dl")
        await pilot.press("enter")
        screen = await at(pilot, BackupScreen)
        await finished(pilot, screen)
        assert fakes.calls.of("download") == [(tab.data[0].id, str(tmp_path / "dl"))]


async def test_delete_asks_first_then_the_list_is_read_again(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-backups")
        first = tab.data[0].id
        await pilot.press("X")
        await at(pilot, ConfirmDialog)
        await pilot.press("n")
        await pilot.pause()
        assert not fakes.calls.of("delete_backup")
        await pilot.press("X")
        await at(pilot, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(cells(tab)) == 2, what="the list without it")
        assert fakes.calls.of("delete_backup") == [first]


async def test_backup_keys_are_greyed_out_where_they_do_not_apply(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-backups", "erp-copy")  # Creating
        assert tab.check_action("backup_now", ()) is None
        assert tab.check_action("restore_backup", ()) is None
        assert tab.check_action("download_backup", ()) is True


async def test_the_dashboard_backs_up_the_selected_service(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        service = next(s for s in dash.table.visible_services() if s.name == "training")
        dash.table.move_cursor(row=dash.table.get_row_index(row_key_for(service)))
        await pilot.pause()
        await pilot.press("b")
        screen = await at(pilot, BackupScreen)
        await finished(pilot, screen)
        assert fakes.calls.of("create_backup") == [(("bravo", "training"), "manual")]
        await pilot.press("escape")
        await at(pilot, DashboardScreen)
        creating = next(s for s in dash.table.visible_services() if s.name == "erp-copy")
        dash.table.move_cursor(row=dash.table.get_row_index(row_key_for(creating)))
        await pilot.pause()
        assert dash.check_action("backup_service", ()) is None


# -- repositories -----------------------------------------------------------------------------


async def test_repositories_show_the_deployed_sha_and_the_eye(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-repos")
        rows = cells(tab)
        assert rows[0][:4] == ["acme/erp-addons", "main", "/", "3a4b5c6d7e8f"]
        assert rows[0][5] == f"{repos_tab.EYE} on"
        assert rows[1][2] == "addons" and rows[1][5] == "off"


async def test_deploy_runs_with_its_steps(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-repos")
        await pilot.press("d")
        screen = await at(pilot, BackupScreen)
        await finished(pilot, screen)
        assert screen.outcome.ok and fakes.gh_closed == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: cells(tab)[0][3] == "f00dfeedf00d", what="the new SHA")
        assert fakes.calls.of("deploy") == [(("alpha", "erp-prod"), "acme/erp-addons")]


async def test_previews_on_and_off(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-repos")
        tab.table.move_cursor(row=1)
        await pilot.press("p")  # on: no question
        await wait_for(pilot, lambda: cells(tab)[1][5].startswith(repos_tab.EYE),
                       what="the eye")
        await pilot.press("p")  # off destroys previews: asked first
        await at(pilot, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: cells(tab)[1][5] == "off", what="previews off")
        assert fakes.calls.of("previews") == [
            (("alpha", "erp-prod"), "acme/theme", True, True),
            (("alpha", "erp-prod"), "acme/theme", False, False)]


async def test_disconnect_asks_first(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-repos")
        await pilot.press("X")
        await at(pilot, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(cells(tab)) == 1, what="one repository left")
        assert fakes.calls.of("disconnect") == [(("alpha", "erp-prod"), "acme/erp-addons")]


# -- hostnames --------------------------------------------------------------------------------


async def test_hostnames_show_primary_and_certificate_expiry(app: Any):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-hostnames")
        rows = cells(tab)
        assert rows[0][:3] == ["erp-prod.alpha.example.com", "platform", ""]
        assert rows[1][:3] == ["erp.example.com", "custom", "✔"]
        assert rows[0][3].startswith("2025-08-20 (80 days)")
        assert rows[1][3].startswith("2025-06-10 (9 days)")


async def test_add_a_hostname_validates_and_says_the_dns_record(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-hostnames")
        await pilot.press("a")
        field = tab.query_one("#hostname-input", Input)
        assert field.has_focus
        await pilot.press(*"bad_name.example.com", "enter")
        await pilot.pause()
        assert "may only hold a-z" in str(tab.query_one("#hostname-error").content)
        assert not fakes.calls.of("add_hostname")
        field.value = "shop.example.com"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(cells(tab)) == 3, what="the new hostname")
        note = str(tab.query_one("#tab-hostnames-note").content)
        assert "shop.example.com.  A  203.0.113.7" in note
        assert field.value == ""


async def test_a_hostname_of_another_service_is_refused(app: Any, fakes: TabFakes):
    fakes.hostnames["shop-copy"] = ["shop.example.com"]
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-hostnames")
        tab.query_one("#hostname-input", Input).value = "shop.example.com"
        tab.query_one("#hostname-input", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("belongs to shop-copy" in n.message
                                          for n in app._notifications), what="the refusal")
        assert len(cells(tab)) == 2


async def test_remove_a_custom_hostname_not_the_platform_one(app: Any, fakes: TabFakes):
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot, "tab-hostnames")
        assert tab.check_action("remove_hostname", ()) is None  # the platform row
        tab.table.move_cursor(row=1)
        await pilot.pause()
        await pilot.press("X")
        await at(pilot, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(cells(tab)) == 1, what="the hostname gone")
        assert fakes.calls.of("remove_hostname") == [(("alpha", "erp-prod"), "erp.example.com")]


# -- snapshots --------------------------------------------------------------------------------


def _tab(tab_id: str, name: str = "erp-prod", cursor: int = 0):
    async def run_before(pilot: Any) -> None:
        tab = await open_tab(pilot, tab_id, name)
        tab.table.move_cursor(row=cursor)
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    return run_before


def test_snapshot_backups_tab(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_tab("tab-backups"))


def test_snapshot_repos_tab(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_tab("tab-repos"))


def test_snapshot_hostnames_tab(snap_compare, app: Any):
    assert snap_compare(app, terminal_size=SIZE, run_before=_tab("tab-hostnames", cursor=1))


def test_snapshot_restore_confirmation(snap_compare, app: Any):
    async def run_before(pilot: Any) -> None:
        await _tab("tab-backups", cursor=1)(pilot)
        await pilot.press("R")
        await at(pilot, ConfirmDialog)
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


__all__ = ["BackupsTab", "HostnamesTab", "ReposTab", "seed_repos", "TabFakes"]
