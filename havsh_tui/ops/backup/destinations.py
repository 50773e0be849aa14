"""Backup destinations: where zips live, behind one small interface.

A directory on a host (the service's own, or another one) is read and written by job
containers on that host; a local directory on the operator's machine directly. Both keep a
backup as ``<id>.zip`` plus its sidecar ``<id>.json`` (size, sha256, kind...). A new kind of
destination (S3-compatible storage) implements :class:`Destination`: list, stream a zip in
(verified against its sha256), stream one out, delete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from havsh_tui.ops.backup.jobs import HostJob, error_line, job_image, result_json
from havsh_tui.ops.backup.model import (
    BackupError,
    BackupRecord,
    DestinationConfig,
    DestinationSpec,
)
from havsh_tui.ops.reporter import NullReporter, Reporter

CHUNK = 1 << 20


class DestinationFull(BackupError):
    """The destination ran out of space; the partial file was removed."""

    kind = "destination_full"


@runtime_checkable
class BackupWriter(Protocol):
    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None:
        """Check the sha256 of what was written against the record, then publish it."""

    def abort(self) -> None:
        """Remove what was written."""


@runtime_checkable
class Destination(Protocol):
    name: str
    kind: str  # "host", "remote", "local" (an S3 store would be "s3")

    def describe(self) -> str: ...

    def list_backups(self, service: str | None = None,
                     host: str | None = None) -> list[BackupRecord]: ...

    def writer(self, record: BackupRecord) -> BackupWriter: ...

    def reader(self, record: BackupRecord) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        ...

    def delete(self, record: BackupRecord) -> None: ...


def _parse_listing(text: str, dest: Destination, host: str | None, root: str,
                   service: str | None, service_host: str | None) -> list[BackupRecord]:
    out = []
    for line in text.splitlines():
        body, sep, rel = line.rpartition(" @")
        if not sep:
            continue
        try:
            rec = BackupRecord.from_sidecar(
                json.loads(body), destination=dest.name, destination_kind=dest.kind,
                location_host=host, path=f"{root}/{rel[:-5]}.zip")
        except (ValueError, KeyError, TypeError):
            continue
        if service is not None and rec.service != service:
            continue
        if service_host is not None and rec.host != service_host:
            continue
        out.append(rec)
    return out


class HostDirectory:
    """``ROOT/<service>/`` on a host, through job containers of that host."""

    def __init__(self, pool, inventory, host_name: str, root: str, *, name: str, kind: str,
                 reporter: Reporter | None = None) -> None:
        self.pool = pool
        self.inventory = inventory
        self.host_name = host_name
        self.root = root
        self.name = name
        self.kind = kind
        self.reporter = reporter or NullReporter()

    def describe(self) -> str:
        return f"{self.host_name}:{self.root}"

    def session(self):
        return self.pool.session(self.inventory.get_host(self.host_name))

    def job(self, args: list[str], *, service: str, purpose: str, read_only: bool = True,
            stdin: bool = False, stream: bool = False, env: dict | None = None) -> HostJob:
        session = self.session()
        return HostJob(
            session, job_image(session, self.reporter), "store.sh", args, service=service,
            purpose=purpose,
            binds={self.root: {"bind": "/out", "mode": "ro" if read_only else "rw"}},
            env=env or {}, stdin=stdin, stream=stream, reporter=self.reporter)

    def list_backups(self, service: str | None = None,
                     host: str | None = None) -> list[BackupRecord]:
        args = ["list", "/out"] + ([service] if service else [])
        out, _ = self.job(args, service=service or "backups", purpose="list").run(timeout=300)
        return _parse_listing(out, self, self.host_name, self.root, service, host)

    def writer(self, record: BackupRecord) -> BackupWriter:
        job = self.job(["receive", "/out", record.service, record.id, record.sha256],
                       service=record.service, purpose="receive", read_only=False, stdin=True,
                       env={"HAVSH_SIDECAR": json.dumps(record.sidecar())})
        return _JobWriter(job, self)

    @contextlib.contextmanager
    def reader(self, record: BackupRecord) -> Iterator[Iterator[bytes]]:
        job = self.job(["cat", "/out", record.service, record.id], service=record.service,
                       purpose="read", stream=True).start()
        try:
            yield job.stdout_chunks()
            code = job.wait(60)
            if code != 0:
                raise BackupError(f"reading {record.id} from {self.describe()} failed: "
                                  f"{job.stderr_buf.decode(errors='replace')[-300:]}")
        finally:
            job.remove()

    def delete(self, record: BackupRecord) -> None:
        self.job(["delete", "/out", record.service, record.id], service=record.service,
                 purpose="delete", read_only=False).run(timeout=120)


class _JobWriter:
    def __init__(self, job: HostJob, dest: HostDirectory) -> None:
        self.job = job
        self.dest = dest
        self.started = False

    def write(self, chunk: bytes) -> None:
        if not self.started:
            self.job.start()
            self.started = True
        self.job.write_all(chunk)

    def commit(self) -> None:
        if not self.started:
            self.job.start()
            self.started = True
        try:
            self.job.close_stdin()
            for _ in self.job.stdout_chunks():
                pass
            code = self.job.wait(600)
            out, err = self.job.output()
        finally:
            self.job.remove()
        if code != 0:
            text = error_line(err)
            if "space" in text.lower():
                raise DestinationFull(f"{self.dest.describe()} is full: {text}. The partial file "
                                      "was removed; no older backup was touched.")
            raise BackupError(f"storing the backup on {self.dest.describe()} failed: {text}")
        result_json(out)

    def abort(self) -> None:
        self.job.remove()


class LocalDirectory:
    """``ROOT/<host>/<service>/`` on the operator's machine."""

    def __init__(self, root: str, *, name: str) -> None:
        self.root = Path(root)
        self.name = name
        self.kind = "local"

    def describe(self) -> str:
        return f"local:{self.root}"

    def _dir(self, host: str, service: str) -> Path:
        return self.root / host / service

    def list_backups(self, service: str | None = None,
                     host: str | None = None) -> list[BackupRecord]:
        out = []
        if not self.root.is_dir():
            return out
        pattern = f"{host or '*'}/{service or '*'}/*.json"
        for side in sorted(self.root.glob(pattern)):
            zip_path = side.with_suffix(".zip")
            if not zip_path.exists():
                continue
            try:
                rec = BackupRecord.from_sidecar(
                    json.loads(side.read_text()[:8192]), destination=self.name,
                    destination_kind="local", location_host=None, path=str(zip_path))
            except (ValueError, KeyError, TypeError, OSError):
                continue
            out.append(rec)
        return out

    def writer(self, record: BackupRecord) -> BackupWriter:
        return _LocalWriter(self, record)

    @contextlib.contextmanager
    def reader(self, record: BackupRecord) -> Iterator[Iterator[bytes]]:
        fh = open(record.path, "rb")  # noqa: SIM115 - closed below, after the caller's loop
        try:
            yield iter(lambda: fh.read(CHUNK), b"")
        finally:
            fh.close()

    def delete(self, record: BackupRecord) -> None:
        side = Path(record.path).with_suffix(".json")
        side.unlink(missing_ok=True)
        Path(record.path).unlink(missing_ok=True)


