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


@dataclass
class ExecProcess:
    """A process started with docker exec, whose stdin, stdout and stderr we hold."""

    client: docker.DockerClient
    exec_id: str
    sock: object
    stderr: bytearray = field(default_factory=bytearray)

    def write_all(self, data: bytes) -> None:
        raw_socket(self.sock).sendall(data)

    def close_stdin(self) -> None:
        shutdown_write(self.sock)

    def stdout_chunks(self) -> Iterator[bytes]:
        for stream, chunk in frames(self.sock):
            if stream == STDERR:
                self.stderr += chunk
                del self.stderr[:-65536]
            else:
                yield chunk

    def drain(self) -> bytes:
        return b"".join(self.stdout_chunks())

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

    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()


def exec_process(client: docker.DockerClient, container: str, argv: list[str], *,
                 stdin: bool = False, user: str | None = None,
                 environment: dict[str, str] | None = None) -> ExecProcess:
    ex = client.api.exec_create(container, argv, stdin=stdin, user=user or "",
                                environment=environment)
    sock = client.api.exec_start(ex["Id"], socket=True)
    return ExecProcess(client, ex["Id"], sock)


@dataclass
class HelperContainer:
    """A one-off container (like `docker run --rm -i`), attached before it starts."""

    client: docker.DockerClient
    id: str
    sock: object
    stderr: bytearray = field(default_factory=bytearray)

    def write_all(self, data: bytes) -> None:
        raw_socket(self.sock).sendall(data)

    def close_stdin(self) -> None:
        shutdown_write(self.sock)

    def stdout_chunks(self) -> Iterator[bytes]:
        for stream, chunk in frames(self.sock):
            if stream == STDERR:
                self.stderr += chunk
                del self.stderr[:-65536]
            else:
                yield chunk

    def drain(self) -> bytes:
        return b"".join(self.stdout_chunks())

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

    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()


def start_helper(client: docker.DockerClient, image: str, argv: list[str], *,
                 binds: dict[str, dict], service: str, stdin: bool = False,
                 purpose: str = "helper") -> HelperContainer:
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
    client.api.start(cid)
    return HelperContainer(client, cid, sock)


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
