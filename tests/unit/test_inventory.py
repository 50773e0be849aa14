"""The inventory: round trips, errors, forward compatibility, crash safety, concurrency,
corrupt files, migrations, and the load time of a big inventory."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import signal
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from havsh_tui.core import inventory as inventory_module
from havsh_tui.core import serde
from havsh_tui.core.inventory import (
    SCHEMA_VERSION,
    AlreadyExists,
    Ambiguous,
    HostInUse,
    Inventory,
    InventoryCorrupt,
    InventoryError,
    NotFound,
    SchemaTooNew,
    open_inventory,
)
from havsh_tui.core.model import Host, Service, ServiceStatus, ServiceType, Step
from havsh_tui.core.names import InvalidName
from havsh_tui.core.paths import AppPaths

# Forked writers start in milliseconds (an interpreter would take half a second each), which
# is what makes thirty kill -9 rounds affordable. They are real processes all the same.
FORK = multiprocessing.get_context("fork")

T0 = datetime(2026, 12, 3, 12, 45, 1, tzinfo=UTC)


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths(home=tmp_path / "home")


@pytest.fixture
def inv(paths: AppPaths) -> Inventory:
    inv = open_inventory(paths)
    inv.add_host(Host("alpha", "10.0.0.1"))
    inv.add_host(Host("beta", "10.0.0.2"))
    return inv


def svc(name: str, host: str = "alpha", **kw: Any) -> Service:
    kw.setdefault("type", ServiceType.TEST)
    kw.setdefault("odoo_version", "17.0")
    kw.setdefault("image", "odoo:17.0")
    return Service(name, host, **kw)


def raw(paths: AppPaths) -> dict[str, Any]:
    return json.loads(paths.inventory.read_text())


# -- round trips -------------------------------------------------------------------------------


def test_host_round_trip_all_fields(paths: AppPaths) -> None:
    inv = open_inventory(paths)
    host = Host(
        name="db1.example.com",
        address="192.0.2.10",
        port=2222,
        user="deploy",
        identity_file="~/.ssh/id_ed25519",
        jump="bastion",
        ssh_alias="db1",
        postgres_image="postgres:15",
        odoo_image="odoo:16.0",
        proxy_image="caddy:2.7",
        base_domain="erp.example.com",
        tls="internal",
        created_at=T0,
    )
    inv.add_host(host)
    assert inv.get_host("db1.example.com") == host
    assert Inventory(paths.inventory).list_hosts() == [host]


def test_service_round_trip_all_fields(inv: Inventory, paths: AppPaths) -> None:
    service = Service(
        name="erp-pr12",
        host="alpha",
        type=ServiceType.PREVIEW,
        odoo_version="17.0",
        image="registry/odoo:17.0-custom",
        status=ServiceStatus.FAILED,
        database="erp_pr12",
        url="https://erp-pr12.example.com",
        source="erp@alpha",
        pr="acme/addons#12",
        created_at=T0,
        updated_at=T0 + timedelta(minutes=5),
        config={"workers": "4", "list_db": "False"},
        demo=True,
        language="fr_FR",
        country="BE",
        container_id="0123abcd",
        last_error="restore failed: exit 1",
        failed_step="restore",
        steps=[
            Step("dump", "done", T0, T0 + timedelta(seconds=30), "12 MB"),
            Step("restore", "failed", T0 + timedelta(seconds=31), None, "exit 1"),
            Step("start"),
        ],
    )
    inv.add_service(service)
    again = Inventory(paths.inventory).get_service("erp-pr12", "alpha")
    assert again == service
    assert again.type is ServiceType.PREVIEW and again.status is ServiceStatus.FAILED
    assert again.steps[0].started_at == T0


def test_stored_as_iso_strings_and_enum_values(inv: Inventory, paths: AppPaths) -> None:
    inv.add_service(svc("erp", status=ServiceStatus.RUNNING, created_at=T0))
    (doc,) = raw(paths)["services"].values()
    assert doc["created_at"] == "2026-12-03T12:45:01+00:00"
    assert doc["type"] == "test"
    assert doc["status"] == "running"
    assert raw(paths)["meta"]["1"]["schema_version"] == SCHEMA_VERSION


def test_lists_are_sorted(inv: Inventory) -> None:
    for name, host in [("zeta", "alpha"), ("erp", "beta"), ("erp", "alpha"), ("ab", "beta")]:
        inv.add_service(svc(name, host))
    assert [s.key for s in inv.list_services()] == [
        ("alpha", "erp"),
        ("alpha", "zeta"),
        ("beta", "ab"),
        ("beta", "erp"),
    ]
    assert [s.name for s in inv.list_services(host="beta")] == ["ab", "erp"]
    assert [h.name for h in inv.list_hosts()] == ["alpha", "beta"]
    snap = inv.snapshot()
    assert [h.name for h in snap.hosts] == ["alpha", "beta"]
    assert len(snap.services) == 4


# -- errors ------------------------------------------------------------------------------------


def test_not_found_and_already_exists(inv: Inventory) -> None:
    with pytest.raises(NotFound, match="'gamma'"):
        inv.get_host("gamma")
    with pytest.raises(AlreadyExists):
        inv.add_host(Host("alpha", "10.9.9.9"))
    inv.add_service(svc("erp"))
    with pytest.raises(AlreadyExists):
        inv.add_service(svc("erp"))
    inv.add_service(svc("erp", "beta"))  # the same name on another host is fine
    with pytest.raises(NotFound):
        inv.get_service("nope")
    with pytest.raises(NotFound):
        inv.get_service("erp", "gamma")
    with pytest.raises(NotFound):
        inv.remove_service("alpha", "nope")
    with pytest.raises(NotFound):
        inv.update_host(Host("gamma", "x"))
    with pytest.raises(NotFound):
        inv.update_service("alpha", "nope", status=ServiceStatus.RUNNING)
    assert issubclass(NotFound, InventoryError)


def test_service_needs_a_known_host(inv: Inventory) -> None:
    with pytest.raises(NotFound, match="host 'gamma'"):
        inv.add_service(svc("erp", "gamma"))


def test_names_are_validated(inv: Inventory) -> None:
    with pytest.raises(InvalidName):
        inv.add_service(svc("Bad_Name"))
    with pytest.raises(InvalidName):
        inv.add_host(Host("Bad Host", "x"))


def test_ambiguous_and_find(inv: Inventory) -> None:
    inv.add_service(svc("erp", "alpha"))
    assert inv.get_service("erp").host == "alpha"
    inv.add_service(svc("erp", "beta"))
    with pytest.raises(Ambiguous) as err:
        inv.get_service("erp")
    assert err.value.hosts == ["alpha", "beta"]
    assert [s.host for s in inv.find_services("erp")] == ["alpha", "beta"]
    assert inv.get_service("erp", host="beta").host == "beta"


def test_update_service(inv: Inventory) -> None:
    inv.add_service(svc("erp", updated_at=T0))
    updated = inv.update_service("alpha", "erp", status=ServiceStatus.RUNNING, url="http://x")
    assert updated.status is ServiceStatus.RUNNING and updated.url == "http://x"
    assert updated.updated_at > T0
    assert inv.get_service("erp", "alpha") == updated
    # A plain string value is accepted and comes back as the enum.
    assert inv.update_service("alpha", "erp", status="stopped").status is ServiceStatus.STOPPED
    with pytest.raises(InventoryError, match="runing"):
        inv.update_service("alpha", "erp", status="runing")
    with pytest.raises(TypeError, match="colour"):
        inv.update_service("alpha", "erp", colour="red")
    assert inv.get_service("erp", "alpha").status is ServiceStatus.STOPPED


def test_update_services_in_one_write(inv: Inventory, paths: AppPaths) -> None:
    for name in ("aa", "bb", "cc"):
        inv.add_service(svc(name))
    inode = paths.inventory.stat().st_ino
    done = inv.update_services(
        "alpha",
        {"aa": {"status": ServiceStatus.RUNNING}, "cc": {"status": "stopped", "url": "u"}},
    )
    assert [(s.name, s.status) for s in done] == [
        ("aa", ServiceStatus.RUNNING),
        ("cc", ServiceStatus.STOPPED),
    ]
    assert paths.inventory.stat().st_ino != inode  # replaced, once
    assert inv.get_service("bb", "alpha").status is ServiceStatus.UNKNOWN
    with pytest.raises(NotFound):
        inv.update_services("alpha", {"aa": {"url": "x"}, "zz": {"url": "y"}})
    assert inv.get_service("aa", "alpha").url == ""  # all or nothing
    skipped = inv.update_services(
        "alpha", {"zz": {"url": "y"}, "aa": {"url": "x"}}, missing_ok=True
    )
    assert [s.name for s in skipped] == ["aa"]


def test_a_write_that_changes_nothing_leaves_the_file(inv: Inventory, paths: AppPaths) -> None:
    inv.add_service(svc("erp", created_at=T0, updated_at=T0))
    first = paths.inventory.stat().st_ino
    inv.upsert_service(svc("erp", created_at=T0, updated_at=T0))
    inv.delete_value("never-set")
    assert paths.inventory.stat().st_ino == first  # no rename: nothing was written
    inv.set_value("k", 1)
    second = paths.inventory.stat().st_ino
    assert second != first
    inv.set_value("k", 1)
    assert paths.inventory.stat().st_ino == second


def test_upsert_and_update_host(inv: Inventory) -> None:
    inv.upsert_service(svc("erp", url="a"))
    inv.upsert_service(svc("erp", url="b"))
    assert [s.url for s in inv.list_services()] == ["b"]
    host = inv.get_host("alpha")
    host.port = 2200
    inv.update_host(host)
    assert inv.get_host("alpha").port == 2200


def test_remove_host(inv: Inventory) -> None:
    inv.add_service(svc("erp", "beta"))
    with pytest.raises(HostInUse, match="erp"):
        inv.remove_host("beta")
    inv.remove_host("alpha")
    assert [h.name for h in inv.list_hosts()] == ["beta"]
    inv.remove_host("beta", cascade=True)
    assert inv.list_hosts() == [] and inv.list_services() == []
    with pytest.raises(NotFound):
        inv.remove_host("beta")


def test_replace_services_for_host(inv: Inventory) -> None:
    inv.add_service(svc("old"))
    inv.add_service(svc("kept", url="before"))
    inv.add_service(svc("other", "beta"))
    diff = inv.replace_services_for_host("alpha", [svc("kept", url="after"), svc("new")])
    assert (diff.added, diff.removed, diff.kept) == (["new"], ["old"], ["kept"])
    assert [s.key for s in inv.list_services()] == [
        ("alpha", "kept"),
        ("alpha", "new"),
        ("beta", "other"),
    ]
    assert inv.get_service("kept", "alpha").url == "after"
    with pytest.raises(ValueError, match="not 'alpha'"):
        inv.replace_services_for_host("alpha", [svc("xx", "beta")])
    with pytest.raises(ValueError, match="twice"):
        inv.replace_services_for_host("alpha", [svc("xx"), svc("xx")])


# -- forward compatibility ---------------------------------------------------------------------


def _inject(paths: AppPaths, table: str, doc_changes: dict[str, Any]) -> None:
    data = raw(paths)
    for doc in data[table].values():
        doc.update(doc_changes)
    paths.inventory.write_text(json.dumps(data))


def test_unknown_fields_are_ignored_and_kept(inv: Inventory, paths: AppPaths) -> None:
    inv.add_service(svc("erp"))
    _inject(paths, "services", {"from_the_future": {"x": 1}})
    _inject(paths, "hosts", {"ssh_ciphers": ["aes"]})
    assert inv.get_service("erp", "alpha").name == "erp"
    inv.update_service("alpha", "erp", status=ServiceStatus.RUNNING)
    inv.upsert_service(svc("erp", url="u"))
    inv.replace_services_for_host("alpha", [svc("erp", url="v")])
    inv.update_host(inv.get_host("alpha"))
    data = raw(paths)
    (doc,) = data["services"].values()
    assert doc["from_the_future"] == {"x": 1} and doc["url"] == "v"
    assert all(h["ssh_ciphers"] == ["aes"] for h in data["hosts"].values())


def test_missing_optional_fields_take_defaults(inv: Inventory, paths: AppPaths) -> None:
    inv.add_service(svc("erp"))
    data = raw(paths)
    (doc,) = data["services"].values()
    for key in ("steps", "config", "country", "language", "created_at"):
        del doc[key]
    paths.inventory.write_text(json.dumps(data))
    s = inv.get_service("erp", "alpha")
    assert s.steps == [] and s.language == "en_US" and s.created_at.tzinfo is not None


def test_unknown_status_reads_as_unknown(inv: Inventory, paths: AppPaths) -> None:
    inv.add_service(svc("erp"))
    _inject(paths, "services", {"status": "hibernating"})
    assert inv.get_service("erp", "alpha").status is ServiceStatus.UNKNOWN


def test_undecodable_document_is_skipped_and_reported(inv: Inventory, paths: AppPaths) -> None:
    inv.add_service(svc("erp"))
    inv.add_service(svc("good"))
    data = raw(paths)
    first = next(iter(data["services"].values()))
    first["type"] = "staging"  # a type this havsh does not know
    paths.inventory.write_text(json.dumps(data))
    assert [s.name for s in inv.list_services()] == ["good"]
    assert len(inv.problems) == 1 and "staging" in inv.problems[0]


# -- decoding rules (core/serde.py) -----------------------------------------------------------

BASE = {"name": "erp", "host": "alpha", "type": "live", "odoo_version": "17.0", "image": "odoo"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": "x"}, "Service.steps: expected a list"),
        ({"steps": [{"name": "a", "started_at": "yesterday"}]}, "Service.steps: Step.started_at"),
        ({"steps": [1]}, "Service.steps: Step: expected an object"),
        ({"config": {"a": 1}}, "Service.config: expected str"),
        ({"type": "staging"}, "Service.type: 'staging' is not one of"),
        ({"demo": 1}, "Service.demo: expected bool"),
        ({"source": 5}, "Service.source: expected str"),
        ({"created_at": 5}, "Service.created_at: expected an ISO 8601 time"),
        ({"host": None}, "Service.host: expected str"),
    ],
)
def test_decode_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(serde.DecodeError, match=re.escape(message)):
        serde.from_dict(Service, {**BASE, **changes})


def test_decode_is_lenient_where_it_is_safe() -> None:
    s = serde.from_dict(Service, {**BASE, "created_at": "2026-01-01T00:00:00", "extra": 1})
    assert s.created_at == datetime(2026, 1, 1, tzinfo=UTC)  # naive means UTC
    assert serde.from_dict(Service, {**BASE, "status": "weird"}).status is ServiceStatus.UNKNOWN
    with pytest.raises(serde.DecodeError):
        serde.from_dict(Service, {**BASE, "status": "weird"}, strict=True)
    with pytest.raises(serde.DecodeError, match="required field 'host'"):
        serde.from_dict(Service, {"name": "x"})
    with pytest.raises(serde.DecodeError, match="Host.port: expected int"):
        serde.from_dict(Host, {"name": "a", "address": "b", "port": "22"})


def test_encode_and_decode_are_inverse() -> None:
    s = svc("erp", steps=[Step("a", "done", T0, None, "d")], config={"k": "v"}, created_at=T0)
    doc = serde.to_dict(s)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    assert serde.from_dict(Service, doc) == s


# -- files: mode, atomic writes, crash safety --------------------------------------------------


def test_file_mode_0600_whatever_the_umask(paths: AppPaths) -> None:
    old = os.umask(0)
    try:
        inv = open_inventory(paths)
        inv.add_host(Host("alpha", "x"))
    finally:
        os.umask(old)
    assert os.stat(paths.inventory).st_mode & 0o777 == 0o600
    assert os.stat(paths.lock).st_mode & 0o777 == 0o600
    assert os.stat(paths.data_dir).st_mode & 0o777 == 0o700
    os.chmod(paths.inventory, 0o644)
    open_inventory(paths)
    assert os.stat(paths.inventory).st_mode & 0o777 == 0o600


def test_no_temp_files_left_and_stale_ones_removed(inv: Inventory, paths: AppPaths) -> None:
    inv.add_service(svc("erp"))
    assert sorted(p.name for p in paths.data_dir.iterdir() if p.name.endswith(".tmp")) == []
    (paths.data_dir / ".inventory.json.abc123.tmp").write_text("{half a wri")
    open_inventory(paths)
    assert not (paths.data_dir / ".inventory.json.abc123.tmp").exists()


def _crash_writer(path: str, ready: Any) -> None:
    """Rewrite the whole service list of one host as fast as possible, forever."""
    inv = Inventory(Path(path))
    gen = inv.get_value("gen", 0)
    signalled = False
    while True:
        gen += 1
        services = [svc(f"s{j:02d}", config={"gen": str(gen)}) for j in range(20)]
        inv.replace_services_for_host("alpha", services)
        inv.set_value("gen", gen)
        if not signalled:
            ready.set()
            signalled = True


def test_kill_9_mid_write_never_breaks_the_file(paths: AppPaths) -> None:
    inv = open_inventory(paths)
    inv.add_host(Host("alpha", "x"))
    rng = random.Random(20261203)
    last_gen = 0
    for _ in range(30):
        ready = FORK.Event()
        child = FORK.Process(target=_crash_writer, args=(str(paths.inventory), ready))
        child.start()
        assert ready.wait(30), "the writer never wrote"
        time.sleep(rng.uniform(0, 0.08))
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL

        data = json.loads(paths.inventory.read_bytes())  # must always parse
        services = list(data["services"].values())
        # One transaction rewrites all twenty at once: all or nothing, never a mix.
        assert len(services) == 20
        gens = {s["config"]["gen"] for s in services}
        assert len(gens) == 1, gens
        gen = int(gens.pop())
        assert gen >= last_gen  # durable: a finished write never goes back
        last_gen = gen
        reopened = Inventory(paths.inventory)  # also clears a killed writer's temp file
        assert reopened.recovered_from is None
        assert len(reopened.list_services()) == 20
    assert last_gen > 1


# -- concurrency -------------------------------------------------------------------------------


def _adder(path: str, tag: str, count: int, go: Any) -> None:
    inv = Inventory(Path(path))
    go.wait(30)
    for i in range(count):
        inv.add_service(svc(f"{tag}-{i}"))
        if i % 10 == 0:
            inv.update_service("alpha", f"{tag}-{i}", status=ServiceStatus.RUNNING)


def test_two_writer_processes_lose_nothing(paths: AppPaths) -> None:
    inv = open_inventory(paths)
    inv.add_host(Host("alpha", "x"))
    go = FORK.Event()
    procs = [FORK.Process(target=_adder, args=(str(paths.inventory), tag, 200, go)) for tag in "ab"]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    services = inv.list_services()
    assert len(services) == 400
    assert {s.name for s in services} == {f"{t}-{i}" for t in "ab" for i in range(200)}
    assert sum(s.status is ServiceStatus.RUNNING for s in services) == 40


def test_threads_sharing_one_inventory_lose_nothing(inv: Inventory) -> None:
    def work(tag: str) -> None:
        for i in range(15):
            inv.add_service(svc(f"{tag}-{i}"))
            inv.record_operation({"kind": "create", "service": f"{tag}-{i}", "host": "alpha"})

    threads = [threading.Thread(target=work, args=(t,)) for t in ("a", "b", "c", "d")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(inv.list_services()) == 60
    assert len(inv.list_operations(limit=1000)) == 60


# -- corrupt files -----------------------------------------------------------------------------


def test_corrupt_file_is_kept_aside_and_reported(paths: AppPaths) -> None:
    paths.ensure()
    garbage = b'{"hosts": {"1": {"name": "alpha", "addr'
    paths.inventory.write_bytes(garbage)
    inv = open_inventory(paths)  # opens: the app must start, and say so loudly
    moved = inv.recovered_from
    assert moved is not None and moved.exists()
    assert moved.name.startswith("inventory.json.corrupt-")
    assert len(moved.name.split("corrupt-")[1]) == len("20261203T124501Z")
    assert moved.read_bytes() == garbage
    assert inv.list_hosts() == []
    assert raw(paths)["meta"]["1"]["schema_version"] == SCHEMA_VERSION
    # A second corrupt file in the same second does not overwrite the first one kept aside.
    paths.inventory.write_bytes(b"[1, 2")
    second = open_inventory(paths).recovered_from
    assert second is not None and second != moved
    assert moved.read_bytes() == garbage and second.read_bytes() == b"[1, 2"


@pytest.mark.parametrize(
    "garbage", [b"\x00\xff\xfe", b"[]", b'{"hosts": []}', b'{"hosts": {"x": {}}}']
)
def test_other_kinds_of_damage(paths: AppPaths, garbage: bytes) -> None:
    paths.ensure()
    paths.inventory.write_bytes(garbage)
    inv = open_inventory(paths)
    assert inv.recovered_from is not None
    assert inv.recovered_from.read_bytes() == garbage


def test_corruption_during_a_session_raises(inv: Inventory, paths: AppPaths) -> None:
    paths.inventory.write_text("not json")
    with pytest.raises(InventoryCorrupt) as err:
        inv.list_hosts()
    assert err.value.moved_to.read_text() == "not json"
    assert str(err.value.moved_to) in str(err.value) and str(paths.inventory) in str(err.value)
    assert inv.recovered_from == err.value.moved_to
    assert inv.list_hosts() == []  # a fresh inventory from now on
    paths.inventory.write_text("{{{")
    with pytest.raises(InventoryCorrupt):
        inv.add_host(Host("gamma", "x"))
    assert inv.list_hosts() == []


def test_empty_file_is_a_new_inventory(paths: AppPaths) -> None:
    paths.ensure()
    paths.inventory.write_bytes(b"")
    inv = open_inventory(paths)
    assert inv.recovered_from is None and inv.schema_version == SCHEMA_VERSION


# -- schema versions and migrations ------------------------------------------------------------


def test_newer_schema_is_refused_untouched(paths: AppPaths) -> None:
    paths.ensure()
    text = json.dumps({"meta": {"1": {"schema_version": SCHEMA_VERSION + 1}}, "hosts": {}})
    paths.inventory.write_text(text)
    with pytest.raises(SchemaTooNew, match="upgrade havsh"):
        open_inventory(paths)
    assert paths.inventory.read_text() == text


def test_v0_file_is_migrated_with_a_backup(paths: AppPaths) -> None:
    paths.ensure()
    # A bare TinyDB file: no schema stamp, no services table yet.
    v0 = {
        "_default": {},
        "hosts": {"1": {"name": "alpha", "address": "10.0.0.1", "port": 22}},
    }
    original = json.dumps(v0).encode()
    paths.inventory.write_bytes(original)
    inv = open_inventory(paths)
    assert inv.schema_version == 1
    assert inv.migrated_backup is not None
    assert inv.migrated_backup.name.startswith("inventory.json.bak-v0-")
    assert inv.migrated_backup.read_bytes() == original
    assert os.stat(inv.migrated_backup).st_mode & 0o777 == 0o600
    assert inv.get_host("alpha").address == "10.0.0.1"
    data = raw(paths)
    assert "_default" not in data and data["services"] == {}
    # Opening again migrates nothing.
    assert open_inventory(paths).migrated_backup is None


def test_migration_hook_runs_each_step(paths: AppPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = open_inventory(paths)
    inv.add_host(Host("alpha", "10.0.0.1"))
    inv.add_service(svc("erp"))
    before = paths.inventory.read_bytes()

    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        # A pretend future change: services gain a "tier" field.
        for doc in data["services"].values():
            doc["tier"] = "gold"
        return data

    monkeypatch.setattr(inventory_module, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(inventory_module.MIGRATIONS, 1, v1_to_v2)
    upgraded = Inventory(paths.inventory)
    assert upgraded.schema_version == 2
    assert upgraded.migrated_backup is not None
    assert upgraded.migrated_backup.read_bytes() == before
    (doc,) = raw(paths)["services"].values()
    assert doc["tier"] == "gold"
    assert upgraded.get_service("erp", "alpha").name == "erp"


def test_missing_migration_leaves_the_file(
    paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_inventory(paths)
    before = paths.inventory.read_bytes()
    monkeypatch.setattr(inventory_module, "SCHEMA_VERSION", 3)
    with pytest.raises(InventoryError, match="no migration from schema 1 to 2"):
        Inventory(paths.inventory)
    assert paths.inventory.read_bytes() == before


# -- operations history and values -------------------------------------------------------------


def test_operations(inv: Inventory) -> None:
    first = inv.record_operation({"kind": "create", "service": "erp", "host": "alpha"})
    second = inv.record_operation(
        {"kind": "copy", "service": "erp-copy", "host": "beta", "at": T0, "type": ServiceType.COPY}
    )
    inv.update_operation(first, state="failed", steps=[Step("dump", "failed")])
    ops = inv.list_operations()
    assert [op["id"] for op in ops] == [second, first]  # latest first
    assert ops[0]["at"] == "2026-12-03T12:45:01+00:00" and ops[0]["type"] == "copy"
    assert ops[1]["state"] == "failed" and ops[1]["steps"][0]["name"] == "dump"
    assert "started_at" in ops[1]
    assert [op["id"] for op in inv.list_operations(service="erp")] == [first]
    assert [op["id"] for op in inv.list_operations(host="beta")] == [second]
    assert len(inv.list_operations(limit=1)) == 1
    assert inv.get_operation(first)["kind"] == "create"
    with pytest.raises(NotFound):
        inv.update_operation(999, state="x")


def test_operations_are_pruned(inv: Inventory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_module, "OPERATIONS_KEEP", 5)
    ids = [inv.record_operation({"kind": "k", "n": i}) for i in range(8)]
    kept = inv.list_operations(limit=100)
    assert [op["id"] for op in kept] == ids[::-1][:5]
    assert len(set(ids)) == 8  # ids are never reused


def test_values(inv: Inventory) -> None:
    assert inv.get_value("ui.last-host", "none") == "none"
    inv.set_value("ui.last-host", "alpha")
    inv.set_value("ui.last-host", "beta")
    assert inv.get_value("ui.last-host") == "beta"
    inv.delete_value("ui.last-host")
    assert inv.get_value("ui.last-host") is None


# -- a big inventory ---------------------------------------------------------------------------


def test_load_time_1000_services_on_50_hosts(
    paths: AppPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = open_inventory(paths)
    for h in range(50):
        host = f"host{h:02d}"
        inv.add_host(Host(host, f"10.1.0.{h}"))
        inv.replace_services_for_host(
            host,
            [
                svc(
                    f"svc{i:02d}",
                    host,
                    status=ServiceStatus.RUNNING,
                    database=f"svc{i:02d}",
                    url=f"https://svc{i:02d}.{host}.example.com",
                    config={"workers": "2"},
                    steps=[Step("create", "done", T0, T0, "")],
                )
                for i in range(20)
            ],
        )
    size = paths.inventory.stat().st_size
    fresh = Inventory(paths.inventory)
    wall, cpu = [], []
    for _ in range(9):
        start, start_cpu = time.perf_counter(), time.process_time()
        snap = fresh.snapshot()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert len(snap.services) == 1000 and len(snap.hosts) == 50
    with capsys.disabled():
        # CPU time too: on a shared test machine wall time mostly measures the neighbours.
        print(
            f"\n[inventory] 1,000 services on 50 hosts ({size / 1024:.0f} KiB), snapshot() "
            f"over {len(wall)} loads: wall median {statistics.median(wall) * 1000:.1f} ms "
            f"(best {min(wall) * 1000:.1f}), CPU median {statistics.median(cpu) * 1000:.1f} ms"
        )
