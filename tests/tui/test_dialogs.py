"""Pilot tests and snapshots of the dialogs: add/edit host (on a fake ops layer), host key,
passphrase, confirm and the ``:`` jump prompt."""

# The fixtures imported from test_hosts are used as parameters, which ruff reads as F811.
# ruff: noqa: F811

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, Input, Select, Static

from havsh_tui.app import styles_dir
from havsh_tui.core.audit import AuditLog
from havsh_tui.core.model import Host
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import Settings
from havsh_tui.dialogs import add_host as add_host_dialog
from havsh_tui.dialogs.add_host import (
    HostDialog,
    HostDialogResult,
    check_destination,
    check_identity,
    check_name,
    check_port,
)
from havsh_tui.dialogs.confirm import ConfirmDialog
from havsh_tui.dialogs.host_key import HostKeyDialog
from havsh_tui.dialogs.jump import JumpDialog, match_section
from havsh_tui.dialogs.passphrase import PassphraseDialog
from havsh_tui.remote.hosts import SSHOptions
from havsh_tui.remote.ssh import (
    ChangedHostKey,
    HostUnreachable,
    PassphraseRequired,
    UnknownHostKey,
)

from .test_hosts import (  # noqa: F401 - build, demo_paths, fake_ops, pools are fixtures
    SIZE,
    build,
    demo_paths,
    fake_ops,
    open_hosts,
    pools,
    wait_for,
)

KNOWN_HOSTS = Path("/home/ops/.local/share/havsh/known_hosts")


class FakeKey:
    """Enough of a paramiko PKey for the remote layer's exceptions."""

    def __init__(self, seed: bytes, name: str = "ssh-ed25519") -> None:
        self._blob = hashlib.sha256(seed).digest()
        self._name = name

    def get_name(self) -> str:
        return self._name

    def asbytes(self) -> bytes:
        return self._blob

    def get_base64(self) -> str:
        return base64.b64encode(self._blob).decode()


HOST_KEY = FakeKey(b"charlie")
OLD_KEY = FakeKey(b"charlie, last year")


class FakeSession:
    closed = False

    def close(self) -> None:
        self.closed = True


class FakeConnect:
    """Replaces ops.hosts.connect_and_verify and docker_info in the dialog's module.

    ``script`` is a list of exceptions (or None for success) for successive calls; each
    call's keyword arguments are kept in ``calls``.
    """

    def __init__(self, *script: BaseException | None) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def connect(self, host: Host, opts: SSHOptions, **kw: Any):
        self.calls.append({"host": host, **kw})
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        from havsh_tui.remote.ssh import fingerprint

        return FakeSession(), fingerprint(HOST_KEY), HOST_KEY.get_name(), bool(
            kw.get("accept_fingerprint")
        )

    @staticmethod
    def docker_info(session: object) -> dict[str, Any]:
        return {
            "version": {"Version": "27.5.1", "ApiVersion": "1.47"},
            "info": {"DockerRootDir": "/var/lib/docker"},
        }


@pytest.fixture
def fake_connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeConnect]:
    def install(*script: BaseException | None) -> FakeConnect:
        fake = FakeConnect(*script)
        monkeypatch.setattr(add_host_dialog, "connect_and_verify", fake.connect)
        monkeypatch.setattr(add_host_dialog, "docker_info", fake.docker_info)
        return fake

    return install


class DialogApp(App[None]):
    """One dialog over an empty screen, with the app's styles; keeps what it dismissed with."""

    CSS_PATH = [styles_dir() / "havsh.tcss", styles_dir() / "hosts.tcss"]

    def __init__(self, make: Callable[[], Screen[Any]]) -> None:
        super().__init__()
        self.make = make
        self.results: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(self.make(), self.results.append)


def opts_in(tmp_path: Path) -> SSHOptions:
    return SSHOptions(known_hosts=tmp_path / "known_hosts", ssh_config=None,
                      system_known_hosts=False)


