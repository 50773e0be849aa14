"""Host operations: test a connection, health, and the host list's rules."""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import asdict, dataclass, field

import docker.errors

from havsh_tui.core.names import LABEL_MANAGED
from havsh_tui.remote.docker_api import DockerUnavailable, EngineGet, SSHDockerAdapter
from havsh_tui.remote.hosts import HostSession
from havsh_tui.remote.ssh import RemoteError

__all__ = [
    "AddedHost", "DockerUnavailable", "HostHealth", "HostInUse", "OpsError", "add_host",
    "check_host", "connect_and_verify", "docker_info", "forget_host_key", "remove_host",
    "take_polled_rows", "update_host",
]

# One constant script, with the docker root as "$1": nothing the user typed is pasted in.
_HEALTH_SCRIPT = (
    'cat /proc/loadavg; grep -E "^(MemTotal|MemAvailable):" /proc/meminfo; df -PB1 "$1"'
)

#: The most one poll may take (each step has its own, smaller timeout too).
POLL_TIMEOUT = 20.0


class OpsError(Exception):
    """An operation refused or failed; the message is fit for the user."""


class HostInUse(OpsError):
    """The host still has services; ``services`` lists them."""

    kind = "host_in_use"

    def __init__(self, name: str, services: list[str]) -> None:
        self.services = services
        self.extra = {"host": name, "services": services}
        super().__init__(
            f"host {name!r} still has {len(services)} service(s): {', '.join(services)}. "
            "Delete or move them first."
        )


@dataclass
class HostHealth:
    """One poll of one host. ``reachable`` False means only ``error`` is meaningful.

    ``error_kind`` says what kind of failure it was (``host_unreachable``,
    ``unknown_host_key``, ``changed_host_key``, ``passphrase_required``,
    ``authentication_failed``, ``docker_unavailable``...), and ``error_extra`` carries its
    details (a key's fingerprint, the encrypted key's path), so a screen can offer the
    right dialog.
    """

    host: str
    reachable: bool
    error: str | None = None
    error_kind: str | None = None
    error_extra: dict = field(default_factory=dict)
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
    #: The platform's own containers on the host (havsh-postgres, havsh-proxy, and the
    #: backup scheduler havsh-backups once a schedule exists): name to state ("running",
    #: "exited", ...), from the poll's list. Missing ones are not in it.
    platform: dict[str, str] = field(default_factory=dict)
    #: A Docker API round trip (the poll's labelled containers list over a kept
    #: channel), in ms.
    rtt_ms: float | None = None
    #: An SSH round trip (a keepalive and its answer), in ms.
    ssh_rtt_ms: float | None = None
    #: How long this poll took, in ms (including a connect when there was one).
    poll_ms: float | None = None
    checked_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)


def _failure(name: str, exc: BaseException, started: float) -> HostHealth:
    if isinstance(exc, RemoteError | OpsError):
        kind = getattr(exc, "kind", None) or type(exc).__name__
        extra = {k: v for k, v in (getattr(exc, "extra", None) or {}).items()
                 if isinstance(v, str | int | float | bool | list | type(None))}
        msg = str(exc)
    else:
        kind, extra, msg = "error", {}, f"{type(exc).__name__}: {exc}"
    return HostHealth(host=name, reachable=False, error=msg, error_kind=kind,
                      error_extra=extra, poll_ms=round((time.monotonic() - started) * 1000, 1))


def _docker_call(session: HostSession, fn):
    try:
        return fn(session.docker())
    except docker.errors.APIError as exc:
        raise DockerUnavailable(f"{session.host.name}: the Docker engine said: {exc}",
                                "engine_error") from exc
    except RemoteError:
        raise
    except Exception as exc:  # requests/urllib3 errors from a channel that could not open
        raise DockerUnavailable(
            f"{session.host.name}: cannot reach the Docker engine over SSH: {exc}. "
            "Is docker installed and may this user use /var/run/docker.sock?", "unknown"
        ) from exc


def docker_info(session: HostSession) -> dict:
    """The engine's version and info, with a clear error when docker is absent or forbidden."""

    def call(client):
        return client.version(), client.info()

    version, info = _docker_call(session, call)
    return {"version": version, "info": info}


