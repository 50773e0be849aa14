"""Restore a backup: into an existing service (replacing its data) or into a new Copy.

Into an existing service S, in this order:
  1. the zip is put on S's host if it is elsewhere (checked against its sha256 on arrival),
     then checked there (sha256, structure, manifest) and its Odoo version compared with
     S's: a corrupt zip, a wrong checksum or a newer Odoo major stops here, before anything
     is touched;
  2. a safety backup of S goes to S's primary destination (never rotated);
  3. S is stopped; the backup is loaded into a new database ``<db>__restore`` and filestore,
     beside S's own, which are not touched;
  4. one transaction renames ``<db>`` to ``<db>__old`` and ``<db>__restore`` to ``<db>``,
     and the filestores are moved the same way; S starts and its health is checked;
  5. only then ``<db>__old`` goes. If the load or the health check fails, the swap is undone
     (or never happened) and S is started on its previous data, which is what the safety
     backup holds: the error says so (``RestoreFailed.outcome == "rolled_back"``).
Every step on the host runs in a job container that does not need the SSH connection: when
the connection drops, havsh reconnects and carries on from the step it was in.

Into a new service: a Copy is created (database, volume, container) and the backup loaded
into it, then it gets a new identity (uuid, secret, base URL), is neutralized if asked (on by
default unless the backup is of a non-Live service), and starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets as pysecrets
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime

import docker.errors

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceStatus, ServiceType, utcnow
from havsh_tui.core.secrets import generate_password
from havsh_tui.ops import odoo
from havsh_tui.ops.backup.destinations import HostDirectory
from havsh_tui.ops.backup.jobs import (
    CONNECTION_ERRORS,
    HostJob,
    JobFailed,
    postgres_image,
    result_json,
    with_reconnect,
)
from havsh_tui.ops.backup.model import BackupError, BackupRecord
from havsh_tui.ops.backup.ops import (
    copy_backup,
    create_backup,
    destination_of,
    find_backup,
    pg_env,
    require_volume,
)
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.reporter import NullReporter, Reporter, check_cancelled
from havsh_tui.ops.services import NeedsConfirmation, require_typed_name

SPOOL_VOLUME = "havsh-spool"
FSROOT = "/fs/filestore"


class RestoreFailed(BackupError):
    """A restore did not complete. ``outcome`` says where the service is:
    ``untouched`` (refused or failed before it was stopped), ``rolled_back`` (back on its
    previous data, the same as the safety backup), or ``unknown`` (the host went away)."""

    kind = "restore_failed"

    def __init__(self, message: str, *, outcome: str, safety: BackupRecord | None = None) -> None:
        self.outcome = outcome
        self.safety = safety
        self.extra = {"outcome": outcome, "safety_backup": safety.id if safety else None}
        super().__init__(message)


@dataclass
class RestoreSpec:
    backup_id: str | None = None
    from_file: str | None = None
    #: Restore into this existing service (on service_host when the name is on several hosts).
    service: str | None = None
    service_host: str | None = None
    #: Or into a new Copy called ``new`` on ``host`` (default: the backup's host).
    new: str | None = None
    host: str | None = None
    image: str | None = None
    confirm_name: str | None = None
    neutralize: bool | None = None
    allow_newer: bool = False


@dataclass
class RestoreResult:
    service: Service
    outcome: str  # "restored" (into an existing service) or "created" (a new Copy)
    backup_id: str
    safety: BackupRecord | None
    seconds: float
    detail: str
    manifest: dict

    def to_dict(self) -> dict:
        return {"service": self.service.name, "host": self.service.host,
                "outcome": self.outcome, "backup": self.backup_id,
                "safety_backup": self.safety.id if self.safety else None,
                "seconds": round(self.seconds, 1), "detail": self.detail,
                "odoo_version": self.manifest.get("version")}


@dataclass
class _Staged:
    """A zip on the target host: how to mount it in a job, and its path there."""

    binds: dict
    path: str
    sha256: str | None
    trusted: bool
    spool_id: str | None = None
    record: BackupRecord | None = None


# -- checks ----------------------------------------------------------------------------------
def check_local_zip(path: str) -> dict:
    """Read a local zip (Odoo's own, or havsh's) and check it whole: every CRC, a dump, the
    manifest. Returns the manifest (empty when there is none)."""
    try:
        with zipfile.ZipFile(path) as z:
            names_ = set(z.namelist())
            if "dump.sql" not in names_ and "dump.dump" not in names_:
                raise RestoreFailed(f"{path} has no dump.sql: it is not an Odoo backup",
                                    outcome="untouched")
            bad = z.testzip()
            if bad is not None:
                raise RestoreFailed(f"{path} is corrupt ({bad} does not match its CRC): nothing "
                                    "was restored", outcome="untouched")
            manifest = {}
            if "manifest.json" in names_:
                try:
                    manifest = json.loads(z.read("manifest.json"))
                except ValueError:
                    manifest = {}
    except zipfile.BadZipFile as exc:
        raise RestoreFailed(f"{path} is not a valid zip ({exc}): nothing was restored",
                            outcome="untouched") from None
    except OSError as exc:
        raise RestoreFailed(f"cannot read {path}: {exc.strerror or exc}",
                            outcome="untouched") from None
    return manifest if isinstance(manifest, dict) else {}


def check_versions(manifest: dict, target_version: str, target: str, *,
                   allow_newer: bool, reporter: Reporter) -> None:
    version = str(manifest.get("major_version") or manifest.get("version") or "")
    if not version:
        reporter.warning("the backup does not say its Odoo version (no manifest.json)")
        return
    try:
        backup_major = odoo.major(version.removeprefix("saas~"))
        target_major = odoo.major(target_version)
    except odoo.ConfigError:
        reporter.warning(f"cannot compare Odoo versions {version!r} and {target_version!r}")
        return
    if backup_major > target_major:
        if not allow_newer:
            raise NeedsConfirmation(
                f"the backup is from Odoo {version}, newer than {target}'s {target_version}: "
                "Odoo cannot run a database of a newer version. Restore it anyway with "
                "--allow-newer-odoo")
        reporter.warning(f"restoring an Odoo {version} backup into {target_version}, as asked")
    elif backup_major < target_major:
        reporter.warning(f"the backup is from Odoo {version}, older than {target_version}: the "
                         "database needs an upgrade (`-u all`) before it works")


# -- staging ---------------------------------------------------------------------------------
def _spool(pool, inventory, host_name: str) -> HostDirectory:
    session = pool.session(inventory.get_host(host_name))
    client = session.docker()
    try:
        client.api.inspect_volume(SPOOL_VOLUME)
    except docker.errors.NotFound:
        client.api.create_volume(SPOOL_VOLUME, labels={names.LABEL_MANAGED: "1",
                                                       names.LABEL_ROLE: "backup-spool"})
    return HostDirectory(pool, inventory, host_name, SPOOL_VOLUME, name="spool", kind="spool")


def _upload_file(pool, inventory, host_name: str, path: str, reporter: Reporter) -> _Staged:
    """Upload a local zip into the host's spool volume, sha256-checked on arrival."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
            size += len(chunk)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    spool_id = f"upload_{stamp}_manual_{pysecrets.token_hex(3)}"
    record = BackupRecord(id=spool_id, service="upload", host=host_name, kind="manual",
                          format="zip", compression="deflate", created_at=utcnow(), size=size,
                          sha256=sha.hexdigest())
    spool = _spool(pool, inventory, host_name)
    writer = spool.writer(record)
    sent = 0
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                writer.write(chunk)
                sent += len(chunk)
                reporter.progress(sent, size, f"uploading to {host_name}")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return _Staged(binds={SPOOL_VOLUME: {"bind": "/backup", "mode": "ro"}},
                   path=f"/backup/upload/{spool_id}.zip", sha256=record.sha256, trusted=False,
                   spool_id=spool_id)