def host_dialog(tmp_path: Path, **kw: Any) -> Callable[[], HostDialog]:
    kw.setdefault("existing", ["alpha", "bravo"])
    return lambda: HostDialog(opts=opts_in(tmp_path), settings=Settings(), **kw)


def fill(dialog: HostDialog, **values: str) -> None:
    for key, value in values.items():
        dialog.field_input(key).value = value


def status_of(dialog: HostDialog) -> str:
    return str(dialog.query_one("#host-test-status", Static).render())


def error_of(dialog: HostDialog, key: str) -> str | None:
    error = dialog.query_one(f"#host-{key}-error", Static)
    return None if error.has_class("-hidden") else str(error.render())


async def start(pilot: Pilot[Any]) -> HostDialog:
    await pilot.pause()
    dialog = pilot.app.screen
    assert isinstance(dialog, HostDialog)
    return dialog


# -- add host: the whole path through the app -----------------------------------------------


async def test_add_host_with_good_input_saves_it(demo_paths: AppPaths, build, fake_connect,
                                                 tmp_path: Path):
    key = tmp_path / "id_charlie"
    key.write_text("not really a key")
    fake = fake_connect(UnknownHostKey("[192.0.2.30]:2222", HOST_KEY), None)
    app, pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot)
        await pilot.press("a")
        dialog = await start(pilot)
        await pilot.press(*"charlie")  # typed: the name field has the focus
        fill(dialog, address="root@192.0.2.30:2222", identity=str(key))
        await pilot.pause()
        assert dialog.query_one("#host-save", Button).disabled  # not tested yet
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyDialog))
        await pilot.click("#host-key-accept")
        await wait_for(pilot, lambda: "Connected" in status_of(dialog))
        assert "ssh-ed25519 SHA256:" in status_of(dialog)
        assert "Docker 27.5.1 (API 1.47)" in status_of(dialog)
        assert not dialog.query_one("#host-save", Button).disabled
        await pilot.click("#host-save")
        await wait_for(pilot, lambda: "charlie" in [h.name for h in screen.table.hosts])
        saved = app.inventory.get_host("charlie")
        assert (saved.address, saved.port, saved.user, saved.identity_file) == (
            "192.0.2.30", 2222, "root", str(key)
        )
        assert (saved.postgres_image, saved.odoo_image) == ("postgres:16", "odoo:17.0")
        assert [c.get("accept_fingerprint") for c in fake.calls] == [
            None, UnknownHostKey("x", HOST_KEY).fingerprint
        ]
        assert AuditLog(demo_paths.audit_log).tail(1)[0]["action"] == "host.add"
        # Saved hosts are polled at once.
        await wait_for(pilot, lambda: "charlie" in pool.calls)


async def test_passphrase_goes_to_the_pool(demo_paths: AppPaths, build, fake_connect):
    fake = fake_connect(PassphraseRequired("/keys/id_enc"))
    app, pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("a")
        dialog = await start(pilot)
        fill(dialog, name="delta", address="192.0.2.40")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, PassphraseDialog))
        await pilot.press(*"s3cret", "enter")
        await wait_for(pilot, lambda: "Connected" in status_of(dialog))
        assert fake.calls[-1]["passphrase"] == "s3cret"
        await pilot.click("#host-save")
        await wait_for(pilot, lambda: pool.passphrases.get("delta") == "s3cret")
        # Kept in memory for the pool; never written anywhere.
        assert "s3cret" not in demo_paths.inventory.read_text()
        assert "s3cret" not in demo_paths.audit_log.read_text()


# -- add host: the dialog alone -------------------------------------------------------------