def _api_get(client, path: str, timeout: float, **params):
    """One GET with its own timeout (the client's default is the long command timeout):
    over the poller's lean channel (EngineGet) when the client is ours, else the SDK."""
    getter = _engine_get(client)
    if getter is not None:
        return getter.json(path, params or None, timeout=timeout)
    api = client.api
    resp = api.get(api._url(path), params=params or None, timeout=timeout)
    return api._result(resp, json=True)


#: The poller's lean GET (one kept channel, HTTP by hand) per docker client.
_GETTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _engine_get(client) -> EngineGet | None:
    getter = _GETTERS.get(client)
    if getter is None:
        adapter = getattr(client.api, "_custom_adapter", None)
        if not isinstance(adapter, SSHDockerAdapter):
            return None
        getter = _GETTERS[client] = EngineGet(adapter, client.api._version)
    return getter


#: The engine's /version per docker client, re-read only when /info's ServerVersion moves.
_VERSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: /info per docker client, with when it was read. It is the engine's heaviest call and
#: what a poll takes from it (version, CPUs, data root) does not move; the live numbers
#: (load, memory, disk) come from the host itself. Re-read every INFO_TTL seconds, and at
#: once when the poll's kept channel had to be reopened (a reconnect, an engine restart:
#: what an upgrade does).
_INFOS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
INFO_TTL = 60.0
#: Open /proc files per SFTP client: each poll re-reads them from offset 0 (one request).
_PROC_FILES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: The path whose statvfs worked per SFTP client (the docker root or a parent of it).
_STAT_PATHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: The labelled containers a check_host just listed, per session, for poll_statuses to
#: take (one list call serves both): (time.monotonic(), rows).
_POLLED_ROWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: How old those rows may be to stand for a new list call.
POLLED_ROWS_TTL = 2.0


def take_polled_rows(session) -> list[dict] | None:
    """The managed containers listed by the check_host of ``session`` just before, once
    (None when there was none, or it is older than POLLED_ROWS_TTL)."""
    try:
        got = _POLLED_ROWS.pop(session, None)
    except TypeError:  # a session that cannot be weakly referenced (a test's fake)
        return None
    if got is None or time.monotonic() - got[0] > POLLED_ROWS_TTL:
        return None
    return got[1]


def _engine_info(client, timeout: float) -> dict:
    getter = _engine_get(client)
    opens = getter.opens if getter is not None else 0
    cached = _INFOS.get(client)
    if cached is not None and time.monotonic() - cached[0] < INFO_TTL and cached[2] == opens:
        return cached[1]
    info = _api_get(client, "/info", timeout)
    _INFOS[client] = (time.monotonic(), info, opens)
    return info


def _proc_handle(sftp, path: str):
    files = _PROC_FILES.setdefault(sftp, {})
    fh = files.get(path)
    if fh is None:
        fh = files[path] = sftp.open(path)
    return fh


def _read_proc(sftp, path: str) -> str:
    fh = _proc_handle(sftp, path)
    fh.seek(0)
    return fh.read(32768).decode()


def _engine_version(client, info: dict, timeout: float) -> dict:
    cached = _VERSIONS.get(client)
    if cached is not None and cached.get("Version") == info.get("ServerVersion"):
        return cached
    version = _api_get(client, "/version", timeout)
    _VERSIONS[client] = version
    return version


def _parse_stats(loadavg: str, meminfo: str) -> dict:
    out: dict = {}
    l1, l5, l15 = (float(x) for x in loadavg.split()[:3])
    out.update(load1=l1, load5=l5, load15=l15)
    for line in meminfo.splitlines():
        key, _, val = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            kb = int(val.split()[0]) * 1024
            out["mem_total" if key == "MemTotal" else "mem_available"] = kb
    return out


