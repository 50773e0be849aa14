"""The image of a destination's jobs on a host with or without havsh-postgres."""

from __future__ import annotations

import docker.errors

from havsh_tui.core.model import Host
from havsh_tui.ops.backup.jobs import job_image


class _API:
    def __init__(self, postgres: str | None, images: set[str]) -> None:
        self.postgres, self.images, self.pulled = postgres, images, []

    def inspect_container(self, name):
        if self.postgres is None:
            raise docker.errors.NotFound(name)
        return {"Config": {"Image": self.postgres}}

    def inspect_image(self, ref):
        if ref not in self.images:
            raise docker.errors.ImageNotFound(ref)
        return {"Id": "sha256:" + ref}


class _Session:
    def __init__(self, api: _API) -> None:
        self.host = Host(name="store1", address="10.0.0.9", postgres_image="postgres:15")
        self._client = type("C", (), {"api": api})()

    def docker(self):
        return self._client


def test_havsh_postgres_image_when_the_host_has_one():
    assert job_image(_Session(_API("postgres:16", {"postgres:16"}))) == "postgres:16"


def test_a_host_without_havsh_postgres_uses_its_configured_image():
    # A host that only keeps backups: no bootstrap needed, the configured image is enough.
    assert job_image(_Session(_API(None, {"postgres:15"}))) == "postgres:15"