async def test_bad_name_shows_the_validation_message(tmp_path: Path, fake_connect):
    fake = fake_connect()
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        await pilot.press(*"Bad Name")
        await pilot.pause()
        problem = error_of(dialog, "name")
        assert problem is not None and "may only contain a-z, 0-9" in problem
        assert dialog.field_input("name").has_class("-invalid")
        fill(dialog, address="192.0.2.30")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert fake.calls == []  # nothing is tried with a bad form
        assert dialog.focused is dialog.field_input("name")
        fill(dialog, name="alpha")
        await pilot.pause()
        assert error_of(dialog, "name") == "a host named 'alpha' exists already"
        fill(dialog, name="charlie")
        await pilot.pause()
        assert error_of(dialog, "name") is None


async def test_every_field_is_checked_before_a_test(tmp_path: Path, fake_connect):
    fake = fake_connect()
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        fill(dialog, name="charlie", address="-oProxyCommand=evil", port="99999",
             identity="/nowhere/id_x", odoo_image="")
        await pilot.pause()
        await pilot.click("#host-test")
        await pilot.pause()
        assert fake.calls == []
        assert error_of(dialog, "address") == "the address may not start with '-'"
        assert error_of(dialog, "port") == "the port is a number from 1 to 65535"
        assert error_of(dialog, "identity") == "no key file at /nowhere/id_x"
        assert error_of(dialog, "odoo_image") == "the Odoo image is needed"


async def test_unknown_key_rejected_saves_nothing(tmp_path: Path, fake_connect):
    fake = fake_connect(UnknownHostKey("192.0.2.30", HOST_KEY))
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        fill(dialog, name="charlie", address="192.0.2.30")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyDialog))
        key_dialog = app.screen
        assert isinstance(key_dialog, HostKeyDialog)
        assert str(key_dialog.query_one("#host-key-type", Static).render()) == "ssh-ed25519"
        fp = str(key_dialog.query_one("#host-key-fingerprint", Static).render())
        assert fp.startswith("SHA256:") and fp == UnknownHostKey("x", HOST_KEY).fingerprint
        await pilot.click("#host-key-reject")
        await wait_for(pilot, lambda: "rejected" in status_of(dialog))
        assert len(fake.calls) == 1
        assert dialog.query_one("#host-save", Button).disabled
        assert not (tmp_path / "known_hosts").exists()


async def test_changed_key_is_refused_with_the_openssh_warning(tmp_path: Path, fake_connect):
    fake = fake_connect(ChangedHostKey("192.0.2.30", HOST_KEY, OLD_KEY))
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        fill(dialog, name="charlie", address="192.0.2.30")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyDialog))
        key_dialog = app.screen
        assert isinstance(key_dialog, HostKeyDialog) and key_dialog.info.changed
        warning = str(key_dialog.query_one("#host-key-warning", Static).render())
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in warning
        assert not key_dialog.query("#host-key-accept")  # no way to accept it here
        await pilot.press("enter")  # Close has the focus
        await wait_for(pilot, lambda: "Refused" in status_of(dialog))
        assert len(fake.calls) == 1
        assert dialog.query_one("#host-save", Button).disabled


async def test_wrong_passphrase_asks_again(tmp_path: Path, fake_connect):
    from havsh_tui.remote import ssh

    wrong = getattr(ssh, "WrongPassphrase", PassphraseRequired)
    fake = fake_connect(PassphraseRequired("/keys/id_enc"), wrong("/keys/id_enc"), None)
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        fill(dialog, name="charlie", address="192.0.2.30")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, PassphraseDialog))
        ask = app.screen
        assert isinstance(ask, PassphraseDialog)
        assert ask.query_one("#passphrase-input", Input).password
        assert not ask.query("#passphrase-retry")
        await pilot.press(*"wrong", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PassphraseDialog)
                       and app.screen is not ask)
        assert app.screen.query("#passphrase-retry")
        await pilot.press(*"right", "enter")
        await wait_for(pilot, lambda: "Connected" in status_of(dialog))
        assert [c.get("passphrase") for c in fake.calls] == [None, "wrong", "right"]
        await pilot.click("#host-save")
        await pilot.pause()
        result = app.results[-1]
        assert isinstance(result, HostDialogResult) and result.passphrase == "right"
        assert "right" not in repr(result)


