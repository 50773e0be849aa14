"""The docker SDK over our own SSH connection.

The SDK's ``ssh://`` transport opens its own paramiko client (reading ~/.ssh/config by itself,
with no say over host keys) and runs ``docker system dial-stdio`` on the host for every HTTP
connection. We already hold a verified connection per host, so each HTTP connection here is a
``direct-streamlocal`` channel of that connection straight to the engine's socket, which needs
no docker CLI on the host and costs one channel open. Where sshd forbids stream forwarding, we
fall back to ``docker system dial-stdio`` on a session channel, as the SDK does.
"""

from __future__ import annotations

import json as _json
import queue
import threading

import docker
import docker.errors
import paramiko
import requests
import urllib3
import urllib3.connection
import urllib3.connectionpool
from docker.transport.basehttpadapter import BaseHTTPAdapter

from havsh_tui.remote.ssh import HostUnreachable, RemoteError, SSHConnection

DEFAULT_SOCKET = "/var/run/docker.sock"
#: Seconds the first API call (version negotiation) may take.
FIRST_CALL_TIMEOUT = 15.0
#: The oldest engine we speak to: Debian 12's docker.io 20.10.
MIN_API_VERSION = "1.41"
_BASE_URL = "http+docker://ssh"


class _ChannelHTTPConnection(urllib3.connection.HTTPConnection):
    def __init__(self, opener, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._opener = opener
        self._timeout = timeout

    def connect(self) -> None:
        sock = self._opener()
        sock.settimeout(self._timeout)
        self.sock = sock


class _ChannelPool(urllib3.connectionpool.HTTPConnectionPool):
    scheme = "ssh"

    def __init__(self, opener, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._opener = opener
        self._chan_timeout = timeout

    def _new_conn(self):
        return _ChannelHTTPConnection(self._opener, self._chan_timeout)

    # As in the SDK's SSH pool: urllib3 would call fileno() on idle channels otherwise.
    def _get_conn(self, timeout=None):
        conn = None
        try:
            conn = self.pool.get(block=self.block, timeout=timeout)
        except AttributeError as exc:
            raise urllib3.exceptions.ClosedPoolError(self, "Pool is closed.") from exc
        except queue.Empty:
            if self.block:
                raise urllib3.exceptions.EmptyPoolError(self, "Pool is full.") from None
        if conn is not None and conn.sock is not None:
            chan = conn.sock
            if isinstance(chan, paramiko.Channel) and (chan.closed or not chan.active):
                conn.close()
        return conn or self._new_conn()


class SSHDockerAdapter(BaseHTTPAdapter):
    """A requests adapter whose connections are channels of one SSHConnection."""

    def __init__(
        self,
        ssh: SSHConnection,
        socket_path: str = DEFAULT_SOCKET,
        timeout: float = 60.0,
        max_pool_size: int = 10,
    ) -> None:
        self.ssh = ssh
        self.socket_path = socket_path
        self.timeout = timeout
        self.max_pool_size = max_pool_size
        self._pool: _ChannelPool | None = None
        self._pool_transport: paramiko.Transport | None = None
        self._mode: str | None = None  # "streamlocal" or "dial-stdio"
        self._lock = threading.Lock()
        super().__init__()

    def _open(self) -> paramiko.Channel:
        if self._mode != "dial-stdio":
            try:
                chan = self.ssh.open_streamlocal(self.socket_path)
                self._mode = "streamlocal"
                return chan
            except HostUnreachable:
                raise
            except RemoteError:
                if self._mode == "streamlocal":
                    raise
                self._mode = "dial-stdio"
        chan = self.ssh.transport().open_session(timeout=self.ssh.target.connect_timeout)
        chan.exec_command("docker system dial-stdio")
        return chan

    def get_connection(self, url, proxies=None):
        with self._lock:
            transport = self.ssh.transport()
            # A new SSH transport (after a reconnect) makes every pooled channel stale.
            if self._pool is None or self._pool_transport is not transport:
                if self._pool is not None:
                    self._pool.close()
                self._pool = _ChannelPool(self._open, self.timeout, self.max_pool_size)
                self._pool_transport = transport
            return self._pool

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        return self.get_connection(request.url, proxies)

    def send(self, request, stream=False, *args, **kwargs):
        """A call whose SSH connection drops fails with HostUnreachable, not a bare
        ``requests.ConnectionError``; the next call reconnects (see get_connection).

        A response that is not streamed is read here (requests would read it right after),
        so that a drop in the middle of its body is mapped too."""
        try:
            resp = super().send(request, stream, *args, **kwargs)
            if not stream:
                resp.content  # noqa: B018 - read the body inside the mapping
            return resp
        except RemoteError:
            raise
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                paramiko.SSHException, OSError, EOFError) as exc:
            what = f"a Docker API call ({request.method} {_path(request.url)})"
            if not self.ssh.is_connected:
                raise self.ssh.dropped_error(what) from exc
            if isinstance(exc, requests.exceptions.Timeout):
                raise HostUnreachable(
                    f"{self.ssh.target.label}: the Docker engine did not answer {what} "
                    f"within {self.timeout:.0f} s"
                ) from exc
            raise


def _path(url: str | None) -> str:
    return urllib3.util.parse_url(url or "").path or "/"


class EngineGet:
    """Small JSON GETs to the engine for the poller, over one kept channel of the adapter
    (streamlocal or dial-stdio, whichever the adapter settled on), with HTTP/1.1 written and
    parsed here.

    Why not the SDK: requests + urllib3 + http.client cost about 0.7 ms of CPU per call
    (session merging, header parsing through the email package), five times the SSH round
    trip itself; a poll every few seconds of ten hosts pays that on every call. Only GETs
    with a JSON answer, and one at a time (a lock): everything else goes through the SDK.
    """

    def __init__(self, adapter: SSHDockerAdapter, api_version: str) -> None:
        self.adapter = adapter
        self.ssh = adapter.ssh
        self.api_version = api_version
        self._chan: paramiko.Channel | None = None
        self._chan_transport: paramiko.Transport | None = None
        self._lock = threading.Lock()
        #: Channels opened so far: a new one after the first means a reconnect or an
        #: engine that closed the kept one (a restart, maybe an upgrade).
        self.opens = 0

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        chan, self._chan = self._chan, None
        if chan is not None:
            try:
                chan.close()
            except Exception:  # noqa: BLE001 - closing a dead channel must not raise
                pass

    def _channel(self) -> tuple[paramiko.Channel, bool]:
        """The kept channel (reopened after a reconnect) and whether it was reused."""
        transport = self.ssh.transport()
        chan = self._chan
        if chan is not None and self._chan_transport is transport and not chan.closed \
                and chan.active and not chan.eof_received:
            return chan, True
        self._drop()
        self._chan = self.adapter._open()
        self._chan_transport = transport
        self.opens += 1
        return self._chan, False

    def json(self, path: str, params: dict | None = None, timeout: float = 10.0):
        """GET /v<api>/<path>?<params> and its decoded JSON. Raises docker.errors.APIError
        for an error status, HostUnreachable for a drop or a timeout, DockerUnavailable for
        an answer that is not HTTP."""
        from urllib.parse import urlencode

        query = f"?{urlencode(params)}" if params else ""
        request = (f"GET /v{self.api_version}{path}{query} HTTP/1.1\r\nHost: docker\r\n"
                   "User-Agent: havsh\r\nAccept: application/json\r\n\r\n").encode()
        what = f"a Docker API call (GET {path})"
        with self._lock:
            for attempt in (1, 2):
                try:
                    chan, reused = self._channel()
                    chan.settimeout(timeout)
                    chan.sendall(request)
                    status, headers, body = self._response(chan)
                    break
                except _StaleChannel:
                    # The engine closed an idle kept connection: once more on a new one.
                    self._drop()
                    if attempt == 2 or not reused:
                        raise DockerUnavailable(
                            f"{self.ssh.target.label}: the Docker engine closed the "
                            f"connection during {what}", "unknown") from None
                except RemoteError:
                    self._drop()
                    raise
                except (OSError, EOFError, ValueError, paramiko.SSHException) as exc:
                    self._drop()
                    if not self.ssh.is_connected:
                        raise self.ssh.dropped_error(what) from exc
                    if isinstance(exc, TimeoutError):
                        raise HostUnreachable(
                            f"{self.ssh.target.label}: the Docker engine did not answer "
                            f"{what} within {timeout:.0f} s") from exc
                    raise DockerUnavailable(
                        f"{self.ssh.target.label}: cannot reach the Docker engine over SSH "
                        f"({what}: {type(exc).__name__}: {exc})", "unknown") from exc
            if headers.get("connection", "").lower() == "close":
                self._drop()
        if status >= 400:
            try:
                explanation = _json.loads(body).get("message")
            except (ValueError, AttributeError):
                explanation = body.decode(errors="replace")[:200]
            raise docker.errors.APIError(f"{status} error for GET {path}",
                                         explanation=explanation)
        return _json.loads(body)

    def _response(self, chan: paramiko.Channel) -> tuple[int, dict[str, str], bytes]:
        buf = bytearray()
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            data = chan.recv(65536)
            if not data:
                if not buf:
                    raise _StaleChannel
                raise EOFError("the engine closed the connection in a response's headers")
            buf += data
        lines = buf[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(None, 2)[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        rest = buf[end + 4:]
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return status, headers, _read_chunked(chan, rest)
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(rest) < n:
                data = chan.recv(max(65536, n - len(rest)))
                if not data:
                    raise EOFError("the engine closed the connection in a response's body")
                rest += data
            return status, headers, bytes(rest[:n])
        headers["connection"] = "close"  # a body up to the end: the channel is spent
        while data := chan.recv(65536):
            rest += data
        return status, headers, bytes(rest)


class _StaleChannel(Exception):
    """A kept channel answered nothing at all (the engine closed it while idle)."""


def _read_chunked(chan: paramiko.Channel, buf: bytearray) -> bytes:
    out = bytearray()

    def more() -> None:
        data = chan.recv(65536)
        if not data:
            raise EOFError("the engine closed the connection in a chunked body")
        buf.extend(data)

    while True:
        while (nl := buf.find(b"\r\n")) < 0:
            more()
        size = int(bytes(buf[:nl]).split(b";", 1)[0], 16)
        del buf[:nl + 2]
        if size == 0:
            # No trailers from the engine: the empty line ends the body.
            while not buf.startswith(b"\r\n") and buf.find(b"\r\n\r\n") < 0:
                more()
            return bytes(out)
        while len(buf) < size + 2:
            more()
        out += buf[:size]
        del buf[:size + 2]


class DockerUnavailable(RemoteError):
    """The host answers over SSH, but its Docker engine cannot be used (not installed, not
    running, or not allowed for this user). ``reason`` says which."""

    kind = "docker_unavailable"

    def __init__(self, message: str, reason: str, **extra: object) -> None:
        super().__init__(message, reason=reason, **extra)
        self.reason = reason


# A constant script; the socket path is "$1". Prints key=value lines.
_DIAGNOSE = r"""
s="$1"
if [ -S "$s" ]; then
  if [ -r "$s" ] && [ -w "$s" ]; then echo socket=ok; else echo socket=denied; fi
elif [ -e "$s" ]; then echo socket=notsocket
else echo socket=missing; fi
if command -v docker >/dev/null 2>&1; then echo cli=yes; else echo cli=no; fi
if command -v dockerd >/dev/null 2>&1; then echo daemon=yes; else echo daemon=no; fi
echo user="$(id -un 2>/dev/null)"
echo groups="$(id -Gn 2>/dev/null)"
ls -l "$s" 2>/dev/null | sed 's/^/perm=/'
"""


def diagnose_docker(ssh: SSHConnection, socket_path: str = DEFAULT_SOCKET,
                    cause: BaseException | None = None) -> DockerUnavailable:
    """Why the engine at ``socket_path`` cannot be used, as a DockerUnavailable to raise."""
    label = ssh.target.label
    why = f" ({cause})" if cause else ""
    try:
        rc, out, err = ssh.run(["sh", "-c", _DIAGNOSE, "sh", socket_path], timeout=15)
    except RemoteError as exc:
        return DockerUnavailable(
            f"{label}: cannot use the Docker engine at {socket_path}{why}, and cannot run a "
            f"command to find out why ({exc})", "unknown")
    facts = dict(line.split("=", 1) for line in out.decode(errors="replace").splitlines()
                 if "=" in line)
    if rc != 0 or "socket" not in facts:
        return DockerUnavailable(
            f"{label}: cannot use the Docker engine at {socket_path}{why}; the host would not "
            f"run a shell for this user: {err.decode(errors='replace').strip() or rc}",
            "unknown")
    user = facts.get("user") or ssh.target.username or "this user"
    sock = facts["socket"]
    if sock == "missing" and facts.get("cli") == "no" and facts.get("daemon") == "no":
        return DockerUnavailable(
            f"{label}: Docker is not installed (no docker command, no {socket_path}). "
            "Install it (Debian: `apt-get install docker.io`), then try again.",
            "not_installed", user=user)
    if sock == "missing":
        return DockerUnavailable(
            f"{label}: the Docker engine is not running: there is no {socket_path} "
            "(start it: `systemctl start docker`).", "not_running", user=user)
    if sock == "denied":
        return DockerUnavailable(
            f"{label}: {user} may not use Docker: {socket_path} is not readable and "
            f"writable for them ({facts.get('perm', '').strip()}). Add them to the docker "
            f"group (`sudo usermod -aG docker {user}`, then log in again), or connect as "
            "a user who may.", "permission_denied", user=user)
    if sock == "notsocket":
        return DockerUnavailable(
            f"{label}: {socket_path} is not a socket: is Docker installed correctly?",
            "not_running", user=user)
    return DockerUnavailable(
        f"{label}: the Docker engine at {socket_path} does not answer{why}.",
        "not_answering", user=user)


def docker_client(
    ssh: SSHConnection,
    *,
    socket_path: str = DEFAULT_SOCKET,
    timeout: float = 60.0,
) -> docker.DockerClient:
    """A docker SDK client whose every call goes through ``ssh``.

    The API version is negotiated with the engine (the lower of its own and the SDK's).
    Raises HostUnreachable (SSH) or DockerUnavailable (SSH works, the engine does not).
    """
    api = docker.APIClient(base_url="tcp://127.0.0.1:9", version=MIN_API_VERSION, timeout=timeout)
    adapter = SSHDockerAdapter(ssh, socket_path=socket_path, timeout=timeout)
    api.mount(_BASE_URL, adapter)
    api._unmount("http://", "https://")
    api.base_url = _BASE_URL
    api._custom_adapter = adapter
    # No proxies or .netrc apply to a channel: skip requests' scan of the environment,
    # which costs more CPU than the call itself on a busy poller.
    api.trust_env = False
    ssh.transport()  # SSH errors (keys, passphrases, unreachable) come out as they are
    try:
        resp = api.get(api._url("/version", versioned_api=False),
                       timeout=min(timeout, FIRST_CALL_TIMEOUT))
        server = api._result(resp, json=True)["ApiVersion"]
    except HostUnreachable:
        api.close()
        raise
    except RemoteError as exc:  # the channel to the socket was refused
        api.close()
        raise diagnose_docker(ssh, socket_path, exc) from exc
    except Exception as exc:  # noqa: BLE001 - dial-stdio failed, or a non-Docker answer
        api.close()
        if not ssh.is_connected:
            raise ssh.dropped_error("the first Docker call") from exc
        raise diagnose_docker(ssh, socket_path, _short(exc)) from exc
    sdk = docker.constants.DEFAULT_DOCKER_API_VERSION
    api._version = server if docker.utils.version_lt(server, sdk) else sdk
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def local_docker_client(socket_path: str = DEFAULT_SOCKET, timeout: float = 60.0):
    """A docker SDK client for the operator's own engine (``local`` in push-image)."""
    return docker.DockerClient(base_url=f"unix://{socket_path}", version="auto", timeout=timeout)


__all__ = ["DockerUnavailable", "EngineGet", "SSHDockerAdapter", "diagnose_docker", "docker_client",
           "local_docker_client", "requests"]
