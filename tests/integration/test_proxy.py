"""Hostnames on the real testbed: havsh-proxy (Caddy) on host A and host B.

Two services on each host behind its proxy, with a base domain (a.havsh.test, b.havsh.test)
and `tls internal` (no ACME server can be reached here). Requests go the way a browser's
would: curl to the proxy's published ports on the host's own address (127.0.0.1 for A, and
10.213.9.2 from inside netns hostb for B) with --resolve, never to container addresses.
The proxy container is shared with the other engineers' tests on these hosts, so this file
only ever changes its own routes (services px-*, hostnames *.px.test and the base domains,
which it restores at the end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from havsh_tui.cli import cli
from havsh_tui.core.model import Host, ServiceStatus, ServiceType
from havsh_tui.ops import proxy
from havsh_tui.ops import services as ops
from havsh_tui.ops.bootstrap import bootstrap_host, psql
from havsh_tui.ops.copy import CopySpec, copy_service
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.proxy import HostnameTaken, InvalidHostname
from tests.integration.conftest import _host, wipe_service

pytestmark = pytest.mark.slow

BASE = {"hosta": "a.havsh.test", "hostb": "b.havsh.test"}
SERVICES = {"hosta": ("px-a1", "px-a2"), "hostb": ("px-b1", "px-b2")}
EXTRA = ("px-a3", "px-b3")
COPIES = ("px-a4", "px-b4")
ALL = tuple(s for pair in SERVICES.values() for s in pair) + EXTRA + COPIES


@dataclass
class Env:
    home: Path
    inventory: object
    pool: object
    secrets: object
    hosts: dict[str, Host]
    testbed: object
    admin: dict[str, str] = field(default_factory=dict)
    original: dict[str, tuple] = field(default_factory=dict)

    def session(self, host: str):
        return self.pool.session(self.hosts[host])

    def client(self, host: str):
        return self.session(host).docker()

    def local(self, host: str) -> docker.DockerClient:
        """The engine's own socket, for inspection only (StartedAt, ports)."""
        sock = self.testbed.hosts[host].docker_socket
        return docker.DockerClient(base_url=f"unix://{sock}", version="1.41")

    def cli(self, *args: str):
        env = {"HAVSH_HOME": str(self.home), "HAVSH_SSH_CONFIG": ""}
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _forget_px(client) -> None:
    """Drop custom hostnames a crashed earlier run of this file left on a host's proxy."""
    def change(state):
        for slug in list(state.hostnames):
            if slug in ALL:
                del state.hostnames[slug]
    try:
        proxy.sync(client, change)
    except proxy.ProxyMissing:
        pass