async def test_unreachable_host_is_said_in_the_dialog(tmp_path: Path, fake_connect):
    fake_connect(HostUnreachable("192.0.2.30: connection refused (is sshd running?)"))
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        fill(dialog, name="charlie", address="192.0.2.30")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "connection refused" in status_of(dialog))
        assert dialog.query_one("#host-test-status").has_class("-error")
        assert dialog.query_one("#host-save", Button).disabled
        assert not dialog.query_one("#host-test", Button).disabled  # try again


async def test_a_changed_address_needs_a_new_test(tmp_path: Path, fake_connect):
    fake_connect()
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        fill(dialog, name="charlie", address="192.0.2.30")
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "Connected" in status_of(dialog))
        save = dialog.query_one("#host-save", Button)
        assert not save.disabled
        fill(dialog, odoo_image="odoo:18.0")  # not how it is reached: the test still holds
        await pilot.pause()
        assert not save.disabled
        fill(dialog, address="192.0.2.31")
        await pilot.pause()
        assert save.disabled
        dialog.action_save()
        await pilot.pause()
        assert app.results == [] and "Test the connection first" in status_of(dialog)


async def test_escape_cancels(tmp_path: Path, fake_connect):
    fake_connect()
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None]


async def test_edit_changes_images_without_a_test(tmp_path: Path, fake_connect):
    fake = fake_connect()
    host = Host(name="alpha", address="192.0.2.10", user="deploy")
    app = DialogApp(host_dialog(tmp_path, host=host))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        assert dialog.field_input("name").disabled and dialog.field_input("address").disabled
        assert dialog.focused is dialog.field_input("user")
        save = dialog.query_one("#host-save", Button)
        assert not save.disabled
        fill(dialog, odoo_image="odoo:18.0")
        await pilot.pause()
        fill(dialog, port="2200")
        await pilot.pause()
        assert save.disabled  # how it is reached changed: test first
        fill(dialog, port="")
        await pilot.pause()
        await pilot.click("#host-save")
        await pilot.pause()
        result = app.results[-1]
        assert isinstance(result, HostDialogResult) and result.editing and result.test is None
        assert result.host.odoo_image == "odoo:18.0" and result.host.port == 22
        assert result.host.created_at == host.created_at
        assert fake.calls == []


async def test_edit_from_the_hosts_screen(demo_paths: AppPaths, build, fake_connect):
    fake_connect()
    app, _pool = build(demo_paths)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot)
        await pilot.press("e")
        dialog = await start(pilot)
        fill(dialog, postgres_image="postgres:17")
        await pilot.pause()
        await pilot.click("#host-save")
        await wait_for(pilot, lambda: app.inventory.get_host("alpha").postgres_image ==
                       "postgres:17")
        record = AuditLog(demo_paths.audit_log).tail(1)[0]
        assert (record["action"], record["detail"]) == ("host.set", "postgres_image=postgres:17")


async def test_ssh_config_aliases_are_offered(tmp_path: Path, fake_connect):
    fake_connect()
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host prod-db\n  HostName 192.0.2.50\n  User ops\nHost web-*\n  User www\n"
    )
    opts = SSHOptions(known_hosts=tmp_path / "known_hosts", ssh_config=config,
                      system_known_hosts=False)
    app = DialogApp(lambda: HostDialog(opts=opts, existing=[]))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        select = dialog.query_one("#host-alias", Select)
        assert [str(prompt) for prompt, _value in select._options[1:]] == ["prod-db"]
        select.value = "prod-db"
        await pilot.pause()
        assert dialog.field_input("address").value == "prod-db"
        assert dialog.field_input("name").value == "prod-db"
        host = dialog.build_host()
        assert (host.address, host.ssh_alias, host.user) == ("prod-db", "prod-db", None)


