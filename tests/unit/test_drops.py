"""A connection that drops while a streamed Docker response is read: a clear HostUnreachable."""

from __future__ import annotations

import docker.errors
import pytest
import requests
import urllib3

from havsh_tui.remote.drops import drops_mapped
from havsh_tui.remote.ssh import HostUnreachable


class FakeSSH:
    def __init__(self, connected: bool) -> None:
        self.is_connected = connected
        self.target = type("T", (), {"label": "hosta"})()

    def dropped_error(self, what: str) -> HostUnreachable:
        return HostUnreachable(f"hosta: the SSH connection dropped during {what}")


def client(connected: bool):
    adapter = type("A", (), {"ssh": FakeSSH(connected)})()
    api = type("API", (), {"_custom_adapter": adapter})()
    return type("C", (), {"api": api})()


def test_a_dropped_connection_names_what_was_going_on():
    with pytest.raises(HostUnreachable, match="dropped during the pull of odoo:17.0"):
        with drops_mapped(client(False), "the pull of odoo:17.0"):
            raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")


def test_a_broken_stream_on_a_live_connection_says_so_with_the_cause():
    with pytest.raises(HostUnreachable, match=r"hosta: the stream of the log .* broke off "
                                              r"\(ProtocolError"):
        with drops_mapped(client(True), "the log of `odoo -i`"):
            raise urllib3.exceptions.ProtocolError("Response ended prematurely")


def test_engine_errors_and_others_pass_through():
    with pytest.raises(docker.errors.APIError):
        with drops_mapped(client(True), "x"):
            raise docker.errors.APIError("manifest unknown")
    with pytest.raises(KeyError):
        with drops_mapped(client(True), "x"):
            raise KeyError("bug")
    with pytest.raises(HostUnreachable, match="the host: the stream of x broke off"):
        with drops_mapped(object(), "x"):
            raise EOFError()
