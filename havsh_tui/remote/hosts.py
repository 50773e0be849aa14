"""From an inventory Host to a live connection: ssh_config, keys, jump hosts, the pool.

How a Host becomes an :class:`SSHTarget` (OpenSSH's rules, through ``paramiko.SSHConfig``):

- ``host.ssh_alias`` or ``host.address`` is looked up in the ssh_config (``~/.ssh/config``,
  or ``$HAVSH_SSH_CONFIG``); HostName, User, Port, IdentityFile, IdentitiesOnly,
  IdentityAgent, ProxyJump (chains ``a,b,c`` too), ProxyCommand, ConnectTimeout,
  ServerAliveInterval/CountMax, HostKeyAlias, UserKnownHostsFile and GlobalKnownHostsFile
  apply. What the Host says explicitly (a user, a port other than 22, an identity file, a
  jump host) wins over the config.
- StrictHostKeyChecking is ignored: havsh always checks strictly (see remote/ssh.py).

Passphrases: ``HostPool.session(host, passphrase=...)`` (the TUI, after asking), or a
``SSHOptions.passphrase_callback`` asked when a key needs one (the CLI on a terminal), or
``SSHOptions.passphrase_file`` / ``$HAVSH_SSH_PASSPHRASE_FILE`` (scripts). A passphrase is
kept in memory only, for the reconnects of that process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker

from havsh_tui.core.model import Host
from havsh_tui.remote.docker_api import docker_client
from havsh_tui.remote.ssh import PassphraseCallback, SSHConnection, SSHTarget

#: ProxyJump chains longer than this are refused (and config loops end here).
MAX_JUMPS = 8


@dataclass
class SSHOptions:
    """How the app's SSH behaves; the tests point every path into a temporary folder."""

    known_hosts: Path
    ssh_config: Path | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    system_known_hosts: bool = True
    #: Seconds of silence before a keepalive (ServerAliveInterval when ssh_config has none).
    keepalive_interval: int = 15
    keepalive_count_max: int = 3
    #: Asked (key path, wrong_before) when an encrypted key needs a passphrase.
    passphrase_callback: PassphraseCallback | None = None
    #: A file whose first line is the passphrase of the encrypted key(s).
    passphrase_file: Path | None = None

    @classmethod
    def default(cls, known_hosts: Path, **kw) -> SSHOptions:
        user_cfg = Path.home() / ".ssh" / "config"
        env_cfg = os.environ.get("HAVSH_SSH_CONFIG")
        cfg = Path(env_cfg) if env_cfg else (user_cfg if user_cfg.exists() else None)
        env_pass = os.environ.get("HAVSH_SSH_PASSPHRASE_FILE")
        if env_pass and "passphrase_file" not in kw:
            kw["passphrase_file"] = Path(env_pass)
        return cls(known_hosts=known_hosts, ssh_config=cfg, **kw)

    def file_passphrase(self) -> str | None:
        if self.passphrase_file is None:
            return None
        try:
            text = self.passphrase_file.read_text()
        except OSError as exc:
            from havsh_tui.remote.ssh import AuthenticationFailed

            raise AuthenticationFailed(
                f"cannot read the passphrase file {self.passphrase_file}: {exc.strerror}"
            ) from None
        return text.splitlines()[0] if text else ""


class PassphraseCache:
    """Wraps a prompt so that each key's passphrase is asked once per process, one prompt at
    a time (parallel polls of several hosts share one terminal)."""

    def __init__(self, prompt: Callable[[str, bool], str | None]) -> None:
        self._prompt = prompt
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, key_path: str, wrong_before: bool) -> str | None:
        with self._lock:
            cached = self._known.get(key_path)
            if cached is not None and not wrong_before:
                return cached
            answer = self._prompt(key_path, wrong_before)
            if answer is not None:
                self._known[key_path] = answer
            return answer


