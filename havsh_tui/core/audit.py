"""The audit log: one JSON line per action taken on a host (who did what, and how it went).

Callers must not pass secrets. As a second line of defence every detail goes through
:func:`redact` (for dicts: values of keys like password, token, secret) or
:func:`redact_text` (for strings: ``password=...`` pairs, GitHub tokens, private keys, URLs
with credentials) before it is written.

Lines are appended with a single ``write`` on an ``O_APPEND`` descriptor, so concurrent
havsh processes never interleave inside a line and nothing needs a lock. The file is 0600.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .serde import PRIVATE_FILE_MODE, encode_value

#: A detail longer than this is cut, so one runaway message cannot bloat the log.
MAX_DETAIL = 4000
REDACTED = "********"

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|api[_-]?key|credential|private[_-]?key|"
    r"auth(orization)?$|cookie|session[_-]?id",
    re.IGNORECASE,
)

_TEXT_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys, whole.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        "-----PRIVATE KEY " + REDACTED + "-----",
    ),
    # GitHub tokens (classic and fine-grained).
    (re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"), REDACTED),
    # user:password@ in URLs.
    (re.compile(r"(?<=://)([^/\s:@]+):([^/\s@]+)@"), r"\1:" + REDACTED + "@"),
    # Bearer and Basic authorization values.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # key=value and key: value pairs whose key names a secret (PGPASSWORD=..., "token": "...").
    (
        re.compile(
            r"(?i)([\"']?[\w.-]*(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key)[\w.-]*[\"']?"
            r"\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)"
        ),
        r"\1" + REDACTED,
    ),
]


def is_secret_key(key: str) -> bool:
    """True when a key name suggests its value is a secret (password, db_password, token...)."""
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    """``text`` with anything that looks like a secret replaced by ``********``."""
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(detail: Any) -> Any:
    """A copy of ``detail`` with secret-looking values masked, recursively.

    In mappings the values of keys like ``password``, ``db_password``, ``token``,
    ``secret`` or ``api_key`` become ``********`` whatever they are; strings anywhere are
    passed through :func:`redact_text`.
    """
    if isinstance(detail, Mapping):
        return {
            str(k): (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v))
            for k, v in detail.items()
        }
    if isinstance(detail, (list, tuple)):
        return [redact(v) for v in detail]
    if isinstance(detail, str):
        return redact_text(detail)
    return detail


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AuditLog:
    """The append-only audit log at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def append(
        self,
        host: str,
        action: str,
        target: str,
        outcome: str,
        detail: str | Mapping[str, Any] = "",
    ) -> dict[str, Any]:
        """Write one line (``time``, ``host``, ``action``, ``target``, ``outcome``, ``detail``).

        ``detail`` is a string or a dict; either way it is redacted first. Returns the
        record as written.
        """
        clean = redact(encode_value(dict(detail)) if isinstance(detail, Mapping) else str(detail))
        if isinstance(clean, str) and len(clean) > MAX_DETAIL:
            clean = clean[:MAX_DETAIL] + "...(truncated)"
        record = {
            "time": _now(),
            "host": host,
            "action": action,
            "target": redact_text(str(target)),
            "outcome": outcome,
            "detail": clean,
        }
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            # O_CREAT's mode is masked by the umask and ignored for an existing file.
            os.fchmod(fd, PRIVATE_FILE_MODE)
            os.write(fd, line)
        finally:
            os.close(fd)
        return record

    def tail(self, n: int = 50) -> list[dict[str, Any]]:
        """The last ``n`` records, oldest first. Lines that do not parse are skipped."""
        if n <= 0:
            return []
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                end = fh.tell()
                # Read backwards in blocks until there are enough lines: the log only grows.
                block = 64 * 1024
                data = b""
                pos = end
                while pos > 0 and data.count(b"\n") <= n:
                    step = min(block, pos)
                    pos -= step
                    fh.seek(pos)
                    data = fh.read(step) + data
        except FileNotFoundError:
            return []
        lines = data.splitlines()
        if pos > 0:
            lines = lines[1:]  # the first one may be cut
        records = []
        for raw in lines[-n:] if len(lines) > n else lines:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records[-n:]