def _stage(pool, inventory, host_name: str, spec: RestoreSpec, reporter: Reporter,
           ) -> tuple[_Staged, dict]:
    """Put the backup on the target host; returns it and the local manifest (from_file)."""
    if spec.from_file:
        reporter.step("check zip", "running", spec.from_file)
        manifest = check_local_zip(spec.from_file)
        reporter.step("check zip", "done")
        reporter.step("upload", "running", f"{os.path.getsize(spec.from_file)} bytes")
        staged = _upload_file(pool, inventory, host_name, spec.from_file, reporter)
        reporter.step("upload", "done")
        return staged, manifest
    assert spec.backup_id
    record = find_backup(inventory, pool, spec.backup_id, reporter=reporter)
    if record.location_host == host_name:
        root = os.path.dirname(os.path.dirname(record.path))
        rel = record.path[len(root):].lstrip("/")
        return _Staged(binds={root: {"bind": "/backup", "mode": "ro"}}, path=f"/backup/{rel}",
                       sha256=record.sha256, trusted=True, record=record), {}
    reporter.step("transfer", "running", f"{record.where} -> {host_name} ({record.size} bytes)")
    spool = _spool(pool, inventory, host_name)
    copied = copy_backup(inventory, pool, record, spool, reporter)
    reporter.step("transfer", "done")
    return _Staged(binds={SPOOL_VOLUME: {"bind": "/backup", "mode": "ro"}},
                   path=f"/backup/{copied.service}/{copied.id}.zip", sha256=record.sha256,
                   trusted=True, spool_id=copied.id, record=record), {}


