"""From an inventory Host to a live connection: ssh_config, keys, jump hosts, the pool."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import docker

from havsh_tui.core.model import Host
from havsh_tui.remote.docker_api import docker_client
from havsh_tui.remote.ssh import SSHConnection, SSHTarget


@dataclass
class SSHOptions:
    """How the app's SSH behaves; the tests point every path into a temporary folder."""

    known_hosts: Path
    ssh_config: Path | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    system_known_hosts: bool = True

    @classmethod
    def default(cls, known_hosts: Path, **kw) -> SSHOptions:
        user_cfg = Path.home() / ".ssh" / "config"
        env_cfg = os.environ.get("HAVSH_SSH_CONFIG")
        cfg = Path(env_cfg) if env_cfg else (user_cfg if user_cfg.exists() else None)
        return cls(known_hosts=known_hosts, ssh_config=cfg, **kw)


def parse_destination(dest: str) -> tuple[str | None, str, int | None]:
    """``[user@]address[:port]`` → (user, address, port). IPv6 goes in brackets."""
    user = None
    if "@" in dest:
        user, dest = dest.rsplit("@", 1)
    port = None
    if dest.startswith("["):
        addr, _, rest = dest[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
        return user or None, addr, port
    if dest.count(":") == 1:
        addr, p = dest.split(":")
        return user or None, addr, int(p)
    return user or None, dest, None


def _ssh_config(opts: SSHOptions):
    import paramiko

    cfg = paramiko.SSHConfig()
    if opts.ssh_config is not None and opts.ssh_config.exists():
        with open(opts.ssh_config) as fh:
            cfg.parse(fh)
    return cfg


def ssh_config_aliases(opts: SSHOptions) -> list[str]:
    """The concrete Host aliases of the ssh_config (no wildcards), for the add-host dialog."""
    cfg = _ssh_config(opts)
    return sorted(h for h in cfg.get_hostnames() if not any(c in h for c in "*?!"))


def target_for(
    host: Host,
    opts: SSHOptions,
    *,
    accept_fingerprint: str | None = None,
    passphrase: str | None = None,
) -> SSHTarget:
    """Resolve a Host through ssh_config the way OpenSSH does; explicit fields win."""
    cfg = _ssh_config(opts)
    looked = cfg.lookup(host.address)
    hostname = looked.get("hostname", host.address)
    port = host.port if host.port != 22 else int(looked.get("port", 22))
    user = host.user or looked.get("user")
    keys: list[str] = []
    if host.identity_file:
        keys.append(os.path.expanduser(host.identity_file))
    else:
        for k in looked.get("identityfile", []) or []:
            p = os.path.expanduser(k)
            if os.path.exists(p):
                keys.append(p)
    identities_only = str(looked.get("identitiesonly", "no")).lower() == "yes" or bool(
        host.identity_file
    )
    jump_spec = host.jump or looked.get("proxyjump")
    jump = None
    if jump_spec and jump_spec.lower() != "none":
        # Only the first hop of a chain here; each hop is itself resolved through ssh_config.
        first = jump_spec.split(",")[0]
        ju, ja, jp = parse_destination(first)
        jump = target_for(
            Host(name=f"jump:{first}", address=ja, port=jp or 22, user=ju), opts
        )
    return SSHTarget(
        hostname=hostname,
        port=port,
        username=user,
        key_filenames=keys,
        identities_only=identities_only,
        jump=jump,
        proxy_command=None if jump else looked.get("proxycommand"),
        known_hosts=opts.known_hosts,
        system_known_hosts=opts.system_known_hosts,
        accept_fingerprint=accept_fingerprint,
        connect_timeout=opts.connect_timeout,
    )


class HostSession:
    """The SSH connection and docker client of one host, made on first use and kept."""

    def __init__(self, host: Host, opts: SSHOptions, **target_kw) -> None:
        self.host = host
        self.opts = opts
        self.ssh = SSHConnection(target_for(host, opts, **target_kw))
        self._docker: docker.DockerClient | None = None
        self._lock = threading.Lock()

    def docker(self) -> docker.DockerClient:
        with self._lock:
            if self._docker is None:
                self._docker = docker_client(self.ssh, timeout=self.opts.command_timeout)
            return self._docker

    def run(self, argv, **kw):
        kw.setdefault("timeout", self.opts.command_timeout)
        return self.ssh.run(argv, **kw)

    def close(self) -> None:
        with self._lock:
            if self._docker is not None:
                try:
                    self._docker.close()
                except Exception:  # noqa: BLE001 - closing a dead client must not raise
                    pass
                self._docker = None
        self.ssh.close()


class HostPool:
    """One HostSession per host name, shared by every worker of the process."""

    def __init__(self, opts: SSHOptions) -> None:
        self.opts = opts
        self._sessions: dict[str, HostSession] = {}
        self._lock = threading.Lock()

    def session(self, host: Host) -> HostSession:
        with self._lock:
            s = self._sessions.get(host.name)
            if s is None or s.host != host:
                if s is not None:
                    s.close()
                s = HostSession(host, self.opts)
                self._sessions[host.name] = s
            return s

    def drop(self, name: str) -> None:
        with self._lock:
            s = self._sessions.pop(name, None)
        if s is not None:
            s.close()

    def close(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            s.close()
