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
    # The proxy (ops/proxy.py): the test Caddy image, published only on the test host's own
    # address (127.0.0.1 on A, 10.213.9.2 on B), and Caddy's internal CA: no ACME here.
    return Host(name=name, address=th.address, port=th.port, user=th.user,
                identity_file=str(th.client_key), postgres_image=postgres, odoo_image=odoo,
                proxy_image="havsh-test/caddy:2", proxy_bind=th.address, tls="internal")


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


def wipe_service(socket_path: str, slug: str) -> None:
    """Remove every object of one service on an engine (containers, volumes, database, role).

    Uses the engine's local socket, so cleanup works even when a test broke SSH. Only the
    named service is touched: other tests (other xdist workers) may be using the host.
    """
    import docker

    client = docker.DockerClient(base_url=f"unix://{socket_path}", version="1.41")
    try:
        for c in client.containers.list(all=True, filters={"label": f"sh.hav.service={slug}"}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"label": f"sh.hav.service={slug}"}):
            v.remove(force=True)
        for name in (f"havsh-{slug}-data", f"havsh-{slug}-addons"):
            try:
                client.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        try:
            pg = client.containers.get("havsh-postgres")
        except docker.errors.NotFound:
            return
        if pg.status != "running":
            return
        db = slug.replace("-", "_")
        sql = (f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE);\n'
               f'DROP ROLE IF EXISTS "havsh_{db}";\n')
        pg.exec_run(["sh", "-c", 'printf "%s" "$1" | psql -X -q -U postgres', "sh", sql],
                    user="postgres")
    finally:
        client.close()


class Cleanup:
    def __init__(self, testbed) -> None:
        self.testbed = testbed
        self.slugs: set[str] = set()

    def add(self, *slugs: str) -> None:
        self.slugs.update(slugs)

    def run(self) -> None:
        for h in self.testbed.hosts.values():
            for slug in self.slugs:
                wipe_service(h.docker_socket, slug)


@pytest.fixture
def cleanup(testbed):
    """Register the service slugs a test creates; they are removed before and after it."""
    c = Cleanup(testbed)
    yield c
    c.run()


@pytest.fixture
def clean_hosts(cleanup, havsh_paths):
    """Removes, after the test, every service its inventory knows (and registered slugs)."""
    yield cleanup
    try:
        from havsh_tui.core.inventory import open_inventory

        cleanup.add(*(s.name for s in open_inventory(havsh_paths).list_services()))
    except Exception:  # noqa: BLE001 - a test may have deleted or broken the file
        pass


@pytest.fixture
def sql(pool):
    """Run SQL on a host's PostgreSQL through the product's own path (docker exec over SSH)."""
    from havsh_tui.ops.bootstrap import psql

    def run(host, query: str, database: str = "postgres") -> list[list[str]]:
        out = psql(pool.session(host).docker(), query, database=database)
        return [line.split("|") for line in out.splitlines() if line]

    return run
