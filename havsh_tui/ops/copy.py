"""Copy a service: its whole database and filestore, within a host or across hosts.

The source never stops and is never written to. The database is dumped from a snapshot
exported by a read-only REPEATABLE READ transaction, which also counts every table's rows,
so the verification compares against exactly what was dumped. Within one host the streams
stay on the host; across hosts they pass, compressed, through the two SSH connections, in
chunks. Then the copy gets a new uuid, secret and base URL, is neutralized if asked before
its server ever starts, and is verified. Only then does it start.
"""

from __future__ import annotations

import re
import threading
import time
import uuid as pyuuid
from dataclasses import dataclass, field

import docker.errors

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceStatus, ServiceType, utcnow
from havsh_tui.core.secrets import generate_password
from havsh_tui.ops import odoo
from havsh_tui.ops.bootstrap import bootstrap_host, psql
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.images import ensure_image
from havsh_tui.ops.reporter import NullReporter, Reporter
from havsh_tui.ops.services import (
    StepFailed,
    _Steps,
    create_server_container,
    neutralize_database,
    reserve,
    service_labels,
    wait_healthy,
)
from havsh_tui.ops.streams import (
    ExecProcess,
    Meter,
    StreamError,
    exec_process,
    pump,
    start_helper,
)
from havsh_tui.remote.ssh import RemoteError

#: Exact row counts of every base table, as one query, so it can run inside the snapshot.
COUNT_SQL = """SELECT format('%I.%I', table_schema, table_name) || '=' ||
  (xpath('/row/c/text()', query_to_xml(
     format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')
  ))[1]::text
FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1;
"""
_SNAPSHOT_RE = re.compile(rb"^[0-9A-F]+-[0-9A-F]+-\d+$", re.M)
_DONE = "--havsh-counts-done--"

# Lists the filestore's files (so tar and the verification see the same set), then tars it.
_TAR_SCRIPT = r"""set -e
d="/src/filestore/$1"
if [ ! -d "$d" ]; then echo "files=0 bytes=0" >&2; tar -c -T /dev/null | gzip -1; exit 0; fi
cd "$d"
find . -type f -printf '%s\n' | awk '{n++; b+=$1} END {printf "files=%d bytes=%d\n", n, b}' >&2
find . -type f -print0 | tar --null -c -T - | gzip -1
"""
_UNTAR_SCRIPT = r"""set -e
mkdir -p "/dst/filestore/$1"
gzip -dc | tar -x -C "/dst/filestore/$1" --numeric-owner
owner="$(stat -c %u:%g /dst)"
chown -R "$owner" /dst/filestore
find "/dst/filestore/$1" -type f -printf '%s\n' | awk '{n++; b+=$1} END {printf "files=%d bytes=%d\n", n, b}' >&2
"""
_LOCAL_FS_SCRIPT = r"""set -e
mkdir -p "/dst/filestore/$2"
if [ -d "/src/filestore/$1" ]; then
  cd "/src/filestore/$1"
  find . -type f -printf '%s\n' | awk '{n++; b+=$1} END {printf "src files=%d bytes=%d\n", n, b}' >&2
  find . -type f -print0 | tar --null -c -T - | tar -x -C "/dst/filestore/$2" --numeric-owner
else
  echo "src files=0 bytes=0" >&2
fi
owner="$(stat -c %u:%g /dst)"
chown -R "$owner" /dst/filestore
find "/dst/filestore/$2" -type f -printf '%s\n' | awk '{n++; b+=$1} END {printf "dst files=%d bytes=%d\n", n, b}' >&2
"""


@dataclass
class CopySpec:
    source_host: str
    source: str
    name: str
    host: str | None = None
    neutralize: bool | None = None
    image: str | None = None


