"""SSH connections to hosts (paramiko), verified and authenticated the way OpenSSH does it.

One :class:`SSHConnection` per host, opened lazily, kept alive and reopened after a drop.

Host keys
    The presented key is checked against OpenSSH's known_hosts files (``~/.ssh/known_hosts``
    and ``/etc/ssh/ssh_known_hosts``, or the files ssh_config names) and against the app's own
    known_hosts. A key that is not known raises :class:`UnknownHostKey` (with its type and
    SHA256 fingerprint) unless the caller pinned that fingerprint or asked for trust on first
    use; the key is then saved to the app's file. A host that is known with another key raises
    :class:`ChangedHostKey` with OpenSSH's warning. Both happen right after the key exchange,
    before the client sends anything about the user: no user name, no key, no channel. A
    changed key is remembered, so the next attempts do not even connect until a known_hosts
    file changes (``havsh host forget-key``). There is no auto-add policy.

Authentication (public keys only, as OpenSSH tries them)
    The identity files given (explicitly or by ssh_config), then the agent's keys (unless
    IdentitiesOnly, or IdentityAgent none), then the default ``~/.ssh/id_*`` keys when no
    identity file was named. An encrypted identity file needs a passphrase: without one
    :class:`PassphraseRequired` is raised *before* anything goes on the network (unless the
    agent holds the same key); a wrong one raises :class:`WrongPassphrase`. Callers either
    pass ``passphrase=`` again (the TUI asks with a masked input), or give the target a
    ``passphrase_callback(key_path, wrong_before) -> str | None`` (the CLI prompts on a TTY).

Timeouts and liveness
    ``connect_timeout`` bounds the whole connection (jump hops, TCP, banner, key exchange and
    authentication). Every channel open has a timeout, and so has every command. A keepalive
    asks the server for an answer every ``keepalive`` seconds of silence (OpenSSH's
    ServerAliveInterval; ``keepalive_count_max`` unanswered ones drop the connection), so a
    silently dead path is noticed; a call in flight on a dropped connection fails with
    :class:`HostUnreachable`, and the next call reconnects.
"""

from __future__ import annotations

import base64
import errno
import fnmatch
import getpass
import hashlib
import hmac
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.agent import AgentSSH

log = logging.getLogger(__name__)
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
#: The default identities OpenSSH tries when none is named (those paramiko can use).
DEFAULT_IDENTITIES = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519")
#: How often we ask for a passphrase before giving up, as OpenSSH does.
PASSPHRASE_TRIES = 3

PassphraseCallback = Callable[[str, bool], "str | None"]


# --------------------------------------------------------------------------- errors


class RemoteError(Exception):
    """Base of every error of the remote layer; its message is fit for the user.

    ``kind`` names the error for JSON output; ``extra`` holds machine-readable details.
    """

    kind = "remote_error"

    def __init__(self, message: str = "", **extra: object) -> None:
        super().__init__(message)
        self.extra: dict[str, object] = extra


class HostUnreachable(RemoteError):
    kind = "host_unreachable"


class AuthenticationFailed(RemoteError):
    kind = "authentication_failed"


class PassphraseRequired(AuthenticationFailed):
    """An encrypted key needs its passphrase: call again with ``passphrase=``."""

    kind = "passphrase_required"

    def __init__(self, key_path: str, message: str | None = None) -> None:
        super().__init__(
            message or f"the key {key_path} is encrypted: a passphrase is needed "
            "(give it with --passphrase-file FILE, or run on a terminal to be asked)",
            key=key_path,
        )
        self.key_path = key_path


class WrongPassphrase(PassphraseRequired):
    """The passphrase given does not open the key (still a :class:`PassphraseRequired`)."""

    kind = "wrong_passphrase"

    def __init__(self, key_path: str) -> None:
        super().__init__(key_path, f"wrong passphrase for the key {key_path}")


class HostKeyError(RemoteError):
    kind = "host_key_error"


def fingerprint(key: paramiko.PKey) -> str:
    """The key's OpenSSH-style SHA256 fingerprint, ``SHA256:base64`` without padding."""
    return blob_fingerprint(key.asbytes())


def blob_fingerprint(blob: bytes) -> str:
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _key_label(key_type: str) -> str:
    """OpenSSH's short name of a key type: ED25519, ECDSA, RSA."""
    if "ed25519" in key_type:
        return "ED25519"
    if "ecdsa" in key_type:
        return "ECDSA"
    if "rsa" in key_type:
        return "RSA"
    return key_type.upper()


class UnknownHostKey(HostKeyError):
    kind = "unknown_host_key"

    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        self.hostname = hostname
        self.key = key
        self.key_type = key.get_name()
        self.fingerprint = fingerprint(key)
        super().__init__(
            f"The authenticity of host '{hostname}' can't be established.\n"
            f"{_key_label(self.key_type)} key fingerprint is {self.fingerprint}.\n"
            "No login was attempted. Accept it in the TUI, or pin it with --accept-host-key "
            f"{self.fingerprint} (or --trust-on-first-use).",
            host=hostname, key_type=self.key_type, fingerprint=self.fingerprint,
        )

    def save_to(self, known_hosts: Path) -> None:
        """Accept this key: save it under its own name (the target's, or a jump host's),
        so that the next connection knows it. Works for every hop, unlike a pin."""
        add_known_host(known_hosts, self.hostname, self.key)


