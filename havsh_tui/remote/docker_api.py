"""The docker SDK over our own SSH connection.

The SDK's ``ssh://`` transport opens its own paramiko client (reading ~/.ssh/config by itself,
with no say over host keys) and runs ``docker system dial-stdio`` on the host for every HTTP
connection. We already hold a verified connection per host, so each HTTP connection here is a
``direct-streamlocal`` channel of that connection straight to the engine's socket, which needs
no docker CLI on the host and costs one channel open. Where sshd forbids stream forwarding, we
fall back to ``docker system dial-stdio`` on a session channel, as the SDK does.
"""

from __future__ import annotations

import queue
import threading

import docker
import paramiko
import requests
import urllib3
import urllib3.connection
import urllib3.connectionpool
from docker.transport.basehttpadapter import BaseHTTPAdapter

from havsh_tui.remote.ssh import RemoteError, SSHConnection

DEFAULT_SOCKET = "/var/run/docker.sock"
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

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        super().close()


def docker_client(
    ssh: SSHConnection,
    *,
    socket_path: str = DEFAULT_SOCKET,
    timeout: float = 60.0,
) -> docker.DockerClient:
    """A docker SDK client whose every call goes through ``ssh``.

    The API version is negotiated with the engine (the lower of its own and the SDK's).
    """
    api = docker.APIClient(base_url="tcp://127.0.0.1:9", version=MIN_API_VERSION, timeout=timeout)
    adapter = SSHDockerAdapter(ssh, socket_path=socket_path, timeout=timeout)
    api.mount(_BASE_URL, adapter)
    api._unmount("http://", "https://")
    api.base_url = _BASE_URL
    api._custom_adapter = adapter
    server = api.version(api_version=False)["ApiVersion"]
    sdk = docker.constants.DEFAULT_DOCKER_API_VERSION
    api._version = server if docker.utils.version_lt(server, sdk) else sdk
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    return client


def local_docker_client(socket_path: str = DEFAULT_SOCKET, timeout: float = 60.0):
    """A docker SDK client for the operator's own engine (``local`` in push-image)."""
    return docker.DockerClient(base_url=f"unix://{socket_path}", version="auto", timeout=timeout)


__all__ = ["SSHDockerAdapter", "docker_client", "local_docker_client", "requests"]
