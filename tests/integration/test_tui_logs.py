"""The logs screen on the real testbed: a container on host A prints known lines fast (levels
mixed, tracebacks); the pane shows them in order, and its search, level filter and regex
filter give exactly the expected lines. SSH is cut under the stream: no line is lost or
doubled. The container restarts: the pane says so and follows the new one."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from havsh_tui.app import make_app
from havsh_tui.core.model import Service, ServiceStatus, ServiceType
from havsh_tui.core.settings import Settings
from havsh_tui.screens import logs as logs_screen
from havsh_tui.screens.logs import LogsScreen
from havsh_tui.widgets.log_pane import MARKER, LogPane
from tests.integration.test_logs import _start_gen

SIZE = (120, 40)
LEVEL_OF = {0: "ERROR", 3: "WARNING", 6: "WARNING", 9: "DEBUG"}


def expected_lines(n: int) -> list[str]:
    """What the generator (tests/integration/test_logs.py) prints for 1..n."""
    out = []
    for i in range(1, n + 1):
        level = LEVEL_OF.get(i % 10, "INFO")
        out.append(f"2026-12-03 12:00:00,000 1 {level} gen odoo.gen: line {i}")
        if level == "ERROR":
            out += ["Traceback (most recent call last):", f'  File "x.py", line {i}, in f',
                    f"ValueError: boom {i}"]
    return out


def numbers(texts: list[str]) -> list[int]:
    return [int(t.rsplit(" ", 1)[1]) for t in texts if ": line " in t]


@pytest.fixture
def gen_service(pool, host_a, inventory, cleanup, request):
    """``start(n, pause_every)``: a generator container named like a service's (havsh-<slug>)
    and that service in the inventory."""
    made: list[str] = []
    # A name of this test's own: under xdist the tests of this file run side by side.
    tag = zlib.crc32(request.node.name.encode()) % 100_000

    def start(n: int, pause_every: int = 0) -> Service:
        slug = f"tl-gen-{tag}-{len(made)}"
        cleanup.add(slug)
        client = pool.session(host_a).docker()
        try:
            client.api.remove_container(f"havsh-{slug}", force=True)
        except Exception:  # noqa: BLE001 - left over from an interrupted run
            pass
        _start_gen(pool, host_a, f"havsh-{slug}", n, pause_every)
        made.append(slug)
        service = Service(name=slug, host="hosta", type=ServiceType.TEST, odoo_version="17.0",
                          image="havsh-test/postgres:15", status=ServiceStatus.RUNNING)
        inventory.add_service(service)
        return service

    yield start
    client = pool.session(host_a).docker()
    for slug in made:
        try:
            client.api.remove_container(f"havsh-{slug}", force=True)
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def app_factory(havsh_paths, inventory, pool, monkeypatch):
    # The whole log, whatever it holds by the time the pane opens.
    monkeypatch.setattr(logs_screen, "INITIAL_TAIL", "all")

    def build(**settings: object):
        return make_app(havsh_paths, Settings(**settings), inventory=inventory,  # type: ignore[arg-type]
                        pool=pool)

    return build


async def wait_until(pilot: Pilot, pred: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await pilot.pause(0.05)


async def open_pane(app, pilot: Pilot, service: Service) -> LogPane:
    app.action_open_logs(service)
    await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen) and app.screen.panes)
    (pane,) = app.screen.panes
    return pane


async def test_pane_shows_the_lines_in_order_and_filters_exactly(app_factory, gen_service,
                                                                 pool, host_a):
    n = 2000
    service = gen_service(n)
    lines = expected_lines(n)
    client = pool.session(host_a).docker()
    deadline = time.monotonic() + 60
    while f"line {n}".encode() not in client.api.logs(f"havsh-{service.name}", tail=8):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(app, pilot, service)
        await wait_until(pilot, lambda: len(pane.shown_lines()) >= len(lines))
        assert pane.shown_lines() == lines
        assert pane.tail and pane.state == "following"
        # Search: the 200 ERROR lines' "boom", 3/200-style position, n and N.
        await pilot.press("slash", *"boom", "enter")
        assert pane.search_position == (200, 200)
        await pilot.press("N", "N")
        assert pane.search_position == (198, 200)
        assert pane.buffer.entry(pane.view.cursor)[0] == "ValueError: boom 1980"
        await pilot.press("escape", "escape")
        # Level filter: ≥WARNING gives the WARNING and ERROR lines, tracebacks attached.
        await pilot.press("l", "l")
        want = [t for t in lines if "INFO" not in t and "DEBUG" not in t]
        assert pane.shown_lines() == want
        assert numbers(pane.shown_lines()) == [i for i in range(1, n + 1) if i % 10 in (0, 3, 6)]
        # Regex filter on top: exactly lines 1230..1239 at ≥WARNING: 1230, 1233, 1236.
        await pilot.press("f", *"/line 123\\d$/", "enter")
        assert numbers(pane.shown_lines()) == [1230, 1233, 1236]
        await pilot.press("l", "l")  # back to all levels, the regex stays
        assert numbers(pane.shown_lines()) == list(range(1230, 1240))
        # Plain text: "." is a dot there, any character in a /regex/.
        await pilot.press("f", "ctrl+u", *"line 7.", "enter")
        assert pane.shown_lines() == []
        await pilot.press("f", "ctrl+u", *"/line 7.$/", "enter")
        assert numbers(pane.shown_lines()) == list(range(70, 80))
        await pilot.press("f", "ctrl+u", *"x.py\", line 70,", "enter")
        assert pane.shown_lines() == ['  File "x.py", line 70, in f']


@pytest.mark.slow
async def test_cut_ssh_mid_stream_loses_and_doubles_nothing(app_factory, gen_service, pool,
                                                             host_a):
    n = 3000
    service = gen_service(n, pause_every=25)  # about 6 s of output
    session = pool.session(host_a)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(app, pilot, service)
        await wait_until(pilot, lambda: len(numbers(pane.shown_lines())) > 300)
        # Cut the SSH connection under the stream, twice; the pool reconnects on next use.
        session.ssh.close()
        await wait_until(pilot, lambda: sum("reconnected" in e[0] for e in
                                            pane.buffer.entries if e[2] == MARKER) == 1, 30)
        await wait_until(pilot, lambda: len(numbers(pane.shown_lines())) > 1500)
        session.ssh.close()
        await wait_until(pilot, lambda: f"boom {n}" in pane.buffer.entries[-1][0], 90)
        assert pane.shown_lines() == expected_lines(n)
        markers = [e[0] for e in pane.buffer.entries if e[2] == MARKER]
        assert [("connection lost" in m, "reconnected" in m) for m in markers] == [
            (True, False), (False, True), (True, False), (False, True)]
        assert pane.state == "following"


@pytest.mark.slow
async def test_container_restart_is_marked_and_followed(app_factory, gen_service, pool, host_a):
    service = gen_service(50)
    client = pool.session(host_a).docker()
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_pane(app, pilot, service)
        await wait_until(pilot, lambda: len(pane.shown_lines()) == len(expected_lines(50)))
        client.api.restart(f"havsh-{service.name}", timeout=0)
        # The generator starts again from line 1: the same lines, a second time, after the
        # marker (they are new lines, from the new run).
        await wait_until(pilot, lambda: len(pane.shown_lines()) == 2 * len(expected_lines(50)))
        entries = pane.buffer.entries
        first_marker = [e[2] for e in entries].index(MARKER)
        assert [e[0] for e in entries[:first_marker]] == expected_lines(50)
        assert [e[0] for e in entries if e[2] != MARKER] == expected_lines(50) * 2
        assert any("restarted" in e[0] for e in entries if e[2] == MARKER)
        assert pane.state == "following"