class HostKeyMismatch(HostKeyError):
    """The key is not known yet, and it is not the one the user pinned."""

    kind = "host_key_mismatch"

    def __init__(self, hostname: str, key: paramiko.PKey, pinned: str) -> None:
        self.hostname = hostname
        self.fingerprint = fingerprint(key)
        self.pinned = pinned
        super().__init__(
            f"Host key verification failed for '{hostname}': it presented "
            f"{key.get_name()} {self.fingerprint}, not the pinned {pinned}. Nothing was sent.",
            host=hostname, fingerprint=self.fingerprint, pinned=pinned,
        )


@dataclass(frozen=True)
class KnownKey:
    """One key line of a known_hosts file that matched a host."""

    path: str
    line: int
    key_type: str
    blob: bytes
    marker: str | None = None  # "@revoked" / "@cert-authority"

    @property
    def fingerprint(self) -> str:
        return blob_fingerprint(self.blob)


class ChangedHostKey(HostKeyError):
    kind = "changed_host_key"

    def __init__(
        self,
        hostname: str,
        key: paramiko.PKey,
        expected: paramiko.PKey | KnownKey,
        where: str | None = None,
    ) -> None:
        self.hostname = hostname
        self.key = key
        self.fingerprint = fingerprint(key)
        if isinstance(expected, KnownKey):
            self.expected_fingerprint = expected.fingerprint
            where = where or f"{expected.path}:{expected.line}"
            expected_type = expected.key_type
        else:
            self.expected_fingerprint = fingerprint(expected)
            expected_type = expected.get_name()
        self.where = where
        offending = (f"Offending {_key_label(expected_type)} key in {where}\n" if where else "")
        super().__init__(
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
            "Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n"
            "It is also possible that a host key has just been changed.\n"
            f"The fingerprint for the {_key_label(key.get_name())} key sent by the remote host "
            f"{hostname} is\n{self.fingerprint}.\n"
            f"The known key has fingerprint {self.expected_fingerprint}.\n"
            f"{offending}"
            f"Host key for {hostname} has changed and havsh always checks strictly.\n"
            f"Host key verification failed: nothing was sent to {hostname}. If the change "
            "is expected, remove the old key with `havsh host forget-key NAME`.",
            host=hostname, fingerprint=self.fingerprint,
            expected_fingerprint=self.expected_fingerprint, known_hosts=where,
        )


class RevokedHostKey(HostKeyError):
    kind = "revoked_host_key"

    def __init__(self, hostname: str, key: paramiko.PKey, where: str) -> None:
        self.hostname = hostname
        self.fingerprint = fingerprint(key)
        super().__init__(
            f"Host key {key.get_name()} {self.fingerprint} for {hostname} is marked as "
            f"revoked ({where}). Host key verification failed: nothing was sent.",
            host=hostname, fingerprint=self.fingerprint,
        )


# --------------------------------------------------------------------------- known_hosts


def known_hosts_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _hashed_match(entry: str, name: str) -> bool:
    # |1|base64(salt)|base64(hmac-sha1(salt, name))
    try:
        _, _, salt, digest = entry.split("|", 3)
        mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def _names_match(field_text: str, name: str) -> bool:
    """OpenSSH host patterns: comma list, ``*``/``?`` wildcards, ``!`` negation, hashes."""
    if field_text.startswith("|1|"):
        return _hashed_match(field_text, name)
    matched = False
    for pattern in field_text.split(","):
        negate = pattern.startswith("!")
        pattern = pattern[1:] if negate else pattern
        if pattern == name or (
            any(c in pattern for c in "*?") and fnmatch.fnmatchcase(name, pattern)
        ):
            if negate:
                return False
            matched = True
    return matched


def _parse_known_line(line: str) -> tuple[str | None, str, str, str] | None:
    parts = line.split()
    if not parts or parts[0].startswith("#"):
        return None
    marker = None
    if parts[0].startswith("@"):
        marker, parts = parts[0], parts[1:]
    if len(parts) < 3:
        return None
    return marker, parts[0], parts[1], parts[2]


def lookup_known_hosts(files: Sequence[str | Path], name: str) -> list[KnownKey]:
    """Every key line of ``files`` whose host patterns match ``name``."""
    found: list[KnownKey] = []
    for f in files:
        path = Path(os.path.expanduser(str(f)))
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for n, line in enumerate(text.splitlines(), start=1):
            parsed = _parse_known_line(line)
            if parsed is None:
                continue
            marker, names, key_type, b64 = parsed
            if marker == "@cert-authority" or not _names_match(names, name):
                continue
            try:
                blob = base64.b64decode(b64, validate=True)
            except ValueError:
                continue
            found.append(KnownKey(str(path), n, key_type, blob, marker))
    return found


