"""Two operators, two inventories, one backup scheduler per host (on the real testbed).

Each inventory owns the schedules of the services it has a backup policy for; configuring
the scheduler from one keeps the other's lines while their services exist, and a delete takes
a service's line out whichever inventory scheduled it. (Before, the last inventory to write
dropped every schedule the other had made: backups stopped without a word.)"""

from __future__ import annotations

import docker
import pytest

from havsh_tui.core.inventory import Inventory
from havsh_tui.core.model import ServiceType
from havsh_tui.ops import backup as bk
from havsh_tui.ops import services as ops
from havsh_tui.ops.backup.model import policy_key

IMAGE = "havsh-test/odoo:17.0"
ONE, TWO = "ss-one", "ss-two"  # prefix ss-: unique to this file

pytestmark = pytest.mark.usefixtures("clean_hosts")


@pytest.fixture(autouse=True)
def _names(cleanup):
    cleanup.add(ONE, TWO)


@pytest.fixture
def other(tmp_path, host_a, host_b):
    """The second operator's inventory (same hosts, its own file)."""
    inv = Inventory(tmp_path / "other" / "inventory.json")
    inv.add_host(host_a)
    inv.add_host(host_b)
    return inv


def _scheduled(pool, host) -> list[str]:
    return sorted(ln.split()[5] for ln in bk.scheduler_status(pool, host)["schedules"])


def _scheduler(testbed):
    client = docker.DockerClient(base_url="unix://" + testbed.hosts["hosta"].docker_socket,
                                 version="1.41")
    try:
        return client.containers.list(all=True, filters={"name": bk.SCHEDULER_CONTAINER})
    finally:
        client.close()


@pytest.mark.slow
def test_two_inventories_keep_each_others_schedules(inventory, other, secret_store, pool,
                                                    host_a, testbed):
    try:
        one = ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
            name=ONE, host="hosta", type=ServiceType.TEST, odoo_version="17.0",
            image=IMAGE)).service
        two = ops.create_service(other, secret_store, pool, ops.CreateSpec(
            name=TWO, host="hosta", type=ServiceType.TEST, odoo_version="17.0",
            image=IMAGE)).service
        other.upsert_service(one)  # the second operator's rescan adopted ONE, not its policy

        bk.set_schedule(inventory, secret_store, pool, one, "host", "daily", 3)
        assert _scheduled(pool, host_a) == [ONE]
        # The other inventory schedules its own service: ONE's schedule stays.
        bk.set_schedule(other, secret_store, pool, two, "host", "hourly", 2)
        assert _scheduled(pool, host_a) == [ONE, TWO]
        state = bk.configure_scheduler(other, secret_store, pool, "hosta")
        assert state.action == "unchanged" and state.kept == [ONE]
        lines = {ln.split()[5]: ln.split() for ln in bk.scheduler_status(pool, host_a)["schedules"]}
        assert lines[ONE][9] == "3" and lines[TWO][9] == "2"
        assert lines[ONE][8] == lines[TWO][8], "one mount for the one default directory"
        # The first inventory writes again (a new keep): TWO's schedule stays.
        bk.set_schedule(inventory, secret_store, pool, one, "host", "daily", 5)
        lines = {ln.split()[5]: ln.split() for ln in bk.scheduler_status(pool, host_a)["schedules"]}
        assert sorted(lines) == [ONE, TWO] and lines[ONE][9] == "5" and lines[TWO][9] == "2"
        # The second stops its own: the first's goes on.
        bk.set_schedule(other, secret_store, pool, two, "host", "none", None)
        assert _scheduled(pool, host_a) == [ONE]
        # The second deletes ONE, whose policy it never had: its schedule goes with it, and
        # with nothing left the scheduler container goes too.
        ops.delete_service(other, secret_store, pool, other.get_service(ONE, host="hosta"))
        assert _scheduler(testbed) == []
        ops.delete_service(other, secret_store, pool, two)
    finally:
        for inv in (inventory, other):
            for s in inv.list_services(host="hosta"):
                inv.delete_value(policy_key(s.host, s.name))
        try:
            if set(_scheduled(pool, host_a)) <= {ONE, TWO}:
                for c in _scheduler(testbed):
                    c.remove(force=True)
        except Exception:  # noqa: BLE001 - cleanup only
            pass
