"""Services end to end on the real testbed, with the stand-in Odoo image."""

from __future__ import annotations

import threading

import docker
import pytest

from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.core.names import InvalidName
from havsh_tui.ops import services as ops
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.reporter import RecordingReporter
from havsh_tui.ops.rescan import rescan_all
from havsh_tui.remote.http import http_request

pytestmark = pytest.mark.usefixtures("clean_hosts")


@pytest.fixture(autouse=True)
def _names(cleanup):
    cleanup.add("erp-prod", "showroom", "twin", "ghost", "notodoo", "nowhere", "orphan")


def _local(testbed, host):
    return docker.DockerClient(base_url="unix://" + testbed.hosts[host.name].docker_socket,
                               version="1.41")


def _health(pool, host, slug):
    s = pool.session(host)
    ip = ops.container_address(s.docker(), f"havsh-{slug}")
    return http_request(s.ssh, ip, 8069, "GET", "/web/health").json()


def _leftovers(testbed, host, slug, sql):
    c = _local(testbed, host)
    containers = c.containers.list(all=True, filters={"label": f"sh.hav.service={slug}"})
    volumes = [v.name for v in c.volumes.list() if v.name.startswith(f"havsh-{slug}-")]
    db = slug.replace("-", "_")
    dbs = sql(host, f"SELECT datname FROM pg_database WHERE datname = '{db}';")
    roles = sql(host, f"SELECT rolname FROM pg_roles WHERE rolname = 'havsh_{db}';")
    return containers, volumes, dbs, roles


@pytest.mark.slow
def test_live_on_a_demo_on_b_full_lifecycle(inventory, secret_store, pool, host_a, host_b,
                                            testbed, sql, havsh_paths):
    rep = RecordingReporter()
    live = ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name="erp-prod", host="hosta", type=ServiceType.LIVE, odoo_version="17.0",
        image="havsh-test/odoo:17.0", config={"workers": "0"}), rep)
    ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name="showroom", host="hostb", type=ServiceType.DEMO, odoo_version="17.0",
        image="havsh-test/odoo:17.0"))
    assert live.service.status is ServiceStatus.RUNNING
    assert [s for s, st in rep.steps() if st == "done"][-3:] == ["container", "start", "health"]
    assert live.generated_password and len(live.admin_password) >= 12
    # A Live service gets daily backups on its host; the Demo one none.
    assert "erp-prod" in _scheduled(pool, host_a)
    assert "showroom" not in _scheduled(pool, host_b)

    # The database, with demo rows only in the Demo service.
    live_partners = int(sql(host_a, "SELECT count(*) FROM res_partner;", "erp_prod")[0][0])
    demo_partners = int(sql(host_b, "SELECT count(*) FROM res_partner;", "showroom")[0][0])
    assert demo_partners >= live_partners + 5
    assert sql(host_a, "SELECT state FROM ir_module_module WHERE name = 'base';",
               "erp_prod") == [["installed"]]
    # Owned by the service's own role.
    assert sql(host_a, "SELECT pg_get_userbyid(datdba) FROM pg_database "
               "WHERE datname = 'erp_prod';") == [["havsh_erp_prod"]]
    # The admin password was changed from 'admin' to a pbkdf2 hash.
    pw = sql(host_a, "SELECT password FROM res_users WHERE login = 'admin';", "erp_prod")[0][0]
    assert pw.startswith("$pbkdf2-sha512$")

    # Labels, volume, /web/health.
    ca = _local(testbed, host_a).containers.get("havsh-erp-prod")
    assert ca.labels["sh.hav.managed"] == "1"
    assert ca.labels["sh.hav.service"] == "erp-prod"
    assert ca.labels["sh.hav.type"] == "live"
    assert ca.labels["sh.hav.odoo"] == "17.0"
    assert any(m["Name"] == "havsh-erp-prod-data" for m in ca.attrs["Mounts"])
    assert _local(testbed, host_b).containers.get("havsh-showroom").labels["sh.hav.type"] == "demo"
    assert _health(pool, host_a, "erp-prod") == {"status": "pass"}
    assert _health(pool, host_b, "showroom") == {"status": "pass"}
    env = dict(e.split("=", 1) for e in ca.attrs["Config"]["Env"])
    assert env["HOST"] == "havsh-postgres" and env["USER"] == "havsh_erp_prod"

    # Stop keeps the data; start and restart bring it back.
    s = inventory.get_service("erp-prod", host="hosta")
    assert ops.stop_service(inventory, pool, s).status is ServiceStatus.STOPPED
    assert _local(testbed, host_a).containers.get("havsh-erp-prod").status == "exited"
    ops.start_service(inventory, pool, s)
    ops.wait_healthy(pool.session(host_a), s, RecordingReporter())
    ops.restart_service(inventory, pool, s)
    ops.wait_healthy(pool.session(host_a), s, RecordingReporter())

    # Neutralize: refused on Live without the typed name, then verified.
    with pytest.raises(ops.NeedsConfirmation):
        ops.neutralize_service(inventory, secret_store, pool, s)
    check = ops.neutralize_service(inventory, secret_store, pool, s, confirm_name="erp-prod")
    assert check.ok and check.flag and check.live_mail_servers == 0
    assert sql(host_a, "SELECT lower(value) FROM ir_config_parameter "
               "WHERE key = 'database.is_neutralized';", "erp_prod") == [["true"]]
    d = inventory.get_service("showroom", host="hostb")
    assert ops.neutralize_service(inventory, secret_store, pool, d).ok
    # Twice is safe: the flag is checked first.
    assert ops.neutralize_service(inventory, secret_store, pool, d).ok

    # Rescan after losing the inventory file restores both services.
    havsh_paths.inventory.unlink()
    from havsh_tui.core.inventory import open_inventory

    fresh = open_inventory(havsh_paths)
    fresh.add_host(host_a)
    fresh.add_host(host_b)
    results = rescan_all(fresh, pool)
    # Other tests (other xdist workers) may have services on these hosts too.
    assert {"erp-prod", "showroom"} <= set(sum((r.adopted for r in results), []))
    # Forget theirs again (the inventory only): clean_hosts removes, after this test, every
    # service this inventory knows, and must not take other tests' services with it.
    for r in results:
        for slug in r.adopted:
            if slug not in ("erp-prod", "showroom"):
                fresh.remove_service(r.host, slug)
    adopted = fresh.get_service("erp-prod", host="hosta")
    assert adopted.type is ServiceType.LIVE and adopted.status is ServiceStatus.RUNNING

    # Delete: Live needs the name; then nothing is left.
    with pytest.raises(ops.NeedsConfirmation):
        ops.delete_service(fresh, secret_store, pool, adopted)
    ops.delete_service(fresh, secret_store, pool, adopted, confirm_name="erp-prod")
    ops.delete_service(fresh, secret_store, pool, fresh.get_service("showroom", host="hostb"))
    assert _leftovers(testbed, host_a, "erp-prod", sql) == ([], [], [], [])
    assert _leftovers(testbed, host_b, "showroom", sql) == ([], [], [], [])
    assert not {s.name for s in fresh.list_services()} & {"erp-prod", "showroom"}
    # The lost inventory held erp-prod's backup policy; the delete from this one takes its
    # schedule out of A's scheduler all the same.
    assert "erp-prod" not in _scheduled(pool, host_a)


