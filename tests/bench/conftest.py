"""Bench fixtures for the TUI: a temporary HAVSH_HOME and a network that records any dial."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


class NetworkCalls(list[tuple[str, object]]):
    """Every attempted connection, as (function, address)."""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> NetworkCalls:
    """Connections raise and are recorded, so a test can assert that none was tried even
    when the code under test swallows the error (a host worker would)."""
    calls = NetworkCalls()

    def refuse(name: str):  # type: ignore[no-untyped-def]
        def _refuse(*args: object, **kwargs: object) -> None:
            address = args[1] if name != "create_connection" and len(args) > 1 else args[:1]
            calls.append((name, address))
            raise OSError(f"network disabled in the bench ({name} {address!r})")

        return _refuse

    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    return calls


@pytest.fixture
def bench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "havsh-home"
    monkeypatch.setenv("HAVSH_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    return home