def add_known_host(path: Path, hostname: str, key: paramiko.PKey) -> None:
    """Append one key to an OpenSSH known_hosts file (created with mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line)


def remove_known_host(path: Path, hostname: str) -> int:
    """Remove every key of ``hostname`` from ``path`` (plain or hashed entries); returns how
    many lines went. A line that lists other names too loses only this name."""
    if not path.exists():
        return 0
    kept: list[str] = []
    removed = 0
    for line in path.read_text().splitlines(keepends=True):
        parsed = _parse_known_line(line)
        if parsed is None:
            kept.append(line)
            continue
        marker, names, _, _ = parsed
        if names.startswith("|1|"):
            if _hashed_match(names, hostname):
                removed += 1
                continue
            kept.append(line)
            continue
        listed = names.split(",")
        if hostname not in listed:
            kept.append(line)
            continue
        removed += 1
        others = [n for n in listed if n != hostname]
        if others:
            fields = line.split(None, 2) if marker else line.split(None, 1)
            head = f"{marker} " if marker else ""
            kept.append(f"{head}{','.join(others)} {fields[-1]}")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(kept)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return removed


# --------------------------------------------------------------------------- keys


def _read_public_blob(key_path: str) -> bytes | None:
    """The public key blob of ``key_path`` from its ``.pub`` file, if there is one."""
    try:
        parts = Path(key_path + ".pub").read_text().split()
        return base64.b64decode(parts[1])
    except (OSError, IndexError, ValueError):
        return None


def key_is_encrypted(path: str) -> bool:
    from cryptography.hazmat.primitives import serialization

    data = Path(path).read_bytes()
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            serialization.load_ssh_private_key(data, password=None)
        else:
            serialization.load_pem_private_key(data, password=None)
    except TypeError:
        return True
    except ValueError:
        return False
    return False


def load_private_key(path: str, passphrase: str | None) -> paramiko.PKey:
    """Load an OpenSSH or PEM private key. Raises PassphraseRequired (encrypted, none given),
    WrongPassphrase, or AuthenticationFailed (unreadable or unsupported)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuthenticationFailed(f"cannot read the key {path}: {exc.strerror or exc}",
                                   key=path) from None
    password = passphrase.encode() if passphrase else None
    openssh = b"OPENSSH PRIVATE KEY" in data
    try:
        if openssh:
            loaded = serialization.load_ssh_private_key(data, password=password)
        else:
            loaded = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        # "password was not given but the key is encrypted" (or given for a plain key).
        if password is None:
            raise PassphraseRequired(path) from None
        try:
            loaded = (serialization.load_ssh_private_key(data, password=None) if openssh
                      else serialization.load_pem_private_key(data, password=None))
            password = None
        except (TypeError, ValueError):
            raise WrongPassphrase(path) from None
    except ValueError as exc:
        if password is not None:
            raise WrongPassphrase(path) from None
        raise AuthenticationFailed(f"cannot read the key {path}: {exc}", key=path) from None
    except Exception as exc:  # noqa: BLE001 - unsupported algorithms and the like
        raise AuthenticationFailed(f"cannot use the key {path}: {exc}", key=path) from None
    if isinstance(loaded, rsa.RSAPrivateKey):
        cls: type[paramiko.PKey] = paramiko.RSAKey
    elif isinstance(loaded, ed25519.Ed25519PrivateKey):
        cls = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        cls = paramiko.ECDSAKey
    else:
        raise AuthenticationFailed(
            f"the key {path} is of a type havsh cannot use ({type(loaded).__name__})", key=path)
    try:
        key = cls.from_private_key_file(path, password=passphrase if password else None)
    except paramiko.SSHException as exc:
        raise AuthenticationFailed(f"cannot load the key {path}: {exc}", key=path) from None
    cert = path + "-cert.pub"
    if os.path.exists(cert):
        try:
            key.load_certificate(cert)
        except (OSError, ValueError, paramiko.SSHException):
            pass
    return key


# Kept for callers of the old name.
def _load_key(path: str, passphrase: str | None) -> paramiko.PKey:
    return load_private_key(path, passphrase)