def _unstage(pool, inventory, host_name: str, staged: _Staged, reporter: Reporter) -> None:
    if not staged.spool_id:
        return
    spool = HostDirectory(pool, inventory, host_name, SPOOL_VOLUME, name="spool", kind="spool",
                          reporter=reporter)
    service = staged.path.split("/")[2]
    rec = BackupRecord(id=staged.spool_id, service=service, host=host_name, kind="manual",
                       format="zip", compression="", created_at=utcnow(), size=0, sha256="")
    try:
        spool.delete(rec)
    except Exception as exc:  # noqa: BLE001 - a leftover spool file is not worth a failure
        reporter.warning(f"could not remove the uploaded copy from {host_name}: {exc}")


# -- the restore jobs -------------------------------------------------------------------------
class _Runner:
    def __init__(self, session, secret_store, service: Service, staged: _Staged | None,
                 reporter: Reporter) -> None:
        self.session = session
        self.service = service
        self.staged = staged
        self.reporter = reporter
        self.env = pg_env(secret_store, service.host)
        self.image = postgres_image(session.docker())

    def job(self, args: list[str], *, purpose: str, mount_backup: bool = False,
            mount_fs: bool = True) -> tuple[str, str]:
        binds = {}
        if mount_fs:
            binds[names.volume_name(self.service.name)] = {"bind": "/fs", "mode": "rw"}
        if mount_backup and self.staged is not None:
            binds.update(self.staged.binds)
        job = HostJob(self.session, self.image, "restore.sh", args, service=self.service.name,
                      purpose=purpose, binds=binds, env=self.env, network=names.NETWORK_NAME,
                      reporter=self.reporter)
        return job.run()

    def inspect(self) -> tuple[dict, dict]:
        assert self.staged is not None
        args = ["inspect", self.staged.path] + ([self.staged.sha256] if self.staged.sha256 else [])
        try:
            out, _ = self.job(args, purpose="inspect", mount_backup=True, mount_fs=False)
        except JobFailed as exc:
            raise RestoreFailed(f"the backup was refused: {exc}", outcome="untouched") from None
        info = result_json(out, "INFO ")
        manifest: dict = {}
        if "\nMANIFEST\n" in "\n" + out:
            text = out.split("MANIFEST\n", 1)[1]
            with contextlib.suppress(ValueError):
                manifest = json.loads(text.strip())
        return info, manifest if isinstance(manifest, dict) else {}

    def load(self, target_db: str, create: bool) -> dict:
        assert self.staged is not None
        out, _ = self.job(["load", self.staged.path, target_db, names.role_name(self.service.name),
                           f"{FSROOT}/{target_db}", "1" if create else "0",
                           "1" if self.staged.trusted else "0"],
                          purpose="load", mount_backup=True)
        return result_json(out)

    def swap(self, mode: str) -> None:
        self.job([mode, self.service.database, FSROOT], purpose=mode)

    def drop(self, which: str) -> None:
        self.job(["drop", self.service.database, FSROOT, which], purpose="drop")