def _scheduled(pool, host) -> list[str]:
    from havsh_tui.ops.backup import scheduler_status

    return [line.split()[5] for line in scheduler_status(pool, host)["schedules"]]


def test_bad_names_are_refused(inventory, secret_store, pool):
    for bad in ("A", "Erp", "x", "1erp", "erp-", "www", "postgres", "a" * 41, "erp_prod"):
        with pytest.raises(InvalidName):
            ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
                name=bad, host="hosta", type=ServiceType.TEST))
    assert inventory.list_services() == []


def test_duplicate_and_concurrent_creates(inventory, secret_store, pool, host_a, testbed, sql):
    errors: list[Exception] = []
    done: list[object] = []

    def create():
        try:
            done.append(ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
                name="twin", host="hosta", type=ServiceType.TEST,
                image="havsh-test/odoo:17.0")))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 1 and len(errors) == 1, errors
    assert "exists" in str(errors[0])
    with pytest.raises(Exception, match="exists"):
        create_twin = ops.CreateSpec(name="twin", host="hosta", type=ServiceType.TEST)
        ops.create_service(inventory, secret_store, pool, create_twin)
    assert len(inventory.list_services()) == 1


def test_image_that_does_not_exist(inventory, secret_store, pool, host_a, testbed, sql):
    with pytest.raises(ops.StepFailed) as info:
        ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
            name="ghost", host="hosta", type=ServiceType.TEST,
            image="havsh-test/no-such-image:1.0"))
    assert info.value.step == "image"
    assert "push-image" in str(info.value)
    s = inventory.get_service("ghost", host="hosta")
    assert s.status is ServiceStatus.FAILED and s.failed_step == "image"
    assert _leftovers(testbed, host_a, "ghost", sql) == ([], [], [], [])