class _PathAgent(AgentSSH):
    """An ssh-agent at an explicit socket path (ssh_config IdentityAgent)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
        self._connect(sock)

    def close(self) -> None:
        self._close()


def _open_agent(t: SSHTarget) -> AgentSSH | None:
    path = t.agent_socket or os.environ.get("SSH_AUTH_SOCK")
    if not path or path.lower() == "none":
        return None
    try:
        return _PathAgent(os.path.expanduser(path), timeout=min(5.0, t.connect_timeout))
    except (OSError, paramiko.SSHException) as exc:
        log.debug("no ssh-agent at %s: %s", path, exc)
        return None


# --------------------------------------------------------------------------- target


@dataclass
class SSHTarget:
    """Everything needed to open one SSH connection (after ssh_config is applied)."""

    hostname: str
    port: int = 22
    username: str | None = None
    key_filenames: list[str] = field(default_factory=list)
    #: Take only the listed keys (IdentitiesOnly): no other agent key, no default keys.
    identities_only: bool = False
    use_agent: bool = True
    #: The passphrase of the encrypted identity file(s).
    passphrase: str | None = None
    #: A jump host, reached first; the connection is a channel of its transport.
    jump: SSHTarget | None = None
    proxy_command: str | None = None
    #: The app's own known_hosts file, where accepted keys are saved.
    known_hosts: Path | None = None
    #: Also read OpenSSH's known_hosts files (``known_hosts_files``, or the defaults).
    system_known_hosts: bool = True
    #: A fingerprint the caller pins for this connection (``SHA256:...``).
    accept_fingerprint: str | None = None
    connect_timeout: float = 10.0
    keepalive: int = 15
    #: Unanswered keepalives after which the connection counts as dead (ServerAliveCountMax).
    keepalive_count_max: int = 3
    #: ssh-agent socket (IdentityAgent); None means $SSH_AUTH_SOCK, "none" means no agent.
    agent_socket: str | None = None
    #: HostKeyAlias: the name looked up in (and saved to) known_hosts instead of the host's.
    host_key_alias: str | None = None
    #: OpenSSH's known_hosts files to read (UserKnownHostsFile + GlobalKnownHostsFile);
    #: None means ~/.ssh/known_hosts{,2} and /etc/ssh/ssh_known_hosts{,2}.
    known_hosts_files: list[str] | None = None
    #: Accept (and save) a key never seen before, on this hop and on the jump hosts.
    trust_on_first_use: bool = False
    #: Asked for a passphrase when an encrypted key has none: (key path, wrong_before).
    passphrase_callback: PassphraseCallback | None = None

    @property
    def label(self) -> str:
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"{user}{self.hostname}{port}"

    @property
    def known_hosts_name(self) -> str:
        if self.host_key_alias:
            return self.host_key_alias
        return known_hosts_name(self.hostname, self.port)

    def hops(self) -> list[SSHTarget]:
        """The jump chain, first hop first, ending with this target."""
        chain: list[SSHTarget] = []
        t: SSHTarget | None = self
        while t is not None:
            chain.append(t)
            t = t.jump
        return chain[::-1]

    def openssh_known_hosts_files(self) -> list[str]:
        if not self.system_known_hosts:
            return []
        if self.known_hosts_files is not None:
            return list(self.known_hosts_files)
        return [*USER_KNOWN_HOSTS, *SYSTEM_KNOWN_HOSTS]

    def all_known_hosts_files(self) -> list[str]:
        files = self.openssh_known_hosts_files()
        if self.known_hosts is not None:
            files.append(str(self.known_hosts))
        return files


class _VerifyingPolicy(paramiko.MissingHostKeyPolicy):
    """Decides about a key that no known_hosts file lists (pinned, TOFU, or refused)."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        self.accepted: list[tuple[str, str, str]] = []

    def missing_host_key(self, client: object, hostname: str, key: paramiko.PKey) -> None:
        pinned = self.target.accept_fingerprint
        if pinned and pinned != fingerprint(key):
            raise HostKeyMismatch(hostname, key, pinned)
        if not pinned and not self.target.trust_on_first_use:
            raise UnknownHostKey(hostname, key)
        if self.target.known_hosts is not None:
            add_known_host(self.target.known_hosts, hostname, key)
        self.accepted.append((hostname, key.get_name(), fingerprint(key)))


