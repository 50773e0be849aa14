"""Odoo's log line format: `DATE TIME,MS PID LEVEL DBNAME LOGGER: MESSAGE`."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator

FORMAT = "%(asctime)s %(pid)s %(levelname)s %(dbname)s %(name)s: %(message)s"


class DBFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.pid = os.getpid()
        record.dbname = getattr(threading.current_thread(), "dbname", "?")
        return super().format(record)


_LEVELS = {
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "debug_rpc": logging.DEBUG,
    "debug_rpc_answer": logging.DEBUG,
    "debug_sql": logging.DEBUG,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "test": logging.INFO,
    "runbot": logging.INFO,
    "notset": logging.NOTSET,
}


def init_logger(logfile: str | None = None, log_level: str = "info",
                log_handlers: list[str] | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if logfile:
        handler = logging.FileHandler(logfile)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DBFormatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for spec in log_handlers or [":INFO"]:
        logger, _, level = spec.rpartition(":")
        lvl = logging.getLevelName(level.upper())
        if isinstance(lvl, int):
            logging.getLogger(logger or None).setLevel(lvl)
    if log_level and log_level.lower() != "info":
        root.setLevel(_LEVELS.get(log_level.lower(), logging.INFO))


@contextlib.contextmanager
def dbname(name: str | None) -> Iterator[None]:
    """Tag this thread's log lines with a database name, as Odoo does."""
    thread = threading.current_thread()
    old = getattr(thread, "dbname", None)
    thread.dbname = name or "?"  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if old is None:
            with contextlib.suppress(AttributeError):
                del thread.dbname  # type: ignore[attr-defined]
        else:
            thread.dbname = old  # type: ignore[attr-defined]


def set_dbname(name: str | None) -> None:
    threading.current_thread().dbname = name or "?"  # type: ignore[attr-defined]
