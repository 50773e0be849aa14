"""One poll on the real hosts: what it asks for and that the shortcuts give what the long
ways give (one labelled list for health and statuses, the lean GET, pipelined SFTP)."""

from __future__ import annotations

import json

import pytest

from havsh_tui.core.names import LABEL_MANAGED
from havsh_tui.ops import hosts as ops_hosts
from havsh_tui.ops.rescan import observe_host, poll_statuses
from havsh_tui.remote.docker_api import EngineGet
from havsh_tui.workers import poll_host

pytestmark = pytest.mark.integration


def _sdk_view(session):
    api = session.docker().api
    managed = api.containers(all=True, filters={"label": [LABEL_MANAGED]})
    statuses = {slug: o.status for slug, o in observe_host(session.docker()).items()}
    return len(managed), statuses


@pytest.mark.parametrize("which", ["host_a", "host_b"])
def test_a_poll_is_one_list_and_agrees_with_the_sdk(pool, which, request, monkeypatch):
    host = request.getfixturevalue(which)
    session = pool.session(host)
    ops_hosts.check_host(session)  # connect, /info, /version, the statvfs path
    calls: list[str] = []
    real = EngineGet.json

    def counted(self, path, params=None, timeout=10.0):
        calls.append(path)
        return real(self, path, params, timeout)

    monkeypatch.setattr(EngineGet, "json", counted)
    sdk_get = session.docker().api.get
    sdk_calls: list[str] = []
    monkeypatch.setattr(session.docker().api, "get",
                        lambda url, *a, **k: sdk_calls.append(url) or sdk_get(url, *a, **k))
    # Other engineers' tests change containers meanwhile: agree within a few tries.
    for _ in range(5):
        calls.clear()
        sdk_calls.clear()
        health, statuses = poll_host(pool, host)
        assert health.reachable, health.error
        assert calls == ["/containers/json"] and sdk_calls == []
        monkeypatch.setattr(EngineGet, "json", real)
        count, want = _sdk_view(session)
        monkeypatch.setattr(EngineGet, "json", counted)
        if (health.managed_containers, statuses) == (count, want):
            break
    else:
        pytest.fail(f"poll: {health.managed_containers} {statuses}; sdk: {count} {want}")
    # Without a check_host just before, poll_statuses lists on its own.
    sdk_calls.clear()
    assert isinstance(poll_statuses(session), dict)
    assert len(sdk_calls) == 1
    monkeypatch.undo()


def test_pipelined_stats_match_the_step_by_step_reads(pool, host_a):
    session = pool.session(host_a)
    first = ops_hosts.check_host(session)  # step by step (finds the statvfs path)
    sftp = session.sftp()
    assert sftp in ops_hosts._STAT_PATHS
    second = ops_hosts.check_host(session)  # pipelined
    for h in (first, second):
        assert h.reachable and h.error is None, h.error
        assert h.load1 is not None and h.mem_available and h.disk_free and h.disk_total
    assert (second.mem_total, second.disk_total) == (first.mem_total, first.disk_total)
    assert abs(second.disk_free - first.disk_free) < 2 << 30
    # A statvfs path that stops working falls back to the step by step reads.
    ops_hosts._STAT_PATHS[sftp] = "/nonexistent/havsh-poll-test"
    third = ops_hosts.check_host(session)
    assert third.reachable and third.error is None and third.disk_total == first.disk_total
    assert ops_hosts._STAT_PATHS[session.sftp()] != "/nonexistent/havsh-poll-test"


def test_the_lean_get_answers_what_the_sdk_answers(pool, host_b):
    client = pool.session(host_b).docker()
    getter = ops_hosts._engine_get(client)
    assert getter is not None
    assert getter.json("/version")["ApiVersion"] == client.api.version()["ApiVersion"]
    info = getter.json("/info")
    assert info["NCPU"] == client.api.info()["NCPU"]
    filters = json.dumps({"label": [LABEL_MANAGED]})
    for _ in range(5):  # other tests create and remove containers meanwhile
        ids = {c["Id"] for c in getter.json("/containers/json", {"all": 1, "filters": filters})}
        sdk = {c["Id"] for c in client.api.containers(all=True, filters={"label": [LABEL_MANAGED]})}
        if ids == sdk:
            break
    assert ids == sdk


def test_the_poll_shows_the_platform_containers(pool, host_b, secret_store):
    """The hosts screen and `host check` show havsh-postgres, havsh-proxy (and the backup
    scheduler once there is a schedule) with their states, from the poll's one list."""
    from havsh_tui.ops.bootstrap import bootstrap_host

    session = pool.session(host_b)
    bootstrap_host(session, secret_store)
    health = ops_hosts.check_host(session)
    assert health.reachable, health.error
    assert health.platform.get("havsh-postgres") == "running"
    assert health.platform.get("havsh-proxy") == "running"
    assert set(health.platform) <= set(ops_hosts.PLATFORM_CONTAINERS)
    assert health.to_dict()["platform"] == health.platform