def _health(session, service: Service, reporter: Reporter) -> None:
    from havsh_tui.ops.services import wait_healthy

    with_reconnect(session, reporter, "the health check",
                   lambda _c: wait_healthy(session, service, reporter))


def _docker(session, reporter: Reporter, what: str, fn):
    return with_reconnect(session, reporter, what, fn)


def restore_backup(inventory, secret_store, pool, spec: RestoreSpec,
                   reporter: Reporter | None = None, audit=None) -> RestoreResult:
    """Restore a backup (``backup_id`` or ``from_file``) into ``service`` or a ``new`` one."""
    reporter = reporter or NullReporter()
    if bool(spec.backup_id) == bool(spec.from_file):
        raise BackupError("say which backup: a backup id (from `havsh backup ls`) or --from-file")
    if bool(spec.service) == bool(spec.new):
        raise BackupError("say where: --service S (replace its data) or --new NAME (a new Copy)")
    if spec.new:
        return _restore_new(inventory, secret_store, pool, spec, reporter, audit)
    return _restore_into(inventory, secret_store, pool, spec, reporter, audit)


def _restore_into(inventory, secret_store, pool, spec: RestoreSpec, reporter: Reporter,
                  audit) -> RestoreResult:
    started = time.monotonic()
    target = inventory.get_service(spec.service, host=spec.service_host)
    require_typed_name(target, spec.confirm_name, "restore a backup into")
    session = pool.session(inventory.get_host(target.host))
    try:
        session.docker().api.inspect_container(names.container_name(target.name))
    except docker.errors.NotFound:
        raise RestoreFailed(f"{target.name} has no container on {target.host} (status "
                            f"{target.status_label}): restore into a new service with --new",
                            outcome="untouched") from None
    require_volume(session.docker(), target)
    staged, local_manifest = _stage(pool, inventory, target.host, spec, reporter)
    runner = _Runner(session, secret_store, target, staged, reporter)
    safety: BackupRecord | None = None
    stopped = touched = False
    backup_name = staged.record.id if staged.record else os.path.basename(spec.from_file or "")
    try:
        reporter.step("check backup", "running", staged.path)
        info, manifest = runner.inspect()
        manifest = manifest or local_manifest
        check_versions(manifest, target.odoo_version, target.name, allow_newer=spec.allow_newer,
                       reporter=reporter)
        reporter.step("check backup", "done", f"{info.get('files', 0)} files, "
                      f"{info.get('format')} dump of {info.get('dump_bytes', 0)} bytes")
        check_cancelled(reporter)
        reporter.step("safety backup", "running", f"{target.name} -> its primary destination")
        safety = create_backup(inventory, secret_store, pool, target, kind="safety",
                               reporter=_Quiet(reporter), audit=audit)
        reporter.step("safety backup", "done", f"{safety.id} in {safety.where}")
        check_cancelled(reporter)
        inventory.update_service(target.host, target.name, status=ServiceStatus.UPDATING)
        touched = True
        reporter.step("stop", "running", target.name)
        _docker(session, reporter, "stopping the service",
                lambda c: c.api.stop(names.container_name(target.name), timeout=30))
        stopped = True
        reporter.step("stop", "done")
        runner.drop("both")
        reporter.step("load", "running",
                      f"into {target.database}__restore, beside the current data")
        loaded = _load_or_roll_back(runner, session, target, safety, reporter, inventory)
        reporter.step("load", "done", f"{loaded.get('files', 0)} files; "
                      f"{loaded.get('ignored_errors', 0)} harmless errors ignored")
        reporter.step("swap", "running", f"{target.database}__restore becomes {target.database}")
        runner.swap("swap")
        reporter.step("swap", "done")
        reporter.step("start", "running", target.name)
        try:
            _docker(session, reporter, "starting the service",
                    lambda c: c.api.start(names.container_name(target.name)))
            _health(session, target, reporter)
        except OpsError as exc:
            reporter.step("start", "failed", str(exc))
            _roll_back_swap(runner, session, target, reporter)
            raise RestoreFailed(
                f"{target.name} did not come up on the restored data ({exc}); it is back on its "
                f"previous data, the same as the safety backup {safety.id}",
                outcome="rolled_back", safety=safety) from exc
        reporter.step("start", "done", "health checks pass")
        runner.drop("old")
    except RestoreFailed as exc:
        if touched:
            _finish_failed(inventory, target, exc.outcome, str(exc))
        raise
    except NeedsConfirmation:
        raise
    except BaseException as exc:
        outcome = "untouched" if not stopped else "unknown"
        if stopped:
            outcome = _recover(runner, session, target, reporter)
        if touched:
            _finish_failed(inventory, target, outcome, str(exc))
        where = {"untouched": f"{target.name} was not touched",
                 "rolled_back": f"{target.name} is back on its previous data" + (
                     f", the same as the safety backup {safety.id}" if safety else ""),
                 "unknown": f"the state of {target.name} on {target.host} is unknown: check it "
                            "when the host is back (`havsh service show`)"}[outcome]
        if audit is not None:
            audit.append(target.host, "backup.restore", target.name, "failed", str(exc)[:200])
        raise RestoreFailed(f"the restore failed ({exc}); {where}", outcome=outcome,
                            safety=safety) from exc
    finally:
        _unstage(pool, inventory, target.host, staged, reporter)
    inventory.update_service(target.host, target.name, status=ServiceStatus.RUNNING,
                             last_error=None, failed_step=None)
    seconds = time.monotonic() - started
    detail = (f"{target.name} runs on {backup_name} (Odoo {manifest.get('version', '?')}); "
              f"the safety backup {safety.id} is in {safety.where}")
    _op(inventory, target, "done", backup=backup_name, safety=safety.id, seconds=round(seconds, 1))
    if audit is not None:
        audit.append(target.host, "backup.restore", target.name, "ok",
                     {"backup": backup_name, "safety": safety.id})
    return RestoreResult(inventory.get_service(target.name, host=target.host), "restored",
                         backup_name, safety, seconds, detail, manifest)


