"""Services wired to backups and the proxy, on the real testbed: a new Live service gets its
daily backups (a failure there is only a warning), a delete forgets them, `havsh service rm`
takes a safety backup first (by default for Live) and says where it went, and a config
rewrite keeps the server behind the proxy (proxy_mode)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import docker
import pytest

from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.ops import backup as bk
from havsh_tui.ops import config as config_ops
from havsh_tui.ops import services as ops
from havsh_tui.ops.backup.model import policy_key
from havsh_tui.ops.reporter import RecordingReporter

IMAGE = "havsh-test/odoo:17.0"
#: Every slug this file makes (prefix w3-: unique to this file).
SLUGS = ("w3-live", "w3-copy", "w3-plain", "w3-warn", "w3-cli-live", "w3-cli-test", "w3-cli-nobk",
         "w3-conf")

pytestmark = pytest.mark.usefixtures("clean_hosts")


@pytest.fixture(autouse=True)
def _names(cleanup):
    cleanup.add(*SLUGS)


@pytest.fixture(autouse=True)
def _backup_dirs():
    """The safety backups land in the host's default directory; both test hosts see this
    machine's /var/lib/havsh/backups. Only this file's service directories are removed."""
    def wipe():
        for slug in SLUGS:
            path = Path(bk.DEFAULT_HOST_ROOT) / slug
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    wipe()
    yield
    wipe()


def _local(testbed, host: str):
    return docker.DockerClient(base_url="unix://" + testbed.hosts[host].docker_socket,
                               version="1.41")


def _create(inventory, secret_store, pool, name, type_, host="hosta", reporter=None):
    return ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name=name, host=host, type=type_, odoo_version="17.0", image=IMAGE), reporter)


def _scheduler(testbed, host: str):
    client = _local(testbed, host)
    try:
        return client.containers.list(all=True, filters={"name": bk.SCHEDULER_CONTAINER})
    finally:
        client.close()


def _drop_scheduler_if_ours(inventory, secret_store, pool, host: str) -> None:
    """After a failed test: make the host's scheduler match this test's inventory (none of
    its services left), as a delete would have. Another test's scheduler is not ours to
    touch otherwise (this is the product's own path, which only does that)."""
    try:
        for s in inventory.list_services(host=host):
            inventory.delete_value(policy_key(s.host, s.name))
        bk.configure_scheduler(inventory, secret_store, pool, host)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


@pytest.mark.slow
def test_a_new_live_service_gets_daily_backups_and_a_delete_forgets_them(
        inventory, secret_store, pool, host_b, testbed):
    try:
        # A Test service: no policy, nothing scheduled for it.
        plain = _create(inventory, secret_store, pool, "w3-plain", ServiceType.TEST,
                        host="hostb").service
        assert inventory.get_value(policy_key("hostb", "w3-plain")) is None
        assert bk.get_policy(inventory, plain).destinations == []

        rep = RecordingReporter()
        live = _create(inventory, secret_store, pool, "w3-live", ServiceType.LIVE,
                       host="hostb", reporter=rep).service
        assert live.status is ServiceStatus.RUNNING
        # (The shared proxy may warn about settings another test gave it: not ours.)
        assert not [a for k, a in rep.events if k == "warning" and "backup" in a[0]]
        assert any(ln.startswith("backups: daily to host, newest 7 kept") for ln in rep.lines())
        (dest,) = bk.get_policy(inventory, live).destinations
        assert (dest.spec, dest.frequency, dest.keep, dest.primary) == ("host", "daily", 7, True)
        # The scheduler on B runs it, and only it of this inventory's services.
        status = bk.scheduler_status(pool, host_b)
        assert status["running"]
        mine = [ln.split()[5] for ln in status["schedules"]]
        assert mine == ["w3-live"], status["schedules"]

        # A Copy of the Live service (made by ops/copy, not create_service) gets none.
        from havsh_tui.ops import copy as cp

        copied = cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
            source_host="hostb", source="w3-live", name="w3-copy"))
        assert copied.type is ServiceType.COPY
        assert inventory.get_value(policy_key("hostb", "w3-copy")) is None
        mine = [ln.split()[5] for ln in bk.scheduler_status(pool, host_b)["schedules"]]
        assert mine == ["w3-live"]
        ops.delete_service(inventory, secret_store, pool, copied)

        # Deleting the Live service drops its policy and takes it out of the scheduler
        # (no schedule of this inventory is left on B: the container goes).
        ops.delete_service(inventory, secret_store, pool, live, confirm_name="w3-live")
        assert inventory.get_value(policy_key("hostb", "w3-live")) is None
        assert _scheduler(testbed, "hostb") == []
        ops.delete_service(inventory, secret_store, pool, plain)
    finally:
        _drop_scheduler_if_ours(inventory, secret_store, pool, "hostb")


