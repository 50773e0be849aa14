"""Container logs over SSH: parsed Odoo lines, resumable after a drop, following restarts.

The stream asks Docker for timestamps, so that after a dropped SSH connection (or a
container restart) it resumes from the last timestamp seen with ``since`` and skips what it
already gave, without losing or doubling a line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import docker.errors

from havsh_tui.ops.odoo import parse_log_line
from havsh_tui.remote.ssh import RemoteError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
_TS_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2}) ")


@dataclass
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
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class StreamEvent:
    """Not a line: the stream dropped, reconnected, or the container restarted."""

    kind: str  # "disconnected", "reconnected", "restarted", "waiting", "ended"
    detail: str = ""


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


class LineParser:
    """Turns docker log lines into LogLines, keeping tracebacks with their Odoo line."""

    def __init__(self) -> None:
        self.last_level: str | None = None

    def parse(self, raw: str, docker_ts: str = "") -> LogLine:
        fields = parse_log_line(raw)
        if fields is None:
            return LogLine(text=raw, docker_ts=docker_ts, continuation=True,
                           effective_level=self.last_level)
        self.last_level = fields["level"]
        return LogLine(text=raw, docker_ts=docker_ts, level=fields["level"],
                       database=fields["db"], logger=fields["logger"],
                       message=fields["message"], timestamp=fields["timestamp"],
                       pid=fields["pid"], effective_level=fields["level"])


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
              ignore_case: bool = True) -> LogFilter:
        if level is not None and level.upper() not in LEVEL_RANK:
            raise ValueError(f"unknown level {level!r} (one of {', '.join(LEVELS)})")
        pattern = None
        if grep:
            try:
                pattern = re.compile(grep, re.IGNORECASE if ignore_case else 0)
            except re.error as exc:
                raise ValueError(f"bad regular expression {grep!r}: {exc}") from None
        return cls(level.upper() if level else None, pattern)

    def matches(self, line: LogLine) -> bool:
        if self.min_level is not None:
            lvl = line.effective_level
            if lvl is None or LEVEL_RANK.get(lvl, 0) < LEVEL_RANK[self.min_level]:
                return False
        if self.pattern is not None and not self.pattern.search(line.text):
            return False
        return True


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
    last_ts: str = ""
    #: Lines delivered with exactly last_ts, and how many of those a resume must skip.
    _given_at_ts: int = 0
    _skip_at_ts: int = 0
    stopped: bool = False
    parser: LineParser = field(default_factory=LineParser)

    def stop(self) -> None:
        self.stopped = True

    def _open(self, client):
        kwargs: dict = {"stream": True, "follow": self.follow, "timestamps": True}
        self._skip_at_ts = self._given_at_ts
        if self.last_ts:
            # Resume: everything from the last second seen; what we had is skipped below.
            kwargs["since"] = _ts_to_float(self.last_ts) - 0.000001
        else:
            kwargs["tail"] = self.tail
            if self.since is not None:
                kwargs["since"] = self.since
        return client.api.logs(self.container, **kwargs)

    def lines(self) -> Iterator[LogLine | StreamEvent]:
        """Yield lines (and events) until stopped, or until the logs end without follow."""
        delay = self.reconnect_delay
        dropped = False
        while not self.stopped:
            try:
                session = self.session_factory()
                client = session.docker()  # type: ignore[attr-defined]
                state = client.api.inspect_container(self.container)["State"]
                if dropped:
                    yield StreamEvent("reconnected", f"resuming after {self.last_ts or 'start'}")
                    dropped = False
                delay = self.reconnect_delay
                yield from self._read(self._open(client))
                if not self.follow:
                    return
                if self.stopped:
                    return
                started = state.get("StartedAt")
                now = client.api.inspect_container(self.container)["State"]
                if now.get("Running") and now.get("StartedAt") == started:
                    # The stream ended but the container runs on: the connection dropped
                    # (an SSH channel closes cleanly when its transport goes).
                    yield StreamEvent("disconnected", "the log stream ended; resuming")
                    dropped = True
                    continue
                # The follow ended because the container stopped. Wait for it to come back.
                yield StreamEvent("waiting", "the container stopped; waiting for it")
                while not self.stopped:
                    time.sleep(1.0)
                    st = client.api.inspect_container(self.container)["State"]
                    if st.get("Running"):
                        if st.get("StartedAt") != started:
                            yield StreamEvent("restarted", f"started at {st.get('StartedAt')}")
                        break
            except docker.errors.NotFound:
                yield StreamEvent("ended", f"no container {self.container}")
                if not self.follow:
                    return
                time.sleep(delay)
            except (RemoteError, OSError, docker.errors.APIError, Exception) as exc:  # noqa: B014
                if self.stopped:
                    return
                if not dropped:
                    yield StreamEvent("disconnected", str(exc) or type(exc).__name__)
                    dropped = True
                time.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)

    def _read(self, chunks) -> Iterator[LogLine]:
        buf = b""
        for chunk in chunks:
            if self.stopped:
                return
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                line = self._accept(raw)
                if line is not None:
                    yield line
        if buf:
            line = self._accept(buf)
            if line is not None:
                yield line

    def _accept(self, raw: bytes) -> LogLine | None:
        ts, text = split_docker_line(raw.decode(errors="replace").rstrip("\r"))
        if ts:
            if self.last_ts:
                k, last = _ts_key(ts), _ts_key(self.last_ts)
                if k < last:
                    return None
                if k == last:
                    if self._skip_at_ts > 0:
                        self._skip_at_ts -= 1
                        return None
                    self._given_at_ts += 1
                else:
                    self.last_ts, self._given_at_ts, self._skip_at_ts = ts, 1, 0
            else:
                self.last_ts, self._given_at_ts = ts, 1
        return self.parser.parse(text, ts)


def tail_lines(session, container: str, tail: int = 200) -> list[LogLine]:
    """The last lines of a container's log, parsed (no follow)."""
    stream = LogStream(lambda: session, container, tail=tail, follow=False)
    return [x for x in stream.lines() if isinstance(x, LogLine)]