def _pipelined_stats(sftp, stat_path: str) -> dict:
    """Both /proc reads and the statvfs sent at once and answered in one round trip (sftp
    servers answer in order), one request each: a /proc file is read whole by one READ."""
    from paramiko import sftp as psftp

    from havsh_tui.remote.ssh import parse_statvfs

    handles = [_proc_handle(sftp, p).handle for p in ("/proc/loadavg", "/proc/meminfo")]
    nums = [sftp._async_request(type(None), psftp.CMD_READ, h, psftp.int64(0), 32768)
            for h in handles]
    nstat = sftp._async_request(type(None), psftp.CMD_EXTENDED, "statvfs@openssh.com",
                                stat_path)
    texts = []
    for num in nums:
        t, msg = sftp._read_response(num)
        if t != psftp.CMD_DATA:
            raise RemoteError(f"read of a /proc file: unexpected SFTP reply {t}")
        texts.append(msg.get_string().decode())
    t, msg = sftp._read_response(nstat)
    if t != psftp.CMD_EXTENDED_REPLY:
        raise RemoteError(f"statvfs of {stat_path}: unexpected SFTP reply {t}")
    fs = parse_statvfs(msg)
    stats = _parse_stats(texts[0], texts[1])
    stats.update(disk_total=fs["total"], disk_free=fs["free"])
    return stats


def _host_stats(session: HostSession, root: str, left) -> dict:
    """Load, memory and the docker root's disk. Over SFTP (a channel kept open: two small
    reads and a statvfs, no shell, so no login scripts on the host); by a command when the
    host has no SFTP."""
    from havsh_tui.remote.ssh import sftp_statvfs

    try:
        sftp = session.sftp(timeout=left(10))
        stat_path = _STAT_PATHS.get(sftp)
        if stat_path is not None:
            try:
                return _pipelined_stats(sftp, stat_path)
            except (OSError, RemoteError, ValueError, IndexError, EOFError):
                if not session.ssh.is_connected:
                    raise
                _STAT_PATHS.pop(sftp, None)
                _PROC_FILES.pop(sftp, None)  # the step by step way below, from scratch
        stats = _parse_stats(_read_proc(sftp, "/proc/loadavg"), _read_proc(sftp, "/proc/meminfo"))
        for path in (root, root.rsplit("/", 1)[0] or "/", "/"):
            try:
                fs = sftp_statvfs(sftp, path)
            except (OSError, RemoteError):
                continue  # not ours to stat (a user outside the docker group): the parent
            stats.update(disk_total=fs["total"], disk_free=fs["free"])
            _STAT_PATHS[sftp] = path
            break
        return stats
    except (OSError, RemoteError, ValueError, IndexError, EOFError) as exc:
        if not session.ssh.is_connected:
            raise
        first_error = exc
    rc, out, err = session.run(["sh", "-c", _HEALTH_SCRIPT, "sh", root], timeout=left(15))
    lines = out.decode(errors="replace").splitlines()
    try:
        stats = _parse_stats(lines[0], "\n".join(lines[1:3]))
        df = lines[-1].split()
        stats.update(disk_total=int(df[1]), disk_free=int(df[3]))
        return stats
    except (IndexError, ValueError):
        return {"error": f"could not read load/memory/disk (SFTP: {first_error}; "
                         f"command: {err.decode(errors='replace').strip() or rc})"}


#: The list call of every poll: all our containers (any role), with their labels.
_MANAGED_FILTER = json.dumps({"label": [LABEL_MANAGED]})


#: The containers that make up the platform on a host, in the order they are shown.
PLATFORM_CONTAINERS = ("havsh-postgres", "havsh-proxy", "havsh-backups")


def _platform_states(rows: list[dict]) -> dict[str, str]:
    found: dict[str, str] = {}
    for row in rows:
        for name in row.get("Names") or []:
            name = name.lstrip("/")
            if name in PLATFORM_CONTAINERS:
                found[name] = str(row.get("State") or "unknown")
    return {n: found[n] for n in PLATFORM_CONTAINERS if n in found}