@pytest.mark.slow
def test_backups_that_cannot_be_scheduled_do_not_fail_the_creation(
        inventory, secret_store, pool, host_a, testbed, monkeypatch):
    from havsh_tui.ops.backup import schedule

    def down(*args, **kwargs):
        raise bk.BackupError("the scheduler cannot be set up (injected)")

    # Failure injection: the scheduler step only; everything else is the real host.
    monkeypatch.setattr(schedule, "configure_scheduler", down)
    rep = RecordingReporter()
    result = _create(inventory, secret_store, pool, "w3-warn", ServiceType.LIVE, reporter=rep)
    warnings = [a[0] for k, a in rep.events if k == "warning" and "backup" in a[0]]
    assert len(warnings) == 1 and "could not be scheduled" in warnings[0], warnings
    assert "injected" in warnings[0] and "havsh backup schedule w3-warn" in warnings[0]
    # The service stays, running and healthy.
    assert result.service.status is ServiceStatus.RUNNING
    record = inventory.get_service("w3-warn", host="hosta")
    assert record.status is ServiceStatus.RUNNING and record.failed_step is None
    ops.wait_healthy(pool.session(host_a), record, RecordingReporter(), timeout=30)
    # A delete whose forget_backups fails (same injection) still deletes, with a warning.
    rep = RecordingReporter()
    removed = ops.delete_service(inventory, secret_store, pool, record, confirm_name="w3-warn",
                                 reporter=rep)
    assert "container havsh-w3-warn" in removed
    assert "w3-warn" not in {s.name for s in inventory.list_services()}
    warnings = [a[0] for k, a in rep.events if k == "warning" and "backup" in a[0]]
    assert len(warnings) == 1 and "is deleted, but the backup scheduler" in warnings[0]


def _rm(args: list[str]) -> tuple[int, dict | None, str]:
    from click.testing import CliRunner

    from havsh_tui.cli import cli

    r = CliRunner().invoke(cli, ["service", "rm", *args, "--json"])
    lines = r.stdout.strip().splitlines() if r.stdout else []
    data = json.loads(lines[-1]) if lines else None
    return r.exit_code, data, r.output


