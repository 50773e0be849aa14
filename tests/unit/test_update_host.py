"""ops.hosts.update_host: the settings it takes, proxy_bind validated like the CLI does."""

from __future__ import annotations

import pytest

from havsh_tui.core.inventory import open_inventory
from havsh_tui.core.model import Host
from havsh_tui.core.paths import AppPaths
from havsh_tui.ops.hosts import OpsError, update_host


@pytest.fixture
def inv(tmp_path):
    inventory = open_inventory(AppPaths(home=tmp_path).ensure())
    inventory.add_host(Host(name="alpha", address="192.0.2.10"))
    return inventory


def test_proxy_bind_is_a_setting_and_must_be_an_ip(inv):
    h = update_host(inv, "alpha", {"proxy_bind": "10.0.0.5"}, check=False)
    assert h.proxy_bind == "10.0.0.5" and inv.get_host("alpha").proxy_bind == "10.0.0.5"
    with pytest.raises(OpsError, match="not an IP address"):
        update_host(inv, "alpha", {"proxy_bind": "example.com"}, check=False)
    assert inv.get_host("alpha").proxy_bind == "10.0.0.5"  # nothing lost
    h = update_host(inv, "alpha", {"proxy_bind": "::1"}, check=False)
    assert h.proxy_bind == "::1"


def test_unknown_fields_are_refused(inv):
    with pytest.raises(OpsError, match="cannot change name"):
        update_host(inv, "alpha", {"name": "beta"}, check=False)