def _files_state(files: Sequence[str]) -> tuple:
    out = []
    for f in files:
        try:
            st = os.stat(os.path.expanduser(f))
            out.append((f, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((f, None))
    return tuple(out)


# --------------------------------------------------------------------------- transport


class ConnectionDropped(paramiko.SSHException):
    """Raised in the transport thread when the server stops answering keepalives."""


_KEEPALIVE_REQUEST = "keepalive@openssh.com"


class _Transport(paramiko.Transport):
    """A paramiko Transport that knows when it last heard from the server.

    Every received packet counts as a sign of life. On ``interval`` seconds without sending,
    paramiko calls the keepalive hook: we send a global request that wants a reply (OpenSSH
    answers even requests it does not know), and after ``count_max`` intervals without any
    packet the transport ends itself, so its channels fail instead of hanging.
    """

    #: How often the transport thread wakes up when nothing arrives, to see whether it was
    #: closed and whether a keepalive is due (paramiko: 0.1 s). Each wake costs a socket
    #: timeout in Python; ten idle connections woke 100 times a second, about 0.5% of a
    #: core. A close is still seen at once by the caller (stop_thread does not wait for
    #: the thread), keepalives are whole seconds anyway.
    _active_check_timeout = 1.0

    def __init__(self, sock, *, interval: float = 0, count_max: int = 3) -> None:
        super().__init__(sock)
        self.last_rx = time.monotonic()
        self.alive_interval = interval
        self.alive_count_max = max(1, count_max)
        self._reply_event = threading.Event()
        self._probe_lock = threading.Lock()
        packetizer = self.packetizer
        read_message = packetizer.read_message

        def counted_read():
            result = read_message()
            self.last_rx = time.monotonic()
            return result

        packetizer.read_message = counted_read  # type: ignore[method-assign]
        if interval:
            packetizer.set_keepalive(interval, self._keepalive_tick)

    # Replies to our keepalive requests land here (OpenSSH answers REQUEST_FAILURE).
    def _parse_request_success(self, m):
        self._reply_event.set()
        return super()._parse_request_success(m)

    def _parse_request_failure(self, m):
        self._reply_event.set()
        return super()._parse_request_failure(m)

    def _send_alive(self) -> None:
        m = paramiko.Message()
        m.add_byte(paramiko.common.cMSG_GLOBAL_REQUEST)
        m.add_string(_KEEPALIVE_REQUEST)
        m.add_boolean(True)
        self._send_user_message(m)

    def silence(self) -> float:
        return time.monotonic() - self.last_rx

    def _keepalive_tick(self) -> None:
        # Runs in the transport's own thread; raising here ends the transport.
        limit = self.alive_interval * self.alive_count_max
        if self.silence() > limit + 0.5:
            raise ConnectionDropped(
                f"no answer from the server for {self.silence():.0f} s "
                f"({self.alive_count_max} keepalives unanswered)"
            )
        self._send_alive()

    def probe(self, timeout: float) -> float:
        """Ask the server for an answer; returns the round trip in seconds or raises
        ConnectionDropped (and ends the transport) when none comes within ``timeout``."""
        with self._probe_lock:
            self._reply_event.clear()
            start = time.monotonic()
            self._send_alive()
            deadline = start + timeout
            while not self._reply_event.wait(0.05):
                if not self.is_active():
                    raise ConnectionDropped("the connection closed")
                if time.monotonic() > deadline:
                    self.close()
                    raise ConnectionDropped(f"no answer from the server within {timeout:.0f} s")
            return time.monotonic() - start


def _tune_socket(sock: socket.socket, t: SSHTarget) -> None:
    # Docker API calls are small request/response pairs: Nagle would delay each one.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if t.keepalive and hasattr(socket, "TCP_USER_TIMEOUT"):
        # Data not acknowledged within this long ends the connection (a dead path while we
        # are sending, when no keepalive can be sent).
        ms = int(max(t.keepalive * (t.keepalive_count_max + 1), 10) * 1000)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, ms)
        except OSError:
            pass


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, floor: float = 0.05) -> float:
        return max(floor, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end


# --------------------------------------------------------------------------- connection


class SSHConnection:
    """One SSH connection to one host, opened lazily and reopened after a drop."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        self._client: paramiko.SSHClient | None = None
        self._jump: SSHConnection | None = None
        self._lock = threading.RLock()
        self.connected_at: float | None = None
        self.connect_seconds: float | None = None
        #: How many times this connection was (re)opened.
        self.connects = 0
        #: Keys accepted (pinned or trust on first use) by this connection's hops:
        #: (known_hosts name, key type, fingerprint).
        self.accepted_keys: list[tuple[str, str, str]] = []
        #: Why the previous transport ended (a keepalive timeout, an EOF...).
        self.last_drop: str | None = None
        self._passphrases: dict[str, str] = {}
        self._refused: tuple[HostKeyError, tuple] | None = None

    # -- host keys ---------------------------------------------------------------------------
    def _check_refused(self) -> None:
        """A host whose key was refused is not contacted again until a known_hosts file
        changes (forget-key, or a key accepted elsewhere)."""
        if self._refused is None:
            return
        exc, state = self._refused
        if state == _files_state(self.target.all_known_hosts_files()):
            raise exc
        self._refused = None

    def _verify_host_key(self, transport: paramiko.Transport) -> None:
        t = self.target
        name = t.known_hosts_name
        key = transport.get_remote_server_key()
        blob = key.asbytes()
        known = lookup_known_hosts(t.all_known_hosts_files(), name)
        for k in known:
            if k.marker == "@revoked" and k.blob == blob:
                raise RevokedHostKey(name, key, f"{k.path}:{k.line}")
        plain = [k for k in known if k.marker is None]
        if any(k.blob == blob for k in plain):
            return
        if plain:
            same_type = [k for k in plain if k.key_type == key.get_name()]
            raise ChangedHostKey(name, key, (same_type or plain)[0])
        policy = _VerifyingPolicy(t)
        policy.missing_host_key(None, name, key)
        self.accepted_keys.extend(policy.accepted)

    def _prefer_known_key_types(self, transport: paramiko.Transport) -> None:
        """Ask for the key type known_hosts has, as OpenSSH does (else a host with several
        keys might offer one we have never seen, and look unknown)."""
        known = lookup_known_hosts(self.target.all_known_hosts_files(),
                                   self.target.known_hosts_name)
        opts = transport.get_security_options()
        available = list(opts.key_types)
        wanted: list[str] = []
        for k in known:
            if k.marker:
                continue
            names = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if k.key_type == "ssh-rsa" \
                else [k.key_type]
            for n in names:
                if n in available and n not in wanted:
                    wanted.append(n)
        if wanted:
            opts.key_types = wanted + [n for n in available if n not in wanted]

    # -- keys --------------------------------------------------------------------------------
    def _ask(self, path: str, wrong: bool) -> str | None:
        cb = self.target.passphrase_callback
        return cb(path, wrong) if cb is not None else None

    def _load_identity(self, path: str) -> paramiko.PKey | None:
        """The key at ``path``, asking for its passphrase through the callback if needed.
        For a default identity that cannot be opened, None (the next one is tried)."""
        passphrase = self._passphrases.get(path, self.target.passphrase)
        try:
            key = load_private_key(path, passphrase)
        except WrongPassphrase:
            if self.target.passphrase_callback is None:
                raise
            wrong = True
        except PassphraseRequired:
            if self.target.passphrase_callback is None:
                raise
            wrong = False
        else:
            if passphrase:
                self._passphrases[path] = passphrase
            return key
        for _ in range(PASSPHRASE_TRIES):
            answer = self._ask(path, wrong)
            if answer is None:
                raise PassphraseRequired(path)
            try:
                key = load_private_key(path, answer)
            except WrongPassphrase:
                wrong = True
                continue
            self._passphrases[path] = answer
            return key
        raise WrongPassphrase(path)

    def _identities(self, agent: AgentSSH | None) -> tuple[list[tuple[str, paramiko.PKey]],
                                                           list[str]]:
        """The keys to offer, in OpenSSH's order, and the encrypted default keys skipped."""
        t = self.target
        agent_keys = list(agent.get_keys()) if agent is not None else []
        by_blob = {k.asbytes(): k for k in agent_keys}
        offered: list[tuple[str, paramiko.PKey]] = []
        used_blobs: set[bytes] = set()
        for path in t.key_filenames:
            pub = _read_public_blob(path)
            if pub is not None and pub in by_blob and key_is_encrypted(path) \
                    and not self._passphrases.get(path, t.passphrase):
                # The agent holds this key: no passphrase needed (OpenSSH does the same).
                offered.append((f"{path} (via the agent)", by_blob[pub]))
                used_blobs.add(pub)
                continue
            key = self._load_identity(path)
            if key is not None:
                offered.append((path, key))
                used_blobs.add(key.asbytes())
        if not t.identities_only:
            for k in agent_keys:
                if k.asbytes() not in used_blobs:
                    offered.append((f"agent key {k.comment or fingerprint(k)}", k))
                    used_blobs.add(k.asbytes())
        skipped: list[str] = []
        if not t.key_filenames and not t.identities_only:
            for d in DEFAULT_IDENTITIES:
                path = os.path.expanduser(d)
                if not os.path.isfile(path):
                    continue
                pub = _read_public_blob(path)
                if pub is not None and pub in used_blobs:
                    continue
                try:
                    key = load_private_key(path, self._passphrases.get(path, t.passphrase))
                except PassphraseRequired:
                    skipped.append(path)
                    continue
                except AuthenticationFailed:
                    continue
                offered.append((path, key))
        return offered, skipped

    def _authenticate(self, transport: paramiko.Transport, deadline: _Deadline,
                      identities: list[tuple[str, paramiko.PKey]], skipped: list[str]) -> None:
        t = self.target
        username = t.username or os.environ.get("USER") or getpass.getuser()
        tried: list[str] = []
        pending = list(identities)
        while True:
            for label, key in pending:
                if deadline.expired:
                    raise HostUnreachable(f"{t.label}: authentication timed out")
                transport.auth_timeout = deadline.left()
                tried.append(f"{label} ({_key_label(key.get_name())} {fingerprint(key)})")
                try:
                    remaining = transport.auth_publickey(username, key)
                except paramiko.BadAuthenticationType as exc:
                    raise AuthenticationFailed(
                        f"{t.label}: the server does not accept public keys for {username} "
                        f"(it allows: {', '.join(exc.allowed_types) or 'nothing'})"
                    ) from None
                except paramiko.AuthenticationException as exc:
                    if not transport.is_active():
                        raise AuthenticationFailed(
                            f"{t.label}: the server closed the connection during "
                            f"authentication ({exc}); tried: {'; '.join(tried)}"
                        ) from None
                    if "timeout" in str(exc).lower():
                        raise HostUnreachable(f"{t.label}: authentication timed out") from None
                    continue
                except paramiko.SSHException as exc:
                    if not transport.is_active():
                        raise HostUnreachable(
                            f"{t.label}: the connection dropped during authentication: {exc}"
                        ) from None
                    continue
                if remaining:
                    raise AuthenticationFailed(
                        f"{t.label}: the key was accepted but the server wants more "
                        f"({', '.join(remaining)}), which havsh does not do"
                    )
                return
            if not skipped:
                break
            # Only now do the encrypted default keys cost the user a passphrase.
            path = skipped.pop(0)
            if t.passphrase_callback is None:
                raise PassphraseRequired(path)
            key = self._load_identity(path)
            pending = [(path, key)] if key is not None else []
        detail = "; ".join(tried) if tried else "no key to offer (no identity file, no agent)"
        raise AuthenticationFailed(
            f"{t.label}: permission denied (publickey) for {username}; tried: {detail}",
            user=username,
        )

    # -- opening -----------------------------------------------------------------------------
    def _sock(self, deadline: _Deadline):
        t = self.target
        if t.jump is not None:
            if self._jump is None:
                self._jump = SSHConnection(t.jump)
            try:
                transport = self._jump.transport(deadline=deadline)
            except RemoteError as exc:
                # Host key and passphrase errors carry what a dialog needs: as they are.
                if type(exc) in (HostUnreachable, AuthenticationFailed):
                    raise type(exc)(f"jump host {t.jump.label}: {exc}", **exc.extra) from exc
                raise
            try:
                return transport.open_channel(
                    "direct-tcpip", (t.hostname, t.port), ("127.0.0.1", 0),
                    timeout=deadline.left(),
                )
            except paramiko.ChannelException as exc:
                raise HostUnreachable(
                    f"jump host {t.jump.label} cannot reach {t.label}: {exc.text or exc}"
                ) from exc
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise HostUnreachable(
                    f"jump host {t.jump.label} cannot reach {t.label}: "
                    f"{exc or 'channel open timed out'}"
                ) from exc
        if t.proxy_command:
            try:
                return paramiko.ProxyCommand(t.proxy_command)
            except (OSError, paramiko.SSHException) as exc:
                raise HostUnreachable(
                    f"{t.label}: ProxyCommand failed to start: {exc}") from exc
        try:
            sock = socket.create_connection((t.hostname, t.port), timeout=deadline.left())
        except TimeoutError as exc:
            raise HostUnreachable(
                f"{t.label}: no answer within {deadline.seconds:.0f} s (connection timed out)"
            ) from exc
        except ConnectionRefusedError as exc:
            raise HostUnreachable(f"{t.label}: connection refused (is sshd running?)") from exc
        except socket.gaierror as exc:
            raise HostUnreachable(f"{t.label}: cannot resolve {t.hostname}: {exc.strerror}") \
                from exc
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                raise HostUnreachable(f"{t.label}: no route to host") from exc
            raise HostUnreachable(f"{t.label}: {exc.strerror or exc}") from exc
        _tune_socket(sock, t)
        return sock

    def _connect(self, deadline: _Deadline | None = None) -> paramiko.SSHClient:
        t = self.target
        deadline = deadline or _Deadline(t.connect_timeout)
        start = time.monotonic()
        # Everything local first, so that a missing passphrase costs no connection.
        agent = _open_agent(t) if t.use_agent else None
        transport: _Transport | None = None
        try:
            identities, skipped = self._identities(agent)
            sock = self._sock(deadline)
            transport = _Transport(sock, interval=t.keepalive,
                                   count_max=t.keepalive_count_max)
            transport.banner_timeout = deadline.left()
            transport.handshake_timeout = deadline.left()
            self._prefer_known_key_types(transport)
            done = threading.Event()
            transport.start_client(event=done)
            while not done.wait(0.05):
                if not transport.is_active():
                    break
                if deadline.expired:
                    raise HostUnreachable(
                        f"{t.label}: SSH handshake timed out after {deadline.seconds:.0f} s")
            if not transport.is_active():
                exc = transport.get_exception()
                raise HostUnreachable(f"{t.label}: SSH failed: {_ssh_reason(exc)}")
            # The host key, before anything about us goes out.
            self._verify_host_key(transport)
            self._authenticate(transport, deadline, identities, skipped)
        except BaseException as exc:
            if transport is not None:
                transport.close()
            if isinstance(exc, HostKeyError) and not isinstance(exc, UnknownHostKey):
                self._refused = (exc, _files_state(t.all_known_hosts_files()))
            if isinstance(exc, RemoteError):
                raise
            if isinstance(exc, TimeoutError | socket.timeout):
                raise HostUnreachable(f"{t.label}: SSH handshake timed out") from exc
            if isinstance(exc, paramiko.SSHException | EOFError | OSError):
                raise HostUnreachable(f"{t.label}: SSH failed: {_ssh_reason(exc)}") from exc
            raise
        finally:
            if agent is not None:
                agent.close()
        client = paramiko.SSHClient()
        client._transport = transport  # the verified, authenticated transport
        self.connected_at = time.time()
        self.connect_seconds = time.monotonic() - start
        self.connects += 1
        return client

    def _usable(self, client: paramiko.SSHClient, deadline: _Deadline) -> bool:
        tr = client.get_transport()
        if tr is None or not tr.is_active():
            if tr is not None:
                self.last_drop = _ssh_reason(tr.get_exception()) or "the connection closed"
            return False
        if isinstance(tr, _Transport) and tr.alive_interval and \
                tr.silence() > tr.alive_interval + 2:
            # Keepalives went out and nothing came back: check before trusting it.
            try:
                tr.probe(timeout=min(3.0, deadline.left() / 2))
            except ConnectionDropped as exc:
                self.last_drop = str(exc)
                return False
        return True

    def client(self, deadline: _Deadline | None = None) -> paramiko.SSHClient:
        """The live paramiko client, connecting (or reconnecting) when needed."""
        with self._lock:
            self._check_refused()
            # One budget for a liveness probe and the reconnect it may lead to.
            deadline = deadline or _Deadline(self.target.connect_timeout)
            if self._client is not None:
                if self._usable(self._client, deadline):
                    return self._client
                self._client.close()
                self._client = None
            self._client = self._connect(deadline)
            return self._client

    def transport(self, deadline: _Deadline | None = None) -> paramiko.Transport:
        tr = self.client(deadline).get_transport()
        assert tr is not None
        return tr

    def all_accepted_keys(self) -> list[tuple[str, str, str]]:
        """Keys accepted on the way, jump hosts first."""
        hops = self._jump.all_accepted_keys() if self._jump is not None else []
        return hops + list(self.accepted_keys)

    @property
    def is_connected(self) -> bool:
        c = self._client
        tr = c.get_transport() if c is not None else None
        return bool(tr is not None and tr.is_active())

    def host_key(self) -> paramiko.PKey:
        return self.transport().get_remote_server_key()

    def ping(self, timeout: float | None = None) -> float:
        """One SSH round trip (a keepalive request and its answer), in seconds."""
        tr = self.transport()
        timeout = self.target.connect_timeout if timeout is None else timeout
        if not isinstance(tr, _Transport):
            start = time.monotonic()
            tr.global_request(_KEEPALIVE_REQUEST, wait=True)
            return time.monotonic() - start
        try:
            return tr.probe(timeout)
        except ConnectionDropped as exc:
            raise HostUnreachable(f"{self.target.label}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._jump is not None:
                self._jump.close()
                self._jump = None

    def dropped_error(self, what: str = "the call") -> HostUnreachable:
        """The error for a call that was in flight when the connection dropped."""
        tr = self._client.get_transport() if self._client is not None else None
        reason = _ssh_reason(tr.get_exception()) if tr is not None else ""
        return HostUnreachable(
            f"{self.target.label}: the SSH connection dropped during {what}"
            + (f" ({reason})" if reason else "")
            + "; the next call reconnects"
        )

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
            event.wait(0.05)
            if not tr.active:
                raise HostUnreachable(
                    f"{self.target.label}: the SSH connection dropped "
                    f"({_ssh_reason(tr.get_exception())})"
                )
            if event.is_set():
                break
            if time.monotonic() > deadline:
                with tr.lock:
                    tr._channels.delete(chanid)
                raise HostUnreachable(f"{self.target.label}: timeout opening a channel")
        opened = tr._channels.get(chanid)
        if opened is None:
            saved = getattr(tr, "saved_exception", None)
            reason = getattr(saved, "text", "") or ""
            raise RemoteError(
                f"{self.target.label}: sshd refused a channel to {socket_path}"
                + (f" ({reason})" if reason else "")
                + ": the socket is missing or not ours to use, or sshd has "
                "AllowStreamLocalForwarding off",
                socket=socket_path, reason=reason,
            )
        return opened

    def open_sftp(self, timeout: float | None = None) -> paramiko.SFTPClient:
        """An SFTP session on a new channel. sshd runs internal-sftp (or sftp-server) without
        the user's login scripts, so it is far cheaper than a command for small reads."""
        tr = self.transport()
        timeout = self.target.connect_timeout if timeout is None else timeout
        try:
            chan = tr.open_session(timeout=timeout)
            chan.settimeout(timeout)
            chan.invoke_subsystem("sftp")
            return paramiko.SFTPClient(chan)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not tr.is_active():
                raise self.dropped_error("opening SFTP") from exc
            raise RemoteError(f"{self.target.label}: no SFTP subsystem: {exc}") from exc

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
        tr = self.transport()
        try:
            chan = tr.open_session(timeout=self.target.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not tr.is_active():
                raise self.dropped_error(f"`{argv[0]}`") from exc
            raise HostUnreachable(f"{self.target.label}: cannot open a session: {exc}") from exc
        out = bytearray()
        err = bytearray()
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            deadline = time.monotonic() + timeout
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready():
                    while chan.recv_ready():
                        out += chan.recv(65536)
                    while chan.recv_stderr_ready():
                        err += chan.recv_stderr(65536)
                    break
                else:
                    if not tr.is_active():
                        raise self.dropped_error(f"`{argv[0]}`")
                    if time.monotonic() > deadline:
                        raise HostUnreachable(
                            f"{self.target.label}: {argv[0]} did not finish within "
                            f"{timeout:.0f} s"
                        )
                    chan.status_event.wait(0.05)
            rc = chan.recv_exit_status()
            if rc == -1 and not tr.is_active():
                raise self.dropped_error(f"`{argv[0]}`")
        except RemoteError:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not tr.is_active():
                raise self.dropped_error(f"`{argv[0]}`") from exc
            raise HostUnreachable(f"{self.target.label}: the SSH connection failed: {exc}") \
                from exc
        finally:
            chan.close()
        if check and rc != 0:
            raise RemoteError(
                f"{self.target.label}: `{command}` exited {rc}: {err.decode(errors='replace')}"
            )
        return rc, bytes(out), bytes(err)


def _ssh_reason(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, EOFError):
        return "the server closed the connection"
    text = str(exc)
    if "Error reading SSH protocol banner" in text:
        return "no SSH banner (is this an SSH server?)"
    return text or type(exc).__name__


def sftp_statvfs(sftp: paramiko.SFTPClient, path: str) -> dict[str, int]:
    """``statvfs@openssh.com`` (OpenSSH's SFTP extension, which paramiko does not wrap):
    the file system of ``path``, with ``total`` and ``free`` (for unprivileged users, as
    ``df`` shows it) in bytes."""
    t, msg = sftp._request(paramiko.sftp.CMD_EXTENDED, "statvfs@openssh.com", path)
    if t != paramiko.sftp.CMD_EXTENDED_REPLY:
        raise RemoteError(f"statvfs of {path}: unexpected SFTP reply {t}")
    return parse_statvfs(msg)


def parse_statvfs(msg: paramiko.Message) -> dict[str, int]:
    """The fields of a ``statvfs@openssh.com`` reply (see sftp_statvfs)."""
    names = ("bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail",
             "fsid", "flag", "namemax")
    v = {n: msg.get_int64() for n in names}
    frsize = v["frsize"] or v["bsize"]
    return {**v, "total": v["blocks"] * frsize, "free": v["bavail"] * frsize}
