"""Fixtures that put the product's own objects on the testbed's hosts."""

from __future__ import annotations

import shutil

import pytest

from havsh_tui.core.model import Host


@pytest.fixture
def havsh_paths(tmp_path, monkeypatch, testbed):
    """A fresh HAVSH_HOME whose known_hosts already trusts the two test hosts."""
    from havsh_tui.core.paths import AppPaths

    home = tmp_path / "havsh-home"
    monkeypatch.setenv("HAVSH_HOME", str(home))
    monkeypatch.delenv("HAVSH_SSH_CONFIG", raising=False)
    paths = AppPaths.from_env().ensure()
    shutil.copy(testbed.hosts["hosta"].known_hosts, paths.known_hosts)
    paths.known_hosts.chmod(0o600)
    return paths


@pytest.fixture
def ssh_opts(havsh_paths):
    from havsh_tui.remote.hosts import SSHOptions

    # system_known_hosts off: the developer's own ~/.ssh must never matter to a test.
    return SSHOptions(known_hosts=havsh_paths.known_hosts, ssh_config=None,
                      connect_timeout=5.0, command_timeout=120.0, system_known_hosts=False)


def _host(th, name: str, *, postgres: str, odoo: str) -> Host:
    return Host(name=name, address=th.address, port=th.port, user=th.user,
                identity_file=str(th.client_key), postgres_image=postgres, odoo_image=odoo)


@pytest.fixture
def host_a(testbed, hosta) -> Host:
    return _host(hosta, "hosta", postgres="havsh-test/postgres:15", odoo="havsh-test/odoo:17.0")


@pytest.fixture
def host_b(testbed, hostb) -> Host:
    return _host(hostb, "hostb", postgres="havsh-test/postgres:15", odoo="havsh-test/odoo:17.0")


@pytest.fixture
def pool(ssh_opts):
    from havsh_tui.remote.hosts import HostPool

    p = HostPool(ssh_opts)
    yield p
    p.close()


@pytest.fixture
def inventory(havsh_paths, host_a, host_b):
    from havsh_tui.core.inventory import open_inventory

    inv = open_inventory(havsh_paths)
    inv.add_host(host_a)
    inv.add_host(host_b)
    return inv


@pytest.fixture
def secret_store(havsh_paths):
    from havsh_tui.core.secrets import SecretStore

    return SecretStore(havsh_paths.secrets)


def _wipe_services(socket_path: str) -> None:
    """Remove every service object on an engine, keeping havsh-postgres and the network.

    Uses the engine's local socket: cleanup must work even when a test broke SSH.
    """
    import docker

    client = docker.DockerClient(base_url=f"unix://{socket_path}", version="1.41")
    try:
        for c in client.containers.list(all=True, filters={"label": "sh.hav.service"}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"label": "sh.hav.service"}):
            v.remove(force=True)
        try:
            pg = client.containers.get("havsh-postgres")
        except docker.errors.NotFound:
            return
        if pg.status != "running":
            pg.start()
        sql = ("SELECT format('DROP DATABASE %I WITH (FORCE);', datname) FROM pg_database "
               "WHERE datname NOT IN ('postgres', 'template0', 'template1') \\gexec\n"
               "SELECT format('DROP ROLE %I;', rolname) FROM pg_roles "
               "WHERE rolname LIKE 'havsh\\_%' \\gexec\n")
        pg.exec_run(["sh", "-c", 'printf "%s" "$1" | psql -X -q -U postgres', "sh", sql],
                    user="postgres")
    finally:
        client.close()


@pytest.fixture
def clean_hosts(testbed):
    """Leaves both hosts with no service objects, before and after the test."""
    for h in testbed.hosts.values():
        _wipe_services(h.docker_socket)
    yield
    for h in testbed.hosts.values():
        _wipe_services(h.docker_socket)


@pytest.fixture
def sql(pool):
    """Run SQL on a host's PostgreSQL through the product's own path (docker exec over SSH)."""
    from havsh_tui.ops.bootstrap import psql

    def run(host, query: str, database: str = "postgres") -> list[list[str]]:
        out = psql(pool.session(host).docker(), query, database=database)
        return [line.split("|") for line in out.splitlines() if line]

    return run