def test_validators():
    assert check_port("") is None and check_port("22") is None
    assert check_port("0") and check_port("x")
    dest = check_destination("the address", required=True)
    assert dest("") == "the address is needed"
    assert dest("root@192.0.2.1:2222") is None
    assert dest("[2001:db8::1]:22") is None
    assert dest("a b") == "the address may not contain spaces"
    assert dest("host:port") is not None
    assert check_identity("") is None and check_identity("/nowhere") == "no key file at /nowhere"
    name = check_name(["alpha"])
    assert name("alpha") == "a host named 'alpha' exists already"
    assert name("beta-1") is None and name("") is not None


# -- host key, passphrase, confirm, jump ------------------------------------------------------


async def test_host_key_dialog_reject_has_the_focus():
    app = DialogApp(lambda: HostKeyDialog.unknown(
        "[127.0.0.1]:2222", "ssh-ed25519", "SHA256:abc", KNOWN_HOSTS))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.screen.focused is not None and app.screen.focused.id == "host-key-reject"
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [False]


@pytest.mark.parametrize(("keys", "result"), [(["escape"], False), (["tab", "enter"], True)])
async def test_host_key_dialog_keys(keys: list[str], result: bool):
    app = DialogApp(lambda: HostKeyDialog.unknown("h", "ssh-rsa", "SHA256:abc", KNOWN_HOSTS))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
        assert app.results == [result]