def _load_or_roll_back(runner: _Runner, session, target: Service, safety: BackupRecord,
                       reporter: Reporter, inventory) -> dict:
    try:
        return runner.load(f"{target.database}__restore", create=True)
    except JobFailed as exc:
        reporter.step("load", "failed", str(exc))
        with contextlib.suppress(Exception):
            runner.drop("restore")
        _start_again(session, target, reporter)
        raise RestoreFailed(
            f"the backup did not load ({exc}); {target.name} was started again on its previous "
            f"data, untouched (the same as the safety backup {safety.id})",
            outcome="rolled_back", safety=safety) from None


def _start_again(session, target: Service, reporter: Reporter) -> None:
    _docker(session, reporter, "starting the service",
            lambda c: c.api.start(names.container_name(target.name)))
    _health(session, target, reporter)


def _roll_back_swap(runner: _Runner, session, target: Service, reporter: Reporter) -> None:
    reporter.step("roll back", "running", f"{target.database}__old becomes {target.database} again")
    with contextlib.suppress(docker.errors.APIError):
        _docker(session, reporter, "stopping the service",
                lambda c: c.api.stop(names.container_name(target.name), timeout=30))
    runner.swap("unswap")
    runner.drop("restore")
    _start_again(session, target, reporter)
    reporter.step("roll back", "done")


