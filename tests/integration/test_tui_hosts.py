"""The TUI on the real testbed: add host A through the add-host dialog (its key unknown, then
accepted) and see it reachable on the hosts screen, polled over real SSH.

Nothing is created on the host: the test only connects, asks the engine and polls it, so it
needs no cleanup there. Its HAVSH_HOME starts without any known_hosts, so host A's key is
unknown to the app, as it is to a new user.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import paramiko
import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Static

from havsh_tui.app import make_app
from havsh_tui.core.audit import AuditLog
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import Settings
from havsh_tui.dialogs.add_host import HostDialog
from havsh_tui.dialogs.host_key import HostKeyDialog
from havsh_tui.remote.hosts import HostPool, SSHOptions
from havsh_tui.remote.ssh import fingerprint
from havsh_tui.screens.hosts import HostsScreen

NAME = "tuihosts-a"
SIZE = (120, 40)


async def wait_for(pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.05)
    await pilot.pause()


def real_fingerprint(known_hosts: str, address: str, port: int) -> str:
    """Host A's key as the testbed wrote it (what the dialog must show)."""
    keys = paramiko.HostKeys(known_hosts)
    entry = keys.lookup(f"[{address}]:{port}" if port != 22 else address)
    assert entry, f"no key for {address}:{port} in {known_hosts}"
    return fingerprint(next(iter(entry.values())))


@pytest.fixture
def fresh_paths(tmp_path, monkeypatch) -> AppPaths:
    home = tmp_path / "havsh-home"
    monkeypatch.setenv("HAVSH_HOME", str(home))
    monkeypatch.delenv("HAVSH_SSH_CONFIG", raising=False)
    paths = AppPaths.from_env().ensure()
    assert not paths.known_hosts.exists()
    return paths


async def test_add_host_a_through_the_dialog_and_see_it_reachable(testbed, hosta, fresh_paths):
    opts = SSHOptions(known_hosts=fresh_paths.known_hosts, ssh_config=None,
                      connect_timeout=10.0, command_timeout=60.0, system_known_hosts=False)
    pool = HostPool(opts)
    app = make_app(fresh_paths, Settings(poll_interval=2.0), pool=pool)
    expected_fp = real_fingerprint(hosta.known_hosts, hosta.address, hosta.port)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, HostsScreen)
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(app.screen, HostDialog))
            dialog = app.screen
            assert isinstance(dialog, HostDialog)
            values = {
                "name": NAME,
                "address": hosta.address,
                "port": str(hosta.port),
                "user": hosta.user,
                "identity": str(hosta.client_key),
                "postgres_image": "havsh-test/postgres:15",
                "odoo_image": "havsh-test/odoo:17.0",
            }
            for key, value in values.items():
                dialog.field_input(key).value = value
            await pilot.pause()
            await pilot.click("#host-test")

            # The key is unknown to this HAVSH_HOME: the dialog shows it.
            await wait_for(pilot, lambda: isinstance(app.screen, HostKeyDialog))
            key_dialog = app.screen
            assert isinstance(key_dialog, HostKeyDialog)
            shown = str(key_dialog.query_one("#host-key-fingerprint", Static).render())
            assert shown == expected_fp
            await pilot.click("#host-key-accept")

            status = dialog.query_one("#host-test-status", Static)
            await wait_for(pilot, lambda: "Connected" in str(status.render())
                           or status.has_class("-error"))
            assert "Connected" in str(status.render()), str(status.render())
            assert expected_fp in str(status.render())
            assert f"[{hosta.address}]:{hosta.port}" in fresh_paths.known_hosts.read_text()
            assert not dialog.query_one("#host-save", Button).disabled
            await pilot.click("#host-save")

            # Saved, then polled over real SSH by its own worker.
            await wait_for(pilot, lambda: NAME in [h.name for h in screen.table.hosts])
            await wait_for(pilot, lambda: NAME in app.poller.latest)
            # The screen shows a round of polls in one repaint, shortly after they land.
            await wait_for(pilot, lambda: not screen.repaint_pending
                           and screen.table.health_of(NAME) is not None)
            health = screen.table.health_of(NAME)
            assert health is not None
            assert health.reachable, health.error
            assert health.docker_version and health.cpus and health.cpus >= 1
            assert health.docker_root == (hosta.docker_root or health.docker_root)
            table = screen.table
            assert table.get_cell(NAME, "state").plain == "reachable"
            assert table.get_cell(NAME, "docker").plain == health.docker_version
            assert table.get_cell(NAME, "rtt").plain.endswith(" ms")

            # It is polled again (every 2 s here), and the load history grows.
            first = health.checked_at
            await wait_for(pilot, lambda: app.poller.latest[NAME].checked_at > first)
            assert len(app.poller.history[NAME]) >= 2

            saved = app.inventory.get_host(NAME)
            assert (saved.address, saved.port, saved.user) == (
                hosta.address, hosta.port, hosta.user
            )
            actions = [r["action"] for r in AuditLog(fresh_paths.audit_log).tail(10)]
            assert "host.add" in actions
    finally:
        pool.close()
