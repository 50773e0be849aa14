"""The local inventory: hosts, a cache of services, operations history, in TinyDB.

A small repository: callers get the dataclasses of :mod:`havsh_tui.core.model`, never raw
TinyDB documents.

Durability and concurrency
--------------------------
* Every write replaces the whole file atomically (temp file in the same directory, fsync,
  ``os.replace``, fsync of the directory), so a ``kill -9`` at any moment leaves either the
  old or the new file, never a torn one. The file is 0600 whatever the umask.
* Every mutation is one transaction: take the inter-process lock (``filelock`` on
  ``inventory.lock``, plus a thread lock so threads of one process queue instead of
  polling), read the file afresh, change it in memory, write it once, release. Nothing is
  cached between calls, so two havsh processes writing at once lose nothing.
* Reads take no lock: thanks to the atomic rename a reader sees one whole version.

Corrupt files
-------------
A file that does not parse is never overwritten. It is renamed to
``inventory.json.corrupt-<UTC time>`` and a fresh, empty inventory takes its place.
When this happens while *opening* (the usual case: the app starts on a damaged file),
nothing is raised: the inventory opens empty and :attr:`Inventory.recovered_from` holds the
path of the kept-aside file, so the UI can say so loudly and the CLI can warn, instead of
refusing to start (hosts can be re-added and services rebuilt by ``havsh rescan``; the
kept-aside file lets the user recover the rest by hand). When it happens in the middle of a
session (someone damaged the file while havsh ran), the same setting-aside happens and the
call in flight raises :class:`InventoryCorrupt`, because acting on a silently emptied
inventory could mislead that call.

Schema versions
---------------
The file carries ``SCHEMA_VERSION``. An older file is backed up
(``inventory.json.bak-v<N>-<UTC time>``) and upgraded through :data:`MIGRATIONS`
(version N to N+1) when opened. A newer file (written by a newer havsh) is left untouched and
refused with :class:`SchemaTooNew`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import filelock
from tinydb import Query, TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from .model import Host, Service, utcnow
from .names import validate_host_name, validate_slug
from .paths import AppPaths
from .serde import (
    DecodeError,
    atomic_write_bytes,
    atomic_write_json,
    convert_field,
    decoder,
    dumps_json,
    encode_value,
    field_names,
    from_dict,
    gc_paused,
    remove_stale_temp_files,
    tighten_mode,
    to_dict,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: Operations kept in the history; older ones are dropped as new ones are recorded, so the
#: file (read whole on every paint) cannot grow without bound.
OPERATIONS_KEEP = 2000

#: Seconds to wait for another havsh process to finish its write.
DEFAULT_LOCK_TIMEOUT = 15.0

HOSTS = "hosts"
SERVICES = "services"
OPERATIONS = "operations"
VALUES = "values"
META = "meta"
_META_DOC_ID = "1"


# ---------------------------------------------------------------------------------------------
# Errors


class InventoryError(Exception):
    """Base of every inventory error; the message is meant for the user."""


class NotFound(InventoryError, LookupError):
    """No such host, service or operation."""


class AlreadyExists(InventoryError):
    """A host, or a service on that host, with that name is already in the inventory."""


class Ambiguous(InventoryError):
    """A service name given without a host matches services on several hosts."""

    def __init__(self, message: str, hosts: list[str]) -> None:
        super().__init__(message)
        self.hosts = hosts


class HostInUse(InventoryError):
    """A host cannot be removed while services on it are still in the inventory."""


class InventoryCorrupt(InventoryError):
    """The file did not parse; it was renamed to :attr:`moved_to` and a fresh one started."""

    def __init__(self, message: str, path: Path, moved_to: Path) -> None:
        super().__init__(message)
        self.path = path
        self.moved_to = moved_to


class SchemaTooNew(InventoryError):
    """The file was written by a newer havsh; it is left untouched."""


class InventoryLocked(InventoryError):
    """Another havsh process held the inventory lock for longer than the timeout."""


class _Unparseable(Exception):
    """Internal: the file's bytes are not an inventory; the message says why."""


# ---------------------------------------------------------------------------------------------
# Migrations