@pytest.fixture(scope="module")
def env(testbed, tmp_path_factory):
    from havsh_tui.core.inventory import open_inventory
    from havsh_tui.core.paths import AppPaths
    from havsh_tui.core.secrets import SecretStore
    from havsh_tui.remote.hosts import HostPool, SSHOptions

    home = tmp_path_factory.mktemp("px-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAVSH_HOME", str(home))
        paths = AppPaths.from_env().ensure()
    shutil.copy(testbed.hosts["hosta"].known_hosts, paths.known_hosts)
    paths.known_hosts.chmod(0o600)
    opts = SSHOptions(known_hosts=paths.known_hosts, ssh_config=None, connect_timeout=5.0,
                      command_timeout=120.0, system_known_hosts=False)
    pool = HostPool(opts)
    inventory = open_inventory(paths)
    hosts = {}
    for name in ("hosta", "hostb"):
        h = _host(testbed.hosts[name], name, postgres="havsh-test/postgres:15",
                  odoo="havsh-test/odoo:17.0")
        hosts[name] = replace(h, base_domain=BASE[name], tls="internal")
        inventory.add_host(hosts[name])
    e = Env(home, inventory, pool, SecretStore(paths.secrets), hosts, testbed)
    for slug in ALL:
        for th in testbed.hosts.values():
            wipe_service(th.docker_socket, slug)
    for name, h in hosts.items():
        bootstrap_host(e.session(name), e.secrets)
        c = e.client(name)
        st = proxy.read_state(c)
        e.original[name] = (st.base_domain, st.tls)
        _forget_px(c)
        proxy.apply_host_settings(inventory, pool, h)

    def create(host: str, slug: str):
        # The second service of each host runs in prefork mode (workers > 0), where Odoo's
        # evented port 8072 listens; the first in threaded mode (the default), where it
        # does not and 8069 serves /websocket.
        prefork = slug == SERVICES[host][1]
        r = ops.create_service(inventory, e.secrets, pool, ops.CreateSpec(
            name=slug, host=host, type=ServiceType.TEST, odoo_version="17.0",
            image="havsh-test/odoo:17.0", admin_password=f"pw-{slug}-secret",
            config={"workers": "2"} if prefork else {}))
        e.admin[slug] = r.admin_password
        return r

    try:
        with ThreadPoolExecutor(4) as ex:
            futures = [ex.submit(create, h, s) for h, pair in SERVICES.items() for s in pair]
            for f in futures:
                f.result()
        yield e
    finally:
        for s in list(inventory.list_services()):
            try:
                ops.delete_service(inventory, e.secrets, pool, s, confirm_name=s.name)
            except Exception:  # noqa: BLE001 - the wipe below still removes it
                pass
        for slug in ALL:
            for th in testbed.hosts.values():
                wipe_service(th.docker_socket, slug)
        for name, (base, tls) in e.original.items():
            try:
                c = e.client(name)
                _forget_px(c)

                def restore(state, base=base, tls=tls):
                    state.base_domain, state.tls = base, tls
                proxy.sync(c, restore)
            except Exception:  # noqa: BLE001
                pass
        pool.close()


# -- requests the way a browser makes them ----------------------------------------------------

@dataclass
class Answer:
    code: int  # curl's exit code
    status: int | None
    headers: dict[str, str]
    body: bytes
    stderr: str

    def json(self):
        return json.loads(self.body.decode())


def curl(env: Env, host: str, hostname: str, path: str = "/web/health", *, scheme="https",
         data: dict | None = None, headers: dict[str, str] | None = None,
         max_time: float = 10.0, tmp: Path | None = None) -> Answer:
    """curl in the host's network namespace, to the proxy's published port."""
    th = env.testbed.hosts[host]
    port = 443 if scheme == "https" else 80
    out_dir = Path(tmp or env.home)
    hdr = out_dir / f"h-{threading.get_ident()}-{time.monotonic_ns()}"
    body = out_dir / f"b-{threading.get_ident()}-{time.monotonic_ns()}"
    argv = ["curl", "-sS", "-k", "--http1.1", "--max-time", str(max_time),
            "--resolve", f"{hostname}:{port}:{th.address}", "-D", str(hdr), "-o", str(body)]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    if data is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(data)]
    argv.append(f"{scheme}://{hostname}{path}")
    if th.netns:
        argv = ["nsenter", f"--net=/run/netns/{th.netns}", *argv]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=max_time + 20)
    status, hmap = None, {}
    if hdr.exists():
        for line in hdr.read_text(errors="replace").splitlines():
            if line.startswith("HTTP/"):
                status, hmap = int(line.split()[1]), {}
            elif ":" in line:
                k, _, v = line.partition(":")
                hmap[k.strip().lower()] = v.strip()
        hdr.unlink()
    raw = body.read_bytes() if body.exists() else b""
    body.unlink(missing_ok=True)
    return Answer(p.returncode, status, hmap, raw, p.stderr)


