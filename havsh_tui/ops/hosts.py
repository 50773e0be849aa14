"""Host operations: test a connection, health, and the host list's rules."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import docker.errors

from havsh_tui.core.names import LABEL_MANAGED
from havsh_tui.remote.hosts import HostSession
from havsh_tui.remote.ssh import RemoteError

# One constant script, with the docker root as "$1": nothing the user typed is pasted in.
_HEALTH_SCRIPT = 'cat /proc/loadavg; grep -E "^(MemTotal|MemAvailable):" /proc/meminfo; df -PB1 "$1"'


class OpsError(Exception):
    """An operation refused or failed; the message is fit for the user."""


class DockerUnavailable(OpsError):
    pass


@dataclass
class HostHealth:
    """One poll of one host. ``reachable`` False means only ``error`` is meaningful."""

    host: str
    reachable: bool
    error: str | None = None
    docker_version: str | None = None
    api_version: str | None = None
    cpus: int | None = None
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    mem_total: int | None = None
    mem_available: int | None = None
    docker_root: str | None = None
    disk_free: int | None = None
    disk_total: int | None = None
    managed_containers: int | None = None
    rtt_ms: float | None = None
    checked_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)


def _docker_call(session: HostSession, fn):
    try:
        return fn(session.docker())
    except docker.errors.APIError as exc:
        raise DockerUnavailable(f"{session.host.name}: the Docker engine said: {exc}") from exc
    except RemoteError:
        raise
    except Exception as exc:  # requests/urllib3 errors from a channel that could not open
        raise DockerUnavailable(
            f"{session.host.name}: cannot reach the Docker engine over SSH: {exc}. "
            "Is docker installed and may this user use /var/run/docker.sock?"
        ) from exc


def docker_info(session: HostSession) -> dict:
    """The engine's version and info, with a clear error when docker is absent or forbidden."""

    def call(client):
        return client.version(), client.info()

    version, info = _docker_call(session, call)
    return {"version": version, "info": info}


def check_host(session: HostSession) -> HostHealth:
    """Poll one host: engine, CPU, load, memory, disk of the docker root, our containers, RTT."""
    name = session.host.name
    try:
        ssh = session.ssh
        ssh.client()
        client = session.docker()
        t0 = time.monotonic()
        client.api.ping()
        rtt = (time.monotonic() - t0) * 1000
        info = client.api.info()
        version = client.api.version(api_version=False)
        managed = client.api.containers(all=True, quiet=True, filters={"label": LABEL_MANAGED})
        root = info.get("DockerRootDir") or "/var/lib/docker"
        rc, out, err = session.run(["sh", "-c", _HEALTH_SCRIPT, "sh", root], timeout=15)
    except RemoteError as exc:
        return HostHealth(host=name, reachable=False, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a poll reports, it never raises
        return HostHealth(host=name, reachable=False, error=f"{type(exc).__name__}: {exc}")
    h = HostHealth(
        host=name,
        reachable=True,
        docker_version=version.get("Version"),
        api_version=version.get("ApiVersion"),
        cpus=info.get("NCPU"),
        mem_total=info.get("MemTotal"),
        docker_root=root,
        managed_containers=len(managed),
        rtt_ms=round(rtt, 2),
    )
    lines = out.decode(errors="replace").splitlines()
    try:
        l1, l5, l15 = (float(x) for x in lines[0].split()[:3])
        h.load1, h.load5, h.load15 = l1, l5, l15
        for line in lines[1:3]:
            key, val = line.split(":", 1)
            kb = int(val.split()[0]) * 1024
            if key == "MemAvailable":
                h.mem_available = kb
            elif key == "MemTotal":
                h.mem_total = kb
        df = lines[-1].split()
        h.disk_total, h.disk_free = int(df[1]), int(df[3])
    except (IndexError, ValueError):
        h.error = f"could not read load/memory/disk: {err.decode(errors='replace').strip()}"
    return h


@dataclass
class AddedHost:
    host: object
    fingerprint: str
    key_type: str
    docker_version: str | None
    api_version: str | None
    docker_root: str | None
    accepted_new_key: bool

    def to_dict(self) -> dict:
        from dataclasses import asdict as _asdict

        d = {k: v for k, v in self.__dict__.items() if k != "host"}
        d["host"] = _asdict(self.host)  # type: ignore[arg-type]
        return d


def connect_and_verify(
    host,
    opts,
    *,
    accept_fingerprint: str | None = None,
    trust_on_first_use: bool = False,
) -> tuple[HostSession, str, str, bool]:
    """Open a verified connection to a host that may not be in the inventory yet.

    Returns the session, the key's fingerprint and type, and whether the key was new (and so
    was saved to the app's known_hosts). An unknown key raises UnknownHostKey unless it is
    pinned or trust_on_first_use is given; a changed key always raises ChangedHostKey.
    """
    from havsh_tui.remote.ssh import UnknownHostKey, fingerprint

    session = HostSession(host, opts, accept_fingerprint=accept_fingerprint)
    accepted = False
    try:
        session.ssh.client()
        accepted = accept_fingerprint is not None
    except UnknownHostKey as exc:
        if not trust_on_first_use:
            session.close()
            raise
        session.close()
        session = HostSession(host, opts, accept_fingerprint=exc.fingerprint)
        session.ssh.client()
        accepted = True
    key = session.ssh.host_key()
    return session, fingerprint(key), key.get_name(), accepted


def add_host(
    inventory,
    host,
    opts,
    *,
    accept_fingerprint: str | None = None,
    trust_on_first_use: bool = False,
    check: bool = True,
    audit=None,
) -> AddedHost:
    """Test the connection (host key, login, docker) and then save the host."""
    from havsh_tui.core.names import validate_host_name

    validate_host_name(host.name)
    existing = {h.name for h in inventory.list_hosts()}
    if host.name in existing:
        raise OpsError(f"a host named {host.name!r} exists already (see `havsh host ls`)")
    fp = key_type = ""
    accepted = False
    version: dict = {}
    info: dict = {}
    if check:
        session, fp, key_type, accepted = connect_and_verify(
            host, opts, accept_fingerprint=accept_fingerprint,
            trust_on_first_use=trust_on_first_use,
        )
        try:
            d = docker_info(session)
            version, info = d["version"], d["info"]
        finally:
            session.close()
    inventory.add_host(host)
    if audit is not None:
        audit.append(host.name, "host.add", host.destination, "ok", f"key {fp}" if fp else "")
    return AddedHost(
        host=host,
        fingerprint=fp,
        key_type=key_type,
        docker_version=version.get("Version"),
        api_version=version.get("ApiVersion"),
        docker_root=info.get("DockerRootDir"),
        accepted_new_key=accepted,
    )


def remove_host(inventory, name: str, audit=None) -> None:
    """Remove a host from the inventory; refused while it still has services."""
    inventory.get_host(name)
    services = [s.name for s in inventory.list_services(host=name)]
    if services:
        raise OpsError(
            f"host {name!r} still has {len(services)} service(s): {', '.join(sorted(services))}. "
            "Delete or move them first."
        )
    inventory.remove_host(name)
    if audit is not None:
        audit.append(name, "host.rm", name, "ok")


def forget_host_key(host, opts) -> tuple[str, int]:
    """Remove the host's key from the app's known_hosts, so that a new key can be accepted."""
    from havsh_tui.remote.hosts import target_for
    from havsh_tui.remote.ssh import known_hosts_name, remove_known_host

    t = target_for(host, opts)
    name = known_hosts_name(t.hostname, t.port)
    return name, remove_known_host(opts.known_hosts, name)