@pytest.mark.parametrize(
    ("keys", "result"),
    [(["y"], True), (["n"], False), (["escape"], False), (["enter"], False)],
)
async def test_confirm_dialog(keys: list[str], result: bool):
    app = DialogApp(lambda: ConfirmDialog("Remove host alpha?", "It goes.", confirm="Remove"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
        assert app.results == [result]


async def test_confirm_dialog_type_the_name():
    app = DialogApp(lambda: ConfirmDialog(
        "Delete erp-prod?", "A Live service.", confirm="Delete", type_to_confirm="erp-prod"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        ok = app.screen.query_one("#confirm-ok", Button)
        assert ok.disabled
        await pilot.press(*"erp-pro", "y", "enter")  # "y" is typed, not a confirmation
        await pilot.pause()
        assert app.results == [] and ok.disabled
        app.screen.query_one("#confirm-input", Input).value = ""
        await pilot.press(*"erp-prod")
        await pilot.pause()
        assert not ok.disabled
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [True]


async def test_passphrase_dialog_masks_and_returns():
    app = DialogApp(lambda: PassphraseDialog("/home/ops/.ssh/id_ed25519"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")  # empty: stays open
        await pilot.pause()
        assert app.results == []
        await pilot.press(*"hunter2")
        await pilot.pause()
        rendered = str(app.screen.query_one("#passphrase-input", Input).render_line(0).text)
        assert "hunter2" not in rendered
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == ["hunter2"]


def test_match_section():
    sections = ["services", "hosts", "previews"]
    assert match_section("hosts", sections) == "hosts"
    assert match_section(":h", sections) == "hosts"
    assert match_section("s", sections) == "services"
    assert match_section("p", sections) == "previews"
    assert match_section("x", sections) is None and match_section("", sections) is None
    assert match_section("se", ["services", "settings"]) is None


# -- snapshots --------------------------------------------------------------------------------

#: A fixed warning in OpenSSH's words, so the snapshot does not follow remote/'s wording.
CHANGED_WARNING = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:CWxvpGlMa1Pw/DPD/EjSvOFbEjn3zYPDxhgedK1c8HU.
Host key verification failed: nothing was sent to 10.213.9.2."""


def steady(*keys: str, then: Callable[[Pilot[Any]], Any] | None = None):
    """A run_before that stops the cursors blinking (a snapshot must not catch one half
    way), then presses ``keys``."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        if keys:
            await pilot.press(*keys)
        if then is not None:
            await then(pilot)
        await pilot.pause()

    return run_before


def test_snapshot_add_host(snap_compare, tmp_path: Path):
    app = DialogApp(host_dialog(tmp_path, aliases=["prod-db", "web-1"]))
    assert snap_compare(app, run_before=steady(), terminal_size=SIZE)


def test_snapshot_add_host_invalid(snap_compare, tmp_path: Path):
    async def invalid(pilot: Pilot[Any]) -> None:
        dialog = pilot.app.screen
        assert isinstance(dialog, HostDialog)
        fill(dialog, name="Bad Name", address="192.0.2.30", port="99999")
        await pilot.pause()
        dialog.action_test()

    app = DialogApp(host_dialog(tmp_path))
    assert snap_compare(app, run_before=steady(then=invalid), terminal_size=SIZE)


def test_snapshot_host_key_unknown(snap_compare):
    app = DialogApp(lambda: HostKeyDialog.unknown(
        "[127.0.0.1]:2222", "ssh-ed25519", UnknownHostKey("x", HOST_KEY).fingerprint,
        KNOWN_HOSTS))
    assert snap_compare(app, run_before=steady(), terminal_size=SIZE)


def test_snapshot_host_key_changed(snap_compare):
    app = DialogApp(lambda: HostKeyDialog.changed("10.213.9.2", CHANGED_WARNING))
    assert snap_compare(app, run_before=steady(), terminal_size=SIZE)


def test_snapshot_passphrase(snap_compare):
    app = DialogApp(lambda: PassphraseDialog("/home/ops/.ssh/id_ed25519", retry=True))
    assert snap_compare(app, run_before=steady(*"secret"), terminal_size=SIZE)


def test_snapshot_confirm(snap_compare):
    app = DialogApp(lambda: ConfirmDialog(
        "Forget the host key of alpha?",
        "The key saved for deploy@192.0.2.10 is removed from the app's known_hosts.",
        confirm="Forget key"))
    assert snap_compare(app, run_before=steady(), terminal_size=SIZE)


def test_snapshot_confirm_typed(snap_compare):
    app = DialogApp(lambda: ConfirmDialog(
        "Delete erp-prod?", "erp-prod is a Live service: its database and filestore go.",
        confirm="Delete", type_to_confirm="erp-prod"))
    assert snap_compare(app, run_before=steady(*"erp-"), terminal_size=SIZE)


def test_snapshot_jump(snap_compare):
    app = DialogApp(lambda: JumpDialog(["services", "hosts"]))
    assert snap_compare(app, run_before=steady("h"), terminal_size=SIZE)


async def test_unknown_jump_host_key_is_saved_under_its_own_name(tmp_path: Path, fake_connect):
    jump_key = FakeKey(b"the jump host")
    jump = UnknownHostKey("jump.example", jump_key)
    target = UnknownHostKey("192.0.2.30", HOST_KEY)
    # The jump host is met first; pinning its key for the target does not cover it, so it
    # comes back once; then the target's own key is unknown too; then it connects.
    fake = fake_connect(jump, UnknownHostKey("jump.example", jump_key), target, None)
    app = DialogApp(host_dialog(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await start(pilot)
        fill(dialog, name="charlie", address="192.0.2.30", jump="ops@jump.example")
        await pilot.press("ctrl+t")
        seen_dialogs: list[Screen[Any]] = []
        seen: list[str] = []
        for _ in range(2):
            await wait_for(pilot, lambda: isinstance(app.screen, HostKeyDialog)
                           and app.screen not in seen_dialogs)
            key_dialog = app.screen
            assert isinstance(key_dialog, HostKeyDialog)
            seen_dialogs.append(key_dialog)
            seen.append(key_dialog.info.host)
            await pilot.click("#host-key-accept")
        await wait_for(pilot, lambda: "Connected" in status_of(dialog))
        assert seen == ["jump.example", "192.0.2.30"]
        assert [c.get("accept_fingerprint") for c in fake.calls] == [
            None, jump.fingerprint, None, target.fingerprint
        ]
        assert "jump.example ssh-ed25519" in (tmp_path / "known_hosts").read_text()
