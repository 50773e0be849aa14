"""The testbed itself: two independent Docker hosts behind key-only sshd, with the test images.

Only paramiko and the docker SDK are used here (not the product's remote module), so that a
failure here points at the testbed, not at the product.
"""

from __future__ import annotations

import random
import shlex
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import paramiko
import pytest

from tests.infra import testbed as tb


def _connect(
    host: tb.Host,
    *,
    pkey: paramiko.PKey | None = None,
    known_hosts: str | Path | None = None,
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts or host.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        port=host.port,
        username=host.user,
        pkey=pkey,
        key_filename=None if pkey else host.client_key,
        allow_agent=False,
        look_for_keys=False,
        timeout=10,
        banner_timeout=10,
        auth_timeout=10,
    )
    return client


def _run(client: paramiko.SSHClient, command: str, timeout: float = 60) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode()
    err = stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def _check(client: paramiko.SSHClient, command: str) -> str:
    rc, out, err = _run(client, command)
    assert rc == 0, f"{command!r} exited {rc}: {err}"
    return out.strip()


@pytest.fixture(scope="module")
def ssh_a(hosta: tb.Host) -> Iterator[paramiko.SSHClient]:
    c = _connect(hosta)
    yield c
    c.close()


@pytest.fixture(scope="module")
def ssh_b(hostb: tb.Host) -> Iterator[paramiko.SSHClient]:
    c = _connect(hostb)
    yield c
    c.close()


INFO = "docker info --format {}"


def test_hosts_have_different_docker_root_dirs(ssh_a, ssh_b, hosta, hostb):
    root_a = _check(ssh_a, INFO.format(shlex.quote("{{.DockerRootDir}}")))
    root_b = _check(ssh_b, INFO.format(shlex.quote("{{.DockerRootDir}}")))
    assert root_b == "/var/lib/docker-b"
    assert root_a == hosta.docker_root
    assert root_a != root_b


def test_hosts_are_different_engines(ssh_a, ssh_b, hosta, hostb):
    id_a = _check(ssh_a, INFO.format(shlex.quote("{{.ID}}")))
    id_b = _check(ssh_b, INFO.format(shlex.quote("{{.ID}}")))
    assert id_a and id_b and id_a != id_b
    # Each sshd's docker is the engine behind that host's own local socket.
    assert docker.DockerClient(base_url=hosta.docker_host).info()["ID"] == id_a
    assert docker.DockerClient(base_url=hostb.docker_host).info()["ID"] == id_b


def _image_ids(client: paramiko.SSHClient, tags: list[str]) -> dict[str, str]:
    out = _check(
        client, "docker image inspect --format '{{.Id}}' " + " ".join(map(shlex.quote, tags))
    )
    return dict(zip(tags, out.split(), strict=True))


def test_both_engines_have_the_base_images(ssh_a, ssh_b, testbed_images):
    tags = [testbed_images.base, testbed_images.postgres, testbed_images.caddy]
    assert None not in tags, testbed_images.errors
    ids_a, ids_b = _image_ids(ssh_a, tags), _image_ids(ssh_b, tags)
    assert ids_a == ids_b


@pytest.mark.parametrize("version", tb.ODOO_VERSIONS)
def test_both_engines_have_the_odoo_image(ssh_a, ssh_b, testbed_images, version):
    tag = testbed_images.odoo_tag(version)  # raises with the build error if it did not build
    assert _image_ids(ssh_a, [tag]) == _image_ids(ssh_b, [tag])


def test_a_wrong_key_is_refused(hosta, hostb):
    stranger = paramiko.ECDSAKey.generate()
    for host in (hosta, hostb):
        with pytest.raises(paramiko.AuthenticationException):
            _connect(host, pkey=stranger).close()


def test_only_publickey_auth_is_offered(hosta, hostb):
    for host in (hosta, hostb):
        known = paramiko.HostKeys(host.known_hosts)
        with paramiko.Transport((host.address, host.port)) as t:
            t.start_client(timeout=10)
            key = t.get_remote_server_key()
            lookup = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
            assert known.check(lookup, key), f"{host.name}'s host key is not the one in known_hosts"
            with pytest.raises(paramiko.BadAuthenticationType) as info:
                t.auth_none(host.user)
            assert info.value.allowed_types == ["publickey"]