def _migrate_0_to_1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 is a file with no schema stamp (a bare TinyDB file): add the tables."""
    for table in (HOSTS, SERVICES, OPERATIONS, VALUES):
        data.setdefault(table, {})
    # TinyDB's default table was never used by havsh; drop it only when it is empty.
    if data.get("_default") == {}:
        del data["_default"]
    return data


#: Upgrade steps: ``MIGRATIONS[n]`` turns a version-n file (the whole dict of tables) into a
#: version n+1 file. The runner stamps the new version after each step.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: _migrate_0_to_1,
}


# ---------------------------------------------------------------------------------------------
# Storage


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    """The file's tables, ``None`` when it is missing or empty, else :class:`_Unparseable`."""
    # stdlib json: measured fast enough (see test_load_time_1000_services_on_50_hosts).
    if raw is None or not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Unparseable(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _Unparseable(f"the top level is a {type(data).__name__}, not an object")
    for name, table in data.items():
        if not isinstance(table, dict):
            raise _Unparseable(f"table {name!r} is a {type(table).__name__}, not an object")
        for doc_id, doc in table.items():
            if not isinstance(doc, dict) or not doc_id.isdigit():
                raise _Unparseable(f"table {name!r} has a malformed document {doc_id!r}")
    return data


class AtomicJSONStorage(Storage):
    """A TinyDB storage over one JSON file, for one transaction.

    It reads the file once, on first use, and serves later reads from memory; writes stay in
    memory until :meth:`flush` (or :meth:`close`) replaces the file atomically. So a whole
    read-modify-write, however many TinyDB calls it takes, sees one version of the file and
    produces one new version. Make a new instance per transaction: an instance never notices
    writes by others.
    """

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o600) -> None:
        self.path = Path(path)
        self.mode = mode
        self._raw: bytes | None = None
        self._data: dict[str, Any] | None = None
        self._loaded = False
        self.dirty = False

    def read(self) -> dict[str, Any] | None:
        if not self._loaded:
            self._raw = _read_bytes(self.path)
            self._data = _parse(self._raw)
            self._loaded = True
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data
        self._loaded = True
        self.dirty = True

    def reload(self) -> None:
        """Forget what was read (and any unflushed change); the next read goes to disk."""
        self._raw = self._data = None
        self._loaded = False
        self.dirty = False

    def flush(self) -> None:
        """Write the data to disk, atomically, if it differs from what was read.

        TinyDB writes after every update even when nothing changed (a poll setting the
        status it already had); comparing bytes costs far less than the two fsyncs saved.
        """
        if self.dirty and self._data is not None:
            payload = dumps_json(self._data)
            if payload != self._raw:
                atomic_write_bytes(self.path, payload, mode=self.mode)
                self._raw = payload
            self.dirty = False

    def close(self) -> None:
        self.flush()


def _version_of(data: dict[str, Any] | None) -> int | None:
    """The file's schema version; None for a missing or empty file, 0 for an unstamped one."""
    if data is None:
        return None
    meta = data.get(META, {}).get(_META_DOC_ID)
    if meta is None:
        return 0
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise _Unparseable(f"schema_version is {version!r}, not a version number")
    return version


def _stamp(data: dict[str, Any], version: int) -> None:
    data.setdefault(META, {})[_META_DOC_ID] = {"schema_version": version}


def _fresh(version: int) -> dict[str, Any]:
    data: dict[str, Any] = {HOSTS: {}, SERVICES: {}, OPERATIONS: {}, VALUES: {}}
    _stamp(data, version)
    return data


# ---------------------------------------------------------------------------------------------
# The repository


@dataclass(frozen=True)
class InventorySnapshot:
    """Hosts and services from a single read of the file (what the dashboard paints)."""

    hosts: list[Host]
    services: list[Service]