def _recover(runner: _Runner, session, target: Service, reporter: Reporter) -> str:
    """After an unexpected error with the service stopped: put it back on its previous data.
    Which databases exist says how far the restore went."""
    from havsh_tui.ops.bootstrap import psql

    try:
        rows = with_reconnect(session, reporter, "checking the databases", lambda c: psql(
            c, "SELECT datname FROM pg_database WHERE datname IN (:'a', :'b', :'c');\n",
            variables={"a": target.database, "b": f"{target.database}__restore",
                       "c": f"{target.database}__old"}))
        present = set(rows.split())
        if f"{target.database}__old" in present:
            runner.swap("unswap")
        runner.drop("restore")
        _start_again(session, target, reporter)
        return "rolled_back"
    except Exception as exc:  # noqa: BLE001 - report what is known
        reporter.warning(f"could not put {target.name} back on its previous data: {exc}")
        return "unknown"


def _finish_failed(inventory, target: Service, outcome: str, message: str) -> None:
    """The service's record after a failed restore: running again on its previous data, or
    Failed when that is not known."""
    with contextlib.suppress(Exception):
        if outcome in ("rolled_back", "untouched"):
            inventory.update_service(target.host, target.name, status=ServiceStatus.RUNNING)
        else:
            inventory.update_service(target.host, target.name, status=ServiceStatus.FAILED,
                                     failed_step="restore", last_error=message[-4000:])


def _op(inventory, service: Service, state: str, **extra) -> None:
    with contextlib.suppress(Exception):
        inventory.record_operation({"kind": "backup.restore", "host": service.host,
                                    "service": service.name, "state": state, **extra})


