"""SSH connections to hosts (paramiko), verified the way OpenSSH verifies them.

One :class:`SSHConnection` per host, kept open with keepalives and reopened after a drop.
Host keys are checked against the system known_hosts files and the app's own; an unknown key
raises :class:`UnknownHostKey` (the caller decides, with the user, to accept it) and a changed
key raises :class:`ChangedHostKey`, before anything is sent. There is no auto-add policy.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

log = logging.getLogger(__name__)
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts",)


class RemoteError(Exception):
    """Base of every error of the remote layer; its message is fit for the user."""


class HostUnreachable(RemoteError):
    pass


class AuthenticationFailed(RemoteError):
    pass


class PassphraseRequired(AuthenticationFailed):
    def __init__(self, key_path: str) -> None:
        super().__init__(f"the key {key_path} is encrypted: a passphrase is needed")
        self.key_path = key_path


class HostKeyError(RemoteError):
    pass


def fingerprint(key: paramiko.PKey) -> str:
    """The key's OpenSSH-style SHA256 fingerprint, ``SHA256:base64`` without padding."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class UnknownHostKey(HostKeyError):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        self.hostname = hostname
        self.key = key
        self.key_type = key.get_name()
        self.fingerprint = fingerprint(key)
        super().__init__(
            f"The authenticity of host '{hostname}' can't be established.\n"
            f"{self.key_type} key fingerprint is {self.fingerprint}.\n"
            "Accept it in the TUI, or pin it with --accept-host-key "
            f"{self.fingerprint} (or --trust-on-first-use)."
        )


class HostKeyMismatch(HostKeyError):
    """The key is not known yet, and it is not the one the user pinned."""

    def __init__(self, hostname: str, key: paramiko.PKey, pinned: str) -> None:
        self.hostname = hostname
        self.fingerprint = fingerprint(key)
        self.pinned = pinned
        super().__init__(
            f"Host key verification failed for '{hostname}': it presented "
            f"{key.get_name()} {self.fingerprint}, not the pinned {pinned}. Nothing was sent."
        )


class ChangedHostKey(HostKeyError):
    def __init__(self, hostname: str, key: paramiko.PKey, expected: paramiko.PKey) -> None:
        self.hostname = hostname
        self.key = key
        self.fingerprint = fingerprint(key)
        self.expected_fingerprint = fingerprint(expected)
        super().__init__(
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
            "Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n"
            "It is also possible that a host key has just been changed.\n"
            f"The fingerprint for the {key.get_name()} key sent by the remote host "
            f"{hostname} is\n{self.fingerprint}.\n"
            f"The known key has fingerprint {self.expected_fingerprint}.\n"
            f"Host key verification failed: nothing was sent to {hostname}. If the change "
            "is expected, remove the old key with `havsh host forget-key NAME`."
        )


def known_hosts_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


@dataclass
class SSHTarget:
    """Everything needed to open one SSH connection (after ssh_config is applied)."""

    hostname: str
    port: int = 22
    username: str | None = None
    key_filenames: list[str] = field(default_factory=list)
    #: Take only the listed keys (IdentitiesOnly): no agent, no default keys.
    identities_only: bool = False
    use_agent: bool = True
    passphrase: str | None = None
    #: A jump host, reached first; the connection is a channel of its transport.
    jump: SSHTarget | None = None
    proxy_command: str | None = None
    #: The app's own known_hosts file, where accepted keys are saved.
    known_hosts: Path | None = None
    #: Also read ~/.ssh/known_hosts and the system file.
    system_known_hosts: bool = True
    #: A fingerprint the caller pins for this connection (``SHA256:...``).
    accept_fingerprint: str | None = None
    connect_timeout: float = 10.0
    keepalive: int = 15

    @property
    def label(self) -> str:
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"{user}{self.hostname}{port}"


class _VerifyingPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko only for keys not found in any loaded known_hosts."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        pinned = self.target.accept_fingerprint
        if pinned and pinned == fingerprint(key):
            if self.target.known_hosts is not None:
                add_known_host(self.target.known_hosts, hostname, key)
            return
        if pinned:
            raise HostKeyMismatch(hostname, key, pinned)
        raise UnknownHostKey(hostname, key)