def until(fn, timeout: float = 20.0, what: str = "condition"):
    """Retry ``fn`` until it returns a truthy value: a new certificate is issued (by Caddy's
    own CA) a moment after a reload, and a new container starts listening a moment late."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last and getattr(last, "ok", True):
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: still {last!r} after {timeout} s")


@dataclass
class Check:
    ok: bool
    detail: object


def reaches(env: Env, host: str, hostname: str, slug: str, scheme: str = "https") -> Check:
    """``hostname`` reaches ``slug``'s stand-in: /web/health on 8069, and its database."""
    a = curl(env, host, hostname, scheme=scheme)
    if a.status != 200 or a.headers.get("x-standin-port") != "8069":
        return Check(False, a)
    if a.json() != {"status": "pass"}:
        return Check(False, a)
    db = slug.replace("-", "_")
    rpc = curl(env, host, hostname, "/web/session/authenticate", scheme=scheme, data={
        "jsonrpc": "2.0", "method": "call", "id": 1,
        "params": {"db": db, "login": "admin", "password": env.admin[slug]}})
    result = rpc.json().get("result") if rpc.status == 200 else None
    return Check(bool(result) and result.get("db") == db and result.get("uid") == 2, rpc)


def not_routed(env: Env, host: str, hostname: str) -> Check:
    """No service answers: HTTPS has no certificate for it, HTTP reaches no stand-in."""
    s = curl(env, host, hostname, max_time=5)
    h = curl(env, host, hostname, scheme="http", max_time=5)
    ok = (s.status is None and s.code != 0
          and "x-standin-port" not in h.headers)
    return Check(ok, (s, h))


def started_at(env: Env, host: str) -> tuple[str, str]:
    attrs = env.local(host).api.inspect_container(proxy.PROXY_CONTAINER)
    return attrs["Id"], attrs["State"]["StartedAt"]


HOSTS = ["hosta", "hostb"]


# -- the proxy itself -------------------------------------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
def test_bootstrap_made_the_proxy_and_stays_idempotent(env, host):
    th = env.testbed.hosts[host]
    before = started_at(env, host)
    result = bootstrap_host(env.session(host), env.secrets)
    assert result.noop, result.to_dict()
    assert f"container {proxy.PROXY_CONTAINER}" in result.unchanged
    assert started_at(env, host) == before
    attrs = env.local(host).api.inspect_container(proxy.PROXY_CONTAINER)
    assert attrs["Config"]["Image"] == "havsh-test/caddy:2"
    assert attrs["Config"]["Cmd"] == proxy.COMMAND
    assert attrs["Config"]["Labels"]["sh.hav.managed"] == "1"
    assert attrs["Config"]["Labels"]["sh.hav.role"] == "proxy"
    binds = attrs["HostConfig"]["PortBindings"]
    assert binds["80/tcp"] == [{"HostIp": th.address, "HostPort": "80"}]
    assert binds["443/tcp"] == [{"HostIp": th.address, "HostPort": "443"}]
    assert "havsh" in attrs["NetworkSettings"]["Networks"]
    mounts = {m["Destination"]: m.get("Name") for m in attrs["Mounts"]}
    assert mounts == {"/data": proxy.DATA_VOLUME, "/config": proxy.CONFIG_VOLUME}
    # Its files say what they are, and the state is the host's settings.
    state = proxy.read_state(env.client(host))
    assert (state.base_domain, state.tls) == (BASE[host], "internal")


# -- routes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_each_hostname_reaches_its_own_service(env, host, scheme):
    one, two = SERVICES[host]
    for slug in (one, two):
        name = f"{slug}.{BASE[host]}"
        until(lambda slug=slug, name=name: reaches(env, host, name, slug, scheme),
              what=f"{name} over {scheme}")
    # And not the other one's: its database is not served there (dbfilter), so the request
    # really went to the first service's container.
    rpc = curl(env, host, f"{one}.{BASE[host]}", "/web/session/authenticate", scheme=scheme,
               data={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                   "db": two.replace("-", "_"), "login": "admin", "password": env.admin[two]}})
    assert rpc.json()["error"]["data"]["message"] == "Database not found."