@pytest.mark.slow
def test_cli_rm_backs_up_live_by_default_and_says_where(inventory, secret_store, pool, host_a,
                                                       testbed, sql, havsh_paths):
    try:
        _create(inventory, secret_store, pool, "w3-cli-live", ServiceType.LIVE)
        _create(inventory, secret_store, pool, "w3-cli-test", ServiceType.TEST)
        _create(inventory, secret_store, pool, "w3-cli-nobk", ServiceType.LIVE)

        # Live, no flag: a safety backup first, in the host's default directory.
        code, data, out = _rm(["w3-cli-live", "--confirm-name", "w3-cli-live"])
        assert code == 0, out
        assert data["removed"] == "w3-cli-live"
        where = data["backup"]
        prefix = f"hosta:{bk.DEFAULT_HOST_ROOT}/w3-cli-live/"
        assert where.startswith(prefix) and where.endswith(".zip"), where
        assert Path(where.split(":", 1)[1]).is_file()
        (record,) = bk.list_backups(inventory, pool, host="hosta", service_name="w3-cli-live")
        assert record.kind == "safety" and record.where == where
        assert sql(host_a, "SELECT datname FROM pg_database WHERE datname = 'w3_cli_live';") == []

        # Live with --no-backup: none.
        code, data, out = _rm(["w3-cli-nobk", "--confirm-name", "w3-cli-nobk", "--no-backup"])
        assert code == 0, out
        assert data["backup"] is None
        assert not (Path(bk.DEFAULT_HOST_ROOT) / "w3-cli-nobk").exists() or not any(
            (Path(bk.DEFAULT_HOST_ROOT) / "w3-cli-nobk").glob("*.zip"))

        # Test, no flag: none; but --backup asks for one. A refused delete (no --yes) takes
        # no backup either: the question comes first.
        code, data, out = _rm(["w3-cli-test"])
        assert code == 1 and "needs --yes" in out
        assert not any((Path(bk.DEFAULT_HOST_ROOT) / "w3-cli-test").glob("*.zip"))
        code, data, out = _rm(["w3-cli-test", "--yes", "--backup"])
        assert code == 0, out
        assert data["backup"].startswith(f"hosta:{bk.DEFAULT_HOST_ROOT}/w3-cli-test/")
        # The inventory is the CLI's too: all three are gone.
        from havsh_tui.core.inventory import open_inventory

        names = {s.name for s in open_inventory(havsh_paths).list_services()}
        assert not names & {"w3-cli-live", "w3-cli-test", "w3-cli-nobk"}
    finally:
        _drop_scheduler_if_ours(inventory, secret_store, pool, "hosta")


@pytest.mark.slow
def test_cli_rm_with_a_failing_backup_deletes_nothing(inventory, secret_store, pool, host_a,
                                                      testbed, sql, monkeypatch):
    _create(inventory, secret_store, pool, "w3-cli-test", ServiceType.TEST)
    # The backup's destination: a host directory that is a file (it cannot be written).
    blocker = Path(bk.DEFAULT_HOST_ROOT) / "w3-cli-test"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory\n")
    code, data, out = _rm(["w3-cli-test", "--yes", "--backup"])
    assert code == 1, out
    assert '"type": "backup_error"' in out and "cannot create /out/w3-cli-test" in out
    # Still there: record, container, database.
    s = inventory.get_service("w3-cli-test", host="hosta")
    assert s.status is not ServiceStatus.DESTROYING
    assert _local(testbed, "hosta").containers.get("havsh-w3-cli-test")
    assert sql(host_a, "SELECT datname FROM pg_database WHERE datname = 'w3_cli_test';") == [
        ["w3_cli_test"]]


@pytest.mark.slow
def test_a_config_rewrite_keeps_proxy_mode(inventory, secret_store, pool, host_a, testbed):
    svc = _create(inventory, secret_store, pool, "w3-conf", ServiceType.TEST).service
    client = pool.session(host_a).docker()
    before = config_ops.read_conf(client, "havsh-w3-conf")
    assert "proxy_mode = True" in before.splitlines()
    updated = config_ops.set_service_config(inventory, pool, svc, {"workers": "0",
                                                                     "limit_time_cpu": "600"},
                                            restart=True)
    after = config_ops.read_conf(client, "havsh-w3-conf").splitlines()
    assert "proxy_mode = True" in after and after.count("proxy_mode = True") == 1
    assert "limit_time_cpu = 600" in after
    assert updated.config == {"workers": "0", "limit_time_cpu": "600"}
    ops.wait_healthy(pool.session(host_a), updated, RecordingReporter(), timeout=60)
    # A user's own proxy_mode wins, as at creation.
    updated = config_ops.set_service_config(inventory, pool, updated, {"proxy_mode": "False"})
    after = config_ops.read_conf(client, "havsh-w3-conf").splitlines()
    assert "proxy_mode = False" in after and "proxy_mode = True" not in after