def check_host(session: HostSession, timeout: float = POLL_TIMEOUT) -> HostHealth:
    """Poll one host: engine, CPU, load, memory, disk of the docker root, our containers, RTT.

    Per poll: one Docker API call (the labelled containers list, which also proves the
    engine answers and gives ``rtt_ms``; ``poll_statuses`` right after reuses its rows), one
    SFTP round trip (load, memory, disk) and one SSH keepalive (``ssh_rtt_ms``). The
    engine's /info and /version are re-read every INFO_TTL seconds (a version change shows
    at the latest then).

    It never raises and never hangs: connecting is bounded by the connect timeout, and each
    call here by what is left of ``timeout``. A failure is a HostHealth with
    ``reachable=False``, its message and its kind.
    """
    name = session.host.name
    started = time.monotonic()
    deadline = started + timeout

    def left(cap: float) -> float:
        return max(0.5, min(cap, deadline - time.monotonic()))

    try:
        ssh = session.ssh
        ssh.client()
        client = session.docker()
        t0 = time.monotonic()
        managed = _api_get(client, "/containers/json", left(5), all=1, filters=_MANAGED_FILTER)
        rtt = (time.monotonic() - t0) * 1000
        try:
            _POLLED_ROWS[session] = (time.monotonic(), managed)
        except TypeError:
            pass
        info = _engine_info(client, left(10))
        version = _engine_version(client, info, left(10))
        root = info.get("DockerRootDir") or "/var/lib/docker"
        stats = _host_stats(session, root, left)
        # Last: right after a connect the first answer can wait for a delayed ACK.
        ssh_rtt = ssh.ping(timeout=left(5))
    except docker.errors.APIError as exc:
        return _failure(name, DockerUnavailable(
            f"{name}: the Docker engine said: {exc}", "engine_error"), started)
    except Exception as exc:  # noqa: BLE001 - a poll reports, it never raises
        return _failure(name, exc, started)
    h = HostHealth(
        host=name,
        reachable=True,
        docker_version=version.get("Version"),
        api_version=version.get("ApiVersion"),
        cpus=info.get("NCPU"),
        mem_total=info.get("MemTotal"),
        docker_root=root,
        managed_containers=len(managed),
        platform=_platform_states(managed),
        rtt_ms=round(rtt, 2),
        ssh_rtt_ms=round(ssh_rtt * 1000, 2),
    )
    h.load1, h.load5, h.load15 = stats.get("load1"), stats.get("load5"), stats.get("load15")
    h.mem_total = stats.get("mem_total") or h.mem_total
    h.mem_available = stats.get("mem_available")
    h.disk_total, h.disk_free = stats.get("disk_total"), stats.get("disk_free")
    if stats.get("error"):
        h.error = stats["error"]
    h.poll_ms = round((time.monotonic() - started) * 1000, 1)
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
    #: Every key saved to the app's known_hosts on the way (jump hosts too):
    #: [known_hosts name, key type, fingerprint].
    accepted_keys: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "host"}
        d["host"] = asdict(self.host)  # type: ignore[call-overload]
        return d


def connect_and_verify(
    host,
    opts,
    *,
    accept_fingerprint: str | None = None,
    trust_on_first_use: bool = False,
    passphrase: str | None = None,
) -> tuple[HostSession, str, str, bool]:
    """Open a verified connection to a host that may not be in the inventory yet.

    Returns the session, the key's fingerprint and type, and whether the key was new (and so
    was saved to the app's known_hosts). An unknown key raises UnknownHostKey unless it is
    pinned or trust_on_first_use is given (which also accepts unknown jump hosts); a changed
    key always raises ChangedHostKey.
    """
    from havsh_tui.remote.ssh import fingerprint

    session = HostSession(host, opts, accept_fingerprint=accept_fingerprint,
                          trust_on_first_use=trust_on_first_use, passphrase=passphrase)
    try:
        session.ssh.client()
    except BaseException:
        session.close()
        raise
    key = session.ssh.host_key()
    target_name = session.ssh.target.known_hosts_name
    accepted = any(name == target_name for name, _, _ in session.ssh.accepted_keys)
    return session, fingerprint(key), key.get_name(), accepted


