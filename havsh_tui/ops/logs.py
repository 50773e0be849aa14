"""Container logs over SSH: parsed Odoo lines, resumable after a drop, following restarts.

The stream asks Docker for timestamps, so that after a dropped SSH connection (or a
container restart) it resumes from the last timestamp seen with ``since`` and skips what it
already gave, without losing or doubling a line.

Speed: the docker SDK reads a log stream one frame (one line) at a time through http.client
and urllib3, about 15,000 lines/s here, slower than the engine writes them. So where the
host allows stream forwarding (it does for the docker client already), the stream makes its
own request on a ``direct-streamlocal`` channel to the engine's socket and takes the answer
in large reads: HTTP chunks, docker's stream frames and lines are split from whole buffers.
Where that channel is refused (a ``dial-stdio`` host), it falls back to the SDK.
Lines come out in batches (:meth:`LogStream.batches`), one per read from the network, so a
consumer can write or post a whole batch at once.
"""

from __future__ import annotations

import json
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import docker.errors

from havsh_tui.ops.odoo import _LOG_RE as ODOO_LOG_RE  # one definition of Odoo's line format
from havsh_tui.remote.ssh import RemoteError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
_TS_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2}) ")
#: Bytes asked of the channel per read.
READ_SIZE = 256 * 1024
#: The engine socket when the docker client does not say.
DEFAULT_SOCKET = "/var/run/docker.sock"
_FRAME_SIZE = struct.Struct(">I")


@dataclass(slots=True)
class LogLine:
    """One line from the container, with the Odoo fields when it is an Odoo log line."""

    text: str
    #: Docker's timestamp of the line (RFC 3339 with nanoseconds), the resume key.
    docker_ts: str = ""
    level: str | None = None
    database: str | None = None
    logger: str | None = None
    message: str | None = None
    timestamp: str | None = None
    pid: int | None = None
    #: True for a line without the Odoo prefix (a traceback, a print) that belongs to the
    #: Odoo line before it.
    continuation: bool = False
    #: The level of the Odoo line this continuation belongs to, for level filters.
    effective_level: str | None = None

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in _LINE_FIELDS}


_LINE_FIELDS = tuple(f.name for f in fields(LogLine))


@dataclass
class StreamEvent:
    """Not a line: the stream dropped, reconnected, or the container restarted."""

    kind: str  # "disconnected", "reconnected", "restarted", "waiting", "ended"
    detail: str = ""


Item = LogLine | StreamEvent


def _ts_key(ts: str) -> tuple[str, str]:
    """Sortable key of a docker timestamp: (seconds part, nanoseconds padded)."""
    m = _TS_RE.match(ts + " ")
    if not m:
        return (ts, "")
    return (m.group(1), (m.group(2) or ".0")[1:].ljust(9, "0"))


def _ts_to_float(ts: str) -> float:
    sec, nanos = _ts_key(ts)
    base = datetime.fromisoformat(sec + "+00:00").timestamp()
    return base + int(nanos[:6] or 0) / 1e6


def _ts_to_since(ts: str) -> str:
    """The engine's ``since`` for exactly this timestamp: ``seconds.nanoseconds``."""
    sec, nanos = _ts_key(ts)
    return f"{int(datetime.fromisoformat(sec + '+00:00').timestamp())}.{nanos}"


class LineParser:
    """Turns docker log lines into LogLines, keeping tracebacks with their Odoo line."""

    def __init__(self) -> None:
        self.last_level: str | None = None

    def parse(self, raw: str, docker_ts: str = "") -> LogLine:
        # Cheap test first: a traceback or a print seldom has "YYYY-MM-DD HH:MM:SS," at 0.
        m = (ODOO_LOG_RE.match(raw)
             if len(raw) > 24 and raw[4] == "-" and raw[10] == " " and raw[19] == ","
             else None)
        if m is None:
            return LogLine(raw, docker_ts, None, None, None, None, None, None, True,
                           self.last_level)
        _date, _time, pid, level, db, logger, message = m.groups()
        self.last_level = level
        return LogLine(raw, docker_ts, level, db, logger, message, raw[:23], int(pid), False,
                       level)


def split_docker_line(line: str) -> tuple[str, str]:
    """``2026-12-03T12:00:00.123456789Z text`` → (timestamp, text)."""
    ts, sep, text = line.partition(" ")
    if not sep or not _TS_RE.match(ts + " "):
        return "", line
    return ts, text


