"""A connection that drops while a streamed Docker response is being read.

``SSHDockerAdapter.send`` maps a drop during a call, and during the body of a response that
is not streamed. A streamed one (a pull's progress, a followed log) is read later by the
docker SDK, outside the adapter, so a drop there comes out as whatever requests or urllib3
raise (ChunkedEncodingError, ProtocolError, ...). Reading it inside ``drops_mapped`` turns
that into the same HostUnreachable the adapter gives, which says what was going on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker.errors
import paramiko
import requests
import urllib3

from havsh_tui.remote.ssh import HostUnreachable, RemoteError

_DROPS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
          paramiko.SSHException, OSError, EOFError)


def ssh_of(client: Any) -> Any | None:
    """The SSH connection under a client made by ``docker_api.docker_client`` (or None)."""
    adapter = getattr(getattr(client, "api", None), "_custom_adapter", None)
    return getattr(adapter, "ssh", None)


@contextmanager
def drops_mapped(client: Any, what: str) -> Iterator[None]:
    """Run a block that reads a streamed response of ``client``; a dropped connection in it
    is raised as HostUnreachable naming ``what``."""
    try:
        yield
    except (RemoteError, docker.errors.DockerException):
        raise  # said already; an engine's APIError is an HTTPError too, but no drop
    except _DROPS as exc:
        ssh = ssh_of(client)
        if ssh is not None and not ssh.is_connected:
            raise ssh.dropped_error(what) from exc
        label = ssh.target.label if ssh is not None else "the host"
        raise HostUnreachable(f"{label}: the stream of {what} broke off "
                              f"({type(exc).__name__}: {exc})") from exc


__all__ = ["drops_mapped", "ssh_of"]
