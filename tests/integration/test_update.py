"""ops/update (recreate a service's container from another image, same volume) and
ops/config (rewrite odoo.conf in the container) on the real testbed, with the stand-in."""

from __future__ import annotations

import uuid

import docker
import pytest

from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.ops import config as config_ops
from havsh_tui.ops import services as ops
from havsh_tui.ops import update as update_ops
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.odoo import ConfigError
from havsh_tui.ops.reporter import RecordingReporter
from havsh_tui.remote.http import http_request

pytestmark = pytest.mark.usefixtures("clean_hosts")

SLUG = "upd-a"


@pytest.fixture(autouse=True)
def _names(cleanup):
    cleanup.add(SLUG)


def _local(testbed, name: str) -> docker.DockerClient:
    return docker.DockerClient(base_url="unix://" + testbed.hosts[name].docker_socket,
                               version="1.41")


@pytest.fixture
def tags(testbed):
    """Image tags this test makes on an engine (by the engine's local socket: test setup),
    removed afterwards. Only tags: the images themselves are the testbed's."""
    made: list[tuple[str, str]] = []

    def tag(host: str, source: str, ref: str) -> str:
        repo, _, t = ref.rpartition(":")
        _local(testbed, host).images.get(source).tag(repo, t)
        made.append((host, ref))
        return ref

    yield tag
    for host, ref in made:
        try:
            _local(testbed, host).images.remove(ref, noprune=True)
        except docker.errors.APIError:
            pass


def _exec(pool, host, container: str, script: str) -> str:
    client = pool.session(host).docker()
    ex = client.api.exec_create(container, ["sh", "-c", script])
    return client.api.exec_start(ex["Id"]).decode()


def _health(pool, host, slug: str) -> dict:
    session = pool.session(host)
    ip = ops.container_address(session.docker(), f"havsh-{slug}")
    return http_request(session.ssh, ip, 8069, "GET", "/web/health").json()


@pytest.fixture
def service(inventory, secret_store, pool):
    return ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name=SLUG, host="hosta", type=ServiceType.TEST, odoo_version="17.0",
        image="havsh-test/odoo:17.0")).service


@pytest.mark.slow
def test_config_is_written_into_the_container_and_recorded(inventory, pool, host_a, service):
    rep = RecordingReporter()
    updated = config_ops.set_service_config(
        inventory, pool, service, "# tuning\nworkers = 0\nlimit_time_real = 321\n", rep)
    assert updated.config == {"workers": "0", "limit_time_real": "321"}
    assert inventory.get_service(SLUG, host="hosta").config == updated.config
    conf = config_ops.read_conf(pool.session(host_a).docker(), f"havsh-{SLUG}")
    assert "limit_time_real = 321" in conf and "db_name = upd_a" in conf
    assert ("write odoo.conf", "done") in rep.steps()

    # Refused before anything is written: a managed key.
    with pytest.raises(ConfigError, match="db_password"):
        config_ops.set_service_config(inventory, pool, updated, "db_password = x\n")
    assert "limit_time_real = 321" in config_ops.read_conf(pool.session(host_a).docker(),
                                                           f"havsh-{SLUG}")

    # Applied at a restart: the server comes back healthy with the new file.
    config_ops.set_service_config(inventory, pool, updated, {"workers": "0"}, restart=True)
    ops.wait_healthy(pool.session(host_a), updated, RecordingReporter(), timeout=120)
    assert _health(pool, host_a, SLUG)["status"] == "pass"


@pytest.mark.slow
def test_update_to_a_local_image_keeps_the_volume(inventory, secret_store, pool, host_a,
                                                  service, tags):
    ref = tags("hosta", "havsh-test/odoo:17.0", f"havsh-test/odoo:17.0-upd{uuid.uuid4().hex[:6]}")
    cname = f"havsh-{SLUG}"
    _exec(pool, host_a, cname, "echo kept > /var/lib/odoo/marker")
    old_id = pool.session(host_a).docker().api.inspect_container(cname)["Id"]
    rep = RecordingReporter()
    updated = update_ops.update_image(inventory, secret_store, pool, service, ref, rep,
                                      pull=False)
    assert updated.image == ref and updated.status is ServiceStatus.RUNNING
    client = pool.session(host_a).docker()
    attrs = client.api.inspect_container(cname)
    assert attrs["Id"] != old_id and attrs["Config"]["Image"] == ref
    assert attrs["Config"]["Labels"]["sh.hav.odoo"] == "17.0"
    # The same volume: the filestore and the marker survive.
    assert _exec(pool, host_a, cname, "cat /var/lib/odoo/marker").strip() == "kept"
    assert _health(pool, host_a, SLUG)["status"] == "pass"
    # The old container is gone; the record follows.
    names = [c["Names"][0] for c in client.api.containers(
        all=True, filters={"label": f"sh.hav.service={SLUG}"})]
    assert names == [f"/{cname}"]
    stored = inventory.get_service(SLUG, host="hosta")
    assert stored.image == ref and stored.container_id == attrs["Id"]
    assert [s for s, st in rep.steps() if st == "done"][-3:] == ["start", "health",
                                                                 "remove previous"]