@dataclass
class LogFilter:
    """Level and text/regex filters; a continuation line goes with its Odoo line's level."""

    min_level: str | None = None
    pattern: re.Pattern[str] | None = None

    @classmethod
    def build(cls, level: str | None = None, grep: str | None = None,
              ignore_case: bool = True, literal: bool = False) -> LogFilter:
        """A filter from a level name and a regular expression (or, with ``literal``, plain
        text). Raises ValueError with a message for the user for a bad level or regex."""
        if level is not None and level.upper() not in LEVEL_RANK:
            raise ValueError(f"unknown level {level!r} (one of {', '.join(LEVELS)})")
        pattern = None
        if grep:
            pattern = compile_pattern(grep, ignore_case=ignore_case, literal=literal)
        return cls(level.upper() if level else None, pattern)

    @property
    def active(self) -> bool:
        return self.min_level is not None or self.pattern is not None

    def matches(self, line: LogLine) -> bool:
        if self.min_level is not None:
            lvl = line.effective_level
            if lvl is None or LEVEL_RANK.get(lvl, 0) < LEVEL_RANK[self.min_level]:
                return False
        if self.pattern is not None and not self.pattern.search(line.text):
            return False
        return True


def compile_pattern(text: str, *, ignore_case: bool = True, literal: bool = False
                    ) -> re.Pattern[str]:
    """A search pattern; ValueError("bad regular expression ...") when it does not compile."""
    flags = re.IGNORECASE if ignore_case else 0
    if literal:
        return re.compile(re.escape(text), flags)
    try:
        return re.compile(text, flags)
    except re.error as exc:
        raise ValueError(f"bad regular expression {text!r}: {exc}") from None


class _EngineLogs:
    """One logs request on its own channel to the engine socket, read in large pieces.

    ``batches()`` yields lists of complete lines (bytes, without the newline) as they
    arrive; ``leftover`` holds an unfinished last line when the stream ends.
    """

    def __init__(self, chan: Any, path: str, tty: bool) -> None:
        self.chan = chan
        self.tty = tty
        self.leftover = b""
        chan.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: havsh\r\n"
                     "Connection: close\r\n\r\n".encode())
        head = bytearray()
        while b"\r\n\r\n" not in head:
            data = chan.recv(65536)
            if not data:
                raise EOFError("the engine closed the logs request")
            head += data
        header, _, rest = bytes(head).partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:])}
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self.remaining = int(length) if length is not None and not self.chunked else None
        self._first = rest
        if status != 200:
            body = b"".join(self._body())
            try:
                message = json.loads(body.decode(errors="replace")).get("message", "")
            except ValueError:
                message = body.decode(errors="replace").strip()
            cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
            raise cls(f"{status} from the engine: {message}")

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:  # noqa: BLE001 - closing a dead channel must not raise
            pass

    def _raw(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
            self._first = b""
        while True:
            data = self.chan.recv(READ_SIZE)
            if not data:
                return
            yield data

    def _body(self) -> Iterator[bytes]:
        """The HTTP body, de-chunked, as it arrives."""
        if not self.chunked:
            for data in self._raw():
                if self.remaining is not None:
                    data = data[: self.remaining]
                    self.remaining -= len(data)
                yield data
                if self.remaining == 0:
                    return
            return
        buf = b""
        for data in self._raw():
            buf = buf + data if buf else data
            parts: list[bytes] = []
            pos, n = 0, len(buf)
            find = buf.find
            while True:
                nl = find(b"\r\n", pos)
                if nl < 0:
                    break
                try:
                    size = int(buf[pos:nl], 16)
                except ValueError:  # a chunk extension (";name=value"): never from dockerd
                    size = int(buf[pos:nl].split(b";", 1)[0], 16)
                if size == 0:
                    if parts:
                        yield b"".join(parts)
                    return
                end = nl + 2 + size
                if n < end + 2:
                    break
                parts.append(buf[nl + 2:end])
                pos = end + 2
            buf = buf[pos:]
            if parts:
                yield b"".join(parts)

    def _payload(self) -> Iterator[bytes]:
        """Docker's stream frames (8-byte header, then the payload) taken apart."""
        if self.tty:
            yield from self._body()
            return
        buf = b""
        unpack = _FRAME_SIZE.unpack_from
        for data in self._body():
            buf = buf + data if buf else data
            parts: list[bytes] = []
            pos, n = 0, len(buf)
            while n - pos >= 8:
                end = pos + 8 + unpack(buf, pos + 4)[0]
                if end > n:
                    break
                parts.append(buf[pos + 8:end])
                pos = end
            buf = buf[pos:]
            if parts:
                yield b"".join(parts)

    def batches(self) -> Iterator[bytes]:
        """Blocks of whole lines (each ends with a newline, dropped here), as they come."""
        pending = b""
        for data in self._payload():
            if pending:
                data = pending + data
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1:]
            yield data[:cut]
        self.leftover = pending


