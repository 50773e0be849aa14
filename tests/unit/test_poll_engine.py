"""The poll's lean Docker GET (remote/docker_api.EngineGet) and one list serving both the
health and the statuses (ops/hosts.take_polled_rows, ops/rescan.statuses_from_rows), on
fake channels: no SSH here."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import docker.errors
import pytest

from havsh_tui.core import names
from havsh_tui.core.model import ServiceStatus
from havsh_tui.ops import hosts as ops_hosts
from havsh_tui.ops.rescan import observed_from_rows, statuses_from_rows
from havsh_tui.remote.docker_api import DockerUnavailable, EngineGet
from havsh_tui.remote.ssh import HostUnreachable


class FakeChannel:
    """Answers each request with the next scripted list of recv() results."""

    def __init__(self, answers: list[list[object]]) -> None:
        self.answers = answers
        self.sent: list[bytes] = []
        self.pending: list[object] = []
        self.closed = False
        self.active = True
        self.eof_received = False
        self.timeout = None

    def settimeout(self, t):
        self.timeout = t

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)
        self.pending = list(self.answers.pop(0)) if self.answers else [b""]

    def recv(self, n: int) -> bytes:
        item = self.pending.pop(0) if self.pending else b""
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, bytes)
        assert len(item) <= n
        return item

    def close(self) -> None:
        self.closed = True


class FakeAdapter:
    def __init__(self, channels: list[FakeChannel]) -> None:
        self.channels = channels
        self.opened: list[FakeChannel] = []
        transport = object()
        self.ssh = SimpleNamespace(
            transport=lambda: transport,
            is_connected=True,
            target=SimpleNamespace(label="fake@host"),
            dropped_error=lambda what: HostUnreachable(f"dropped during {what}"),
        )

    def _open(self) -> FakeChannel:
        chan = self.channels.pop(0)
        self.opened.append(chan)
        return chan


def http(status: int, body: bytes, *, chunked: bool = False, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}"
    if chunked:
        parts = [body[i:i + 7] for i in range(0, len(body), 7)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + payload
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def split(data: bytes, size: int) -> list[object]:
    return [data[i:i + size] for i in range(0, len(data), size)]


ROWS = [{"Id": "c1", "Labels": {"a": "b"}, "State": "running"}] * 3


def test_content_length_and_chunked_answers_in_pieces_on_one_kept_channel():
    body = json.dumps(ROWS).encode()
    chan = FakeChannel([split(http(200, body), 5), split(http(200, body, chunked=True), 3),
                        [http(200, b'{"ok": true}', chunked=True)]])
    adapter = FakeAdapter([chan])
    get = EngineGet(adapter, "1.41")  # type: ignore[arg-type]
    assert get.json("/containers/json", {"all": 1, "filters": '{"label": ["x"]}'}) == ROWS
    assert get.json("/containers/json") == ROWS
    assert get.json("/info", timeout=3.0) == {"ok": True}
    assert adapter.opened == [chan]  # one channel for the three
    assert chan.timeout == 3.0
    first = chan.sent[0].decode()
    assert first.startswith("GET /v1.41/containers/json?all=1&filters=%7B%22label%22%3A+%5B%22x"
                            "%22%5D%7D HTTP/1.1\r\n")
    assert "\r\nHost: docker\r\n" in first and first.endswith("\r\n\r\n")


def test_a_kept_channel_the_engine_closed_is_replaced_once():
    old = FakeChannel([[http(200, b"[]")], [b""]])  # second request: EOF at once
    new = FakeChannel([[http(200, b"[1]")]])
    adapter = FakeAdapter([old, new])
    get = EngineGet(adapter, "1.41")  # type: ignore[arg-type]
    assert get.json("/containers/json") == []
    assert get.json("/containers/json") == [1]
    assert old.closed and adapter.opened == [old, new]


def test_a_fresh_channel_that_answers_nothing_is_an_error():
    adapter = FakeAdapter([FakeChannel([[b""]])])
    with pytest.raises(DockerUnavailable, match="closed the connection"):
        EngineGet(adapter, "1.41").json("/containers/json")  # type: ignore[arg-type]


def test_error_status_is_an_api_error_with_the_engines_message_and_keeps_the_channel():
    chan = FakeChannel([[http(404, b'{"message": "No such container: x"}')],
                        [http(200, b"{}")]])
    adapter = FakeAdapter([chan])
    get = EngineGet(adapter, "1.41")  # type: ignore[arg-type]
    with pytest.raises(docker.errors.APIError) as info:
        get.json("/containers/x/json")
    assert "No such container: x" in str(info.value)
    assert get.json("/info") == {}
    assert adapter.opened == [chan]


def test_timeout_is_host_unreachable_and_the_channel_is_dropped():
    chan = FakeChannel([[b"HTTP/1.1 200 OK\r\n", TimeoutError("timed out")]])
    nxt = FakeChannel([[http(200, b"{}")]])
    adapter = FakeAdapter([chan, nxt])
    get = EngineGet(adapter, "1.41")  # type: ignore[arg-type]
    with pytest.raises(HostUnreachable, match="did not answer a Docker API call"):
        get.json("/containers/json", timeout=2.0)
    assert chan.closed
    assert get.json("/info") == {}  # a new channel next time


def test_a_drop_is_the_connections_error():
    chan = FakeChannel([[OSError("socket closed")]])
    adapter = FakeAdapter([chan])
    adapter.ssh.is_connected = False
    with pytest.raises(HostUnreachable, match="dropped during"):
        EngineGet(adapter, "1.41").json("/x")  # type: ignore[arg-type]


def test_connection_close_and_bodies_up_to_eof_drop_the_channel():
    a = FakeChannel([[http(200, b"{}", extra="Connection: close\r\n")]])
    b = FakeChannel([[b"HTTP/1.1 200 OK\r\n\r\n[1,", b"2]", b""]])
    c = FakeChannel([[http(200, b"3")]])
    adapter = FakeAdapter([a, b, c])
    get = EngineGet(adapter, "1.41")  # type: ignore[arg-type]
    assert get.json("/a") == {}
    assert get.json("/b") == [1, 2]
    assert get.json("/c") == 3
    assert a.closed and b.closed and adapter.opened == [a, b, c]


def _row(slug, *, role="odoo", managed="1", state="running", stype="test", **labels):
    lab = {names.LABEL_MANAGED: managed, names.LABEL_ROLE: role, names.LABEL_TYPE: stype}
    if slug:
        lab[names.LABEL_SERVICE] = slug
    lab.update(labels)
    return {"Id": f"id-{slug}-{role}", "Image": "havsh-test/odoo:17.0", "State": state,
            "Labels": lab, "Created": 1700000000}


def test_statuses_from_the_poll_list_match_the_labelled_odoo_list():
    odoo = [_row("s1"), _row("s2", state="exited"), _row("s3", state="dead"),
            _row("s4", state="restarting"), _row("bad", stype="nonsense"), _row(None)]
    others = [_row("s1", role="postgres"), _row("s5", managed="0"), _row("s6", role="proxy"),
              {"Id": "x", "Labels": None, "State": "running"}]
    want = {slug: o.status for slug, o in observed_from_rows(odoo).items()}
    assert want == {"s1": ServiceStatus.RUNNING, "s2": ServiceStatus.STOPPED,
                    "s3": ServiceStatus.FAILED, "s4": ServiceStatus.RUNNING}
    assert statuses_from_rows(others + odoo + others) == want


def test_polled_rows_are_taken_once_and_only_while_fresh(monkeypatch):
    class Session:
        pass

    s = Session()
    ops_hosts._POLLED_ROWS[s] = (time.monotonic(), ROWS)
    assert ops_hosts.take_polled_rows(s) == ROWS
    assert ops_hosts.take_polled_rows(s) is None
    ops_hosts._POLLED_ROWS[s] = (time.monotonic() - ops_hosts.POLLED_ROWS_TTL - 1, ROWS)
    assert ops_hosts.take_polled_rows(s) is None
    assert ops_hosts.take_polled_rows(object()) is None  # not weakly referenceable


def test_engine_info_is_cached_until_the_ttl_or_a_new_channel(monkeypatch):
    class Getter:
        opens = 1

        def __init__(self):
            self.calls: list[str] = []

        def json(self, path, params=None, timeout=10.0):
            self.calls.append(path)
            return {"ServerVersion": "27.0", "n": len(self.calls)}

    class Client:
        pass

    client, getter = Client(), Getter()
    monkeypatch.setattr(ops_hosts, "_engine_get", lambda c: getter)
    assert ops_hosts._engine_info(client, 1.0)["n"] == 1
    assert ops_hosts._engine_info(client, 1.0)["n"] == 1  # cached
    getter.opens = 2  # the engine closed the kept channel (a restart): read again
    assert ops_hosts._engine_info(client, 1.0)["n"] == 2
    assert ops_hosts._engine_info(client, 1.0)["n"] == 2
    t, info, opens = ops_hosts._INFOS[client]
    ops_hosts._INFOS[client] = (t - ops_hosts.INFO_TTL - 1, info, opens)
    assert ops_hosts._engine_info(client, 1.0)["n"] == 3
    assert getter.calls == ["/info"] * 3


def test_engine_get_counts_its_channels():
    old = FakeChannel([[http(200, b"[]")], [b""]])
    new = FakeChannel([[http(200, b"[]")]])
    get = EngineGet(FakeAdapter([old, new]), "1.41")  # type: ignore[arg-type]
    get.json("/a")
    assert get.opens == 1
    get.json("/a")
    assert get.opens == 2