def add_host(
    inventory,
    host,
    opts,
    *,
    accept_fingerprint: str | None = None,
    trust_on_first_use: bool = False,
    passphrase: str | None = None,
    check: bool = True,
    audit=None,
) -> AddedHost:
    """Test the connection (host key, login, docker) and then save the host.

    Nothing is saved when the test fails (a key accepted on the way stays in known_hosts:
    it is the host's real key).
    """
    from havsh_tui.core.names import validate_host_name

    validate_host_name(host.name)
    existing = {h.name for h in inventory.list_hosts()}
    if host.name in existing:
        raise OpsError(f"a host named {host.name!r} exists already (see `havsh host ls`)")
    fp = key_type = ""
    accepted = False
    accepted_keys: list = []
    version: dict = {}
    info: dict = {}
    if check:
        session, fp, key_type, accepted = connect_and_verify(
            host, opts, accept_fingerprint=accept_fingerprint,
            trust_on_first_use=trust_on_first_use, passphrase=passphrase,
        )
        accepted_keys = [list(k) for k in session.ssh.all_accepted_keys()]
        try:
            d = docker_info(session)
            version, info = d["version"], d["info"]
        finally:
            session.close()
    inventory.add_host(host)
    if audit is not None:
        for name, kt, kfp in accepted_keys:
            audit.append(host.name, "host.accept-key", name, "ok", f"{kt} {kfp}")
        audit.append(host.name, "host.add", host.destination, "ok", f"key {fp}" if fp else "")
    return AddedHost(
        host=host,
        fingerprint=fp,
        key_type=key_type,
        docker_version=version.get("Version"),
        api_version=version.get("ApiVersion"),
        docker_root=info.get("DockerRootDir"),
        accepted_new_key=accepted,
        accepted_keys=accepted_keys,
    )


#: Fields of a Host that say how to reach it (a change is tested before it is saved).
CONNECTION_FIELDS = ("address", "port", "user", "identity_file", "jump", "ssh_alias")
SETTING_FIELDS = ("postgres_image", "odoo_image", "proxy_image", "base_domain", "tls",
                  "proxy_bind")


def update_host(
    inventory,
    name: str,
    changes: dict,
    opts=None,
    *,
    check: bool = True,
    accept_fingerprint: str | None = None,
    trust_on_first_use: bool = False,
    passphrase: str | None = None,
    audit=None,
):
    """Change a host's settings or how it is reached. A change of how it is reached is
    tested first (host key, login, docker), unless ``check`` is False. Returns the Host."""
    from dataclasses import replace

    host = inventory.get_host(name)
    unknown = set(changes) - set(CONNECTION_FIELDS) - set(SETTING_FIELDS)
    if unknown:
        raise OpsError(f"cannot change {', '.join(sorted(unknown))} of a host")
    if changes.get("proxy_bind") is not None:
        from havsh_tui.ops.proxy import validate_bind

        changes = {**changes, "proxy_bind": validate_bind(changes["proxy_bind"])}
    changed = {k: v for k, v in changes.items() if getattr(host, k) != v}
    if not changed:
        return host
    new = replace(host, **changed)
    if check and opts is not None and set(changed) & set(CONNECTION_FIELDS):
        session, fp, _, _ = connect_and_verify(
            new, opts, accept_fingerprint=accept_fingerprint,
            trust_on_first_use=trust_on_first_use, passphrase=passphrase)
        try:
            docker_info(session)
        finally:
            session.close()
    inventory.update_host(new)
    if audit is not None:
        audit.append(name, "host.set", name, "ok",
                     ", ".join(f"{k}={v}" for k, v in changed.items()))
    return new


def remove_host(inventory, name: str, audit=None) -> None:
    """Remove a host from the inventory; refused while it still has services."""
    inventory.get_host(name)
    services = sorted(s.name for s in inventory.list_services(host=name))
    if services:
        raise HostInUse(name, services)
    inventory.remove_host(name)
    if audit is not None:
        audit.append(name, "host.rm", name, "ok")


def forget_host_key(host, opts) -> tuple[str, int]:
    """Remove the host's key from the app's known_hosts, so that a new key can be accepted."""
    from havsh_tui.remote.hosts import target_for
    from havsh_tui.remote.ssh import remove_known_host

    t = target_for(host, opts)
    name = t.known_hosts_name
    return name, remove_known_host(opts.known_hosts, name)
