"""The secrets file: 0600, round trip, masking, concurrency, refusing to clobber damage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from havsh_tui.core.secrets import (
    SecretBackend,
    SecretStore,
    SecretStoreError,
    generate_password,
    github_token_key,
    mask,
    postgres_superuser_key,
    service_admin_password_key,
    service_db_password_key,
    service_prefix,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    return SecretStore(tmp_path / "secrets.json")


def test_round_trip(store: SecretStore) -> None:
    assert store.get("k") is None
    assert store.keys() == []
    store.set("b", "two")
    store.set("a", 'one ünïcode "quoted"')
    assert store.get("a") == 'one ünïcode "quoted"'
    assert store.keys() == ["a", "b"]
    # A second instance (another process, in effect) sees the same values.
    assert SecretStore(store.path).get("b") == "two"
    store.delete("b")
    store.delete("missing")
    assert store.keys() == ["a"]


def test_mode_0600_whatever_the_umask(store: SecretStore) -> None:
    old = os.umask(0)
    try:
        store.set("k", "v")
    finally:
        os.umask(old)
    assert os.stat(store.path).st_mode & 0o777 == 0o600
    assert os.stat(store.lock_path).st_mode & 0o777 == 0o600


def test_loose_mode_is_tightened(store: SecretStore) -> None:
    store.set("k", "v")
    os.chmod(store.path, 0o644)
    store.set("k", "w")
    assert os.stat(store.path).st_mode & 0o777 == 0o600


def test_key_helpers() -> None:
    keys = {
        postgres_superuser_key("alpha"),
        service_db_password_key("alpha", "erp"),
        service_admin_password_key("alpha", "erp"),
        service_db_password_key("beta", "erp"),
        github_token_key(),
        github_token_key("work"),
    }
    assert len(keys) == 6
    assert service_db_password_key("alpha", "erp").startswith(service_prefix("alpha", "erp"))


def test_delete_prefix(store: SecretStore) -> None:
    store.set(service_db_password_key("alpha", "erp"), "x")
    store.set(service_admin_password_key("alpha", "erp"), "y")
    store.set(service_db_password_key("alpha", "erp2"), "z")
    assert store.delete_prefix(service_prefix("alpha", "erp")) == 2
    assert store.keys() == [service_db_password_key("alpha", "erp2")]


def test_get_or_create(store: SecretStore) -> None:
    first = store.get_or_create("k")
    assert len(first) >= 24
    assert store.get_or_create("k") == first


def test_mask() -> None:
    assert mask("") == ""
    assert mask(None) == ""
    assert mask("hunter2") == "********"
    assert mask("x" * 15) == "********"  # short secrets show nothing, not even their length
    token = "ghp_" + "a" * 32 + "WXYZ"
    assert mask(token) == "********WXYZ"
    assert token[:-4] not in mask(token)


def test_generate_password() -> None:
    a, b = generate_password(), generate_password()
    assert a != b and len(a) >= 32
    assert a.replace("-", "").replace("_", "").isalnum()


def test_file_format(store: SecretStore) -> None:
    store.set("k", "v")
    assert json.loads(store.path.read_text()) == {"version": 1, "secrets": {"k": "v"}}


def test_corrupt_file_is_never_overwritten(store: SecretStore) -> None:
    store.path.write_text('{"version": 1, "secrets": {"k": "sup3r-secret"')
    before = store.path.read_bytes()
    with pytest.raises(SecretStoreError) as err:
        store.set("other", "x")
    assert str(store.path) in str(err.value)
    assert "sup3r" not in str(err.value)  # the message must not quote the file
    with pytest.raises(SecretStoreError):
        store.get("k")
    assert store.path.read_bytes() == before


def test_repr_shows_no_values(store: SecretStore) -> None:
    store.set("k", "hunter2")
    assert "hunter2" not in repr(store)


def test_is_a_secret_backend(store: SecretStore) -> None:
    assert isinstance(store, SecretBackend)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from havsh_tui.core.secrets import SecretStore\n"
        "s = SecretStore(Path(sys.argv[1]))\n"
        "for i in range(50):\n"
        "    s.set(f'{sys.argv[2]}/{i}', str(i))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), tag], cwd=ROOT)
        for tag in ("a", "b")
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    keys = SecretStore(path).keys()
    assert len(keys) == 100


def test_generated_passwords_are_safe_as_command_line_values() -> None:
    # A password that starts with '-' broke the Odoo image's wait-for-psql.py
    # (`--db_password -x...`: "expected one argument"), seen on the testbed.
    for _ in range(2000):
        pw = generate_password()
        assert pw.isalnum() and pw.isascii() and len(pw) == 32
