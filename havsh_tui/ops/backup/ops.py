"""Backup now, list, find, delete and download backups."""

from __future__ import annotations

import json
import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from havsh_tui.core import names
from havsh_tui.core.model import Service
from havsh_tui.ops.backup.destinations import (
    Destination,
    DestinationFull,
    HostDirectory,
    LocalDirectory,
    open_destination,
)
from havsh_tui.ops.backup.jobs import (
    CONNECTION_ERRORS,
    HostJob,
    JobFailed,
    error_line,
    postgres_image,
    result_json,
)
from havsh_tui.ops.backup.model import (
    COMPRESSIONS,
    DEFAULT_HOST_ROOT,
    FORMATS,
    KINDS,
    BackupError,
    BackupRecord,
    DestinationConfig,
    DestinationSpec,
    parse_backup_id,
)
from havsh_tui.ops.backup.schedule import get_policy
from havsh_tui.ops.reporter import NullReporter, Reporter
from havsh_tui.remote.ssh import RemoteError


def pg_env(secret_store, host_name: str) -> dict[str, str]:
    """How a job reaches the host's PostgreSQL: over the havsh network, as the superuser."""
    from havsh_tui.core.secrets import postgres_superuser_key

    password = secret_store.get(postgres_superuser_key(host_name))
    if not password:
        raise BackupError(f"the PostgreSQL password of {host_name} is not in the secrets store "
                          f"(bootstrap the host first: `havsh host bootstrap {host_name}`)")
    return {"PGHOST": names.POSTGRES_CONTAINER, "PGPORT": "5432", "PGUSER": "postgres",
            "PGPASSWORD": password}


def require_volume(client, service: Service) -> None:
    """The service's data volume must exist: a bind of a missing named volume would make an
    empty, unlabelled one."""
    import docker.errors

    try:
        client.api.inspect_volume(names.volume_name(service.name))
    except docker.errors.NotFound:
        raise BackupError(f"{service.name}: its data volume {names.volume_name(service.name)} "
                          f"is missing on {service.host}") from None


def resolve_destination(inventory, service: Service, dest: str | None, *,
                        remember: bool = False) -> DestinationConfig:
    """A destination of the service by name or spec (the primary when None). A spec that is
    not configured yet is added to the service's destinations when ``remember`` (so that
    `backup ls` finds what was made there), else used once."""
    from havsh_tui.ops.backup.schedule import add_destination

    policy = get_policy(inventory, service)
    if dest is None:
        return policy.primary
    found = policy.get(dest)
    if found is not None:
        return found
    spec = str(DestinationSpec.parse(dest))
    found = policy.get(spec)
    if found is not None:
        return found
    if remember:
        return add_destination(inventory, service, spec)
    return DestinationConfig(name=spec, spec=spec)


def _record_op(inventory, kind: str, service: Service, state: str, **extra) -> None:
    try:
        inventory.record_operation({"kind": kind, "host": service.host, "service": service.name,
                                    "state": state, **extra})
    except Exception:  # noqa: BLE001 - the history must never hide the real outcome
        pass


def create_backup(inventory, secret_store, pool, service: Service, *, dest: str | None = None,
                  kind: str = "manual", format: str | None = None,
                  compression: str | None = None, reporter: Reporter | None = None,
                  audit=None) -> BackupRecord:
    """Back up a service now: its database and filestore, while it keeps running.

    To a directory on its own host, the zip is written there by a job on the host. To any
    other destination, the job builds it on the host and streams it through SSH, in chunks,
    checked against its sha256 on arrival. A full destination leaves no partial file and
    touches no older backup."""
    reporter = reporter or NullReporter()
    if kind not in KINDS:
        raise BackupError(f"kind must be one of {', '.join(KINDS)}")
    config = resolve_destination(inventory, service, dest, remember=True)
    fmt = format or config.format
    comp = compression or config.compression
    if fmt not in FORMATS or comp not in COMPRESSIONS:
        raise BackupError(f"format must be one of {', '.join(FORMATS)} and compression one of "
                          f"{', '.join(COMPRESSIONS)}")
    destination = open_destination(pool, inventory, service.host, config, reporter)
    host = inventory.get_host(service.host)
    session = pool.session(host)
    client = session.docker()
    started = time.monotonic()
    database = service.database or names.database_name(service.name)
    require_volume(client, service)
    binds = {names.volume_name(service.name): {"bind": "/fs", "mode": "ro"}}
    direct = isinstance(destination, HostDirectory) and destination.host_name == service.host
    if direct:
        binds[destination.root] = {"bind": "/out", "mode": "rw"}
    args = ["dir" if direct else "stream", "/out", service.name, database,
            service.odoo_version or "0.0", kind, fmt, comp, f"/fs/filestore/{database}", "0",
            service.host, service.type.value]
    job = HostJob(session, postgres_image(client), "backup.sh", args, service=service.name,
                  purpose="create", binds=binds, env=pg_env(secret_store, service.host),
                  network=names.NETWORK_NAME, stream=not direct, reporter=reporter,
                  on_progress=lambda n: reporter.progress(n, None, "backup bytes written"))
    reporter.step("backup", "running", f"{service.name} -> {destination.describe()} ({kind})")
    try:
        if direct:
            record = _run_direct(job, destination, service)
        else:
            record = _run_streamed(job, destination, service, reporter)
    except BaseException as exc:
        reporter.step("backup", "failed", str(exc))
        _record_op(inventory, "backup.create", service, "failed", error=str(exc)[:500])
        if audit is not None:
            audit.append(service.host, "backup.create", service.name, "failed", str(exc)[:200])
        raise
    reporter.step("backup", "done",
                  f"{record.id}: {record.size} bytes, sha256 {record.sha256[:12]}")
    seconds = round(time.monotonic() - started, 1)
    _record_op(inventory, "backup.create", service, "done", backup=record.id,
               destination=destination.describe(), size=record.size, seconds=seconds)
    if audit is not None:
        audit.append(service.host, "backup.create", service.name, "ok",
                     {"backup": record.id, "dest": destination.describe(), "kind": kind,
                      "size": record.size, "sha256": record.sha256})
    return record