def parse_destination(dest: str) -> tuple[str | None, str, int | None]:
    """``[user@]address[:port]`` (or ``ssh://[user@]address[:port]``) → (user, address, port).

    IPv6 goes in brackets. Raises ValueError for an empty address or a bad port.
    """
    dest = dest.strip()
    if dest.startswith("ssh://"):
        dest = dest[len("ssh://"):].rstrip("/")
    user = None
    if "@" in dest:
        user, dest = dest.rsplit("@", 1)
    port: int | None = None
    if dest.startswith("["):
        addr, _, rest = dest[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:])
        elif rest:
            raise ValueError(f"unexpected {rest!r} after the address")
    elif dest.count(":") == 1:
        addr, p = dest.split(":")
        port = _port(p)
    else:
        addr = dest
    if not addr or any(c.isspace() for c in addr):
        raise ValueError("no address" if not addr else "the address has spaces")
    return user or None, addr, port


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"bad port {text!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return port


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


def is_ssh_config_alias(name: str, opts: SSHOptions) -> bool:
    return name in ssh_config_aliases(opts)


def _yes(value) -> bool:
    return str(value or "no").strip().lower() in ("yes", "true", "on")


def _expand(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


def _float(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _resolve(
    address: str,
    opts: SSHOptions,
    cfg,
    *,
    port: int | None = None,
    user: str | None = None,
    identity_file: str | None = None,
    jump: str | None = None,
    use_config_jump: bool = True,
    depth: int = 0,
    **target_kw,
) -> SSHTarget:
    """One hop: ``address`` through ssh_config, explicit values winning."""
    if depth > MAX_JUMPS:
        raise ValueError(f"more than {MAX_JUMPS} jump hosts (a ProxyJump loop in ssh_config?)")
    looked = cfg.lookup(address)
    hostname = looked.get("hostname", address)
    cfg_port = int(looked.get("port", 22))
    the_port = port if port not in (None, 22) else cfg_port
    the_user = user or looked.get("user")
    keys: list[str] = []
    if identity_file:
        keys.append(_expand(identity_file))
    else:
        for k in looked.get("identityfile", []) or []:
            p = _expand(k)
            if os.path.exists(p):
                keys.append(p)
    # An identity file named for this host means "this key": like IdentitiesOnly.
    identities_only = _yes(looked.get("identitiesonly")) or bool(identity_file)
    agent = looked.get("identityagent")
    use_agent = not (agent and agent.strip().lower() == "none")
    agent_socket = None
    if agent and use_agent and agent.strip() != "SSH_AUTH_SOCK":
        agent_socket = _expand(agent.strip().strip('"'))
    known_files: list[str] | None = None
    if looked.get("userknownhostsfile") or looked.get("globalknownhostsfile"):
        user_files = (looked.get("userknownhostsfile") or " ".join(
            ("~/.ssh/known_hosts", "~/.ssh/known_hosts2"))).split()
        global_files = (looked.get("globalknownhostsfile") or " ".join(
            ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"))).split()
        known_files = [_expand(f) for f in user_files + global_files if f.lower() != "none"]
    connect_timeout = opts.connect_timeout
    if looked.get("connecttimeout"):
        connect_timeout = min(connect_timeout, _float(looked["connecttimeout"], connect_timeout))
    keepalive = int(_float(looked.get("serveraliveinterval"), opts.keepalive_interval)) \
        or opts.keepalive_interval
    count_max = int(_float(looked.get("serveralivecountmax"), opts.keepalive_count_max))
    jump_spec = jump if jump else (looked.get("proxyjump") if use_config_jump else None)
    jump_target = None
    if jump_spec and jump_spec.strip().lower() != "none":
        jump_target = _chain(jump_spec, opts, cfg, depth=depth, **_hop_kw(target_kw))
    proxy_command = None
    if jump_target is None:
        pc = looked.get("proxycommand")
        if pc and pc.strip().lower() != "none":
            proxy_command = pc
    return SSHTarget(
        hostname=hostname,
        port=the_port,
        username=the_user,
        key_filenames=keys,
        identities_only=identities_only,
        use_agent=use_agent,
        agent_socket=agent_socket,
        jump=jump_target,
        proxy_command=proxy_command,
        known_hosts=opts.known_hosts,
        system_known_hosts=opts.system_known_hosts,
        known_hosts_files=known_files,
        host_key_alias=looked.get("hostkeyalias"),
        connect_timeout=connect_timeout,
        keepalive=keepalive,
        keepalive_count_max=count_max,
        passphrase_callback=opts.passphrase_callback,
        **target_kw,
    )


def _hop_kw(target_kw: dict) -> dict:
    """What a jump hop inherits from the target: the passphrase and trust on first use,
    never the target's pinned fingerprint."""
    return {k: v for k, v in target_kw.items() if k in ("passphrase", "trust_on_first_use")}


def _chain(spec: str, opts: SSHOptions, cfg, *, depth: int, **hop_kw) -> SSHTarget:
    """``a,b,c`` → c reached through b reached through a (each hop through ssh_config)."""
    previous: SSHTarget | None = None
    hops = [h.strip() for h in spec.split(",") if h.strip()]
    if len(hops) > MAX_JUMPS:
        raise ValueError(f"more than {MAX_JUMPS} jump hosts in {spec!r}")
    for i, hop in enumerate(hops):
        u, a, p = parse_destination(hop)
        if previous is None:
            # The first hop is reached however ssh_config says (its own ProxyJump too).
            previous = _resolve(a, opts, cfg, port=p, user=u, depth=depth + 1, **hop_kw)
        else:
            t = _resolve(a, opts, cfg, port=p, user=u, use_config_jump=False,
                         depth=depth + 1 + i, **hop_kw)
            t.jump = previous
            t.proxy_command = None
            previous = t
    assert previous is not None
    return previous


def target_for(
    host: Host,
    opts: SSHOptions,
    *,
    accept_fingerprint: str | None = None,
    passphrase: str | None = None,
    trust_on_first_use: bool = False,
) -> SSHTarget:
    """Resolve a Host through ssh_config the way OpenSSH does; explicit fields win."""
    cfg = _ssh_config(opts)
    if passphrase is None:
        passphrase = opts.file_passphrase()
    kw: dict = {"passphrase": passphrase, "trust_on_first_use": trust_on_first_use}
    return _resolve(
        host.ssh_alias or host.address,
        opts,
        cfg,
        port=host.port,
        user=host.user,
        identity_file=host.identity_file,
        jump=host.jump,
        accept_fingerprint=accept_fingerprint,
        **kw,
    )


class HostSession:
    """The SSH connection and docker client of one host, made on first use and kept."""

    def __init__(self, host: Host, opts: SSHOptions, **target_kw) -> None:
        self.host = host
        self.opts = opts
        self.ssh = SSHConnection(target_for(host, opts, **target_kw))
        self._docker: docker.DockerClient | None = None
        self._sftp = None
        self._lock = threading.Lock()

    def docker(self) -> docker.DockerClient:
        with self._lock:
            if self._docker is None:
                self._docker = docker_client(self.ssh, timeout=self.opts.command_timeout)
            return self._docker

    def run(self, argv, **kw):
        kw.setdefault("timeout", self.opts.command_timeout)
        return self.ssh.run(argv, **kw)

    def sftp(self, timeout: float | None = None):
        """An SFTP client kept open on this host's connection (reopened after a reconnect),
        for the small reads of each poll."""
        with self._lock:
            transport = self.ssh.transport()
            sftp = self._sftp
            if sftp is not None:
                chan = sftp.get_channel()
                if chan.get_transport() is transport and not chan.closed:
                    if timeout is not None:
                        chan.settimeout(timeout)
                    return sftp
                sftp.close()
            self._sftp = self.ssh.open_sftp(timeout)
            return self._sftp

    def close(self) -> None:
        with self._lock:
            if self._sftp is not None:
                try:
                    self._sftp.close()
                except Exception:  # noqa: BLE001 - closing a dead channel must not raise
                    pass
                self._sftp = None
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
        self._passphrases: dict[str, str] = {}
        self._lock = threading.Lock()

    def session(self, host: Host, *, passphrase: str | None = None) -> HostSession:
        """The host's session. A ``passphrase`` (asked after PassphraseRequired) is kept for
        this host's later sessions and reconnects, in memory only."""
        with self._lock:
            s = self._sessions.get(host.name)
            if passphrase is not None and self._passphrases.get(host.name) != passphrase:
                self._passphrases[host.name] = passphrase
                if s is not None:
                    s.close()
                    s = None
            if s is None or s.host != host:
                if s is not None:
                    s.close()
                s = HostSession(host, self.opts, passphrase=self._passphrases.get(host.name))
                self._sessions[host.name] = s
            return s

    def drop(self, name: str) -> None:
        with self._lock:
            s = self._sessions.pop(name, None)
            self._passphrases.pop(name, None)
        if s is not None:
            s.close()

    def close(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            s.close()
