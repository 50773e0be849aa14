"""ops.services.wait_healthy on a fake engine: a crash loop fails with the log instead of
waiting out the timeout on "no address"; a container off the havsh network is put back."""

from __future__ import annotations

import pytest

from havsh_tui.core.model import Service, ServiceType
from havsh_tui.ops import services as ops
from havsh_tui.ops.reporter import RecordingReporter


class FakeAPI:
    def __init__(self, states: list[dict]) -> None:
        self.states = states
        self.connected: list[tuple[str, str]] = []

    def inspect_container(self, name):
        attrs = self.states[0] if len(self.states) == 1 else self.states.pop(0)
        if self.connected:
            attrs = {**attrs, "NetworkSettings": {"Networks": {"havsh": {"IPAddress": "10.9.0.7"}}}}
        return attrs

    def connect_container_to_network(self, container, net, aliases=None):
        self.connected.append((container, net))

    def logs(self, name, tail=60):
        return b"FATAL: sorry, too many clients already\n"


class FakeSession:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api
        self.ssh = object()

    def docker(self):
        return type("C", (), {"api": self.api})()


def svc() -> Service:
    return Service(name="erp", host="hosta", type=ServiceType.TEST, odoo_version="17.0",
                   image="odoo:17.0")


def test_a_crash_loop_fails_with_its_log(monkeypatch):
    monkeypatch.setattr(ops.time, "sleep", lambda s: None)
    restarting = {"State": {"Running": True, "Restarting": True, "ExitCode": 1},
                  "RestartCount": 3, "NetworkSettings": {"Networks": {"havsh": {"IPAddress": ""}}}}
    with pytest.raises(ops.StepFailed) as info:
        ops.wait_healthy(FakeSession(FakeAPI([restarting])), svc(), RecordingReporter(), 30)
    assert "keeps crashing" in str(info.value) and "exit code 1" in str(info.value)
    assert "too many clients" in info.value.log


def test_off_the_network_it_is_connected_again_once(monkeypatch):
    monkeypatch.setattr(ops.time, "sleep", lambda s: None)

    class Res:
        status = 200

        def json(self):
            return {"status": "pass"}

    seen = []
    monkeypatch.setattr(ops, "http_request", lambda ssh, ip, port, m, p, timeout: seen.append(ip)
                        or Res())
    api = FakeAPI([{"State": {"Running": True}, "NetworkSettings": {"Networks": {}}}])
    rep = RecordingReporter()
    ops.wait_healthy(FakeSession(api), svc(), rep, 30)
    assert api.connected == [("havsh-erp", "havsh")] and seen == ["10.9.0.7"]
    assert any("not on the havsh network" in str(e) for e in rep.events)