def _failure(exc: JobFailed, destination: Destination, service: Service) -> BackupError:
    text = str(exc)
    if "no space left" in text.lower() or "space left?" in text:
        return DestinationFull(f"{destination.describe()} is full: {text}. The partial backup was "
                               "removed; no older backup was touched.")
    return BackupError(f"the backup of {service.name} failed: {text}")


def _run_direct(job: HostJob, destination: HostDirectory, service: Service) -> BackupRecord:
    try:
        out, _ = job.run()
    except JobFailed as exc:
        raise _failure(exc, destination, service) from None
    data = result_json(out)
    return BackupRecord.from_sidecar(
        data, destination=destination.name, destination_kind=destination.kind,
        location_host=destination.host_name,
        path=posixpath.join(destination.root, service.name, data["file"]))


def _run_streamed(job: HostJob, destination: Destination, service: Service,
                  reporter: Reporter) -> BackupRecord:
    job.on_progress = lambda n: reporter.progress(n, None, "building the zip on the host")
    job.start()
    writer = None
    record: BackupRecord | None = None
    head = b""
    sent = 0
    try:
        for chunk in job.stdout_chunks():
            if record is None:
                head += chunk
                if b"\n" not in head:
                    if len(head) > 65536:
                        raise BackupError("the backup job sent no result line")
                    continue
                line, _, chunk = head.partition(b"\n")
                data = json.loads(line.decode().removeprefix("RESULT "))
                record = BackupRecord.from_sidecar(
                    data, destination=destination.name, destination_kind=destination.kind,
                    location_host=getattr(destination, "host_name", None), path="")
                writer = destination.writer(record)
                if not chunk:
                    continue
            assert writer is not None
            writer.write(chunk)
            sent += len(chunk)
            reporter.progress(sent, record.size, f"sending to {destination.describe()}")
        code = job.wait(120)
        if code != 0:
            raise _failure(JobFailed(error_line(job.stderr_buf.decode(errors="replace")),
                                     code=code, stderr=""), destination, service)
        if record is None or writer is None:
            raise BackupError("the backup job ended without sending the backup")
        writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        job.remove()
    if isinstance(destination, HostDirectory):
        record.location_host = destination.host_name
        record.path = posixpath.join(destination.root, service.name, f"{record.id}.zip")
    return record


# -- listing ----------------------------------------------------------------------------------
def _destinations_in_scope(inventory, pool, service: Service | None, host: str | None,
                           reporter: Reporter) -> dict[str, Destination]:
    dests: dict[str, Destination] = {}
    if service is not None:
        hosts = [service.host]
        services = [service]
    else:
        hosts = [host] if host else [h.name for h in inventory.list_hosts()]
        services = inventory.list_services(host=host)
    for h in hosts:
        d = HostDirectory(pool, inventory, h, DEFAULT_HOST_ROOT, name="host", kind="host",
                          reporter=reporter)
        dests[d.describe()] = d
    for s in services:
        for cfg in get_policy(inventory, s).effective():
            try:
                d = open_destination(pool, inventory, s.host, cfg, reporter)
            except Exception as exc:  # noqa: BLE001 - a bad destination must not hide the others
                reporter.warning(f"{s.name}: destination {cfg.name}: {exc}")
                continue
            dests.setdefault(d.describe(), d)
    return dests