def test_image_that_is_not_odoo(inventory, secret_store, pool, host_a, testbed, sql):
    with pytest.raises(ops.StepFailed) as info:
        ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
            name="notodoo", host="hosta", type=ServiceType.TEST,
            image="havsh-test/caddy:2"))
    assert info.value.step == "init"
    s = inventory.get_service("notodoo", host="hosta")
    assert s.status is ServiceStatus.FAILED and s.failed_step == "init"
    assert s.last_error
    assert _leftovers(testbed, host_a, "notodoo", sql) == ([], [], [], [])
    # A failed creation is tried again under its name (its record is replaced).
    assert ops.is_failed_creation(s)
    again = ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name="notodoo", host="hosta", type=ServiceType.TEST, image="havsh-test/odoo:17.0"))
    assert again.service.status is ServiceStatus.RUNNING
    assert [x.status for x in inventory.list_services(host="hosta")
            if x.name == "notodoo"] == [ServiceStatus.RUNNING]
    # One that ran is no failed creation: the name stays taken.
    with pytest.raises(OpsError, match="exists"):
        ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
            name="notodoo", host="hosta", type=ServiceType.TEST))


def test_a_create_never_starts_over_what_the_host_holds(inventory, secret_store, pool, host_a,
                                                         testbed, sql):
    # What a lost service left (its container removed by hand, say): a volume and a database
    # named for the slug. The create must refuse, and its cleanup must not drop them.
    local = _local(testbed, host_a)
    local.volumes.create("havsh-orphan-data", labels={"sh.hav.test": "1"})
    sql(host_a, 'CREATE DATABASE "orphan";')
    with pytest.raises(ops.StepFailed) as info:
        ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
            name="orphan", host="hosta", type=ServiceType.TEST, image="havsh-test/odoo:17.0"))
    assert info.value.step == "check names"
    assert "volume havsh-orphan-data" in str(info.value) and "database orphan" in str(info.value)
    # Untouched.
    assert [v.name for v in local.volumes.list() if v.name == "havsh-orphan-data"]
    assert sql(host_a, "SELECT datname FROM pg_database WHERE datname = 'orphan';") == [["orphan"]]
    s = inventory.get_service("orphan", host="hosta")
    assert s.status is ServiceStatus.FAILED and s.failed_step == "check names"


def test_unreachable_host_at_create(inventory, secret_store, pool, host_a):
    from havsh_tui.core.model import Host

    inventory.add_host(Host(name="deadhost", address="127.0.0.1", port=2299, user="root",
                            identity_file=host_a.identity_file))
    with pytest.raises(OpsError) as info:
        ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
            name="nowhere", host="deadhost", type=ServiceType.TEST))
    assert "refused" in str(info.value)
    assert inventory.get_service("nowhere", host="deadhost").status is ServiceStatus.FAILED


# -- leftovers of a cut restore -----------------------------------------------------------------
@pytest.fixture
def _w3_extra_databases(cleanup, testbed):
    """wipe_service drops the service's own database only: drop w3-left's leftovers too
    (before its role goes), should the test fail before its delete."""
    cleanup.add("w3-left")
    yield
    for h in testbed.hosts.values():
        client = docker.DockerClient(base_url=f"unix://{h.docker_socket}", version="1.41")
        try:
            sql = "".join(f'DROP DATABASE IF EXISTS "w3_left__{s}" WITH (FORCE);\n'
                          for s in ("restore", "old"))
            client.containers.get("havsh-postgres").exec_run(
                ["sh", "-c", 'printf "%s" "$1" | psql -X -q -U postgres', "sh", sql],
                user="postgres")
        except docker.errors.NotFound:
            pass
        finally:
            client.close()


@pytest.mark.usefixtures("_w3_extra_databases")
def test_delete_drops_the_leftovers_of_a_cut_restore(inventory, secret_store, pool, host_a,
                                                     testbed, sql):
    from havsh_tui.ops.bootstrap import psql

    svc = ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name="w3-left", host="hosta", type=ServiceType.TEST, image="havsh-test/odoo:17.0",
    )).service
    client = pool.session(host_a).docker()
    # What a restore cut between its load and its last step leaves: <db>__restore (the
    # loaded copy) and <db>__old (the data swapped out), both owned by the service's role.
    for suffix in ("__restore", "__old"):
        psql(client, "CREATE DATABASE :\"db\" OWNER :\"role\" TEMPLATE template0;\n",
             variables={"db": "w3_left" + suffix, "role": "havsh_w3_left"})
    # A namesake that only starts the same is not the service's: it stays.
    psql(client, "CREATE DATABASE :\"db\" TEMPLATE template0;\n",
         variables={"db": "w3_left__other"})
    try:
        removed = ops.delete_service(inventory, secret_store, pool, svc)
        assert {"database w3_left", "database w3_left__restore", "database w3_left__old",
                "role havsh_w3_left"} <= set(removed)
        left = sql(host_a, "SELECT datname FROM pg_database WHERE datname LIKE 'w3_left%' "
                           "ORDER BY 1;")
        assert left == [["w3_left__other"]]
        assert _leftovers(testbed, host_a, "w3-left", sql) == ([], [], [], [])
        # Twice is safe: nothing left to drop.
        assert ops.drop_database_and_role(client, "w3-left") == []
    finally:
        psql(client, "DROP DATABASE IF EXISTS :\"db\";\n", variables={"db": "w3_left__other"})
