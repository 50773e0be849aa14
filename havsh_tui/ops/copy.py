"""Copy a service: its whole database and filestore, within a host or across hosts.

The source never stops and is never written to. The database is dumped from a snapshot
exported by a read-only REPEATABLE READ transaction, which also counts every table's rows,
so the verification compares against exactly what was dumped. Within one host the streams
stay on the host (one pipe inside havsh-postgres, one helper container with both volumes);
across hosts they pass through the two SSH connections in chunks, compressed (pg_dump's own
zlib, and gzip for a filestore that shrinks when gzipped), never held whole. Then the copy
gets a new uuid, secret and base URL, is neutralized if asked before its server ever starts,
and is verified. Only then does it start.

Nothing the copy does is left on the source: every PostgreSQL session it opens there carries
an application_name of its own, and a failed or cancelled copy terminates those sessions
(docker does not end an exec'd pg_dump when its stream is dropped: it would dump on to its
end, holding its snapshot). On the target, a failure removes everything the copy created.
"""

from __future__ import annotations

import re
import secrets as pysecrets
import threading
import time
import uuid as pyuuid
from collections.abc import Callable
from dataclasses import dataclass, field

import docker.errors

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceStatus, ServiceType, Step, utcnow
from havsh_tui.core.secrets import generate_password
from havsh_tui.ops import odoo
from havsh_tui.ops.bootstrap import bootstrap_host, psql
from havsh_tui.ops.hosts import OpsError, check_host
from havsh_tui.ops.images import ensure_image
from havsh_tui.ops.reporter import NullReporter, OperationCancelled, Reporter
from havsh_tui.ops.services import (
    StepFailed,
    _Steps,
    create_role_and_database,
    create_server_container,
    neutralize_database,
    refuse_leftovers,
    remove_service_objects,
    reserve,
    service_labels,
    wait_healthy,
)
from havsh_tui.ops.streams import (
    ExecProcess,
    Progress,
    StreamError,
    exec_process,
    human_bytes,
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

#: pg_dump's compression level: none within a host (it would only be undone by pg_restore
#: on the same CPUs), zlib's fastest level across hosts.
DUMP_COMPRESS_SAME_HOST = 0
DUMP_COMPRESS_CROSS_HOST = 1
#: Across hosts, the filestore stream is gzipped only if a sample of it shrinks below this
#: fraction: most of an Odoo filestore is PDF, JPEG and PNG, which gzip cannot shrink, and
#: gzip -1 of such data runs at a few tens of MB/s, slower than the link.
GZIP_WORTH_IT = 0.7
#: Free disk the target must have: the source's database and filestore sizes times this,
#: plus the slack.
DISK_FACTOR = 1.1
DISK_SLACK = 256 * 1024 * 1024
#: Every long-running process of a copy writes a line to stderr this often (seconds), so a
#: stream that is busy but silent (pg_restore building indexes, chown of a big filestore) is
#: never taken for a dead connection by the channel's read timeout (the SSH command timeout).
HEARTBEAT = 10
# For the helper containers (their PID 1 is the script's own sh, which reaps anything): a
# background loop. Only the loop's own stderr is the stream's: sleep holds none of its
# pipes, so the stream ends when the script does, not when the last sleep does.
_HEARTBEAT = (f"( while kill -0 $$ 2>/dev/null && sleep {HEARTBEAT} </dev/null >/dev/null 2>&1; "
              "do echo havsh-alive >&2; done ) </dev/null >/dev/null & hb=$!\n"
              "trap 'kill $hb 2>/dev/null' EXIT\n")
#: pg_dump gives up instead of queueing forever behind an exclusive lock on the source.
LOCK_WAIT = "2min"
#: tar reports its progress every this many 10 KiB records (about 2 MB).
CHECKPOINT = 200
TAR_RECORD = 10240
#: Types whose copies are neutralized unless the user says otherwise: Live holds production
#: data, and a Copy or Preview may well be a copy of production.
NEUTRALIZE_BY_DEFAULT = frozenset({ServiceType.LIVE, ServiceType.COPY, ServiceType.PREVIEW})

# Lists the filestore once (so tar, the counts and the verification all see one set of
# files), prints the counts on stderr, and leaves the names for tar in /tmp/h/names.
_LIST = r"""
mkdir -p /tmp/h
if [ -d "/src/filestore/$db" ]; then
  cd "/src/filestore/$db"
  find . -type f -printf '%s %p\0' > /tmp/h/list
else
  mkdir -p /tmp/h/empty && cd /tmp/h/empty
  : > /tmp/h/list
fi
sed -z 's/^[0-9]* //' /tmp/h/list > /tmp/h/names
printf '%sfiles=%s bytes=%s\n' "$prefix" "$(tr -cd '\0' < /tmp/h/list | wc -c)" \
  "$(sed -z 's/ .*//' /tmp/h/list | tr '\0' '\n' | awk '{b+=$1} END {printf "%.0f", b}')" >&2
"""
# Counts the files under the current directory, as the target sees them after extraction.
_COUNT_HERE = r"""find . -type f -printf '%s\n' \
  | awk -v p="$prefix" '{n++; b+=$1} END {printf "%sfiles=%d bytes=%.0f\n", p, n, b}' >&2
"""
# After a failed extraction: the volume's free and total bytes, so a full disk is named.
_DF = "df -Pk /dst | awk 'NR == 2 {print \"havsh-df\", $4 * 1024, $2 * 1024}' >&2"
_TAR = (f"tar --null --ignore-failed-read -c -f - -T /tmp/h/names --checkpoint={CHECKPOINT} "
        "--checkpoint-action=echo=havsh-ck%u")
# The counting helper of plan_copy and of a copy's first step: files, bytes, and how well
# an 8 MB sample of the files gzips.
_MEASURE_SCRIPT = r"""set -e
db="$1"; prefix=""
""" + _LIST + r"""
sample() { sed -z 's/^[0-9]* //' /tmp/h/list | head -z -n 400 | xargs -0 -r cat | head -c 8388608; }
printf 'sample=%s packed=%s\n' "$(sample | wc -c)" "$(sample | gzip -1 | wc -c)" >&2
"""
_READ_SCRIPT = r"""set -e
db="$1"; mode="$2"; prefix=""
""" + _HEARTBEAT + _LIST + f"""
if [ "$mode" = gzip ]; then
  ( {_TAR}; echo $? > /tmp/h/rc ) | gzip -1
  exit "$(cat /tmp/h/rc)"
fi
{_TAR}
"""
_WRITE_SCRIPT = r"""set -e
""" + _HEARTBEAT + r"""mkdir -p "/dst/filestore/$1"
cd "/dst/filestore/$1"
untar() {
  if [ "$2" = gzip ]; then gzip -dc | tar -x -f - --numeric-owner
  else tar -x -f - --numeric-owner; fi
}
untar "$@" || { rc=$?; """ + _DF + r"""; exit "$rc"; }
chown -R "$(stat -c %u:%g /dst)" /dst/filestore
prefix=""
""" + _COUNT_HERE
_LOCAL_SCRIPT = r"""set -e
db="$1"; prefix="src "
""" + _HEARTBEAT + r"""mkdir -p "/dst/filestore/$2"
""" + _LIST + f"""
( {_TAR}; echo $? > /tmp/h/rc ) | tar -x -f - -C "/dst/filestore/$2" --numeric-owner \
  || {{ rc=$?; {_DF}; exit "$rc"; }}
rc="$(cat /tmp/h/rc)"; [ "$rc" = 0 ] || exit "$rc"
chown -R "$(stat -c %u:%g /dst)" /dst/filestore
cd "/dst/filestore/$2"
prefix="dst "
""" + _COUNT_HERE
_CHECKPOINT_RE = re.compile(rb"havsh-ck(\d+)")
# Inside havsh-postgres, PostgreSQL is PID 1: an orphan that it reaps and that died of a
# signal counts as a crashed backend and restarts the whole server. So the scripts run there
# keep every process their own child: the work runs in the background, reaped by the script,
# and the heartbeat is a loop in the foreground (no background sleeper to orphan).
_RUN_WITH_HEARTBEAT = r"""
beat() {
  exec 3<&0
  "$@" <&3 3<&- &
  job=$!
  exec 3<&-
  n=0
  while kill -0 "$job" 2>/dev/null; do
    sleep 0.2
    n=$((n + 1))
    if [ "$n" -ge """ + str(HEARTBEAT * 5) + r""" ]; then n=0; echo havsh-alive >&2; fi
  done
  wait "$job"
}
"""
# The cross-host ends of the database stream.
_DUMP_SCRIPT = _RUN_WITH_HEARTBEAT + 'beat pg_dump "$@"\n'
_RESTORE_SCRIPT = _RUN_WITH_HEARTBEAT + 'beat pg_restore "$@"\n'
# Within one host: one pipe, both exit codes reported.
_LOCAL_DB_SCRIPT = _RUN_WITH_HEARTBEAT + r"""
pipe() {
  pg_dump -Fc -Z"$5" -U postgres --lock-wait-timeout="$6" --snapshot="$1" "$2" \
    | pg_restore -U postgres -d "$3" --no-owner --no-acl --role="$4" --single-transaction
  s=("${PIPESTATUS[@]}")
  echo "havsh-rc ${s[0]} ${s[1]}" >&2
  [ "${s[0]}" = 0 ] && [ "${s[1]}" = 0 ]
}
beat pipe "$@"
"""


def neutralize_default(source_type: ServiceType) -> bool:
    """A copy is neutralized by default when its source is Live, a Copy or a Preview."""
    return source_type in NEUTRALIZE_BY_DEFAULT


def neutralize_reason(source_type: ServiceType) -> str:
    if source_type is ServiceType.LIVE:
        return "the source is Live: a copy must never email its customers"
    if source_type in NEUTRALIZE_BY_DEFAULT:
        return (f"the source is a {source_type.label}, which may hold production data: "
                "a copy must never email real customers")
    return ""


@dataclass
class CopySpec:
    source_host: str
    source: str
    name: str
    host: str | None = None
    neutralize: bool | None = None
    image: str | None = None


@dataclass
class SourceMeasure:
    """What a copy will move, measured on the source host."""

    database_bytes: int
    filestore_files: int
    filestore_bytes: int
    sample_bytes: int = 0
    sample_packed: int = 0

    @property
    def compressible(self) -> bool:
        return self.sample_bytes > 0 and self.sample_packed < GZIP_WORTH_IT * self.sample_bytes

    @property
    def disk_needed(self) -> int:
        return int((self.database_bytes + self.filestore_bytes) * DISK_FACTOR) + DISK_SLACK


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
    source: str = ""
    source_host: str = ""
    target_host: str = ""
    disk_needed: int = 0
    #: None when the target's free disk could not be read.
    enough_disk: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def same_host(self) -> bool:
        return self.source_host == self.target_host

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["same_host"] = self.same_host
        return d


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
    m = re.search("(?m)^" + prefix + r"files=(\d+) bytes=(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (-1, -1)


class _StderrLines:
    """Splits a helper's stderr into lines: tar's checkpoints go to a callback, the rest is
    kept (bounded) for the counts and for error messages."""

    def __init__(self, on_checkpoint: Callable[[int], None] | None = None) -> None:
        self._partial = b""
        self._kept: list[bytes] = []
        self._size = 0
        self._on_checkpoint = on_checkpoint

    def __call__(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            if line.endswith(b"havsh-alive"):
                continue
            m = _CHECKPOINT_RE.search(line)
            if m:
                if self._on_checkpoint is not None:
                    self._on_checkpoint(int(m.group(1)) * TAR_RECORD)
                continue
            self._kept.append(line)
            self._size += len(line)
            # Keep the head (the counts come first) and a tail of the rest.
            while self._size > 65536 and len(self._kept) > 8:
                self._size -= len(self._kept.pop(4))

    def text(self) -> str:
        lines = self._kept + ([self._partial] if self._partial else [])
        return b"\n".join(lines).decode(errors="replace").strip()


def disk_full(text: str) -> str | None:
    """'the target ran out of disk space' when a failed writer reported a (nearly) full
    volume, or PostgreSQL said so."""
    m = re.search(r"havsh-df (\d+) (\d+)", text)
    if m:
        free, size = int(m.group(1)), int(m.group(2))
        if free < max(1024 * 1024, size // 100):
            return (f"the target ran out of disk space ({human_bytes(free)} free of "
                    f"{human_bytes(size)})")
    if "No space left on device" in text:
        return "the target ran out of disk space"
    return None


def app_name(new: Service, token: str) -> str:
    """The application_name of every PostgreSQL session of one copy (at most 63 bytes)."""
    return f"havsh-copy-{new.name}-{token}"[:63]


class SourceSnapshot:
    """A read-only REPEATABLE READ transaction on the source that exports its snapshot.

    It holds no lock beyond what any reader holds, and when it is closed (or its channel
    dies) psql reads EOF and exits, and the server ends the transaction: nothing is left.
    """

    def __init__(self, client, database: str, application_name: str = "havsh-copy") -> None:
        self.client = client
        self.database = database
        self.application_name = application_name
        self.proc: ExecProcess | None = None
        self.snapshot_id = ""
        self.counts: dict[str, int] = {}
        self.taken_at = utcnow()

    def open(self) -> None:
        self.proc = exec_process(
            self.client, names.POSTGRES_CONTAINER,
            ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-U", "postgres",
             "-d", self.database],
            stdin=True, user="postgres", environment={"PGAPPNAME": self.application_name},
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
        except (OSError, EOFError, RemoteError, StreamError):
            pass
        self.proc.close()
        self.proc = None


def end_source_sessions(client, application_name: str) -> int:
    """Terminate the sessions a copy opened on the source's server (pg_dump, the snapshot);
    returns how many there were. Only sessions with the copy's own application_name."""
    out = psql(client, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
               "WHERE application_name = :'app' AND pid <> pg_backend_pid();\n",
               variables={"app": application_name})
    return int(out.strip() or 0)


class _SizeProbe:
    """One psql session on the target, asked for the database's size once a second, for
    the progress of the restore: one process for the whole phase instead of a docker exec
    per poll (each costs the host a runc exec, which a loaded host feels)."""

    def __init__(self, client, database: str, application_name: str) -> None:
        self.database = database
        self._buf = b""
        self._proc = exec_process(
            client, names.POSTGRES_CONTAINER,
            ["psql", "-X", "-q", "-t", "-A", "-U", "postgres", "-d", "postgres"],
            stdin=True, user="postgres", environment={"PGAPPNAME": application_name})
        self._chunks = self._proc.stdout_chunks()

    def size(self) -> int:
        self._proc.write_all(b"SELECT pg_database_size(" + _sql_literal(self.database)
                             + b");\n")
        while b"\n" not in self._buf:
            self._buf += next(self._chunks)
        line, _, self._buf = self._buf.partition(b"\n")
        return int(line.strip() or 0)

    def close(self) -> None:
        try:
            self._proc.close_stdin()
        except (OSError, EOFError, RemoteError, StreamError):
            pass
        self._proc.close()


def _sql_literal(name: str) -> bytes:
    """A database name as an SQL string literal (names here are validated slugs; quoted
    anyway)."""
    return ("'" + name.replace("'", "''") + "'").encode()


def database_size(client, database: str) -> int:
    out = psql(client, "SELECT pg_database_size(:'db');\n", variables={"db": database})
    return int(out.strip() or 0)


def _run_measure(client, image: str, volume: str, database: str, service: str
                 ) -> tuple[tuple[int, int], tuple[int, int]]:
    h = start_helper(client, image, ["sh", "-c", _MEASURE_SCRIPT, "sh", database],
                     binds={volume: {"bind": "/src", "mode": "ro"}}, service=service,
                     purpose="measure")
    try:
        h.drain()
        code = h.wait(600)
    finally:
        h.remove()
    err = h.stderr_text()
    if code != 0:
        raise OpsError(f"measuring the filestore failed ({code}): {err[-2000:]}")
    m = re.search(r"sample=(\d+) packed=(\d+)", err)
    sample = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return _parse_fs(err), sample


def filestore_stats(client, image: str, volume: str, database: str, service: str
                    ) -> tuple[int, int]:
    """(files, bytes) of a filestore, measured by a read-only helper container."""
    return _run_measure(client, image, volume, database, service)[0]


def measure_source(client, helper_image: str, src: Service, label_service: str
                   ) -> SourceMeasure:
    (files, size), (sample, packed) = _run_measure(
        client, helper_image, names.volume_name(src.name), src.database, label_service)
    return SourceMeasure(database_size(client, src.database), files, size, sample, packed)


def _check_image(src: Service, image: str) -> tuple[str, str | None]:
    """The copy's Odoo version, and the upgrade note when the image is newer."""
    version = odoo.version_from_image(image) or src.odoo_version
    if odoo.major(version) < odoo.major(src.odoo_version):
        raise OpsError(f"{image} is Odoo {version}, older than the source's "
                       f"{src.odoo_version}: a database never goes back a version")
    if odoo.major(version) > odoo.major(src.odoo_version):
        return version, f"upgrade test: {src.odoo_version} → {version}"
    return version, None


def plan_copy(inventory, pool, spec: CopySpec) -> CopyPlan:
    """Measure what a copy would move, and the target's free disk, for the review step.

    Problems that would stop the copy (a taken name, too little disk, an older image) are
    listed in ``problems`` rather than raised, so the dialog can show them all at once.
    """
    src = inventory.get_service(spec.source, host=spec.source_host)
    src_host = inventory.get_host(src.host)
    target = inventory.get_host(spec.host or src.host)
    problems: list[str] = []
    try:
        names.validate_slug(spec.name)
    except names.InvalidName as exc:
        problems.append(str(exc))
    existing = _existing_record(inventory, target.name, spec.name)
    if existing is not None and not _replaceable(existing):
        problems.append(f"a service named {spec.name!r} exists on {target.name} already")
    upgrade = None
    try:
        _, upgrade = _check_image(src, spec.image or src.image)
    except OpsError as exc:
        problems.append(str(exc))
    client = pool.session(src_host).docker()
    m = measure_source(client, src_host.postgres_image, src, src.name)
    health = check_host(pool.session(target))
    free = health.disk_free if health.reachable else None
    if not health.reachable:
        problems.append(f"{target.name} is unreachable: {health.error}")
    enough = None if free is None else free >= m.disk_needed
    if enough is False:
        problems.append(f"{target.name} has {human_bytes(free or 0)} free; the copy needs "
                        f"about {human_bytes(m.disk_needed)}")
    neutralize = neutralize_default(src.type) if spec.neutralize is None else spec.neutralize
    return CopyPlan(
        database_bytes=m.database_bytes, filestore_bytes=m.filestore_bytes,
        filestore_files=m.filestore_files, target_disk_free=free, neutralize=neutralize,
        neutralize_reason=neutralize_reason(src.type) if neutralize else "",
        upgrade=upgrade, source=src.name, source_host=src.host, target_host=target.name,
        disk_needed=m.disk_needed, enough_disk=enough, problems=problems,
    )


def _existing_record(inventory, host: str, name: str) -> Service | None:
    for s in inventory.list_services(host=host):
        if s.name == name and s.status is not ServiceStatus.DESTROYED:
            return s
    return None


def _replaceable(s: Service) -> bool:
    """A failed copy (or preview) may be retried under its name: its record is replaced,
    once the host is checked to hold nothing of it."""
    return s.status is ServiceStatus.FAILED and s.type in (ServiceType.COPY,
                                                            ServiceType.PREVIEW)


def copy_service(inventory, secret_store, pool, spec: CopySpec,
                 reporter: Reporter | None = None, audit=None,
                 service_type: ServiceType = ServiceType.COPY,
                 pr: str | None = None, force_neutralize: bool = False) -> Service:
    """Copy SOURCE to a new service NAME on HOST (default: the source's host).

    Steps: connect, measure, check the target (names free, disk), bootstrap (another host),
    image, database, snapshot, volume, container (created, not started), copy database,
    copy filestore, verify, reset identity, neutralize, start, health. On any failure the
    copy is marked Failed with its step, everything it made on the target is removed, and
    its sessions on the source are ended. A failed copy can be retried under its name.
    """
    from havsh_tui.core import secrets as sk

    reporter = reporter or NullReporter()
    names.validate_slug(spec.name)
    src = inventory.get_service(spec.source, host=spec.source_host)
    src_host = inventory.get_host(src.host)
    target_host = inventory.get_host(spec.host or src.host)
    existing = _existing_record(inventory, target_host.name, spec.name)
    if existing is not None and not _replaceable(existing):
        raise OpsError(f"a service named {spec.name!r} exists on {target_host.name} already")
    neutralize = force_neutralize or (
        neutralize_default(src.type) if spec.neutralize is None else spec.neutralize)
    image = spec.image or src.image
    version, upgrade = _check_image(src, image)
    same_host = target_host.name == src_host.name
    db_password = generate_password()
    new = Service(
        name=spec.name, host=target_host.name, type=service_type, odoo_version=version,
        image=image, status=ServiceStatus.CREATING, database=names.database_name(spec.name),
        source=src.name, source_host=src.host, pr=pr, config=dict(src.config),
        demo=src.demo, language=src.language, country=src.country,
    )
    if existing is not None:
        # A retry of a failed copy: its record goes, the host is checked below.
        inventory.remove_service(target_host.name, spec.name)
    reserve(inventory, new)
    steps = _Steps(inventory, new, reporter)
    src_session = pool.session(src_host)
    dst_session = pool.session(target_host)
    app = app_name(new, pysecrets.token_hex(3))
    created = False
    touched_source = False
    snapshot: SourceSnapshot | None = None
    src_client = None
    started = time.monotonic()
    if upgrade:
        reporter.log(upgrade)
    try:
        src_client = steps.run("connect source", src_session.docker, src_host.destination)
        dst_client = src_client if same_host else steps.run(
            "connect target", dst_session.docker, target_host.destination)
        measure = steps.run("measure", lambda: measure_source(
            src_client, src_host.postgres_image, src, new.name), f"{src.name}@{src.host}")
        reporter.log(f"source: database {human_bytes(measure.database_bytes)}, filestore "
                     f"{measure.filestore_files} files, {human_bytes(measure.filestore_bytes)}")
        if not same_host:
            steps.run("bootstrap target", lambda: bootstrap_host(dst_session, secret_store,
                                                                 reporter, audit))
        steps.run("check target", lambda: _check_target(dst_session, dst_client, new, measure,
                                                        reporter), target_host.name)
        steps.run("image", lambda: ensure_image(dst_client, target_host.name, image, reporter),
                  image)
        secret_store.set(sk.service_db_password_key(target_host.name, spec.name), db_password)
        # From here on, what exists on the target under this name is ours (check target
        # proved it held nothing), so a failure removes it all.
        created = True
        steps.run("database", lambda: create_role_and_database(dst_client, new, db_password),
                  f"role {names.role_name(spec.name)}, database {new.database}")

        def take_snapshot():
            nonlocal snapshot, touched_source
            touched_source = True
            snapshot = SourceSnapshot(src_client, src.database, app)
            snapshot.open()
            return snapshot

        snap = steps.run("snapshot", take_snapshot, f"source {src.name} keeps running")
        new.snapshot_at = snap.taken_at
        steps.run("volume", lambda: dst_client.api.create_volume(
            names.volume_name(spec.name), labels=service_labels(new)),
            names.volume_name(spec.name))
        conf = odoo.render_conf(new.database, new.config)
        # Created now (not started) so the fresh volume takes the image's ownership of
        # /var/lib/odoo before any file goes in. Its labels carry the lineage.
        cid = steps.run("container", lambda: create_server_container(
            dst_client, new, db_password, conf, reporter, fresh=True),
            names.container_name(spec.name))
        new.container_id = cid
        steps.run("copy database", lambda: _copy_database(
            src_client, dst_client, src.database, new, snap.snapshot_id, same_host,
            measure.database_bytes, app, reporter),
            f"pg_dump -Fc | pg_restore ({human_bytes(measure.database_bytes)})")
        snapshot.close()
        snapshot = None
        fs = steps.run("copy filestore", lambda: _copy_filestore(
            src_client, dst_client, src_host, target_host, src, new, same_host,
            measure, reporter),
            f"{measure.filestore_files} files, {human_bytes(measure.filestore_bytes)}")
        verification = steps.run("verify", lambda: _verify(dst_client, new, snap.counts, fs))
        new.steps[-1].detail = verification.summary()
        reporter.log("verification: " + verification.summary())
        steps.run("reset identity", lambda: _reset_identity(dst_client, new),
                  "database.uuid, database.secret, web.base.url")
        if neutralize:
            steps.run("neutralize", lambda: neutralize_database(
                dst_session, secret_store, new, reporter, running=False),
                neutralize_reason(src.type) or "asked")
        steps.run("start", lambda: dst_client.api.start(cid))
        steps.run("health", lambda: wait_healthy(dst_session, new, reporter))
    except BaseException as exc:
        if snapshot is not None:
            snapshot.close()
        log = getattr(exc, "log", "") or ""
        steps.fail(str(exc) or type(exc).__name__, log)
        if touched_source:
            _end_source(src_session, app, reporter)
        if created:
            if _cleanup_target(dst_session, new, inventory, reporter):
                secret_store.delete(sk.service_db_password_key(target_host.name, spec.name))
        if audit:
            audit.append(target_host.name, "service.copy", spec.name, "failed", str(exc)[:200])
        if isinstance(exc, StepFailed | OperationCancelled):
            raise
        if isinstance(exc, OpsError | RemoteError | OSError | EOFError | docker.errors.APIError):
            raise StepFailed(steps.current or "copy", str(exc) or type(exc).__name__,
                             log) from exc
        raise
    new.status = ServiceStatus.RUNNING
    new.failed_step = None
    new.last_error = None
    new.updated_at = utcnow()
    inventory.upsert_service(new)
    reporter.log(f"copied {src.name}@{src.host} to {new.name}@{new.host} "
                 f"in {time.monotonic() - started:.1f} s")
    if audit:
        audit.append(target_host.name, "service.copy", spec.name, "ok",
                     f"from {src.name}@{src.host}")
    return new


def _check_target(session, client, new: Service, measure: SourceMeasure,
                  reporter: Reporter) -> None:
    refuse_leftovers(client, new.host, new.name, "the copy")
    health = check_host(session)
    if health.disk_free is None:
        reporter.warning(f"cannot read the free disk of {new.host}: "
                         f"{health.error or 'unknown'}")
        return
    if health.disk_free < measure.disk_needed:
        raise OpsError(f"{new.host} has {human_bytes(health.disk_free)} free; the copy needs "
                       f"about {human_bytes(measure.disk_needed)} (database "
                       f"{human_bytes(measure.database_bytes)}, filestore "
                       f"{human_bytes(measure.filestore_bytes)})")


def _end_source(session, app: str, reporter: Reporter) -> None:
    try:
        n = end_source_sessions(session.docker(), app)
        if n:
            reporter.log(f"ended {n} session(s) of the copy on the source's server")
    except Exception as exc:  # noqa: BLE001 - the original failure matters more
        reporter.warning(f"could not end the copy's sessions on the source ({exc}); "
                         "they end when their dump does")


def _cleanup_target(session, service: Service, inventory, reporter: Reporter) -> bool:
    """Remove what the copy created on the target; True when nothing is left."""
    try:
        removed = remove_service_objects(session.docker(), service.name)
        reporter.log("cleaned up: " + (", ".join(removed) or "nothing to remove"))
        service.steps.append(Step("cleanup", "done", utcnow(), utcnow(), ", ".join(removed)))
        ok = True
    except Exception as exc:  # noqa: BLE001 - a dead host: say so, keep the record Failed
        msg = (f"cleanup could not finish ({exc}); `havsh service rm {service.name}` "
               "will retry it")
        reporter.warning(msg)
        service.steps.append(Step("cleanup", "failed", utcnow(), utcnow(), msg))
        service.last_error = (service.last_error or "") + "\n" + msg
        ok = False
    try:
        inventory.upsert_service(service)
    except Exception:  # noqa: BLE001
        pass
    return ok


def _restore_argv(service: Service) -> list[str]:
    return ["-U", "postgres", "-d", service.database, "--no-owner", "--no-acl",
            f"--role={names.role_name(service.name)}", "--single-transaction"]


def _dump_argv(snapshot_id: str, database: str, level: int) -> list[str]:
    return ["-Fc", f"-Z{level}", "-U", "postgres", f"--lock-wait-timeout={LOCK_WAIT}",
            f"--snapshot={snapshot_id}", database]


class _Watch:
    """A thread that ticks every ``interval`` (progress polls) and acts once on a cancel."""

    def __init__(self, reporter: Reporter, tick: Callable[[], None],
                 on_cancel: Callable[[], None], interval: float = 1.0) -> None:
        self._stop = threading.Event()
        self._reporter = reporter
        self._tick = tick
        self._on_cancel = on_cancel
        self._interval = interval
        self.cancelled = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="copy-watch")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self._reporter.cancelled():
                self.cancelled = True
                try:
                    self._on_cancel()
                except Exception:  # noqa: BLE001 - the stream's own end reports it
                    pass
                return
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - progress is best effort
                pass

    def check(self) -> None:
        if self.cancelled:
            raise OperationCancelled("cancelled by the user")

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


_STREAM_ERRORS = (OSError, EOFError, RemoteError, StreamError)


def _drain_quietly(proc) -> None:
    try:
        proc.drain()
    except Exception:  # noqa: BLE001 - the writing side reports the failure
        pass


def _stream(reader, writer, *, step: str, what: str, lines: _StderrLines, watch: _Watch,
            on_bytes: Callable[[int], None]) -> int:
    """Copy ``reader``'s stdout into ``writer``'s stdin, chunk by chunk, until the reader
    ends; then close the writer's stdin and wait for its output to end. The writer's output
    (its heartbeat, its errors) is read by a thread meanwhile, so a chatty writer can never
    fill its channel and stall the stream. Returns the bytes moved."""
    drainer = threading.Thread(target=_drain_quietly, args=(writer,), daemon=True,
                               name="copy-drain")
    drainer.start()
    sent = 0
    try:
        for chunk in reader.stdout_chunks():
            writer.write_all(chunk)
            sent += len(chunk)
            on_bytes(sent)
            watch.check()
        watch.check()
        writer.close_stdin()
    except _STREAM_ERRORS as exc:
        watch.check()
        drainer.join(5)
        err = lines.text()
        why = f"{what} stopped: {err.splitlines()[-1]}" if err else (
            f"the stream broke: {exc or type(exc).__name__}")
        raise StepFailed(step, why, err) from exc
    drainer.join()
    return sent


def _copy_database(src_client, dst_client, src_db: str, new: Service, snapshot_id: str,
                   same_host: bool, total: int, app: str, reporter: Reporter) -> int:
    """Stream the snapshot's dump into pg_restore; returns the bytes of the dump moved
    (across hosts) or restored (within one)."""
    probe = _SizeProbe(dst_client, new.database, app)
    try:
        return _copy_database_with(probe, src_client, dst_client, src_db, new, snapshot_id,
                                   same_host, total, app, reporter)
    finally:
        probe.close()


def _copy_database_with(probe: _SizeProbe, src_client, dst_client, src_db: str, new: Service,
                        snapshot_id: str, same_host: bool, total: int, app: str,
                        reporter: Reporter) -> int:
    base = probe.size()
    progress = Progress(reporter.progress, "database", max(total - base, 1))
    env = {"PGAPPNAME": app}
    sent = [0]

    def tick() -> None:
        note = f"{human_bytes(sent[0])} of dump sent" if not same_host else None
        progress.set(probe.size() - base, note)

    def cancel() -> None:
        end_source_sessions(src_client, app)

    if same_host:
        # Everything stays on the host: one shell pipes pg_dump into pg_restore.
        lines = _StderrLines()
        argv = ["bash", "-c", _LOCAL_DB_SCRIPT, "copy", snapshot_id, src_db, new.database,
                names.role_name(new.name), str(DUMP_COMPRESS_SAME_HOST), LOCK_WAIT]
        proc = exec_process(src_client, names.POSTGRES_CONTAINER, argv, user="postgres",
                            environment=env, on_stderr=lines)
        try:
            with _Watch(reporter, tick, cancel) as watch:
                try:
                    proc.drain()
                    code = proc.exit_code(timeout=60)
                except _STREAM_ERRORS as exc:
                    watch.check()
                    raise StepFailed("copy database", f"the stream broke: {exc}",
                                     lines.text()) from exc
                watch.check()
        finally:
            proc.close()
        if code != 0:
            err = lines.text()
            m = re.search(r"havsh-rc (\d+) (\d+)", err)
            if not m:
                raise StepFailed("copy database", f"pg_dump | pg_restore exited {code}", err)
            dump_rc, restore_rc = int(m.group(1)), int(m.group(2))
            # pg_restore dying first breaks pg_dump's pipe: then pg_restore is the cause.
            what = "pg_dump" if dump_rc not in (0, 141) and (
                restore_rc == 0 or "Broken pipe" not in err) else "pg_restore"
            full = disk_full(err)
            raise StepFailed("copy database", f"{what} failed (pg_dump exit {dump_rc}, "
                             f"pg_restore exit {restore_rc})" + (f": {full}" if full else ""),
                             err)
        progress.set(total - base)
        progress.finish()
        return total
    src_lines, dst_lines = _StderrLines(), _StderrLines()
    src = exec_process(src_client, names.POSTGRES_CONTAINER,
                       ["bash", "-c", _DUMP_SCRIPT, "dump",
                        *_dump_argv(snapshot_id, src_db, DUMP_COMPRESS_CROSS_HOST)],
                       user="postgres", environment=env, on_stderr=src_lines)
    try:
        dst = exec_process(dst_client, names.POSTGRES_CONTAINER,
                           ["bash", "-c", _RESTORE_SCRIPT, "restore", *_restore_argv(new)],
                           stdin=True, user="postgres", environment=env, on_stderr=dst_lines)
    except BaseException:
        src.close()
        raise
    try:
        with _Watch(reporter, tick, cancel) as watch:
            _stream(src, dst, step="copy database", what="pg_restore", lines=dst_lines,
                    watch=watch, on_bytes=lambda n: sent.__setitem__(0, n))
            src_code = src.exit_code()
            dst_code = dst.exit_code(timeout=600)
    finally:
        src.close()
        dst.close()
    if src_code != 0:
        raise StepFailed("copy database", f"pg_dump exited {src_code}", src_lines.text())
    if dst_code != 0:
        err = dst_lines.text()
        raise StepFailed("copy database", f"pg_restore exited {dst_code}"
                         + (f": {disk_full(err)}" if disk_full(err) else ""), err)
    progress.set(total - base, f"{human_bytes(sent[0])} of dump sent")
    progress.finish()
    reporter.log(f"database: {human_bytes(sent[0])} of compressed dump crossed to {new.host}")
    return sent[0]


def _copy_filestore(src_client, dst_client, src_host, dst_host, src: Service, new: Service,
                    same_host: bool, measure: SourceMeasure, reporter: Reporter
                    ) -> tuple[tuple[int, int], tuple[int, int]]:
    src_vol, dst_vol = names.volume_name(src.name), names.volume_name(new.name)
    # tar counts archive bytes: a header and padding per file come on top of the files'.
    total = measure.filestore_bytes + 1024 * measure.filestore_files
    progress = Progress(reporter.progress, "filestore", max(total, 1))
    if same_host:
        lines = _StderrLines(lambda n: progress.set(n))
        h = start_helper(
            src_client, src_host.postgres_image,
            ["sh", "-c", _LOCAL_SCRIPT, "sh", src.database, new.database],
            binds={src_vol: {"bind": "/src", "mode": "ro"},
                   dst_vol: {"bind": "/dst", "mode": "rw"}},
            service=new.name, purpose="copy-filestore", on_stderr=lines,
        )
        try:
            with _Watch(reporter, lambda: None, h.remove, interval=0.5) as watch:
                try:
                    h.drain()
                    code = h.wait()
                except (*_STREAM_ERRORS, docker.errors.APIError) as exc:
                    watch.check()
                    raise StepFailed("copy filestore", f"the stream broke: {exc}",
                                     lines.text()) from exc
                watch.check()
        finally:
            h.remove()
        err = lines.text()
        if code != 0:
            raise StepFailed("copy filestore", disk_full(err) or f"tar exited {code}", err)
        progress.set(total)
        progress.finish()
        return _parse_fs(err, "src "), _parse_fs(err, "dst ")
    mode = "gzip" if measure.compressible else "raw"
    reporter.log(f"filestore: {'gzip -1' if mode == 'gzip' else 'no compression'} on the way "
                 f"(an 8 MB sample gzips to {measure.sample_packed} of "
                 f"{measure.sample_bytes} bytes)")
    read_lines = _StderrLines(lambda n: progress.set(n))
    write_lines = _StderrLines()
    reader = start_helper(
        src_client, src_host.postgres_image, ["sh", "-c", _READ_SCRIPT, "sh", src.database, mode],
        binds={src_vol: {"bind": "/src", "mode": "ro"}}, service=new.name, purpose="copy-read",
        on_stderr=read_lines,
    )
    try:
        writer = start_helper(
            dst_client, dst_host.postgres_image,
            ["sh", "-c", _WRITE_SCRIPT, "sh", new.database, mode],
            binds={dst_vol: {"bind": "/dst", "mode": "rw"}}, service=new.name, stdin=True,
            purpose="copy-write", on_stderr=write_lines,
        )
    except BaseException:
        reader.remove()
        raise
    sent = [0]
    try:
        with _Watch(reporter, lambda: None, reader.remove, interval=0.5) as watch:
            _stream(reader, writer, step="copy filestore", what=f"tar on {dst_host.name}",
                    lines=write_lines, watch=watch,
                    on_bytes=lambda n: sent.__setitem__(0, n))
            rc_r, rc_w = reader.wait(), writer.wait()
    finally:
        reader.remove()
        writer.remove()
    if rc_r != 0:
        raise StepFailed("copy filestore", f"tar on {src_host.name} exited {rc_r}",
                         read_lines.text())
    if rc_w != 0:
        err = write_lines.text()
        raise StepFailed("copy filestore", f"{disk_full(err) or 'tar'} on {dst_host.name} "
                         f"(exit {rc_w})", err)
    progress.set(total, f"{human_bytes(sent[0])} sent")
    progress.finish()
    return _parse_fs(read_lines.text()), _parse_fs(write_lines.text())


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
    if not v.ok or sf < 0:
        raise StepFailed("verify", "the copy differs from the source snapshot: " + v.summary())
    return v


def _reset_identity(dst_client, new: Service) -> None:
    """New uuid, secret and base URL, as Odoo's own duplicate does (issue 5: only these
    three; everything else, database.create_date included, stays the source's)."""
    sql = """
UPDATE ir_config_parameter SET value = :'uuid' WHERE key = 'database.uuid';
UPDATE ir_config_parameter SET value = :'secret' WHERE key = 'database.secret';
UPDATE ir_config_parameter SET value = :'url' WHERE key = 'web.base.url';
"""
    psql(dst_client, sql, database=new.database, variables={
        "uuid": str(pyuuid.uuid1()), "secret": str(pyuuid.uuid4()), "url": copy_url(new),
    })


def copy_url(new: Service) -> str:
    """The copy's base URL: its public URL when it has one, else its address on the
    havsh network (what Odoo would compute behind no proxy)."""
    return new.url or f"http://{names.container_name(new.name)}:{odoo.HTTP_PORT}"