class _Quiet:
    """Passes a nested operation's steps on as log lines (the safety backup's)."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner

    def step(self, name: str, state: str, detail: str = "") -> None:
        self.inner.log(f"{name}: {state} {detail}".strip())

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        self.inner.progress(done, total, message)

    def log(self, line: str) -> None:
        self.inner.log(line)

    def warning(self, message: str) -> None:
        self.inner.warning(message)

    def cancelled(self) -> bool:
        return self.inner.cancelled()


# -- into a new service ----------------------------------------------------------------------
def _restore_new(inventory, secret_store, pool, spec: RestoreSpec, reporter: Reporter,
                 audit) -> RestoreResult:
    from havsh_tui.core import secrets as sk
    from havsh_tui.core.model import neutralize_default
    from havsh_tui.ops.bootstrap import bootstrap_host
    from havsh_tui.ops.copy import _reset_identity
    from havsh_tui.ops.images import ensure_image
    from havsh_tui.ops.services import (
        StepFailed,
        _cleanup,
        _default_image,
        _Steps,
        create_role_and_database,
        create_server_container,
        neutralize_database,
        reserve,
        service_labels,
        wait_healthy,
    )

    started = time.monotonic()
    names.validate_slug(spec.new)
    record: BackupRecord | None = None
    if spec.backup_id:
        record = find_backup(inventory, pool, spec.backup_id, reporter=reporter)
    host_name = spec.host or (record.host if record else None)
    hosts = [h.name for h in inventory.list_hosts()]
    if host_name is None or host_name not in hosts:
        if len(hosts) == 1 and host_name is None:
            host_name = hosts[0]
        else:
            raise BackupError("say which host the new service goes on (--host)")
    host = inventory.get_host(host_name)
    for s in inventory.list_services(host=host_name):
        if s.name == spec.new and s.status is not ServiceStatus.DESTROYED:
            raise OpsError(f"a service named {spec.new!r} exists on {host_name} already")
    session = pool.session(host)
    client = session.docker()
    bootstrap_host(session, secret_store, _Quiet(reporter), audit)
    staged, local_manifest = _stage(pool, inventory, host_name, spec, reporter)
    try:
        placeholder = Service(name=spec.new, host=host_name, type=ServiceType.COPY,
                              odoo_version="0.0", image="", database=names.database_name(spec.new))
        reporter.step("check backup", "running", staged.path)
        info, manifest = _Runner(session, secret_store, placeholder, staged, reporter).inspect()
        manifest = manifest or local_manifest
        backup_version = str(manifest.get("major_version") or manifest.get("version") or
                             (record.odoo_version if record else "") or "")
        if spec.image:
            image = spec.image
            version = odoo.version_from_image(image) or backup_version or "17.0"
        else:
            version = backup_version.removeprefix("saas~") or host.odoo_image.rsplit(":", 1)[-1]
            image = _default_image(host, version)
        check_versions(manifest, version, spec.new, allow_newer=spec.allow_newer,
                       reporter=reporter)
        reporter.step("check backup", "done", f"Odoo {backup_version or '?'}, "
                      f"{info.get('files', 0)} files")
    except BaseException:
        _unstage(pool, inventory, host_name, staged, reporter)
        raise
    source_type = None
    with contextlib.suppress(ValueError):
        source_type = ServiceType(record.service_type if record else
                                  (manifest.get("havsh") or {}).get("type", ""))
    if spec.neutralize is not None:
        neutralize = spec.neutralize
    elif source_type is not None:
        neutralize = neutralize_default(source_type)
    else:
        # A zip of unknown origin (Odoo's database manager) is most often production data.
        neutralize = True
    havsh_meta = manifest.get("havsh") or {}
    new = Service(
        name=spec.new, host=host_name, type=ServiceType.COPY, odoo_version=version, image=image,
        status=ServiceStatus.CREATING, database=names.database_name(spec.new),
        source=(record.service if record else havsh_meta.get("service")) or None,
        source_host=(record.host if record else havsh_meta.get("host")) or None,
        snapshot_at=record.created_at if record else None,
    )
    reserve(inventory, new)
    steps = _Steps(inventory, new, reporter)
    db_password = generate_password()
    created = False
    try:
        steps.run("image", lambda: ensure_image(client, host_name, image, reporter), image)
        secret_store.set(sk.service_db_password_key(host_name, spec.new), db_password)
        created = True
        steps.run("database", lambda: create_role_and_database(client, new, db_password),
                  f"role {names.role_name(spec.new)}, database {new.database}")
        steps.run("volume", lambda: client.api.create_volume(
            names.volume_name(spec.new), labels=service_labels(new)))
        conf = odoo.render_conf(new.database, new.config)
        cid = steps.run("container", lambda: create_server_container(client, new, db_password,
                                                                     conf))
        new.container_id = cid
        runner = _Runner(session, secret_store, new, staged, reporter)
        loaded = steps.run("load", lambda: runner.load(new.database, create=False),
                           f"{staged.path} into {new.database}")
        reporter.log(f"loaded {loaded.get('files', 0)} files")
        steps.run("reset identity", lambda: _reset_identity(client, new))
        if neutralize:
            steps.run("neutralize", lambda: neutralize_database(
                session, secret_store, new, reporter, running=False))
        steps.run("start", lambda: client.api.start(cid))
        steps.run("health", lambda: wait_healthy(session, new, reporter))
    except BaseException as exc:
        log = getattr(exc, "log", "") or ""
        steps.fail(str(exc), log)
        if created:
            _cleanup(session, spec.new, new, inventory, reporter)
        if audit is not None:
            audit.append(host_name, "backup.restore", spec.new, "failed", str(exc)[:200])
        if isinstance(exc, (StepFailed, BackupError)):
            raise
        if isinstance(exc, (OpsError, docker.errors.APIError, *CONNECTION_ERRORS)):
            raise StepFailed(steps.current or "restore", str(exc), log) from exc
        raise
    finally:
        _unstage(pool, inventory, host_name, staged, reporter)
    new.status = ServiceStatus.RUNNING
    new.updated_at = utcnow()
    inventory.upsert_service(new)
    backup_name = record.id if record else os.path.basename(spec.from_file or "")
    seconds = time.monotonic() - started
    if audit is not None:
        audit.append(host_name, "backup.restore", spec.new, "ok",
                     {"backup": backup_name, "neutralized": neutralize})
    detail = (f"new Copy {new.name} on {host_name} from {backup_name}"
              + (", neutralized" if neutralize else ", not neutralized"))
    return RestoreResult(new, "created", backup_name, None, seconds, detail, manifest)


__all__ = ["RestoreFailed", "RestoreResult", "RestoreSpec", "check_local_zip",
           "check_versions", "destination_of", "restore_backup"]