def add_known_host(path: Path, hostname: str, key: paramiko.PKey) -> None:
    """Append one key to an OpenSSH known_hosts file (created with mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line)


def remove_known_host(path: Path, hostname: str) -> int:
    """Remove every key of ``hostname`` from ``path``; returns how many lines went."""
    if not path.exists():
        return 0
    kept: list[str] = []
    removed = 0
    for line in path.read_text().splitlines(keepends=True):
        names = line.split(" ", 1)[0].split(",") if line.strip() else []
        if hostname in names:
            removed += 1
        else:
            kept.append(line)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(kept)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return removed


def _load_key(path: str, passphrase: str | None) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path, password=passphrase or None)
    except paramiko.PasswordRequiredException:
        raise PassphraseRequired(path) from None
    except paramiko.SSHException as exc:
        if passphrase:
            raise AuthenticationFailed(f"cannot open the key {path}: wrong passphrase?") from exc
        raise AuthenticationFailed(f"cannot read the key {path}: {exc}") from exc
    except (OSError, ValueError) as exc:
        if passphrase and "decrypt" in str(exc).lower():
            raise AuthenticationFailed(f"cannot open the key {path}: wrong passphrase") from exc
        raise AuthenticationFailed(f"cannot read the key {path}: {exc}") from exc


class SSHConnection:
    """One SSH connection to one host, opened lazily and reopened after a drop."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        self._client: paramiko.SSHClient | None = None
        self._jump: SSHConnection | None = None
        self._lock = threading.RLock()
        self.connected_at: float | None = None
        self.connect_seconds: float | None = None

    # -- opening ---------------------------------------------------------------------------
    def _host_keys_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        t = self.target
        if t.system_known_hosts:
            for sys_path in SYSTEM_KNOWN_HOSTS:
                if os.path.exists(sys_path):
                    client.load_system_host_keys(sys_path)
            user_file = Path.home() / ".ssh" / "known_hosts"
            if user_file.exists():
                client.load_system_host_keys(str(user_file))
        if t.known_hosts is not None and t.known_hosts.exists():
            # Loaded as "system" keys so paramiko never writes to the file itself.
            client.load_system_host_keys(str(t.known_hosts))
        client.set_missing_host_key_policy(_VerifyingPolicy(t))
        return client

    def _sock(self) -> socket.socket | paramiko.Channel | paramiko.ProxyCommand:
        t = self.target
        if t.jump is not None:
            if self._jump is None:
                self._jump = SSHConnection(t.jump)
            transport = self._jump.transport()
            try:
                return transport.open_channel(
                    "direct-tcpip", (t.hostname, t.port), ("127.0.0.1", 0),
                    timeout=t.connect_timeout,
                )
            except (paramiko.SSHException, OSError) as exc:
                raise HostUnreachable(
                    f"jump host {t.jump.label} cannot reach {t.label}: {exc}"
                ) from exc
        if t.proxy_command:
            return paramiko.ProxyCommand(t.proxy_command)
        try:
            sock = socket.create_connection((t.hostname, t.port), timeout=t.connect_timeout)
            # Docker API calls are small request/response pairs: Nagle would delay each one.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except TimeoutError as exc:
            raise HostUnreachable(
                f"{t.label}: no answer within {t.connect_timeout:.0f} s (connection timed out)"
            ) from exc
        except ConnectionRefusedError as exc:
            raise HostUnreachable(f"{t.label}: connection refused (is sshd running?)") from exc
        except OSError as exc:
            raise HostUnreachable(f"{t.label}: {exc.strerror or exc}") from exc

    def _connect(self) -> paramiko.SSHClient:
        t = self.target
        start = time.monotonic()
        client = self._host_keys_client()
        pkeys = [_load_key(p, t.passphrase) for p in t.key_filenames]
        sock = self._sock()
        kwargs: dict = dict(
            hostname=t.hostname,
            port=t.port,
            username=t.username or os.environ.get("USER") or "root",
            sock=sock,
            timeout=t.connect_timeout,
            banner_timeout=t.connect_timeout,
            auth_timeout=t.connect_timeout,
            channel_timeout=t.connect_timeout,
            allow_agent=t.use_agent and not t.identities_only,
            look_for_keys=not t.identities_only and not pkeys,
        )
        try:
            if pkeys:
                # paramiko takes one pkey; try each in turn like OpenSSH does.
                last: Exception | None = None
                for pkey in pkeys:
                    try:
                        client.connect(pkey=pkey, **kwargs)
                        last = None
                        break
                    except paramiko.AuthenticationException as exc:
                        last = exc
                        client.close()
                        client = self._host_keys_client()
                        kwargs["sock"] = self._sock()
                if last is not None:
                    raise last
            else:
                client.connect(**kwargs)
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ChangedHostKey(
                known_hosts_name(t.hostname, t.port), exc.key, exc.expected_key
            ) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise AuthenticationFailed(
                f"{t.label}: permission denied (publickey): {exc}"
            ) from None
        except TimeoutError as exc:
            client.close()
            raise HostUnreachable(f"{t.label}: SSH handshake timed out") from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise HostUnreachable(f"{t.label}: SSH failed: {exc}") from exc
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(t.keepalive)
        self.connected_at = time.time()
        self.connect_seconds = time.monotonic() - start
        return client

    def client(self) -> paramiko.SSHClient:
        """The live paramiko client, connecting (or reconnecting) when needed."""
        with self._lock:
            if self._client is not None:
                tr = self._client.get_transport()
                if tr is not None and tr.is_active():
                    return self._client
                self._client.close()
                self._client = None
            self._client = self._connect()
            return self._client

    def transport(self) -> paramiko.Transport:
        tr = self.client().get_transport()
        assert tr is not None
        return tr

    @property
    def is_connected(self) -> bool:
        c = self._client
        tr = c.get_transport() if c is not None else None
        return bool(tr is not None and tr.is_active())

    def host_key(self) -> paramiko.PKey:
        return self.transport().get_remote_server_key()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._jump is not None:
                self._jump.close()
                self._jump = None

    # -- channels --------------------------------------------------------------------------
    def open_streamlocal(self, socket_path: str, timeout: float | None = None) -> paramiko.Channel:
        """Open a ``direct-streamlocal@openssh.com`` channel to a Unix socket on the host.

        paramiko has no public call for this channel type (OpenSSH's extension), so this
        mirrors ``Transport.open_channel`` with the streamlocal payload.
        """
        tr = self.transport()
        timeout = self.target.connect_timeout if timeout is None else timeout
        kind = "direct-streamlocal@openssh.com"
        with tr.lock:
            window_size = tr._sanitize_window_size(None)
            max_packet_size = tr._sanitize_packet_size(None)
            chanid = tr._next_channel()
            m = paramiko.Message()
            m.add_byte(paramiko.common.cMSG_CHANNEL_OPEN)
            m.add_string(kind)
            m.add_int(chanid)
            m.add_int(window_size)
            m.add_int(max_packet_size)
            m.add_string(socket_path)
            m.add_string("")  # reserved
            m.add_int(0)  # reserved
            chan = paramiko.Channel(chanid)
            tr._channels.put(chanid, chan)
            tr.channel_events[chanid] = event = threading.Event()
            tr.channels_seen[chanid] = True
            chan._set_transport(tr)
            chan._set_window(window_size, max_packet_size)
        tr._send_user_message(m)
        deadline = time.monotonic() + timeout
        while True:
            event.wait(0.1)
            if not tr.active:
                raise HostUnreachable(
                    f"{self.target.label}: the SSH connection dropped ({tr.get_exception()})"
                )
            if event.is_set():
                break
            if time.monotonic() > deadline:
                raise HostUnreachable(f"{self.target.label}: timeout opening a channel")
        opened = tr._channels.get(chanid)
        if opened is None:
            raise RemoteError(
                f"{self.target.label}: sshd refused a channel to {socket_path} "
                "(AllowStreamLocalForwarding may be off)"
            )
        return opened

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 60.0,
        check: bool = False,
    ) -> tuple[int, bytes, bytes]:
        """Run a command on the host. ``argv`` is quoted with shlex: never pasted raw."""
        command = " ".join(shlex.quote(a) for a in argv)
        try:
            chan = self.transport().open_session(timeout=self.target.connect_timeout)
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out = bytearray()
            err = bytearray()
            deadline = time.monotonic() + timeout
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready() and not chan.recv_ready():
                    while chan.recv_stderr_ready():
                        err += chan.recv_stderr(65536)
                    break
                else:
                    if time.monotonic() > deadline:
                        chan.close()
                        raise HostUnreachable(
                            f"{self.target.label}: {argv[0]} did not finish within {timeout:.0f} s"
                        )
                    chan.status_event.wait(0.05)
            rc = chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(f"{self.target.label}: the SSH connection failed: {exc}") from exc
        if check and rc != 0:
            raise RemoteError(
                f"{self.target.label}: `{command}` exited {rc}: {err.decode(errors='replace')}"
            )
        return rc, bytes(out), bytes(err)
