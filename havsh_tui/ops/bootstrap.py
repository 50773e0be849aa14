"""Bootstrap a host: the ``havsh`` network, ``havsh-postgres`` and ``havsh-proxy`` (ops/proxy.py).

It creates what is missing and changes nothing that is already right, so a second run is a
no-op and says so. The superuser password is generated once and kept in the secrets store;
a host bootstrapped from another laptop is adopted (the password is read back from the
container's own environment, which only the host's docker users can see).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import docker
import docker.errors

from havsh_tui.core.names import (
    LABEL_MANAGED,
    LABEL_ROLE,
    NETWORK_NAME,
    POSTGRES_CONTAINER,
    POSTGRES_VOLUME,
)
from havsh_tui.core.secrets import generate_password
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.images import ensure_image
from havsh_tui.ops.reporter import NullReporter, Reporter

PG_DATA = "/var/lib/postgresql/data"


@dataclass
class BootstrapResult:
    host: str
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def noop(self) -> bool:
        return not self.created and not self.changed

    def to_dict(self) -> dict:
        return {"host": self.host, "created": self.created, "changed": self.changed,
                "unchanged": self.unchanged, "ids": self.ids, "noop": self.noop}


def _labels(role: str) -> dict[str, str]:
    return {LABEL_MANAGED: "1", LABEL_ROLE: role}


def postgres_password(secret_store, host: str) -> str | None:
    from havsh_tui.core.secrets import postgres_superuser_key

    return secret_store.get(postgres_superuser_key(host))


def _env_of(container_attrs: dict) -> dict[str, str]:
    out = {}
    for item in container_attrs.get("Config", {}).get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def ensure_network(client: docker.DockerClient, result: BootstrapResult, audit=None) -> str:
    nets = client.api.networks(names=[NETWORK_NAME])
    nets = [n for n in nets if n["Name"] == NETWORK_NAME]
    if nets:
        result.unchanged.append(f"network {NETWORK_NAME}")
        result.ids["network"] = nets[0]["Id"]
        return nets[0]["Id"]
    net = client.api.create_network(NETWORK_NAME, driver="bridge", labels=_labels("network"))
    result.created.append(f"network {NETWORK_NAME}")
    result.ids["network"] = net["Id"]
    if audit:
        audit.append(result.host, "network.create", NETWORK_NAME, "ok")
    return net["Id"]


def ensure_postgres(
    client: docker.DockerClient,
    host,
    secret_store,
    result: BootstrapResult,
    reporter: Reporter,
    audit=None,
    ready_timeout: float = 90.0,
) -> str:
    from havsh_tui.core.secrets import postgres_superuser_key

    key = postgres_superuser_key(host.name)
    try:
        attrs = client.api.inspect_container(POSTGRES_CONTAINER)
    except docker.errors.NotFound:
        attrs = None
    if attrs is not None:
        env = _env_of(attrs)
        stored = secret_store.get(key)
        if env.get("POSTGRES_PASSWORD") and stored != env["POSTGRES_PASSWORD"]:
            # Bootstrapped elsewhere (another laptop, or a lost secrets file): adopt it.
            secret_store.set(key, env["POSTGRES_PASSWORD"])
            result.changed.append("postgres password adopted from the host")
        if NETWORK_NAME not in (attrs.get("NetworkSettings", {}).get("Networks") or {}):
            client.api.connect_container_to_network(POSTGRES_CONTAINER, NETWORK_NAME,
                                                    aliases=[POSTGRES_CONTAINER])
            result.changed.append(f"{POSTGRES_CONTAINER} connected to {NETWORK_NAME}")
        if not attrs["State"].get("Running"):
            client.api.start(POSTGRES_CONTAINER)
            result.changed.append(f"container {POSTGRES_CONTAINER} started")
            if audit:
                audit.append(host.name, "container.start", POSTGRES_CONTAINER, "ok")
        else:
            result.unchanged.append(f"container {POSTGRES_CONTAINER}")
        cid = attrs["Id"]
    else:
        reporter.step("postgres image", "running", host.postgres_image)
        ensure_image(client, host.name, host.postgres_image, reporter)
        reporter.step("postgres image", "done")
        password = secret_store.get(key) or generate_password()
        secret_store.set(key, password)
        vols = client.api.volumes(filters={"name": POSTGRES_VOLUME}).get("Volumes") or []
        if not any(v["Name"] == POSTGRES_VOLUME for v in vols):
            client.api.create_volume(POSTGRES_VOLUME, labels=_labels("postgres-data"))
            result.created.append(f"volume {POSTGRES_VOLUME}")
        host_config = client.api.create_host_config(
            binds={POSTGRES_VOLUME: {"bind": PG_DATA, "mode": "rw"}},
            restart_policy={"Name": "unless-stopped"},
            network_mode=NETWORK_NAME,
            shm_size="256m",
        )
        networking = client.api.create_networking_config(
            {NETWORK_NAME: client.api.create_endpoint_config(aliases=[POSTGRES_CONTAINER])}
        )
        created = client.api.create_container(
            host.postgres_image,
            name=POSTGRES_CONTAINER,
            environment={"POSTGRES_PASSWORD": password, "POSTGRES_USER": "postgres",
                         "PGDATA": PG_DATA},
            labels=_labels("postgres"),
            host_config=host_config,
            networking_config=networking,
        )
        cid = created["Id"]
        client.api.start(cid)
        result.created.append(f"container {POSTGRES_CONTAINER}")
        if audit:
            audit.append(host.name, "container.create", POSTGRES_CONTAINER, "ok",
                         host.postgres_image)
    result.ids["postgres"] = cid
    wait_postgres_ready(client, reporter, ready_timeout)
    return cid


def wait_postgres_ready(client: docker.DockerClient, reporter: Reporter, timeout: float) -> None:
    """Wait until the server accepts connections over the network (not only the socket)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        ex = client.api.exec_create(
            POSTGRES_CONTAINER,
            ["pg_isready", "-h", "127.0.0.1", "-U", "postgres", "-t", "2"],
            user="postgres",
        )
        out = client.api.exec_start(ex["Id"])
        if client.api.exec_inspect(ex["Id"])["ExitCode"] == 0:
            return
        last = out.decode(errors="replace").strip()
        time.sleep(0.5)
    raise OpsError(f"PostgreSQL in {POSTGRES_CONTAINER} is not ready after {timeout:.0f} s: {last}")


