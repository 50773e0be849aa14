"""HTTP to a container's port, through the host's SSH connection (a direct-tcpip channel).

The operator's machine never addresses container IPs itself: sshd on the host opens the TCP
connection, exactly as `ssh -L` would. Used for /web/health and JSON-RPC checks.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass

import paramiko

from havsh_tui.remote.ssh import HostUnreachable, SSHConnection


@dataclass
class HTTPResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body.decode())


class _ChannelConnection(http.client.HTTPConnection):
    def __init__(self, channel: paramiko.Channel, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._channel = channel

    def connect(self) -> None:
        self.sock = self._channel


def http_request(
    ssh: SSHConnection,
    address: str,
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> HTTPResult:
    """One HTTP request to ``address:port`` as seen from the host."""
    try:
        chan = ssh.transport().open_channel(
            "direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout
        )
    except paramiko.ChannelException as exc:
        raise ConnectionRefusedError(f"{address}:{port}: {exc}") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise HostUnreachable(f"{ssh.target.label}: cannot open a channel: {exc}") from exc
    chan.settimeout(timeout)
    conn = _ChannelConnection(chan, address, port, timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return HTTPResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()
        chan.close()


def json_rpc(ssh: SSHConnection, address: str, port: int, path: str, params: dict,
             timeout: float = 15.0) -> dict:
    payload = json.dumps({"jsonrpc": "2.0", "method": "call", "params": params, "id": 1})
    res = http_request(ssh, address, port, "POST", path, body=payload.encode(),
                       headers={"Content-Type": "application/json"}, timeout=timeout)
    return res.json()