@pytest.mark.parametrize("host", HOSTS)
def test_https_certificate_is_caddys_internal_ca_and_expiry_is_read(env, host):
    slug = SERVICES[host][0]
    name = f"{slug}.{BASE[host]}"
    until(lambda: reaches(env, host, name, slug), what=name)
    info = proxy.certificate_info(env.session(host), name)
    assert not info.error, info
    assert 0 < info.days_left < 400
    assert "Caddy Local Authority" in info.issuer
    # Through the CLI too (service detail: hostnames with their expiry).
    r = env.cli("--json", "hostname", "ls", f"{host}/{slug}", "--certs")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["platform"] == name and out["url"] == f"https://{name}"
    assert out["certs"][name]["days_left"] > 0
    assert out["certs"][name]["not_after"] == info.not_after.isoformat()


@pytest.mark.parametrize("host", HOSTS)
def test_websocket_goes_to_8072(env, host):
    threaded, prefork = SERVICES[host]
    for slug, port in ((prefork, "8072"), (threaded, "8069")):
        name = f"{slug}.{BASE[host]}"
        until(lambda slug=slug, name=name: reaches(env, host, name, slug), what=name)
        for scheme in ("https", "http"):
            a = curl(env, host, name, "/websocket", scheme=scheme, max_time=2, headers={
                "Connection": "Upgrade", "Upgrade": "websocket",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13"})
            assert a.status == 101, (slug, scheme, a)
            # Prefork: the evented port. Threaded: nothing listens on 8072, so the proxy
            # falls back to 8069, which serves /websocket itself in that mode.
            assert a.headers.get("x-standin-port") == port, (slug, scheme, a.headers)
            assert a.headers.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        # Everything else still goes to 8069, also for the prefork service.
        assert curl(env, host, name).headers.get("x-standin-port") == "8069"


@pytest.mark.parametrize("host", HOSTS)
def test_services_run_with_proxy_mode_and_record_their_url(env, host):
    for slug in SERVICES[host]:
        s = env.inventory.get_service(slug, host=host)
        assert s.url == f"https://{slug}.{BASE[host]}"
        assert s.status is ServiceStatus.RUNNING
        ex = env.client(host).api.exec_create(f"havsh-{slug}", ["cat", "/etc/odoo/odoo.conf"])
        conf = env.client(host).api.exec_start(ex["Id"]).decode()
        assert "\nproxy_mode = True\n" in conf


# -- custom domains ---------------------------------------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
def test_custom_domain_add_and_remove_without_restarting_the_proxy(env, host):
    one, two = SERVICES[host]
    custom = f"erp-{host}.px.test"
    until(lambda: reaches(env, host, f"{two}.{BASE[host]}", two), what="the other route")
    before = started_at(env, host)
    assert not_routed(env, host, custom).ok

    r = env.cli("--json", "hostname", "add", f"{host}/{one}", custom.upper())
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["hostname"] == custom and out["action"] == "added"
    assert out["url"] == f"https://{custom}"  # the first custom hostname is the primary
    assert out["dns"]["type"] == "A" and out["dns"]["value"] == env.testbed.hosts[host].address
    assert "not a public address" in out["dns"]["note"]
    until(lambda: reaches(env, host, custom, one), what=f"{custom} after add")
    until(lambda: reaches(env, host, custom, one, "http"), what=f"{custom} over http")
    # The other routes still answer, and the proxy never restarted.
    assert reaches(env, host, f"{one}.{BASE[host]}", one).ok
    assert reaches(env, host, f"{two}.{BASE[host]}", two).ok
    assert started_at(env, host) == before
    s = env.inventory.get_service(one, host=host)
    assert s.url == f"https://{custom}" and s.hostnames == [custom]
    # The human output names the DNS record to create.
    again = env.cli("hostname", "add", f"{host}/{one}", custom)
    assert again.exit_code == 0 and "it had it already" in again.stdout
    assert f"{custom}.  A  {env.testbed.hosts[host].address}" in again.stdout

    r = env.cli("--json", "hostname", "rm", f"{host}/{one}", custom)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["url"] == f"https://{one}.{BASE[host]}"
    until(lambda: not_routed(env, host, custom), what=f"{custom} after rm")
    assert reaches(env, host, f"{one}.{BASE[host]}", one).ok
    assert reaches(env, host, f"{two}.{BASE[host]}", two).ok
    assert started_at(env, host) == before
    s = env.inventory.get_service(one, host=host)
    assert s.url == f"https://{one}.{BASE[host]}" and s.hostnames == []


def test_bad_hostnames_are_refused(env):
    a1 = env.inventory.get_service("px-a1", host="hosta")
    for bad in ("not a host", "erp", "-x.example.com", "*.px.test", "10.0.0.1",
                "erp.px.test:443", "https://erp.px.test", "x{y}.px.test", "a.localhost"):
        with pytest.raises(InvalidHostname):
            proxy.add_hostname(env.inventory, env.pool, a1, bad)
    r = env.cli("--json", "hostname", "add", "hosta/px-a1", "erp;rm -rf.px.test")
    assert r.exit_code == 1
    assert json.loads(r.stderr)["error"]["type"] == "invalid_hostname"
    state = proxy.read_state(env.client("hosta"))
    assert state.custom("px-a1") == []


def test_a_hostname_belongs_to_one_service_only(env):
    inv = env.inventory
    a1, a2 = (inv.get_service(s, host="hosta") for s in SERVICES["hosta"])
    b1 = inv.get_service("px-b1", host="hostb")
    shared = "shared.px.test"
    proxy.add_hostname(inv, env.pool, a1, shared)
    try:
        with pytest.raises(HostnameTaken, match="belongs to px-a1"):
            proxy.add_hostname(inv, env.pool, a2, shared)  # same host
        with pytest.raises(HostnameTaken, match="belongs to px-a1 on hosta"):
            proxy.add_hostname(inv, env.pool, b1, shared)  # another host
        r = env.cli("--json", "hostname", "add", "hostb/px-b1", shared)
        assert r.exit_code == 1
        err = json.loads(r.stderr)["error"]
        assert err["type"] == "hostname_taken" and err["owner"] == "hosta/px-a1"
        # The host's proxy is the truth: a laptop whose inventory forgot it is refused too.
        inv.update_service("hosta", "px-a1", hostnames=[], url="")
        with pytest.raises(HostnameTaken, match="belongs to px-a1"):
            proxy.add_hostname(inv, env.pool, a2, shared)
        # Another service's platform hostname is taken as well: the inventory knows it as
        # px-a2's URL, and the host knows it without the inventory.
        with pytest.raises(HostnameTaken, match="belongs to px-a2 on hosta"):
            proxy.add_hostname(inv, env.pool, a1, "px-a2.a.havsh.test")
        inv.update_service("hosta", "px-a2", url="")
        with pytest.raises(HostnameTaken, match="platform hostname of px-a2"):
            proxy.add_hostname(inv, env.pool, a1, "px-a2.a.havsh.test")
        assert proxy.service_hostnames(inv, env.pool, a2).url == "https://px-a2.a.havsh.test"
        assert inv.get_service("px-a2", host="hosta").url == "https://px-a2.a.havsh.test"
        with pytest.raises(OpsError, match="not a hostname of px-a2"):
            proxy.remove_hostname(inv, env.pool, a2, shared)
        with pytest.raises(OpsError, match="platform hostname"):
            proxy.remove_hostname(inv, env.pool, a1, "px-a1.a.havsh.test")
        # Nothing changed for the owner.
        until(lambda: reaches(env, "hosta", shared, "px-a1"), what=shared)
    finally:
        proxy.remove_hostname(inv, env.pool, inv.get_service("px-a1", host="hosta"), shared)
    assert proxy.read_state(env.client("hosta")).owner_of(shared) is None
    assert proxy.read_state(env.client("hostb")).owner_of(shared) is None
    assert inv.get_service("px-a1", host="hosta").url == "https://px-a1.a.havsh.test"


def test_concurrent_changes_from_several_havsh_are_all_kept(env):
    """Six havsh at once (one SSH connection each, as six processes would have) add six
    hostnames to one host's proxy, then remove them: the host lock loses none."""
    from havsh_tui.remote.hosts import HostPool

    names_ = [f"c{i}.px.test" for i in range(6)]
    pools = [HostPool(env.pool.opts) for _ in names_]

    def run(fn, i):
        svc = env.inventory.get_service(SERVICES["hosta"][i % 2], host="hosta")
        return fn(env.inventory, pools[i], svc, names_[i])

    try:
        with ThreadPoolExecutor(len(names_)) as ex:
            list(ex.map(lambda i: run(proxy.add_hostname, i), range(len(names_))))
        state = proxy.read_state(env.client("hosta"))
        assert sorted(state.custom("px-a1") + state.custom("px-a2")) == sorted(names_)
        for i, n in enumerate(names_):
            until(lambda n=n, i=i: reaches(env, "hosta", n, SERVICES["hosta"][i % 2]), what=n)
        with ThreadPoolExecutor(len(names_)) as ex:
            list(ex.map(lambda i: run(proxy.remove_hostname, i), range(len(names_))))
        state = proxy.read_state(env.client("hosta"))
        assert state.custom("px-a1") == [] and state.custom("px-a2") == []
    finally:
        for p in pools:
            p.close()
    # The lock is released: nothing is left of it.
    ex = env.client("hosta").api.exec_create(proxy.PROXY_CONTAINER, ["ls", proxy.HAVSH_DIR])
    assert env.client("hosta").api.exec_start(ex["Id"]).decode().split() == [
        "Caddyfile", "routes.json"]


# -- deleting a service removes its routes; a copy gets its own URL --------------------------

@pytest.mark.parametrize("host", HOSTS)
def test_delete_removes_its_routes(env, host):
    src, other = SERVICES[host]
    new = EXTRA[HOSTS.index(host)]
    ops.create_service(env.inventory, env.secrets, env.pool, ops.CreateSpec(
        name=new, host=host, type=ServiceType.DEMO, odoo_version="17.0",
        image="havsh-test/odoo:17.0", admin_password=f"pw-{new}-secret"))
    env.admin[new] = f"pw-{new}-secret"
    plat = f"{new}.{BASE[host]}"
    until(lambda: reaches(env, host, plat, new), what=plat)
    custom = f"{new}.px.test"
    proxy.add_hostname(env.inventory, env.pool, env.inventory.get_service(new, host=host),
                       custom)
    until(lambda: reaches(env, host, custom, new), what=custom)
    before = started_at(env, host)

    removed = ops.delete_service(env.inventory, env.secrets, env.pool,
                                 env.inventory.get_service(new, host=host))
    assert f"routes {plat}, {custom}" in removed
    until(lambda: not_routed(env, host, plat), what=f"{plat} after delete")
    assert not_routed(env, host, custom).ok
    assert new not in proxy.read_state(env.client(host)).hostnames
    files = proxy._read_files(env.client(host))
    assert f"havsh-{new}:" not in files["Caddyfile"].decode()
    assert reaches(env, host, f"{src}.{BASE[host]}", src).ok
    assert reaches(env, host, f"{other}.{BASE[host]}", other).ok
    assert started_at(env, host) == before


@pytest.mark.parametrize("host", HOSTS)
def test_copy_gets_its_own_url_and_web_base_url(env, host):
    src = SERVICES[host][0]
    new = COPIES[HOSTS.index(host)]
    copied = copy_service(env.inventory, env.secrets, env.pool,
                          CopySpec(source_host=host, source=src, name=new))
    env.admin[new] = env.admin[src]  # a copy has its source's users
    plat = f"{new}.{BASE[host]}"
    assert copied.url == f"https://{plat}"
    assert env.inventory.get_service(new, host=host).url == f"https://{plat}"
    base_url = psql(env.client(host), "SELECT value FROM ir_config_parameter "
                    "WHERE key = 'web.base.url';", database=new.replace("-", "_")).strip()
    assert base_url == f"https://{plat}"
    until(lambda: reaches(env, host, plat, new), what=plat)
    removed = ops.delete_service(env.inventory, env.secrets, env.pool,
                                 env.inventory.get_service(new, host=host))
    assert f"routes {plat}" in removed
    until(lambda: not_routed(env, host, plat), what=f"{plat} after delete")


def test_restarted_service_keeps_its_route_and_start_sets_url(env):
    s = env.inventory.get_service("px-b2", host="hostb")
    ops.stop_service(env.inventory, env.pool, s)
    # Its URL is dropped by hand in the inventory; start brings it back from the host.
    env.inventory.update_service("hostb", "px-b2", url="")
    started = ops.start_service(env.inventory, env.pool,
                                env.inventory.get_service("px-b2", host="hostb"))
    assert started.url == "https://px-b2.b.havsh.test"
    until(lambda: reaches(env, "hostb", "px-b2.b.havsh.test", "px-b2"), what="px-b2 again")


# -- without a hostname: `havsh service open` -------------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
def test_service_open_gives_a_working_url_through_the_tunnel(env, host):
    slug = SERVICES[host][0]
    environ = dict(os.environ, HAVSH_HOME=str(env.home))
    environ.pop("DISPLAY", None)
    environ.pop("WAYLAND_DISPLAY", None)
    p = subprocess.Popen([sys.executable, "-m", "havsh_tui", "--json", "service", "open",
                          f"{host}/{slug}", "--no-browser"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=environ, text=True)
    try:
        line = p.stdout.readline()
        assert line, p.stderr.read() if p.poll() is not None else "no output"
        event = json.loads(line)
        assert event["event"] == "listening" and event["service"] == slug
        url = event["url"]
        assert url.startswith("http://127.0.0.1:")
        assert event["proxy_url"] == f"https://{slug}.{BASE[host]}"
        with urllib.request.urlopen(url + "web/health", timeout=15) as resp:
            assert resp.status == 200
            assert resp.headers["X-Standin-Port"] == "8069"
            assert json.loads(resp.read()) == {"status": "pass"}
        req = urllib.request.Request(url + "web/session/authenticate", data=json.dumps({
            "jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                "db": slug.replace("-", "_"), "login": "admin",
                "password": env.admin[slug]}}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=15) as resp:
            assert json.loads(resp.read())["result"]["db"] == slug.replace("-", "_")
    finally:
        p.terminate()  # by PID: the process this test started
        try:
            rc = p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
    assert rc == 0, p.stderr.read()
    closed = json.loads(p.stdout.read().strip().splitlines()[-1])
    assert closed["event"] == "closed" and closed["connections"] >= 2
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "web/health", timeout=3)


def test_host_set_base_domain_moves_platform_urls(env):
    """`havsh host set --base-domain` changes the host's proxy and the services' URLs."""
    r = env.cli("--json", "host", "set", "hostb", "--base-domain", "b2.havsh.test")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["changed"] == {"base_domain": "b2.havsh.test"}
    assert out["proxy"]["applied"] and out["proxy"]["dns"]["name"] == "*.b2.havsh.test."
    try:
        for slug in SERVICES["hostb"]:
            assert env.inventory.get_service(slug, host="hostb").url == \
                f"https://{slug}.b2.havsh.test"
            until(lambda slug=slug: reaches(env, "hostb", f"{slug}.b2.havsh.test", slug),
                  what=f"{slug}.b2")
        assert not_routed(env, "hostb", "px-b1.b.havsh.test").ok
    finally:
        r = env.cli("--json", "host", "set", "hostb", "--base-domain", BASE["hostb"])
        assert r.exit_code == 0, r.output
    until(lambda: reaches(env, "hostb", "px-b1.b.havsh.test", "px-b1"), what="back")


def test_host_add_and_ls_take_the_proxy_settings(env):
    args = ["--ssh", "root@127.0.0.1:2299", "--no-check"]  # nothing listens there: no check
    for bad, why in ((["--base-domain", "bad domain"], "white space"),
                     (["--proxy-bind", "example.com"], "not an IP address"),
                     (["--tls", "off"], "'off' is not one of")):
        r = env.cli("host", "add", "px-hostc", *args, *bad)
        assert r.exit_code == 2 and why in r.output, r.output
    r = env.cli("--json", "host", "add", "px-hostc", *args, "--base-domain", "C.Example.Test",
                "--tls", "internal", "--proxy-bind", "127.0.0.1")
    assert r.exit_code == 0, r.output
    try:
        h = env.inventory.get_host("px-hostc")
        assert (h.base_domain, h.tls, h.proxy_bind) == ("c.example.test", "internal",
                                                         "127.0.0.1")
        rows = json.loads(env.cli("--json", "host", "ls").stdout)
        row = next(r for r in rows if r["name"] == "px-hostc")
        assert (row["base_domain"], row["tls"], row["proxy_bind"]) == (
            "c.example.test", "internal", "127.0.0.1")
        # Unreachable: saved in the inventory, and said that it was not applied.
        r = env.cli("--json", "host", "set", "px-hostc", "--base-domain", "none")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["changed"] == {"base_domain": None}
        assert out["proxy"]["applied"] is False
        assert env.inventory.get_host("px-hostc").base_domain is None
    finally:
        env.cli("host", "rm", "px-hostc")


def test_rescan_takes_urls_and_hostnames_from_the_proxy(env, tmp_path):
    """A lost inventory rebuilt by rescan gets each service's URL and custom hostnames back
    from the host's proxy (routes.json), not only its containers."""
    from havsh_tui.core.inventory import open_inventory
    from havsh_tui.core.paths import AppPaths
    from havsh_tui.ops.rescan import rescan_host

    a1 = env.inventory.get_service("px-a1", host="hosta")
    custom = "shop-rescan.example.test"
    proxy.add_hostname(env.inventory, env.pool, a1, custom)
    try:
        fresh = open_inventory(AppPaths(home=tmp_path / "fresh").ensure())
        fresh.add_host(env.hosts["hosta"])
        result = rescan_host(fresh, env.pool, env.hosts["hosta"])
        assert "px-a1" in result.adopted and "px-a1" in result.urls
        got = fresh.get_service("px-a1", host="hosta")
        assert (got.url, got.hostnames) == (f"https://{custom}", [custom])
        a2 = fresh.get_service("px-a2", host="hosta")
        assert (a2.url, a2.hostnames) == (f"https://px-a2.{BASE['hosta']}", [])
        # Changed meanwhile by another havsh: the next rescan brings the change.
        proxy.remove_hostname(env.inventory, env.pool,
                              env.inventory.get_service("px-a1", host="hosta"), custom)
        again = rescan_host(fresh, env.pool, env.hosts["hosta"])
        assert again.urls == ["px-a1"]
        got = fresh.get_service("px-a1", host="hosta")
        assert (got.url, got.hostnames) == (f"https://px-a1.{BASE['hosta']}", [])
    finally:
        a1 = env.inventory.get_service("px-a1", host="hosta")
        if custom in (a1.hostnames or []):
            proxy.remove_hostname(env.inventory, env.pool, a1, custom)