@pytest.mark.slow
def test_update_pushes_the_image_from_another_host(inventory, secret_store, pool, host_a,
                                                   host_b, service, tags, testbed):
    ref = tags("hostb", "havsh-test/odoo:17.0", f"havsh-test/odoo:17.0-push{uuid.uuid4().hex[:6]}")
    rep = RecordingReporter()
    try:
        updated = update_ops.update_image(
            inventory, secret_store, pool, service, ref, rep,
            push_from=pool.session(host_b).docker(), push_from_name="hostb")
    finally:
        # The pushed tag landed on A too: remove it there as well.
        try:
            _local(testbed, "hosta").images.remove(ref, noprune=True)
        except docker.errors.APIError:
            pass
    assert updated.image == ref
    assert ("push image", "done") in rep.steps()
    assert any(kind == "progress" for kind, _ in rep.events), "bytes moved are reported"


@pytest.mark.slow
def test_a_broken_image_rolls_back(inventory, secret_store, pool, host_a, service, tags):
    # An image that is not Odoo, tagged as if it were 17.0: it has no /etc/odoo, so the new
    # container is refused half-made (or, with one, would exit at once).
    ref = tags("hosta", "havsh-test/postgres:15",
               f"havsh-test/postgres:17.0-broken{uuid.uuid4().hex[:6]}")
    cname = f"havsh-{SLUG}"
    with pytest.raises(ops.StepFailed) as failed:
        update_ops.update_image(inventory, secret_store, pool, service, ref,
                                RecordingReporter(), pull=False)
    assert failed.value.step in ("container", "start", "health")
    client = pool.session(host_a).docker()
    attrs = client.api.inspect_container(cname)
    assert attrs["Config"]["Image"] == "havsh-test/odoo:17.0" and attrs["State"]["Running"]
    assert _health(pool, host_a, SLUG)["status"] == "pass"
    leftovers = [c["Names"][0] for c in client.api.containers(
        all=True, filters={"label": f"sh.hav.service={SLUG}"})]
    assert leftovers == [f"/{cname}"]
    stored = inventory.get_service(SLUG, host="hosta")
    assert stored.status is ServiceStatus.RUNNING and stored.image == "havsh-test/odoo:17.0"
    assert stored.failed_step == failed.value.step and stored.last_error


def test_refusals(inventory, secret_store, pool, host_a):
    from havsh_tui.core.model import Service

    svc = Service(name="upd-none", host="hosta", type=ServiceType.TEST, odoo_version="17.0",
                  image="havsh-test/odoo:17.0", status=ServiceStatus.RUNNING,
                  database="upd_none")
    inventory.add_service(svc)
    with pytest.raises(OpsError, match="not an image reference"):
        update_ops.update_image(inventory, secret_store, pool, svc, "Bad Ref")
    with pytest.raises(OpsError, match="major version needs a database upgrade"):
        update_ops.update_image(inventory, secret_store, pool, svc, "havsh-test/odoo:18.0")
    with pytest.raises(OpsError, match="database password"):
        update_ops.update_image(inventory, secret_store, pool, svc, "havsh-test/odoo:17.0")


@pytest.mark.slow
def test_update_gives_a_new_database_password_to_one_the_entrypoint_cannot_pass(
        inventory, secret_store, pool, host_a, service):
    # Earlier builds drew copy and restore passwords with token_urlsafe: one in 64 began with
    # '-', which the entrypoint's wait-for-psql.py takes for an option (exit 2, restart loop).
    from havsh_tui.core import secrets as sk
    from havsh_tui.core.names import role_name
    from havsh_tui.ops.bootstrap import psql

    client = pool.session(host_a).docker()
    bad = "-Fq3" + "x" * 28
    psql(client, "ALTER ROLE :\"role\" PASSWORD :'pw';\n",
         variables={"role": role_name(SLUG), "pw": bad})
    key = sk.service_db_password_key("hosta", SLUG)
    secret_store.set(key, bad)
    rep = RecordingReporter()
    updated = update_ops.update_image(inventory, secret_store, pool, service, service.image,
                                      rep, pull=False)
    assert updated.status is ServiceStatus.RUNNING
    assert ("database password", "done") in rep.steps()
    new = secret_store.get(key)
    assert new != bad and sk.password_usable(new)
    env = client.api.inspect_container(f"havsh-{SLUG}")["Config"]["Env"]
    assert f"PASSWORD={new}" in env
    assert _health(pool, host_a, SLUG)["status"] == "pass"