def bootstrap_host(session, secret_store, reporter: Reporter | None = None,
                   audit=None) -> BootstrapResult:
    """Create the network, the PostgreSQL container and the proxy on a host, where missing."""
    reporter = reporter or NullReporter()
    client = session.docker()
    result = BootstrapResult(host=session.host.name)
    reporter.step("network", "running")
    ensure_network(client, result, audit)
    reporter.step("network", "done")
    reporter.step("postgres", "running")
    ensure_postgres(client, session.host, secret_store, result, reporter, audit)
    reporter.step("postgres", "done")
    from havsh_tui.ops.proxy import ensure_proxy

    reporter.step("proxy", "running", session.host.proxy_image)
    ensure_proxy(client, session.host, result, reporter, audit)
    reporter.step("proxy", "done")
    return result


def _psql_quote(value: str) -> str:
    """Quote a value for a psql meta-command (``\\set``): backslashes and quotes doubled."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def psql(client: docker.DockerClient, sql: str, *, database: str = "postgres",
         variables: dict[str, str] | None = None) -> str:
    """Run SQL as the superuser inside havsh-postgres (local socket, no password on argv).

    Values go in as psql variables (``:'name'`` quotes them), never pasted into the SQL, and
    on stdin rather than argv, so that a password never shows in the host's process list.
    """
    argv = ["psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-t", "-A", "-U", "postgres",
            "-d", database]
    head = "".join(f"\\set {k} {_psql_quote(v)}\n" for k, v in (variables or {}).items())
    from havsh_tui.ops.streams import exec_process

    proc = exec_process(client, POSTGRES_CONTAINER, argv, stdin=True, user="postgres")
    try:
        proc.write_all((head + sql).encode())
        proc.close_stdin()
        out = proc.drain()
        rc = proc.exit_code()
    finally:
        proc.close()
    if rc != 0:
        raise OpsError(f"psql failed: {proc.stderr_text()}")
    return out.decode()