@dataclass(frozen=True)
class ServicesDiff:
    """What :meth:`Inventory.replace_services_for_host` changed, by service name."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


_SERVICE_FIELDS = field_names(Service)

_q = Query()


class Inventory:
    """The inventory file at ``path``; see the module docstring for the guarantees.

    Opening it creates the file if missing, sets a corrupt file aside (see
    :attr:`recovered_from`), and upgrades an old schema. Instances are safe to share between
    threads and to use from several processes at once.
    """

    def __init__(
        self,
        path: Path,
        *,
        lock_path: Path | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.lock_path = Path(lock_path) if lock_path else self.path.with_suffix(".lock")
        self.lock_timeout = lock_timeout
        #: Set when a corrupt file was renamed aside: the path it was renamed to.
        self.recovered_from: Path | None = None
        #: Set when an old schema was upgraded: the backup of the file as it was.
        self.migrated_backup: Path | None = None
        #: Documents the last read could not decode, as "table #id: reason" (they are skipped).
        self.problems: list[str] = []
        self._thread_lock = threading.RLock()
        self._file_lock = filelock.FileLock(
            str(self.lock_path), timeout=lock_timeout, mode=0o600, poll_interval=0.005
        )
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._open()

    def __repr__(self) -> str:
        return f"Inventory({str(self.path)!r})"

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held open between calls; kept so callers can treat it as a resource."""

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            # An inner transaction would write its own copy, then the outer one would write
            # over it: refuse instead of losing a write.
            raise RuntimeError("nested inventory transaction")
        with self._thread_lock:
            try:
                self._file_lock.acquire()
            except filelock.Timeout:
                raise InventoryLocked(
                    f"{self.path}: another havsh process has held {self.lock_path} for more "
                    f"than {self.lock_timeout:g} s"
                ) from None
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                self._file_lock.release()

    def _set_aside(self, reason: str) -> Path:
        """Rename the corrupt file aside and start a fresh one. Call with the lock held."""
        target = self.path.with_name(f"{self.path.name}.corrupt-{_utc_stamp()}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{_utc_stamp()}-{n}")
            n += 1
        os.rename(self.path, target)
        atomic_write_json(self.path, _fresh(SCHEMA_VERSION))
        self.recovered_from = target
        log.warning("inventory %s was corrupt (%s); kept aside as %s", self.path, reason, target)
        return target

    def _corrupt_error(self, reason: str, moved_to: Path) -> InventoryCorrupt:
        return InventoryCorrupt(
            f"the inventory {self.path} was corrupt ({reason}); it was kept aside as "
            f"{moved_to} and a new, empty inventory was started",
            self.path,
            moved_to,
        )

    def _migrate(self, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Back the file up, then run MIGRATIONS from ``version`` up to SCHEMA_VERSION."""
        backup = self.path.with_name(f"{self.path.name}.bak-v{version}-{_utc_stamp()}")
        atomic_write_bytes(backup, self.path.read_bytes())
        self.migrated_backup = backup
        data = copy.deepcopy(data)
        for step in range(version, SCHEMA_VERSION):
            migrate = MIGRATIONS.get(step)
            if migrate is None:
                raise InventoryError(
                    f"{self.path}: no migration from schema {step} to {step + 1}; "
                    f"the file is unchanged (backup: {backup})"
                )
            data = migrate(data)
            _stamp(data, step + 1)
        log.info("inventory %s upgraded from schema %d to %d", self.path, version, SCHEMA_VERSION)
        return data

    def _prepare(self, storage: AtomicJSONStorage, *, at_open: bool) -> None:
        """Under the lock: load, set aside if corrupt, create if missing, migrate if old."""
        try:
            data = storage.read()
            version = _version_of(data)
        except _Unparseable as exc:
            moved = self._set_aside(str(exc))
            if not at_open:
                raise self._corrupt_error(str(exc), moved) from None
            storage.reload()  # the fresh file _set_aside wrote
            data = storage.read()
            version = _version_of(data)
        if data is None or version is None:
            storage.write(_fresh(SCHEMA_VERSION))
        elif version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} has schema version {version}, newer than this havsh "
                f"understands ({SCHEMA_VERSION}); upgrade havsh. The file was not changed."
            )
        elif version < SCHEMA_VERSION:
            storage.write(self._migrate(data, version))

    def _open(self) -> None:
        with self._locked():
            # Writers hold this lock while their temp file exists, so any temp file seen
            # now belongs to a writer that was killed.
            remove_stale_temp_files(self.path)
            storage = AtomicJSONStorage(self.path)
            self._prepare(storage, at_open=True)
            storage.flush()
            tighten_mode(self.path)

    @contextmanager
    def _write(self) -> Iterator[TinyDB]:
        """One read-modify-write: lock, fresh read, changes in memory, one atomic write."""
        with self._locked():
            db = TinyDB(str(self.path), storage=AtomicJSONStorage)
            storage = cast(AtomicJSONStorage, db.storage)
            self._prepare(storage, at_open=False)
            yield db
            storage.flush()

    def _snapshot_db(self) -> TinyDB:
        return TinyDB(str(self.path), storage=AtomicJSONStorage)

    @contextmanager
    def _read(self) -> Iterator[TinyDB]:
        """A consistent snapshot for reading, without the lock."""
        with gc_paused():
            db = self._snapshot_db()
            try:
                version = _version_of(cast(AtomicJSONStorage, db.storage).read())
                stale = version is not None and version != SCHEMA_VERSION
            except _Unparseable:
                stale = True
            if stale:
                # Damaged, swapped for an old file, or upgraded by a newer havsh under our
                # feet. The write path re-checks under the lock (another process may have
                # dealt with it already), then sets aside and raises InventoryCorrupt,
                # migrates, or raises SchemaTooNew.
                with self._write():
                    pass
                db = self._snapshot_db()
            yield db

    # -- decoding ----------------------------------------------------------------------------

    def _decode_all(self, db: TinyDB, *tables: tuple[str, type[Any]]) -> list[list[Any]]:
        """Every document of each ``(table, class)``; undecodable ones skipped and reported.

        This reads the documents straight from the transaction's storage rather than through
        ``Table.all()``: that would copy each one into a TinyDB Document first, a tenth of
        the time of a 1,000-service paint, only for from_dict to copy it again.
        """
        data = cast(AtomicJSONStorage, db.storage).read() or {}
        problems: list[str] = []
        results = []
        for name, cls in tables:
            decode = decoder(cls)
            out = []
            for doc_id, doc in data.get(name, {}).items():
                try:
                    out.append(decode(doc))
                except (DecodeError, TypeError) as exc:
                    problems.append(f"{name} #{doc_id}: {exc}")
            results.append(out)
        for p in problems:
            log.warning("inventory %s: skipped %s", self.path, p)
        self.problems = problems
        return results

    def _decode_one(self, table: Table, doc: Mapping[str, Any], cls: type[Any]) -> Any:
        try:
            return from_dict(cls, dict(doc))
        except (DecodeError, TypeError) as exc:
            doc_id = getattr(doc, "doc_id", "?")
            raise InventoryError(
                f"{self.path}: {table.name} #{doc_id} is unreadable: {exc}"
            ) from None

    # -- meta --------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version of the file on disk (SCHEMA_VERSION once opened)."""
        with self._read() as db:
            data = cast(AtomicJSONStorage, db.storage).read()
        return _version_of(data) or SCHEMA_VERSION

    def snapshot(self) -> InventorySnapshot:
        """All hosts and services from one read of the file, sorted like list_*."""
        with self._read() as db:
            hosts, services = self._decode_all(db, (HOSTS, Host), (SERVICES, Service))
        hosts.sort(key=lambda h: h.name)
        services.sort(key=lambda s: (s.host, s.name))
        return InventorySnapshot(hosts, services)

    # -- hosts -------------------------------------------------------------------------------

    def list_hosts(self) -> list[Host]:
        """All hosts, by name."""
        with self._read() as db:
            (hosts,) = self._decode_all(db, (HOSTS, Host))
        return sorted(hosts, key=lambda h: h.name)

    def get_host(self, name: str) -> Host:
        """The host called ``name``; raises :class:`NotFound`."""
        with self._read() as db:
            table = db.table(HOSTS)
            doc = table.get(_q.name == name)
            if doc is None:
                raise NotFound(f"host {name!r} is not in the inventory")
            return cast(Host, self._decode_one(table, cast(Mapping[str, Any], doc), Host))

    def add_host(self, host: Host) -> None:
        """Add a host; raises :class:`AlreadyExists` if the name is taken."""
        validate_host_name(host.name)
        with self._write() as db:
            table = db.table(HOSTS)
            if table.contains(_q.name == host.name):
                raise AlreadyExists(f"host {host.name!r} is already in the inventory")
            table.insert(to_dict(host))

    def update_host(self, host: Host) -> None:
        """Replace the stored host of the same name; raises :class:`NotFound`.

        Fields this havsh does not know (written by a newer one) are kept.
        """
        with self._write() as db:
            table = db.table(HOSTS)
            if not table.update(to_dict(host), _q.name == host.name):
                raise NotFound(f"host {host.name!r} is not in the inventory")

    def remove_host(self, name: str, *, cascade: bool = False) -> None:
        """Remove a host; raises :class:`NotFound`, or :class:`HostInUse` if it has services.

        With ``cascade`` its services go too (the containers on the host are not touched;
        this is the inventory only). Operations history is kept.
        """
        with self._write() as db:
            hosts = db.table(HOSTS)
            if not hosts.contains(_q.name == name):
                raise NotFound(f"host {name!r} is not in the inventory")
            services = db.table(SERVICES)
            on_host = services.search(_q.host == name)
            if on_host and not cascade:
                names = ", ".join(sorted(str(d.get("name")) for d in on_host))
                raise HostInUse(f"host {name!r} still has services in the inventory: {names}")
            if on_host:
                services.remove(_q.host == name)
            hosts.remove(_q.name == name)

    # -- services ----------------------------------------------------------------------------

    def list_services(self, host: str | None = None) -> list[Service]:
        """All services (or those on ``host``), by host then name."""
        with self._read() as db:
            (services,) = self._decode_all(db, (SERVICES, Service))
        if host is not None:
            services = [s for s in services if s.host == host]
        return sorted(services, key=lambda s: (s.host, s.name))

    def find_services(self, name: str) -> list[Service]:
        """Every service called ``name``, on any host, by host."""
        with self._read() as db:
            table = db.table(SERVICES)
            docs = table.search(_q.name == name)
            found = [cast(Service, self._decode_one(table, d, Service)) for d in docs]
        return sorted(found, key=lambda s: s.host)

    def get_service(self, name: str, host: str | None = None) -> Service:
        """The service ``name`` (on ``host``, or on whichever host has it).

        Raises :class:`NotFound`, or :class:`Ambiguous` when ``host`` is None and several
        hosts have a service of that name.
        """
        if host is not None:
            with self._read() as db:
                table = db.table(SERVICES)
                doc = table.get((_q.host == host) & (_q.name == name))
                if doc is None:
                    raise NotFound(f"service {name!r} on host {host!r} is not in the inventory")
                return cast(Service, self._decode_one(table, cast(Mapping[str, Any], doc), Service))
        found = self.find_services(name)
        if not found:
            raise NotFound(f"service {name!r} is not in the inventory")
        if len(found) > 1:
            hosts = [s.host for s in found]
            raise Ambiguous(
                f"service {name!r} exists on several hosts ({', '.join(hosts)}); say which host",
                hosts,
            )
        return found[0]

    @staticmethod
    def _check_service(service: Service) -> None:
        validate_slug(service.name)
        validate_host_name(service.host)

    @staticmethod
    def _require_host(db: TinyDB, host: str) -> None:
        if not db.table(HOSTS).contains(_q.name == host):
            raise NotFound(f"host {host!r} is not in the inventory; add it first")

    def add_service(self, service: Service) -> None:
        """Add a service; raises :class:`AlreadyExists` if (host, name) is taken and
        :class:`NotFound` if its host is not in the inventory."""
        self._check_service(service)
        with self._write() as db:
            self._require_host(db, service.host)
            table = db.table(SERVICES)
            if table.contains((_q.host == service.host) & (_q.name == service.name)):
                raise AlreadyExists(
                    f"service {service.name!r} on host {service.host!r} is already in the inventory"
                )
            table.insert(to_dict(service))

    def upsert_service(self, service: Service) -> None:
        """Add the service, or replace the stored one with the same (host, name).

        Fields this havsh does not know are kept. Its host must be in the inventory.
        """
        self._check_service(service)
        with self._write() as db:
            self._require_host(db, service.host)
            table = db.table(SERVICES)
            cond = (_q.host == service.host) & (_q.name == service.name)
            if not table.update(to_dict(service), cond):
                table.insert(to_dict(service))

    @staticmethod
    def _encode_changes(name: str, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = set(changes) - _SERVICE_FIELDS
        if unknown:
            raise TypeError(f"Service has no field(s) {', '.join(sorted(unknown))}")
        changes.setdefault("updated_at", utcnow())
        encoded = {}
        for key, value in changes.items():
            encoded[key] = encode_value(value)
            try:
                # Strict: a typo in a status must fail, not fall back to UNKNOWN.
                convert_field(Service, key, encoded[key], strict=True)
            except DecodeError as exc:
                raise InventoryError(f"cannot set {key} of service {name!r}: {exc}") from None
        return encoded

    def update_service(self, host: str, name: str, **changes: Any) -> Service:
        """Change some fields of one service in one locked read-modify-write; returns it.

        ``updated_at`` is set to now unless given. ``host`` and ``name`` cannot change
        (the signature takes them; a renamed service is a new one). Raises
        :class:`NotFound`, ``TypeError`` for a field that does not exist, and
        :class:`InventoryError` for a value of the wrong type.
        """
        return self.update_services(host, {name: changes})[0]

    def update_services(
        self,
        host: str,
        changes: Mapping[str, Mapping[str, Any]],
        *,
        missing_ok: bool = False,
    ) -> list[Service]:
        """:meth:`update_service` for several services of one host in a single write.

        ``changes`` maps service names to their field changes (what one poll of a host
        finds). An unknown name raises :class:`NotFound`, or is skipped with
        ``missing_ok``. Returns the updated services, in the order given.
        """
        encoded = {name: self._encode_changes(name, dict(c)) for name, c in changes.items()}
        updated = []
        with self._write() as db:
            table = db.table(SERVICES)
            docs = {str(d.get("name")): d for d in table.search(_q.host == host)}
            for name, fields in encoded.items():
                doc = docs.get(name)
                if doc is None:
                    if missing_ok:
                        continue
                    raise NotFound(f"service {name!r} on host {host!r} is not in the inventory")
                merged = {**cast(dict[str, Any], doc), **fields}
                updated.append(cast(Service, self._decode_one(table, merged, Service)))
                table.update(fields, doc_ids=[doc.doc_id])
        return updated

    def remove_service(self, host: str, name: str) -> None:
        """Forget one service (the inventory only); raises :class:`NotFound`."""
        with self._write() as db:
            if not db.table(SERVICES).remove((_q.host == host) & (_q.name == name)):
                raise NotFound(f"service {name!r} on host {host!r} is not in the inventory")

    def replace_services_for_host(self, host: str, services: list[Service]) -> ServicesDiff:
        """Make ``services`` the whole list for ``host`` in one write (what a rescan finds).

        Services of the same name keep the fields this havsh does not know. Every service
        must be on ``host``, and names must be unique.
        """
        seen: set[str] = set()
        for s in services:
            if s.host != host:
                raise ValueError(f"service {s.name!r} is on host {s.host!r}, not {host!r}")
            if s.name in seen:
                raise ValueError(f"service {s.name!r} is listed twice for host {host!r}")
            seen.add(s.name)
            self._check_service(s)
        with self._write() as db:
            self._require_host(db, host)
            table = db.table(SERVICES)
            old = {str(d.get("name")): dict(d) for d in table.search(_q.host == host)}
            table.remove(_q.host == host)
            table.insert_multiple([{**old.get(s.name, {}), **to_dict(s)} for s in services])
        return ServicesDiff(
            added=sorted(seen - old.keys()),
            removed=sorted(old.keys() - seen),
            kept=sorted(seen & old.keys()),
        )

    # -- operations history ------------------------------------------------------------------

    def record_operation(self, op: Mapping[str, Any]) -> int:
        """Store one operation (a dict: kind, host, service, state, steps, ...); returns its id.

        ``started_at`` is set to now if missing. Datetimes and enums are stored as ISO
        strings and values, and come back from :meth:`list_operations` as such.
        """
        doc = encode_value(dict(op))
        doc.setdefault("started_at", utcnow().isoformat())
        with self._write() as db:
            table = db.table(OPERATIONS)
            op_id = table.insert(doc)
            extra = len(table) - OPERATIONS_KEEP
            if extra > 0:
                oldest = sorted(d.doc_id for d in table.all())[:extra]
                table.remove(doc_ids=oldest)
        return op_id

    def update_operation(self, op_id: int, **changes: Any) -> None:
        """Change fields of a recorded operation; raises :class:`NotFound`."""
        encoded = {k: encode_value(v) for k, v in changes.items()}
        with self._write() as db:
            table = db.table(OPERATIONS)
            if not table.contains(doc_id=op_id):
                raise NotFound(f"operation {op_id} is not in the inventory")
            table.update(encoded, doc_ids=[op_id])

    def get_operation(self, op_id: int) -> dict[str, Any]:
        """One operation with its ``id``; raises :class:`NotFound`."""
        with self._read() as db:
            doc = db.table(OPERATIONS).get(doc_id=op_id)
        if doc is None:
            raise NotFound(f"operation {op_id} is not in the inventory")
        return {**cast(dict[str, Any], doc), "id": op_id}

    def list_operations(
        self, service: str | None = None, host: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The latest operations first, each with its ``id``, filtered by service and host."""
        with self._read() as db:
            docs = db.table(OPERATIONS).all()
        out = []
        for d in sorted(docs, key=lambda d: d.doc_id, reverse=True):
            if service is not None and d.get("service") != service:
                continue
            if host is not None and d.get("host") != host:
                continue
            out.append({**d, "id": d.doc_id})
            if len(out) >= limit:
                break
        return out

    # -- small values (UI state, GitHub connection names; never secrets) ---------------------

    def get_value(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key``, or ``default``."""
        with self._read() as db:
            doc = db.table(VALUES).get(_q.key == key)
        return default if doc is None else cast(dict[str, Any], doc).get("value", default)

    def set_value(self, key: str, value: Any) -> None:
        """Store a JSON-able value under ``key`` (no secrets: see core.secrets)."""
        encoded = encode_value(value)
        with self._write() as db:
            db.table(VALUES).upsert({"key": key, "value": encoded}, _q.key == key)

    def update_value(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Replace the value under ``key`` by ``fn(current or default)`` in one locked write.

        What two processes changing one list (say the connected repositories) need: neither
        loses the other's change. ``fn`` gets a deep copy; returns what was stored.
        """
        with self._write() as db:
            table = db.table(VALUES)
            doc = table.get(_q.key == key)
            current = default if doc is None else cast(dict[str, Any], doc).get("value", default)
            encoded = encode_value(fn(copy.deepcopy(current)))
            table.upsert({"key": key, "value": encoded}, _q.key == key)
        return encoded

    def delete_value(self, key: str) -> None:
        """Remove ``key`` (no error if absent)."""
        with self._write() as db:
            db.table(VALUES).remove(_q.key == key)


def open_inventory(paths: AppPaths, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Inventory:
    """Open (creating if needed) the inventory of ``paths``; check ``recovered_from`` after."""
    paths.ensure()
    return Inventory(paths.inventory, lock_path=paths.lock, lock_timeout=lock_timeout)


__all__ = [
    "MIGRATIONS",
    "OPERATIONS_KEEP",
    "SCHEMA_VERSION",
    "AlreadyExists",
    "Ambiguous",
    "AtomicJSONStorage",
    "HostInUse",
    "Inventory",
    "InventoryCorrupt",
    "InventoryError",
    "InventoryLocked",
    "InventorySnapshot",
    "NotFound",
    "SchemaTooNew",
    "ServicesDiff",
    "open_inventory",
]
