"""Work that runs off the event loop: the per-host poller, the TUI's Reporter, and the helper
that sends one blocking call to its own thread.

Each host is polled by its own worker (group ``poll-<host>``). A poll runs on a thread of its
own and, when it finishes, delivers a :class:`HostPolled` and re-arms a timer for that host
only: polls of one host never overlap, and a host that takes its full SSH timeout to fail
delays nobody else (charles-001/dolphie's WorkerManager does the same with ``set_timer``).
The timer runs to the host's next tick on a grid of ``settings.poll_interval`` shared by all
hosts (and never less than half an interval), so hosts are polled together and the screens
repaint once per round rather than once per host.

Subscribing: ``app.poller.subscribe(node, callback)`` calls ``callback(HostPolled)`` on the
node after every poll of every host, and starts the polling if it was not running yet. Every
poll is also posted to the app as a :class:`HostPolled` message. Nothing polls until someone
subscribes (or calls :meth:`HostPoller.start`), so an app that shows no live data, such as a
test or a benchmark of the first paint, never dials a host.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from textual.message import Message
from textual.message_pump import MessagePump
from textual.signal import Signal
from textual.timer import Timer
from textual.worker import Worker

from havsh_tui.core.inventory import InventoryError
from havsh_tui.core.model import Host, ServiceStatus
from havsh_tui.core.names import InvalidName
from havsh_tui.core.secrets import SecretStoreError
from havsh_tui.ops.hosts import HostHealth, OpsError, check_host
from havsh_tui.ops.rescan import poll_statuses
from havsh_tui.remote.ssh import RemoteError

if TYPE_CHECKING:
    from havsh_tui.app import HavshApp

T = TypeVar("T")

#: Load samples kept per host for its sparkline: five minutes at the default 5 s interval.
HISTORY = 60

#: Errors whose message is written for the user (the layers below promise it).
USER_FACING: tuple[type[BaseException], ...] = (
    RemoteError,
    OpsError,
    InventoryError,
    InvalidName,
    SecretStoreError,
)


def describe_error(error: BaseException) -> str:
    """What to tell the user about ``error``: its own message when the layer that raised it
    writes messages for users, else the exception's type too (a bug, not a situation)."""
    if isinstance(error, USER_FACING):
        return str(error) or type(error).__name__
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_blocking(fn: Callable[..., T], /, *args: Any, name: str = "havsh-call") -> Awaitable[T]:
    """Run ``fn(*args)`` on a new daemon thread; await the result on the event loop.

    Why not ``@work(thread=True)``: thread workers share asyncio's default executor, which
    has min(32, CPUs + 4) threads (6 on a 2-core machine), so six hosts stuck in their SSH
    timeout would stall every other host's poll; and the loop waits for that executor when
    the app exits, so quitting would wait for a dead host too. A daemon thread per call has
    neither problem, and costs far less than the SSH round trips it waits for.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # the worker was cancelled meanwhile: nobody wants the result
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop is closed: the app is gone, and so is whoever asked

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


# -- polling ----------------------------------------------------------------------------------


class HostPolled(Message):
    """One poll of one host finished.

    ``statuses`` maps service slugs to their live status (``ops.rescan.poll_statuses``, from
    the containers list check_host made just before: no call of its own); it is None when the
    host is unreachable or that failed.
    """

    def __init__(
        self, host: str, health: HostHealth, statuses: dict[str, ServiceStatus] | None
    ) -> None:
        super().__init__()
        self.host = host
        self.health = health
        self.statuses = statuses


def poll_host(pool: Any, host: Host) -> tuple[HostHealth, dict[str, ServiceStatus] | None]:
    """One poll, on a worker thread: health, then the service statuses (from the same
    containers list). Never raises."""
    try:
        session = pool.session(host)
    except Exception as exc:  # noqa: BLE001 - a bad ssh_config line must not kill the poller
        return HostHealth(host=host.name, reachable=False, error=describe_error(exc)), None
    health = check_host(session)
    if not health.reachable:
        return health, None
    try:
        statuses = poll_statuses(session)
    except Exception as exc:  # noqa: BLE001 - the health is still worth showing
        health.error = health.error or f"service statuses: {describe_error(exc)}"
        return health, None
    return health, statuses


class HostPoller:
    """Polls every host of the inventory, each on its own schedule. Owned by the app."""

    def __init__(self, app: HavshApp) -> None:
        self.app = app
        #: Published after every poll; subscribe with :meth:`subscribe`.
        self.polled: Signal[HostPolled] = Signal(app, "host-polled")
        #: The last poll of each host.
        self.latest: dict[str, HostHealth] = {}
        #: The last :data:`HISTORY` 1-minute loads of each host, oldest first.
        self.history: dict[str, deque[float]] = {}
        #: When each poll in progress started (``time.monotonic``).
        self.in_progress: dict[str, float] = {}
        self.running = False
        self._hosts: dict[str, Host] = {}
        self._timers: dict[str, Timer] = {}
        self._again: set[str] = set()
        self._epoch = time.monotonic()

    @property
    def interval(self) -> float:
        return self.app.settings.poll_interval

    @property
    def hosts(self) -> list[str]:
        return sorted(self._hosts)

    def subscribe(self, node: MessagePump, callback: Callable[[HostPolled], object]) -> None:
        """Call ``callback`` on ``node`` after each poll (until the node is removed), and
        start polling."""
        self.polled.subscribe(node, callback)  # type: ignore[arg-type]
        self.start()

    def start(self) -> None:
        if self.running:
            return
        self.running = True
        self._epoch = time.monotonic()
        # After the next frame: the first round (SSH handshakes for every host) must not
        # compete with painting the screen that asked for it.
        self.app.call_after_refresh(self._first_round)

    def _first_round(self) -> None:
        if self.running:
            self._epoch = time.monotonic()
            self.sync()

    def stop(self) -> None:
        """Stop every timer and poll in progress (the app is closing)."""
        self.running = False
        for timer in self._timers.values():
            timer.stop()
        self._timers.clear()
        self._again.clear()
        for name in self._hosts:
            self.app.workers.cancel_group(self.app, f"poll-{name}")

    def sync(self, hosts: list[Host] | None = None) -> None:
        """Follow the inventory (after a host was added, edited or removed): new and changed
        hosts are polled at once, removed ones are forgotten."""
        if hosts is None:
            hosts = self.app.inventory.list_hosts()
        wanted = {host.name: host for host in hosts}
        for name in [name for name in self._hosts if name not in wanted]:
            self._forget(name)
        for name, host in wanted.items():
            old = self._hosts.get(name)
            self._hosts[name] = host
            if self.running and old != host:
                self.poll_now(name)

    def poll_now(self, name: str | None = None) -> None:
        """Poll ``name`` (default: every host) now rather than at its next tick. A host whose
        poll is in progress is polled again right after it, never twice at once."""
        for host in [name] if name is not None else list(self._hosts):
            if host not in self._hosts:
                continue
            if host in self.in_progress:
                self._again.add(host)
                continue
            timer = self._timers.pop(host, None)
            if timer is not None:
                timer.stop()
            self._start(host)

    def deliver(self, message: HostPolled) -> None:
        """Record one poll and tell everyone (the poll workers call this on the loop)."""
        health = message.health
        self.latest[message.host] = health
        if health.reachable and health.load1 is not None:
            self.history.setdefault(message.host, deque(maxlen=HISTORY)).append(health.load1)
        self.app.post_message(message)
        self.polled.publish(message)

    # -- internals ----------------------------------------------------------------------------

    def _forget(self, name: str) -> None:
        self._hosts.pop(name, None)
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.stop()
        self._again.discard(name)
        self.in_progress.pop(name, None)
        self.latest.pop(name, None)
        self.history.pop(name, None)
        self.app.workers.cancel_group(self.app, f"poll-{name}")

    def _start(self, name: str) -> None:
        self.in_progress[name] = time.monotonic()
        self.app.run_worker(
            self._poll(name, self._hosts[name]),
            name=f"poll {name}",
            group=f"poll-{name}",
            description=f"poll host {name}",
            exclusive=True,
            # A poll reports its failure as an unreachable host; it never raises.
            exit_on_error=False,
        )

    async def _poll(self, name: str, host: Host) -> None:
        try:
            health, statuses = await run_blocking(
                poll_host, self.app.pool, host, name=f"havsh-poll-{name}"
            )
        finally:
            self.in_progress.pop(name, None)
        if self._hosts.get(name) is None:
            return  # removed from the inventory while it was being polled
        self.deliver(HostPolled(name, health, statuses))
        if not self.running:
            return
        if name in self._again or self._hosts[name] != host:
            self._again.discard(name)
            self._start(name)
            return
        self._timers[name] = self.app.set_timer(
            self.next_delay(), partial(self._due, name), name=f"poll-{name}"
        )

    def next_delay(self, now: float | None = None) -> float:
        """Seconds from ``now`` to the next tick of the shared grid, at least half an
        interval away: a slow poll skips a tick rather than running back to back."""
        interval = self.interval
        now = time.monotonic() if now is None else now
        delay = interval - ((now - self._epoch) % interval)
        return delay + interval if delay < interval / 2 else delay

    def _due(self, name: str) -> None:
        self._timers.pop(name, None)
        if self.running and name in self._hosts and name not in self.in_progress:
            self._start(name)


# -- operations run from the TUI --------------------------------------------------------------


@dataclass
class OperationEvent:
    """What an operation reported: ``kind`` is step, progress, log or warning."""

    operation: str
    kind: str
    text: str = ""
    state: str = ""
    detail: str = ""
    done: float | None = None
    total: float | None = None


class OperationUpdate(Message):
    """An :class:`OperationEvent`, posted to the screen that started the operation."""

    def __init__(self, event: OperationEvent) -> None:
        super().__init__()
        self.event = event


class HostOperationReporter:
    """The ops/ Reporter of a host operation started from the hosts screen (bootstrap, push
    an image): every call becomes an :class:`OperationUpdate` posted to ``target``
    (``post_message`` is thread-safe), shown in the screen's one-line operation status.
    Service operations report into an operation pane instead
    (``widgets.operation_log.TUIReporter``).

    Progress is sent at most every ``min_interval`` seconds (and always at the end), so a
    pull that reports each chunk does not flood the message queue.
    """

    def __init__(
        self,
        target: MessagePump,
        operation: str,
        worker: Worker[Any] | None = None,
        *,
        min_interval: float = 0.1,
    ) -> None:
        self.target = target
        self.operation = operation
        self.worker = worker
        self.min_interval = min_interval
        self._last_progress = 0.0

    def _post(self, event: OperationEvent) -> None:
        self.target.post_message(OperationUpdate(event))

    def step(self, name: str, state: str, detail: str = "") -> None:
        self._post(OperationEvent(self.operation, "step", name, state=state, detail=detail))

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last_progress < self.min_interval:
            return
        self._last_progress = now
        self._post(OperationEvent(self.operation, "progress", message, done=done, total=total))

    def log(self, line: str) -> None:
        self._post(OperationEvent(self.operation, "log", line))

    def warning(self, message: str) -> None:
        self._post(OperationEvent(self.operation, "warning", message))

    def cancelled(self) -> bool:
        return bool(self.worker is not None and self.worker.is_cancelled)