class _SDKLogs:
    """The same through the docker SDK (a host where stream forwarding is refused)."""

    def __init__(self, client: Any, container: str, kwargs: dict) -> None:
        self.chunks = client.api.logs(container, **kwargs)
        self.leftover = b""

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001
                pass

    def batches(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self.chunks:
            data = pending + chunk if pending else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1:]
            yield data[:cut]
        self.leftover = pending


@dataclass
class LogStream:
    """Follow one container's logs through a HostSession, surviving drops and restarts."""

    session_factory: Callable[[], object]
    container: str
    tail: int | str = 200
    since: float | None = None
    follow: bool = True
    reconnect_delay: float = 1.0
    max_reconnect_delay: float = 10.0
    #: Parse Odoo's fields (level, logger, ...); off, lines carry only their text.
    parse: bool = True
    last_ts: str = ""
    #: Lines delivered with exactly last_ts, and how many of those a resume must skip.
    _given_at_ts: int = 0
    _skip_at_ts: int = 0
    #: Set while a resumed stream may still repeat lines at or before last_ts.
    _resuming: bool = False
    stopped: bool = False
    parser: LineParser = field(default_factory=LineParser)
    _reader: Any = None
    _sdk_only: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        """Stop from any thread: a blocked read ends at once (its channel is closed)."""
        self.stopped = True
        with self._lock:
            reader = self._reader
        if reader is not None:
            reader.close()

    def _params(self) -> dict:
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1,
                                  "follow": 1 if self.follow else 0}
        self._skip_at_ts = self._given_at_ts
        self._resuming = bool(self.last_ts)
        if self.last_ts:
            # Resume: everything from the last timestamp seen; what we had is skipped.
            params["since"] = _ts_to_since(self.last_ts)
        else:
            params["tail"] = str(self.tail)
            if self.since is not None:
                params["since"] = f"{self.since:.9f}"
        return params

    def _open(self, session: object, client: Any, tty: bool):
        params = self._params()
        ssh = getattr(session, "ssh", None)
        if ssh is not None and hasattr(ssh, "open_streamlocal") and not self._sdk_only:
            adapter = getattr(client.api, "_custom_adapter", None)
            socket_path = getattr(adapter, "socket_path", None) or DEFAULT_SOCKET
            try:
                chan = ssh.open_streamlocal(socket_path)
            except RemoteError:
                if not ssh.is_connected:
                    raise
                self._sdk_only = True  # stream forwarding refused: the SDK's own way
            else:
                path = (f"/v{client.api.api_version}/containers/"
                        f"{quote(self.container, safe='')}/logs?{urlencode(params)}")
                try:
                    return _EngineLogs(chan, path, tty)
                except BaseException:
                    chan.close()
                    raise
        kwargs: dict[str, Any] = {"stream": True, "follow": self.follow, "timestamps": True}
        if self.last_ts:
            kwargs["since"] = _ts_to_float(self.last_ts) - 0.000001
        else:
            kwargs["tail"] = self.tail
            if self.since is not None:
                kwargs["since"] = self.since
        return _SDKLogs(client, self.container, kwargs)

    def lines(self) -> Iterator[Item]:
        """Yield lines (and events) until stopped, or until the logs end without follow."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Item]]:
        """Like :meth:`lines`, a list at a time: the lines of one read from the network.
        An event comes alone in its list."""
        delay = self.reconnect_delay
        dropped = False
        missing = False
        while not self.stopped:
            try:
                session = self.session_factory()
                client = session.docker()  # type: ignore[attr-defined]
                info = client.api.inspect_container(self.container)
                state = info["State"]
                missing = False
                if dropped:
                    yield [StreamEvent("reconnected",
                                       f"resuming after {self.last_ts or 'the start'}")]
                    dropped = False
                delay = self.reconnect_delay
                reader = self._open(session, client, bool(info.get("Config", {}).get("Tty")))
                with self._lock:
                    self._reader = reader
                if self.stopped:
                    reader.close()
                    return
                try:
                    for block in reader.batches():
                        if self.stopped:
                            return
                        batch = self._accept_block(block)
                        if batch:
                            yield batch
                finally:
                    with self._lock:
                        self._reader = None
                    reader.close()
                if self.stopped:
                    return
                leftover = self._accept_block(reader.leftover) if reader.leftover else []
                if not self.follow:
                    if leftover:
                        yield leftover
                    return
                started = state.get("StartedAt")
                now = client.api.inspect_container(self.container)["State"]
                if now.get("Running") and now.get("StartedAt") == started:
                    # The stream ended but the container runs on: the connection dropped
                    # (an SSH channel closes cleanly when its transport goes). An unfinished
                    # last line is dropped too: the resume sends it again, whole.
                    yield [StreamEvent("disconnected", "the log stream ended; resuming")]
                    dropped = True
                    continue
                if leftover:
                    yield leftover
                if now.get("Running"):
                    yield [StreamEvent("restarted", f"started at {now.get('StartedAt')}")]
                    continue
                # The follow ended because the container stopped. Wait for it to come back.
                yield [StreamEvent("waiting", "the container stopped; waiting for it")]
                while not self.stopped:
                    time.sleep(1.0)
                    st = client.api.inspect_container(self.container)["State"]
                    if st.get("Running"):
                        if st.get("StartedAt") != started:
                            yield [StreamEvent("restarted", f"started at {st.get('StartedAt')}")]
                        break
            except docker.errors.NotFound:
                if not missing:
                    yield [StreamEvent("ended", f"no container {self.container}")]
                    missing = True
                if not self.follow:
                    return
                self._sleep(delay)
            except (RemoteError, OSError, EOFError, docker.errors.APIError,  # noqa: B014
                    Exception) as exc:
                if self.stopped:
                    return
                if not dropped:
                    yield [StreamEvent("disconnected", str(exc) or type(exc).__name__)]
                    dropped = True
                self._sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopped and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))

    def _accept_block(self, block: bytes) -> list[Item]:
        """Lines from a block of complete lines: split, resume position tracked, parsed."""
        text_block = block.decode(errors="replace")  # "\n" never ends a UTF-8 sequence
        lines = text_block.split("\n")
        if "\r" in text_block:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        out: list[Item] = []
        append = out.append
        parse = self.parser.parse if self.parse else None
        stamps: list[str] = []
        keep_stamp = stamps.append
        resuming = self._resuming
        for line in lines:
            ts, sep, text = line.partition(" ")
            # Docker writes RFC3339Nano with a fixed 9-digit fraction, in UTC.
            if sep and len(ts) >= 20 and ts[10] == "T" and ts[4] == "-":
                if resuming:
                    if not self._keep(ts):
                        continue
                    resuming = self._resuming
                else:
                    keep_stamp(ts)
            else:
                ts, text = "", line
            append(parse(text, ts) if parse is not None else LogLine(text, ts))
        if stamps:
            # Where a resume starts: the newest timestamp, and how many lines had it. (A
            # line older than the newest seen, stdout and stderr being stamped apart, is
            # given but moves nothing.)
            newest = max(stamps)
            if newest == self.last_ts:
                self._given_at_ts += stamps.count(newest)
            elif newest > self.last_ts:
                self.last_ts, self._given_at_ts = newest, stamps.count(newest)
        return out

    def _keep(self, ts: str) -> bool:
        """While resuming: False for a line the stream gave before the drop."""
        k, last = _ts_key(ts), _ts_key(self.last_ts)
        if k < last:
            return False
        if k == last:
            if self._skip_at_ts > 0:
                self._skip_at_ts -= 1
                return False
            self._given_at_ts += 1
            return True
        self._resuming = False
        self.last_ts, self._given_at_ts = ts, 1
        return True


def tail_lines(session, container: str, tail: int = 200) -> list[LogLine]:
    """The last lines of a container's log, parsed (no follow)."""
    stream = LogStream(lambda: session, container, tail=tail, follow=False)
    return [x for x in stream.lines() if isinstance(x, LogLine)]