@dataclass
class CopyPlan:
    """What the dialog's review step shows, measured on the source host."""

    database_bytes: int
    filestore_bytes: int
    filestore_files: int
    target_disk_free: int | None = None
    neutralize: bool = True
    neutralize_reason: str = ""
    upgrade: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CopyVerification:
    tables: int
    rows: int
    mismatched: dict[str, tuple[int, int]] = field(default_factory=dict)
    files: tuple[int, int] = (0, 0)
    bytes: tuple[int, int] = (0, 0)

    @property
    def ok(self) -> bool:
        return not self.mismatched and self.files[0] == self.files[1] and (
            self.bytes[0] == self.bytes[1])

    def summary(self) -> str:
        s = (f"{self.tables} tables, {self.rows} rows match; filestore {self.files[1]} files, "
             f"{self.bytes[1]} bytes (source {self.files[0]} files, {self.bytes[0]} bytes)")
        if self.mismatched:
            s += "; MISMATCH " + ", ".join(f"{t}: {a} vs {b}"
                                           for t, (a, b) in list(self.mismatched.items())[:10])
        return s


def _parse_counts(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("--"):
            k, _, v = line.rpartition("=")
            if v.strip().isdigit():
                out[k.strip()] = int(v)
    return out


def _parse_fs(text: str, prefix: str = "") -> tuple[int, int]:
    m = re.search(prefix + r"files=(\d+) bytes=(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (-1, -1)


class SourceSnapshot:
    """A read-only REPEATABLE READ transaction on the source that exports its snapshot.

    It holds no lock beyond what any reader holds, and when it is closed (or its channel
    dies) psql exits and the server ends the transaction: nothing is left open.
    """

    def __init__(self, client, database: str) -> None:
        self.client = client
        self.database = database
        self.proc: ExecProcess | None = None
        self.snapshot_id = ""
        self.counts: dict[str, int] = {}
        self.taken_at = utcnow()

    def open(self) -> None:
        self.proc = exec_process(
            self.client, names.POSTGRES_CONTAINER,
            ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-U", "postgres",
             "-d", self.database],
            stdin=True, user="postgres",
        )
        self.proc.write_all(
            b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
            b"SELECT pg_export_snapshot();\n" + COUNT_SQL.encode()
            + f"SELECT '{_DONE}';\n".encode()
        )
        buf = b""
        for chunk in self.proc.stdout_chunks():
            buf += chunk
            if _DONE.encode() in buf:
                break
        else:
            raise StepFailed("snapshot", "psql ended before the snapshot was taken",
                             self.proc.stderr_text())
        m = _SNAPSHOT_RE.search(buf)
        if not m:
            raise StepFailed("snapshot", "no snapshot id from pg_export_snapshot()",
                             buf.decode(errors="replace")[-2000:])
        self.snapshot_id = m.group(0).decode()
        self.counts = _parse_counts(buf.decode(errors="replace"))
        self.taken_at = utcnow()

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.write_all(b"COMMIT;\n\\q\n")
            self.proc.close_stdin()
        except (OSError, RemoteError, StreamError):
            pass
        self.proc.close()
        self.proc = None


def database_size(client, database: str) -> int:
    out = psql(client, "SELECT pg_database_size(:'db');\n", variables={"db": database})
    return int(out.strip() or 0)


def filestore_stats(client, image: str, volume: str, database: str, service: str) -> tuple[int, int]:
    """(files, bytes) of a filestore, measured by a read-only helper container."""
    h = start_helper(
        client, image,
        ["sh", "-c", 'd="/src/filestore/$1"; [ -d "$d" ] || { echo "files=0 bytes=0"; exit 0; }; '
         "find \"$d\" -type f -printf '%s\\n' | awk '{n++; b+=$1} END "
         '{printf "files=%d bytes=%d\\n", n, b}\'', "sh", database],
        binds={volume: {"bind": "/src", "mode": "ro"}}, service=service, purpose="measure",
    )
    try:
        out = h.drain().decode(errors="replace")
        h.wait(120)
    finally:
        h.remove()
    return _parse_fs(out)


def plan_copy(inventory, pool, spec: CopySpec) -> CopyPlan:
    """Measure what a copy would move, and the target's free disk, for the review step."""
    from havsh_tui.core.model import neutralize_default
    from havsh_tui.ops.hosts import check_host

    src = inventory.get_service(spec.source, host=spec.source_host)
    src_host = inventory.get_host(src.host)
    client = pool.session(src_host).docker()
    db_bytes = database_size(client, src.database)
    files, fs_bytes = filestore_stats(client, src_host.postgres_image,
                                      names.volume_name(src.name), src.database, src.name)
    target = inventory.get_host(spec.host or src.host)
    health = check_host(pool.session(target))
    neutralize = neutralize_default(src.type) if spec.neutralize is None else spec.neutralize
    reason = ("the source is Live: a copy must never email its customers"
              if src.type is ServiceType.LIVE else "")
    upgrade = None
    if spec.image:
        v = odoo.version_from_image(spec.image)
        if v and odoo.major(v) > odoo.major(src.odoo_version):
            upgrade = f"upgrade test: {src.odoo_version} → {v}"
    return CopyPlan(db_bytes, fs_bytes, files, health.disk_free, neutralize, reason, upgrade)


def copy_service(inventory, secret_store, pool, spec: CopySpec,
                 reporter: Reporter | None = None, audit=None,
                 service_type: ServiceType = ServiceType.COPY,
                 pr: str | None = None, force_neutralize: bool = False) -> Service:
    """Copy SOURCE to a new service NAME on HOST (default: the source's host)."""
    from havsh_tui.core import secrets as sk
    from havsh_tui.core.model import neutralize_default

    reporter = reporter or NullReporter()
    names.validate_slug(spec.name)
    src = inventory.get_service(spec.source, host=spec.source_host)
    src_host = inventory.get_host(src.host)
    target_host = inventory.get_host(spec.host or src.host)
    for s in inventory.list_services(host=target_host.name):
        if s.name == spec.name and s.status is not ServiceStatus.DESTROYED:
            raise OpsError(f"a service named {spec.name!r} exists on {target_host.name} already")
    neutralize = force_neutralize or (
        neutralize_default(src.type) if spec.neutralize is None else spec.neutralize)
    image = spec.image or src.image
    version = odoo.version_from_image(image) or src.odoo_version
    same_host = target_host.name == src_host.name
    db_password = generate_password()
    new = Service(
        name=spec.name, host=target_host.name, type=service_type, odoo_version=version,
        image=image, status=ServiceStatus.CREATING, database=names.database_name(spec.name),
        source=src.name, source_host=src.host, pr=pr, config=dict(src.config),
        demo=src.demo, language=src.language, country=src.country,
    )
    reserve(inventory, new)
    steps = _Steps(inventory, new, reporter)
    src_session = pool.session(src_host)
    dst_session = pool.session(target_host)
    created = False
    snapshot: SourceSnapshot | None = None
    started = time.monotonic()
    try:
        src_client = steps.run("connect source", src_session.docker, src_host.destination)
        dst_client = src_client if same_host else steps.run(
            "connect target", dst_session.docker, target_host.destination)
        try:
            dst_client.api.inspect_container(names.container_name(spec.name))
            raise OpsError(f"{target_host.name} has a container "
                           f"{names.container_name(spec.name)} already")
        except docker.errors.NotFound:
            pass
        if not same_host:
            steps.run("bootstrap target", lambda: bootstrap_host(dst_session, secret_store,
                                                                 reporter, audit))
        steps.run("image", lambda: ensure_image(dst_client, target_host.name, image, reporter),
                  image)
        secret_store.set(sk.service_db_password_key(target_host.name, spec.name), db_password)
        created = True
        from havsh_tui.ops.services import create_role_and_database

        steps.run("database", lambda: create_role_and_database(dst_client, new, db_password),
                  f"role {names.role_name(spec.name)}, database {new.database}")
        steps.run("volume", lambda: dst_client.api.create_volume(
            names.volume_name(spec.name), labels=service_labels(new)))
        conf = odoo.render_conf(new.database, new.config)
        # Created now (not started) so the fresh volume takes the image's ownership of
        # /var/lib/odoo before any file goes in.
        cid = steps.run("container", lambda: create_server_container(
            dst_client, new, db_password, conf))
        new.container_id = cid

        def take_snapshot():
            nonlocal snapshot
            snapshot = SourceSnapshot(src_client, src.database)
            snapshot.open()
            return snapshot

        snap = steps.run("snapshot", take_snapshot, f"source {src.name} keeps running")
        new.snapshot_at = snap.taken_at
        src_db_bytes = database_size(src_client, src.database)
        steps.run("copy database", lambda: _copy_database(
            src_client, dst_client, src.database, new, snap.snapshot_id, same_host,
            src_db_bytes, reporter), f"pg_dump -Fc | pg_restore ({src_db_bytes} bytes)")
        snapshot.close()
        snapshot = None
        fs = steps.run("copy filestore", lambda: _copy_filestore(
            src_client, dst_client, src_host, target_host, src, new, same_host, reporter))
        verification = steps.run("verify", lambda: _verify(dst_client, new, snap.counts, fs))
        reporter.log("verification: " + verification.summary())
        steps.run("reset identity", lambda: _reset_identity(dst_client, new))
        if neutralize:
            steps.run("neutralize", lambda: neutralize_database(
                dst_session, secret_store, new, reporter, running=False))
        steps.run("start", lambda: dst_client.api.start(cid))
        steps.run("health", lambda: wait_healthy(dst_session, new, reporter))
    except BaseException as exc:
        if snapshot is not None:
            snapshot.close()
        log = getattr(exc, "log", "") or ""
        steps.fail(str(exc), log)
        if created:
            _cleanup_target(dst_session, new, inventory, reporter)
        if audit:
            audit.append(target_host.name, "service.copy", spec.name, "failed", str(exc)[:200])
        if isinstance(exc, StepFailed):
            raise
        if isinstance(exc, (OpsError, RemoteError, OSError, docker.errors.APIError)):
            raise StepFailed(steps.current or "copy", str(exc), log) from exc
        raise
    new.status = ServiceStatus.RUNNING
    new.updated_at = utcnow()
    inventory.upsert_service(new)
    reporter.log(f"copied {src.name}@{src.host} to {new.name}@{new.host} "
                 f"in {time.monotonic() - started:.1f} s")
    if audit:
        audit.append(target_host.name, "service.copy", spec.name, "ok",
                     f"from {src.name}@{src.host}")
    return new


def _cleanup_target(session, service: Service, inventory, reporter: Reporter) -> None:
    from havsh_tui.ops.services import _cleanup

    _cleanup(session, service.name, service, inventory, reporter)


def _restore_argv(service: Service) -> list[str]:
    return ["pg_restore", "-U", "postgres", "-d", service.database, "--no-owner", "--no-acl",
            f"--role={names.role_name(service.name)}", "--single-transaction"]


def _copy_database(src_client, dst_client, src_db: str, new: Service, snapshot_id: str,
                   same_host: bool, total: int, reporter: Reporter) -> int:
    dump = ["pg_dump", "-Fc", "-U", "postgres", f"--snapshot={snapshot_id}", src_db]
    if same_host:
        # Everything stays on the host: one shell pipes pg_dump into pg_restore.
        argv = ["bash", "-c",
                'pg_dump -Fc -U postgres --snapshot="$1" "$2" | pg_restore -U postgres -d "$3" '
                '--no-owner --no-acl --role="$4" --single-transaction; '
                's=("${PIPESTATUS[@]}"); [ "${s[0]}" = 0 ] && [ "${s[1]}" = 0 ]',
                "copy", snapshot_id, src_db, new.database, names.role_name(new.name)]
        proc = exec_process(src_client, names.POSTGRES_CONTAINER, argv, user="postgres")
        done = threading.Event()

        def watch():
            while not done.wait(1.0):
                try:
                    reporter.progress(database_size(dst_client, new.database), total,
                                      "restoring")
                except Exception:  # noqa: BLE001 - progress is best effort
                    pass

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        try:
            proc.drain()
            code = proc.exit_code(timeout=60)
        finally:
            done.set()
        if code != 0:
            raise StepFailed("copy database", f"pg_dump | pg_restore exited {code}",
                             proc.stderr_text())
        return total
    src = exec_process(src_client, names.POSTGRES_CONTAINER, dump, user="postgres")
    dst = exec_process(dst_client, names.POSTGRES_CONTAINER, _restore_argv(new), stdin=True,
                       user="postgres")
    meter = Meter(lambda n: reporter.progress(n, None, "dump bytes sent"))
    try:
        moved = pump(src.stdout_chunks(), dst.write_all, meter, reporter.cancelled)
        dst.close_stdin()
        dst.drain()
        src_code = src.exit_code()
        dst_code = dst.exit_code(timeout=3600)
    finally:
        src.close()
        dst.close()
    if src_code != 0:
        raise StepFailed("copy database", f"pg_dump exited {src_code}", src.stderr_text())
    if dst_code != 0:
        raise StepFailed("copy database", f"pg_restore exited {dst_code}", dst.stderr_text())
    return moved


def _copy_filestore(src_client, dst_client, src_host, dst_host, src: Service, new: Service,
                    same_host: bool, reporter: Reporter) -> tuple[tuple[int, int], tuple[int, int]]:
    src_vol, dst_vol = names.volume_name(src.name), names.volume_name(new.name)
    if same_host:
        h = start_helper(
            src_client, src_host.postgres_image,
            ["sh", "-c", _LOCAL_FS_SCRIPT, "sh", src.database, new.database],
            binds={src_vol: {"bind": "/src", "mode": "ro"}, dst_vol: {"bind": "/dst", "mode": "rw"}},
            service=new.name, purpose="copy-filestore",
        )
        try:
            h.drain()
            code = h.wait()
        finally:
            h.remove()
        err = h.stderr_text()
        if code != 0:
            raise StepFailed("copy filestore", f"tar exited {code}", err)
        return _parse_fs(err, "src "), _parse_fs(err, "dst ")
    reader = start_helper(
        src_client, src_host.postgres_image, ["sh", "-c", _TAR_SCRIPT, "sh", src.database],
        binds={src_vol: {"bind": "/src", "mode": "ro"}}, service=new.name, purpose="copy-read",
    )
    writer = start_helper(
        dst_client, dst_host.postgres_image, ["sh", "-c", _UNTAR_SCRIPT, "sh", new.database],
        binds={dst_vol: {"bind": "/dst", "mode": "rw"}}, service=new.name, stdin=True,
        purpose="copy-write",
    )
    meter = Meter(lambda n: reporter.progress(n, None, "filestore bytes sent (gzip)"))
    try:
        pump(reader.stdout_chunks(), writer.write_all, meter, reporter.cancelled)
        writer.close_stdin()
        writer.drain()
        rc_r, rc_w = reader.wait(), writer.wait()
    finally:
        reader.remove()
        writer.remove()
    if rc_r != 0:
        raise StepFailed("copy filestore", f"tar on the source exited {rc_r}",
                         reader.stderr_text())
    if rc_w != 0:
        raise StepFailed("copy filestore", f"tar on the target exited {rc_w}",
                         writer.stderr_text())
    return _parse_fs(reader.stderr_text()), _parse_fs(writer.stderr_text())


def _verify(dst_client, new: Service, src_counts: dict[str, int],
            fs: tuple[tuple[int, int], tuple[int, int]]) -> CopyVerification:
    copy_counts = _parse_counts(psql(dst_client, COUNT_SQL, database=new.database))
    mismatched = {}
    for table in sorted(set(src_counts) | set(copy_counts)):
        a, b = src_counts.get(table, -1), copy_counts.get(table, -1)
        if a != b:
            mismatched[table] = (a, b)
    (sf, sb), (df, db) = fs
    v = CopyVerification(tables=len(copy_counts), rows=sum(copy_counts.values()),
                         mismatched=mismatched, files=(sf, df), bytes=(sb, db))
    if not v.ok:
        raise StepFailed("verify", "the copy differs from the source snapshot: " + v.summary())
    return v


def _reset_identity(dst_client, new: Service) -> None:
    """New uuid, secret and base URL, as Odoo's own duplicate does."""
    sql = """
UPDATE ir_config_parameter SET value = :'uuid' WHERE key = 'database.uuid';
UPDATE ir_config_parameter SET value = :'secret' WHERE key = 'database.secret';
UPDATE ir_config_parameter SET value = :'now' WHERE key = 'database.create_date';
UPDATE ir_config_parameter SET value = :'url' WHERE key = 'web.base.url';
"""
    url = new.url or f"http://{names.container_name(new.name)}:{odoo.HTTP_PORT}"
    psql(dst_client, sql, database=new.database, variables={
        "uuid": str(pyuuid.uuid1()), "secret": str(pyuuid.uuid4()),
        "now": utcnow().strftime("%Y-%m-%d %H:%M:%S"), "url": url,
    })