def test_an_unknown_host_key_is_rejected(hostb, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _connect(hostb, known_hosts=empty)


def test_ssh_config_aliases_work_with_openssh(hosta, hostb):
    import subprocess

    for host in (hosta, hostb):
        p = subprocess.run(
            ["ssh", "-F", host.ssh_config, host.name, "hostname -I || true; echo ok"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip().endswith("ok")


def test_docker_sdk_over_ssh_reaches_engine_b(hostb, tmp_path):
    # docker-py's paramiko transport reads ~/.ssh (a temporary HOME here).
    dot_ssh = Path.home() / ".ssh"
    dot_ssh.mkdir(mode=0o700)
    shutil.copy(hostb.known_hosts, dot_ssh / "known_hosts")
    (dot_ssh / "config").write_text(f"Host {hostb.address}\n    IdentityFile {hostb.client_key}\n")
    client = docker.DockerClient(base_url=hostb.ssh_url, use_ssh_client=False, timeout=30)
    try:
        assert client.info()["DockerRootDir"] == "/var/lib/docker-b"
    finally:
        client.close()


def test_hostb_is_air_gapped(ssh_b):
    routes = _check(ssh_b, "ip -4 route show")
    assert "default" not in routes
    assert "10.213.9.0/24" in routes


# --------------------------------------------------------------------------- the images


@pytest.fixture
def engine_b(hostb: tb.Host) -> Iterator[docker.DockerClient]:
    """Engine B through its local socket. These tests check the images, not the transport
    (tested above); docker-py's own SSH transport spawns `docker system dial-stdio` on the
    host for every connection, about 1 s a `docker exec` here."""
    client = docker.DockerClient(base_url=hostb.docker_host, timeout=60)
    made: list[str] = []
    client._havsh_made = made  # type: ignore[attr-defined]
    yield client
    for name in made:
        for c in client.containers.list(all=True, filters={"name": name}):
            c.remove(force=True, v=True)
        for v in client.volumes.list(filters={"name": name}):
            v.remove(force=True)
    for name in made:
        for n in client.networks.list(names=[name]):
            n.remove()
    client.close()


def _name(client: docker.DockerClient, prefix: str) -> str:
    name = f"havsh-test-{prefix}-{uuid.uuid4().hex[:8]}"
    client._havsh_made.append(name)  # type: ignore[attr-defined]
    return name


def _wait(cond, timeout: float = 60, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _exec(container, cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    rc, out = container.exec_run(cmd, environment=env, demux=False)
    return rc, out.decode(errors="replace")


def test_postgres_image_contract(engine_b, testbed_images):
    name = _name(engine_b, "pg")
    env = {"POSTGRES_PASSWORD": "s3cret", "POSTGRES_USER": "odoo", "POSTGRES_DB": "app"}
    c = engine_b.containers.run(
        testbed_images.postgres,
        name=name,
        detach=True,
        environment=env,
        labels={"sh.hav.test": "1"},
        volumes={name: {"bind": "/var/lib/postgresql/data", "mode": "rw"}},
    )

    def ready() -> bool:
        rc, _ = _exec(c, ["pg_isready", "-h", "127.0.0.1", "-U", "odoo"])
        return rc == 0

    _wait(ready, what="postgres to accept connections")
    sql = ["psql", "-h", "127.0.0.1", "-U", "odoo", "-d", "app", "-Atc"]
    rc, out = _exec(
        c,
        [*sql, "select current_user, current_database(), current_setting('server_encoding')"],
        env={"PGPASSWORD": "s3cret"},
    )
    assert (rc, out.strip()) == (0, "odoo|app|UTF8")
    rc, out = _exec(c, [*sql, "select 1"], env={"PGPASSWORD": "wrong"})
    assert rc != 0 and "password authentication failed" in out
    # Listens on every address, password auth for the network, runs as postgres.
    rc, out = _exec(c, ["psql", "-U", "odoo", "-d", "app", "-Atc", "show listen_addresses"])
    assert (rc, out.strip()) == (0, "*")
    rc, out = _exec(c, ["ps", "-o", "user=", "-p", "1"])
    assert out.strip() == "postgres"
    rc, out = _exec(
        c,
        [
            "sh",
            "-c",
            "grep -v '^#' $PGDATA/pg_hba.conf | grep -c trust; "
            "grep -c '^host all all all scram-sha-256' $PGDATA/pg_hba.conf",
        ],
    )
    local_trust, host_all = out.split()
    assert host_all == "1"
    # The tools the product uses are in the image.
    for tool in ("psql", "pg_dump", "pg_restore", "createdb", "dropdb"):
        assert _exec(c, ["sh", "-c", f"command -v {tool}"])[0] == 0, tool
    # Restart with PGDATA initialized: no second initdb, same data.
    _exec(
        c, [*sql, "create table t (x int); insert into t values (42)"], env={"PGPASSWORD": "s3cret"}
    )
    c.restart(timeout=10)
    _wait(ready, what="postgres after restart")
    rc, out = _exec(c, [*sql, "select x from t"], env={"PGPASSWORD": "s3cret"})
    assert (rc, out.strip()) == (0, "42")
    assert "skipping initialization" in c.logs().decode()


def test_postgres_image_requires_a_password(engine_b, testbed_images):
    name = _name(engine_b, "pg-nopw")
    c = engine_b.containers.run(
        testbed_images.postgres, name=name, detach=True, labels={"sh.hav.test": "1"}
    )
    result = c.wait(timeout=60)
    assert result["StatusCode"] != 0
    assert "POSTGRES_PASSWORD" in c.logs().decode()


def test_caddy_image_contract(engine_b, testbed_images):
    name = _name(engine_b, "caddy")
    c = engine_b.containers.run(
        testbed_images.caddy, name=name, detach=True, labels={"sh.hav.test": "1"}
    )
    _wait(
        lambda: _exec(c, ["curl", "-fsS", "http://localhost:2019/config/"])[0] == 0,
        what="caddy's admin API",
    )
    rc, out = _exec(c, ["curl", "-fsS", "http://localhost/"])
    assert rc == 0 and "Caddy" in out
    attrs = engine_b.api.inspect_image(testbed_images.caddy)["Config"]
    assert attrs["Cmd"] == [
        "caddy",
        "run",
        "--config",
        "/etc/caddy/Caddyfile",
        "--adapter",
        "caddyfile",
    ]
    assert set(attrs["Volumes"]) == {"/data", "/config"}
    assert {"80/tcp", "443/tcp"} <= set(attrs["ExposedPorts"])
    assert {"XDG_DATA_HOME=/data", "XDG_CONFIG_HOME=/config"} <= set(attrs["Env"])


# --------------------------------------------------------------------------- host B's network


def test_containers_on_b_reach_each_other_by_name(engine_b, testbed_images):
    """A user network on B: Docker's DNS and B's bridge forwarding (iptables in hostb)."""
    net = _name(engine_b, "net")
    engine_b.networks.create(net, labels={"sh.hav.test": "1"})
    db = _name(engine_b, "db")
    engine_b.containers.run(
        testbed_images.postgres,
        name=db,
        detach=True,
        network=net,
        environment={"POSTGRES_PASSWORD": "x"},
        labels={"sh.hav.test": "1"},
    )
    probe = engine_b.containers.run(
        testbed_images.base,
        name=_name(engine_b, "probe"),
        detach=True,
        network=net,
        labels={"sh.hav.test": "1"},
        command=[
            "sh",
            "-c",
            f"for i in $(seq 150); do nc -z -w 1 {db} 5432 && exit 0; sleep 0.2; done; exit 1",
        ],
    )
    assert probe.wait(timeout=60)["StatusCode"] == 0, probe.logs().decode()


def test_a_published_port_on_b_is_reachable_over_ssh(engine_b, ssh_b, hostb, testbed_images):
    """-p on B: docker-proxy and DNAT inside hostb, reached the product's way (SSH)."""
    port = random.randint(20000, 29999)
    c = engine_b.containers.run(
        testbed_images.caddy,
        name=_name(engine_b, "web"),
        detach=True,
        ports={"80/tcp": port},
        labels={"sh.hav.test": "1"},
    )
    _wait(lambda: _exec(c, ["curl", "-fsS", "http://localhost/"])[0] == 0, what="caddy")
    # A channel forwarded by B's sshd to B's loopback (like ssh -L).
    transport = ssh_b.get_transport()
    assert transport is not None
    chan = transport.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0))
    try:
        chan.settimeout(10)
        chan.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        reply = b""
        while chunk := chan.recv(65536):
            reply += chunk
    finally:
        chan.close()
    assert reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]
    assert b"Caddy works" in reply
    # And on B's own address, from B (DNAT in hostb's OUTPUT chain).
    out = _check(ssh_b, f"curl -fsS -m 10 http://{hostb.address}:{port}/")
    assert "Caddy works" in out


# --------------------------------------------------------------------------- fixture bookkeeping


def test_a_run_takes_down_only_what_it_brought_up(monkeypatch, tmp_path):
    """session_begin/session_end (the `testbed` fixture), with up/down replaced by fakes:
    two xdist workers of one run, and a run that found the testbed already up."""
    up_now = [False]
    calls: list[str] = []
    alive = {101, 102, 201}
    monkeypatch.setattr(tb, "OWNER_FILE", tmp_path / "owner")
    monkeypatch.setattr(tb, "USERS_DIR", tmp_path / "users")
    monkeypatch.setattr(tb, "LOG_DIR", tmp_path / "logs")
    monkeypatch.setattr(tb, "is_up", lambda: up_now[0])
    monkeypatch.setattr(tb, "images_fresh", lambda: True)
    monkeypatch.setattr(tb, "load_state", lambda: {"fake": True})
    monkeypatch.setattr(tb, "pid_alive", lambda pid: pid in alive)

    def fake_up() -> dict:
        calls.append("up")
        up_now[0] = True
        return {}

    def fake_down() -> None:
        calls.append("down")
        up_now[0] = False

    monkeypatch.setattr(tb, "up", fake_up)
    monkeypatch.setattr(tb, "down", fake_down)

    tb.session_begin("run1", pid=101)  # worker gw0 finds it down: brings it up, owns it
    tb.session_begin("run1", pid=102)  # worker gw1
    tb.session_begin("run2", pid=201)  # another run meanwhile: uses it, does not own it
    assert calls == ["up"]
    tb.session_end("run1", pid=101)
    assert calls == ["up"]  # gw1 still runs
    alive.discard(201)  # run2 dies without session_end: it does not count
    tb.session_end("run1", pid=102)
    assert calls == ["up", "down"]

    # Already up when the run began: never taken down by it.
    up_now[0] = True
    tb.OWNER_FILE.unlink(missing_ok=True)
    tb.session_begin("run3", pid=101)
    tb.session_end("run3", pid=101)
    assert calls == ["up", "down"]