class _LocalWriter:
    def __init__(self, dest: LocalDirectory, record: BackupRecord) -> None:
        self.dest = dest
        self.record = record
        self.dir = dest._dir(record.host, record.service)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.partial = self.dir / f".{record.id}.zip.partial"
        self.fh = open(self.partial, "wb")  # noqa: SIM115 - closed in commit/abort
        self.sha = hashlib.sha256()
        self.size = 0

    def _full(self, exc: OSError) -> DestinationFull:
        self.abort()
        free = shutil.disk_usage(self.dir).free if self.dir.exists() else 0
        return DestinationFull(
            f"{self.dest.describe()} is full ({exc.strerror}; {free} bytes free): the partial "
            f"file {self.partial.name} was removed; no older backup was touched.")

    def write(self, chunk: bytes) -> None:
        try:
            self.fh.write(chunk)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._full(exc) from None
            self.abort()
            raise
        self.sha.update(chunk)
        self.size += len(chunk)

    def commit(self) -> None:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._full(exc) from None
            self.abort()
            raise
        if self.sha.hexdigest() != self.record.sha256 or self.size != self.record.size:
            self.abort()
            raise BackupError(f"the backup arrived damaged at {self.dest.describe()} (sha256 "
                              f"{self.sha.hexdigest()} / {self.size} bytes, expected "
                              f"{self.record.sha256} / {self.record.size}); it was removed")
        final = self.dir / f"{self.record.id}.zip"
        os.replace(self.partial, final)
        side_tmp = self.dir / f".{self.record.id}.json.tmp"
        try:
            side_tmp.write_text(json.dumps(self.record.sidecar()) + "\n")
            os.replace(side_tmp, self.dir / f"{self.record.id}.json")
        except OSError as exc:
            side_tmp.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DestinationFull(f"{self.dest.describe()} is full: the backup was removed; "
                                      "no older backup was touched.") from None
            raise
        self.record.path = str(final)
        self.record.location_host = None
        self.record.destination = self.dest.name
        self.record.destination_kind = "local"

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        self.partial.unlink(missing_ok=True)


def open_destination(pool, inventory, service_host: str, config: DestinationConfig | str,
                     reporter: Reporter | None = None) -> Destination:
    """The Destination of a service's destination config (or of a bare spec)."""
    if isinstance(config, str):
        config = DestinationConfig(name=config, spec=config)
    spec: DestinationSpec = config.parsed
    if spec.kind == "local":
        return LocalDirectory(spec.path, name=config.name)
    host = spec.on_host(service_host)
    assert host is not None
    inventory.get_host(host)  # NotFound: "host X is not in the inventory"
    kind = "host" if host == service_host else "remote"
    return HostDirectory(pool, inventory, host, spec.path, name=config.name, kind=kind,
                         reporter=reporter)