def list_backups(inventory, pool, *, service: Service | None = None, host: str | None = None,
                 service_name: str | None = None,
                 reporter: Reporter | None = None) -> list[BackupRecord]:
    """Every backup in the destinations in scope, newest first: one service's (with
    ``service``), a host's, or all. A service's host directory also holds the backups of
    services deleted since, so those are listed too (``service_name`` filters on a name)."""
    reporter = reporter or NullReporter()
    dests = _destinations_in_scope(inventory, pool, service, host, reporter)

    def one(d: Destination) -> list[BackupRecord]:
        try:
            return d.list_backups()
        except (RemoteError, OSError, JobFailed, BackupError, *CONNECTION_ERRORS) as exc:
            reporter.warning(f"cannot list {d.describe()}: {exc}")
            return []
        except Exception as exc:  # noqa: BLE001 - one dead host must not fail the listing
            reporter.warning(f"cannot list {d.describe()}: {type(exc).__name__}: {exc}")
            return []

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(dests)))) as ex:
        found = [r for rs in ex.map(one, dests.values()) for r in rs]
    best: dict[str, BackupRecord] = {}
    for r in found:
        if service is not None and (r.service != service.name or r.host != service.host):
            continue
        if host is not None and service is None and r.host != host:
            continue
        if service_name is not None and r.service != service_name:
            continue
        if r.location_host is not None:
            r.destination_kind = "host" if r.location_host == r.host else "remote"
        kept = best.get(r.id)
        if kept is None or (kept.location_host != kept.host and r.location_host == r.host):
            best[r.id] = r
    return sorted(best.values(), key=lambda r: (r.created_at, r.id), reverse=True)


def find_backup(inventory, pool, backup_id: str, *, service: Service | None = None,
                reporter: Reporter | None = None) -> BackupRecord:
    """The backup with this id (or an unambiguous prefix of one) in the destinations."""
    parts = parse_backup_id(backup_id)
    name = parts["service"] if parts else backup_id.split("_", 1)[0]
    scope = service
    if scope is None:
        candidates = [s for s in inventory.list_services() if s.name == name]
        scope = candidates[0] if len(candidates) == 1 else None
    records = list_backups(inventory, pool, service=scope, reporter=reporter)
    if scope is not None and not any(r.id == backup_id for r in records):
        records += list_backups(inventory, pool, service_name=name, reporter=reporter)
    exact = [r for r in records if r.id == backup_id]
    if exact:
        return exact[0]
    prefixed = ({r.id: r for r in records if r.id.startswith(backup_id)}
                if len(backup_id) >= 8 else {})
    if len(prefixed) == 1:
        return next(iter(prefixed.values()))
    if len(prefixed) > 1:
        raise BackupError(f"{backup_id!r} matches {len(prefixed)} backups: give the whole id")
    raise BackupError(f"no backup {backup_id!r} in the destinations of {name} "
                      "(see `havsh backup ls`)")


def destination_of(inventory, pool, record: BackupRecord,
                   reporter: Reporter | None = None) -> Destination:
    """The destination a listed record is in (from its location)."""
    if record.location_host is None:
        return LocalDirectory(str(Path(record.path).parents[2]), name=record.destination)
    root = posixpath.dirname(posixpath.dirname(record.path))
    return HostDirectory(pool, inventory, record.location_host, root, name=record.destination,
                         kind=record.destination_kind or "host", reporter=reporter)


def delete_backup(inventory, pool, record: BackupRecord, *, audit=None) -> None:
    """Delete one backup (its sidecar first, so a half-deleted backup is not listed)."""
    destination_of(inventory, pool, record).delete(record)
    if audit is not None:
        audit.append(record.location_host or "local", "backup.rm", record.id, "ok", record.where)


def copy_backup(inventory, pool, record: BackupRecord, target: Destination,
                reporter: Reporter | None = None) -> BackupRecord:
    """Stream one backup into another destination, checked against its sha256 there."""
    reporter = reporter or NullReporter()
    source = destination_of(inventory, pool, record, reporter)
    copy = BackupRecord(**{**record.__dict__})
    writer = target.writer(copy)
    sent = 0
    try:
        with source.reader(record) as chunks:
            for chunk in chunks:
                writer.write(chunk)
                sent += len(chunk)
                reporter.progress(sent, record.size, f"copying to {target.describe()}")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    if isinstance(target, HostDirectory):
        copy.location_host = target.host_name
        copy.path = posixpath.join(target.root, record.service, f"{record.id}.zip")
    copy.destination = target.name
    copy.destination_kind = target.kind
    return copy


def download_backup(inventory, pool, record: BackupRecord, directory: str,
                    reporter: Reporter | None = None) -> BackupRecord:
    """Download a backup to a local directory (DIR/<host>/<service>/<id>.zip + sidecar)."""
    target = LocalDirectory(directory, name=f"local:{directory}")
    return copy_backup(inventory, pool, record, target, reporter)


__all__ = [
    "DestinationFull",
    "copy_backup",
    "create_backup",
    "delete_backup",
    "destination_of",
    "download_backup",
    "find_backup",
    "list_backups",
    "pg_env",
    "resolve_destination",
]
