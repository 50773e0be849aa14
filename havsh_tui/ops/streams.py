"""Byte streams between containers: docker exec and one-off helper containers, over SSH.

These carry pg_dump, pg_restore and tar streams. Nothing is ever held whole in memory: data
moves in chunks from one socket to the next, and the caller sees the byte count as it goes.
"""

from __future__ import annotations

import socket as pysocket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import docker
import docker.errors

from havsh_tui.core import names
from havsh_tui.ops.hosts import OpsError
from havsh_tui.remote.ssh import RemoteError

CHUNK = 256 * 1024
STDOUT, STDERR = 1, 2


class StreamError(OpsError):
    pass


def raw_socket(sock):
    """The object to read and write: a paramiko Channel over SSH, a socket locally."""
    return getattr(sock, "_sock", sock)


def shutdown_write(sock) -> None:
    raw = raw_socket(sock)
    if hasattr(raw, "shutdown_write"):
        raw.shutdown_write()
    else:
        raw.shutdown(pysocket.SHUT_WR)


def _recv_exact(raw, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = raw.recv(n - len(buf))
        if not chunk:
            if buf:
                raise StreamError("the stream ended in the middle of a frame")
            return b""
        buf += chunk
    return bytes(buf)


def frames(sock) -> Iterator[tuple[int, bytes]]:
    """Demultiplex docker's attach/exec stream (no TTY): (stream id, payload) pairs."""
    raw = raw_socket(sock)
    while True:
        header = _recv_exact(raw, 8)
        if not header:
            return
        stream, size = header[0], struct.unpack(">I", header[4:])[0]
        remaining = size
        while remaining:
            chunk = raw.recv(min(remaining, CHUNK))
            if not chunk:
                raise StreamError("the stream ended in the middle of a frame")
            remaining -= len(chunk)
            yield stream, chunk


class _Attached:
    """The stdin, stdout and stderr of a process we hold by a docker attach/exec stream.

    stderr is kept (its last 64 KB) and also handed, chunk by chunk, to ``on_stderr`` when
    set, so a caller can read progress lines as they come without the tail pushing out
    what it needs.
    """

    sock: object
    stderr: bytearray
    on_stderr: Callable[[bytes], None] | None

    def write_all(self, data: bytes) -> None:
        raw = raw_socket(self.sock)
        if len(data) <= CHUNK:
            raw.sendall(data)
            return
        # paramiko's Channel.sendall slices the rest of its buffer per 32 KB packet, which
        # is quadratic in the buffer's size: feed it pieces.
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            raw.sendall(bytes(view[i:i + CHUNK]))

    def close_stdin(self) -> None:
        shutdown_write(self.sock)

    def stdout_chunks(self) -> Iterator[bytes]:
        for stream, chunk in frames(self.sock):
            if stream == STDERR:
                self.stderr += chunk
                del self.stderr[:-65536]
                if self.on_stderr is not None:
                    self.on_stderr(chunk)
            else:
                yield chunk

    def drain(self) -> bytes:
        return b"".join(self.stdout_chunks())

    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()


@dataclass
class ExecProcess(_Attached):
    """A process started with docker exec, whose stdin, stdout and stderr we hold."""

    client: docker.DockerClient
    exec_id: str
    sock: object
    stderr: bytearray = field(default_factory=bytearray)
    on_stderr: Callable[[bytes], None] | None = None

    def exit_code(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            info = self.client.api.exec_inspect(self.exec_id)
            if not info.get("Running"):
                return int(info.get("ExitCode") or 0)
            if time.monotonic() > deadline:
                raise StreamError("the process did not exit")
            time.sleep(0.1)

    def close(self) -> None:
        try:
            raw_socket(self.sock).close()
        except OSError:
            pass


def exec_process(client: docker.DockerClient, container: str, argv: list[str], *,
                 stdin: bool = False, user: str | None = None,
                 environment: dict[str, str] | None = None,
                 on_stderr: Callable[[bytes], None] | None = None) -> ExecProcess:
    """Start ``argv`` in a running container and hold its streams.

    Docker does not end an exec'd process when its stream is closed: a process that reads
    stdin sees EOF, but one that only writes runs on to its end. Callers that stream from a
    database must be able to end the server side themselves (see ops/copy).
    """
    ex = client.api.exec_create(container, argv, stdin=stdin, user=user or "",
                                environment=environment)
    sock = client.api.exec_start(ex["Id"], socket=True)
    return ExecProcess(client, ex["Id"], sock, on_stderr=on_stderr)


@dataclass
class HelperContainer(_Attached):
    """A one-off container (like `docker run --rm -i`), attached before it starts."""

    client: docker.DockerClient
    id: str
    sock: object
    stderr: bytearray = field(default_factory=bytearray)
    on_stderr: Callable[[bytes], None] | None = None

    def wait(self, timeout: float = 3600.0) -> int:
        return int(self.client.api.wait(self.id, timeout=timeout)["StatusCode"])

    def remove(self) -> None:
        try:
            raw_socket(self.sock).close()
        except OSError:
            pass
        try:
            self.client.api.remove_container(self.id, force=True)
        except (docker.errors.APIError, RemoteError, OSError):
            pass


def start_helper(client: docker.DockerClient, image: str, argv: list[str], *,
                 binds: dict[str, dict], service: str, stdin: bool = False,
                 purpose: str = "helper",
                 on_stderr: Callable[[bytes], None] | None = None) -> HelperContainer:
    """Create, attach to and start a helper container labelled for the service it serves.

    The label lets a failed operation's cleanup (and `havsh rescan`) find it.
    """
    labels = {names.LABEL_MANAGED: "1", names.LABEL_SERVICE: service,
              names.LABEL_ROLE: purpose}
    cid = client.api.create_container(
        image, command=argv, entrypoint=[], labels=labels, stdin_open=stdin,
        host_config=client.api.create_host_config(binds=binds, network_mode="none"),
        user="0:0",
    )["Id"]
    sock = client.api.attach_socket(cid, params={"stdin": 1 if stdin else 0, "stdout": 1,
                                                 "stderr": 1, "stream": 1})
    try:
        client.api.start(cid)
    except BaseException:
        HelperContainer(client, cid, sock).remove()
        raise
    return HelperContainer(client, cid, sock, on_stderr=on_stderr)


class Meter:
    """Counts bytes for a progress bar, thread-safe."""

    def __init__(self, on_progress: Callable[[int], None] | None = None) -> None:
        self.bytes = 0
        self._lock = threading.Lock()
        self._cb = on_progress

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            total = self.bytes
        if self._cb:
            self._cb(total)


def human_bytes(n: float) -> str:
    """Decimal units, as disks and network links are sold: 1.5 GB is 1.5e9 bytes."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:,.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{int(n)} B"


def human_duration(seconds: float) -> str:
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Bytes done (of a total when known), the rate over the last few seconds, and an ETA.

    It calls ``report(done, total, message)`` (a Reporter's ``progress``) at most every
    ``interval`` seconds, and once more from :meth:`finish`. The message reads like
    ``database: 312.4 MB of 1.02 GB, 48.2 MB/s, ETA 15 s``. Thread-safe.
    """

    def __init__(self, report: Callable[[float, float | None, str], None], label: str,
                 total: float | None = None, *, interval: float = 0.5, window: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._report = report
        self.label = label
        self.total = total if total and total > 0 else None
        self.done = 0.0
        self.note = ""
        self._interval = interval
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._samples: list[tuple[float, float]] = [(clock(), 0.0)]
        self._last_emit = -1e9

    def add(self, n: float, note: str | None = None) -> None:
        with self._lock:
            value = self.done + n
        self.set(value, note)

    def set(self, done: float, note: str | None = None) -> None:
        now = self._clock()
        with self._lock:
            self.done = max(float(done), 0.0)
            if note is not None:
                self.note = note
            self._samples.append((now, self.done))
            while len(self._samples) > 2 and now - self._samples[1][0] > self._window:
                self._samples.pop(0)
            if now - self._last_emit < self._interval:
                return
            self._last_emit = now
            args = self._args(now)
        self._report(*args)

    def finish(self) -> None:
        with self._lock:
            args = self._args(self._clock())
        self._report(*args)

    @property
    def rate(self) -> float | None:
        """Bytes per second over the last ``window`` seconds."""
        with self._lock:
            return self._rate()

    def _rate(self) -> float | None:
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 - t0 > 0.05 else None

    def eta(self) -> float | None:
        with self._lock:
            return self._eta()

    def _eta(self) -> float | None:
        rate = self._rate()
        if self.total is None or not rate or rate <= 0:
            return None
        return max(self.total - self.done, 0.0) / rate

    def _args(self, now: float) -> tuple[float, float | None, str]:
        parts = [human_bytes(self.done) + (f" of {human_bytes(self.total)}" if self.total
                                           else "")]
        rate = self._rate()
        if rate is not None:
            parts.append(f"{human_bytes(rate)}/s")
        eta = self._eta()
        if eta is not None:
            parts.append(f"ETA {human_duration(eta)}")
        if self.note:
            parts.append(self.note)
        done = min(self.done, self.total) if self.total else self.done
        return done, self.total, f"{self.label}: " + ", ".join(parts)


def pump(chunks: Iterator[bytes], write: Callable[[bytes], None], meter: Meter | None = None,
         cancelled: Callable[[], bool] = lambda: False) -> int:
    """Copy every chunk to ``write``; returns the byte count. Checks cancellation per chunk."""
    n = 0
    for chunk in chunks:
        if cancelled():
            raise StreamError("cancelled")
        write(chunk)
        n += len(chunk)
        if meter:
            meter.add(len(chunk))
    return n
