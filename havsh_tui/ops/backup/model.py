"""Backups: destinations, policies, records and cron expressions. Plain data, no I/O."""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from havsh_tui.ops.hosts import OpsError

#: The default directory of backups on a host; a service's go in DEFAULT_HOST_ROOT/<service>/.
DEFAULT_HOST_ROOT = "/var/lib/havsh/backups"
#: How many scheduled backups a new Live service keeps on its host.
DEFAULT_KEEP = 7
FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "none")
KINDS = ("manual", "scheduled", "safety")
#: zip: dump.sql, what Odoo's database manager restores. custom: dump.dump (pg_dump -Fc),
#: which only havsh restores.
FORMATS = ("zip", "custom")
#: Of the dump (filestore files are always stored: mostly compressed formats already).
#: store: none; deflate: zlib's fastest level (the dump's zip entry about 3x smaller, but
#: deflate runs at ~70 MB/s on one core, so a backup takes ~1.6x as long as pg_dump + tar);
#: max: level 9 (the smallest, several times slower still).
COMPRESSIONS = ("store", "deflate", "max")
#: The default: a backup as fast as the raw tools (issue 8: within 1.3x of pg_dump + tar).
DEFAULT_COMPRESSION = "store"

_ID_RE = re.compile(r"(?P<service>[a-z][a-z0-9-]*)_(?P<stamp>\d{8}T\d{6}Z)"
                    r"_(?P<kind>manual|scheduled|safety)_(?P<rand>[0-9a-f]{6})")
_PATH_RE = re.compile(r"/[A-Za-z0-9._/+@=-]*")


class BackupError(OpsError):
    """A backup or restore refused or failed; the message says why and what was left."""

    kind = "backup_error"


# -- destinations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DestinationSpec:
    """Where backups go: ``host``, ``host:PATH``, ``local:PATH`` or ``HOST:PATH``.

    ``host`` is the service's own host (``host`` alone means DEFAULT_HOST_ROOT there).
    ``local`` is the operator's machine. Any other name is another host of the inventory.
    Backups of a service go in ``PATH/<service>/`` on a host, ``PATH/<host>/<service>/``
    locally. An ``s3://`` destination would be one more kind (see destinations.Destination).
    """

    kind: str  # "host", "local" or "remote"
    path: str
    host: str | None = None  # for "remote": the other host

    @classmethod
    def parse(cls, text: str) -> DestinationSpec:
        text = (text or "").strip()
        if not text:
            raise BackupError("a destination is empty (host, host:PATH, local:PATH or HOST:PATH)")
        if text.startswith("s3://"):
            raise BackupError("S3 destinations are not available yet (host, host:PATH, "
                              "local:PATH or HOST:PATH)")
        if text == "host":
            return cls("host", DEFAULT_HOST_ROOT)
        head, sep, path = text.partition(":")
        if not sep:
            raise BackupError(f"destination {text!r}: say host, host:PATH, local:PATH or HOST:PATH")
        if head == "local":
            return cls("local", _clean_path(path, text, local=True))
        if head == "host":
            return cls("host", _clean_path(path, text))
        from havsh_tui.core.names import InvalidName, validate_host_name

        try:
            validate_host_name(head)
        except InvalidName as exc:
            raise BackupError(f"destination {text!r}: {exc}") from None
        return cls("remote", _clean_path(path, text), host=head)

    def __str__(self) -> str:
        if self.kind == "host":
            return "host" if self.path == DEFAULT_HOST_ROOT else f"host:{self.path}"
        if self.kind == "local":
            return f"local:{self.path}"
        return f"{self.host}:{self.path}"

    def on_host(self, service_host: str) -> str | None:
        """The host whose directory this is, for a service on ``service_host`` (None: local)."""
        if self.kind == "host":
            return service_host
        if self.kind == "remote":
            return self.host
        return None


def _clean_path(path: str, text: str, *, local: bool = False) -> str:
    import os

    path = path.strip()
    if not path:
        raise BackupError(f"destination {text!r} has no path")
    if local:
        return os.path.abspath(os.path.expanduser(path))
    if not _PATH_RE.fullmatch(path) or "/../" in path + "/" or path == "/":
        raise BackupError(f"destination {text!r}: the path must be absolute, other than /, and "
                          "use only letters, digits and ._/+@=-")
    return posixpath.normpath(path)


@dataclass
class DestinationConfig:
    """One destination of one service, with its schedule."""

    name: str
    spec: str
    primary: bool = False
    frequency: str = "none"
    cron: str | None = None
    keep: int = 0
    compression: str = DEFAULT_COMPRESSION
    format: str = "zip"

    @property
    def parsed(self) -> DestinationSpec:
        return DestinationSpec.parse(self.spec)

    @property
    def scheduled(self) -> bool:
        return self.frequency != "none" or bool(self.cron)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DestinationConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass
class BackupPolicy:
    """The destinations of a service; exactly one is primary (safety backups go there)."""

    destinations: list[DestinationConfig] = field(default_factory=list)

    @property
    def primary(self) -> DestinationConfig:
        for d in self.destinations:
            if d.primary:
                return d
        if self.destinations:
            return self.destinations[0]
        return DestinationConfig(name="host", spec="host", primary=True)

    def get(self, name: str) -> DestinationConfig | None:
        for d in self.destinations:
            if d.name == name or d.spec == name:
                return d
        return None

    def effective(self) -> list[DestinationConfig]:
        """The configured destinations, or the implicit primary ``host`` when there are none."""
        return list(self.destinations) or [self.primary]

    def to_dict(self) -> dict:
        return {"destinations": [d.to_dict() for d in self.destinations]}

    @classmethod
    def from_dict(cls, d: dict | None) -> BackupPolicy:
        dests = [DestinationConfig.from_dict(x) for x in (d or {}).get("destinations", [])]
        return cls(dests)


def policy_key(host: str, service: str) -> str:
    """Where a service's policy lives in the inventory's values table."""
    return f"backup/{host}/{service}"


# -- records ----------------------------------------------------------------------------------


@dataclass
class BackupRecord:
    """One backup, as its sidecar JSON describes it, and where it is."""

    id: str
    service: str
    host: str
    kind: str
    format: str
    compression: str
    created_at: datetime
    size: int
    sha256: str
    database: str = ""
    odoo_version: str = ""
    pg_version: str = ""
    service_type: str = ""
    files: int = 0
    filestore_bytes: int = 0
    dump_bytes: int = 0
    #: The destination's name (or spec) and kind, and the file: a path on ``location_host``,
    #: or a local path when ``location_host`` is None.
    destination: str = ""
    destination_kind: str = ""
    location_host: str | None = None
    path: str = ""

    @property
    def format_label(self) -> str:
        return "odoo-zip" if self.format == "zip" else "havsh-custom (havsh only)"

    @property
    def where(self) -> str:
        return f"{self.location_host}:{self.path}" if self.location_host else self.path

    def to_dict(self) -> dict:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["format_label"] = self.format_label
        d["where"] = self.where
        return d

    @classmethod
    def from_sidecar(cls, data: dict, *, destination: str, destination_kind: str,
                     location_host: str | None, path: str) -> BackupRecord:
        if data.get("havsh_backup") != 1 or not parse_backup_id(str(data.get("id", ""))):
            raise ValueError("not a havsh backup sidecar")
        created = datetime.strptime(str(data["created_at"]), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC)
        return cls(
            id=str(data["id"]), service=str(data["service"]), host=str(data.get("host", "")),
            kind=str(data["kind"]), format=str(data.get("format", "zip")),
            compression=str(data.get("compression", "deflate")), created_at=created,
            size=int(data["size"]), sha256=str(data["sha256"]),
            database=str(data.get("database", "")), odoo_version=str(data.get("odoo_version", "")),
            pg_version=str(data.get("pg_version", "")),
            service_type=str(data.get("service_type", "")), files=int(data.get("files", 0)),
            filestore_bytes=int(data.get("filestore_bytes", 0)),
            dump_bytes=int(data.get("dump_bytes", 0)), destination=destination,
            destination_kind=destination_kind, location_host=location_host, path=path,
        )

    def sidecar(self) -> dict:
        """The sidecar JSON, as backup.sh writes it."""
        return {
            "havsh_backup": 1, "id": self.id, "file": f"{self.id}.zip", "service": self.service,
            "host": self.host, "service_type": self.service_type, "database": self.database,
            "kind": self.kind, "format": self.format, "compression": self.compression,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "size": self.size,
            "sha256": self.sha256, "odoo_version": self.odoo_version,
            "pg_version": self.pg_version, "files": self.files,
            "filestore_bytes": self.filestore_bytes, "dump_bytes": self.dump_bytes,
        }


def parse_backup_id(text: str) -> dict[str, str] | None:
    """The parts of a backup id ``<service>_<UTC stamp>_<kind>_<6 hex>``, or None."""
    m = _ID_RE.fullmatch(text)
    return m.groupdict() if m else None


# -- cron -------------------------------------------------------------------------------------

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))
_MONTHS = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_ELEM_RE = re.compile(r"(?:\*|(\d+)(?:-(\d+))?)(?:/(\d+))?")


def normalize_cron(expr: str) -> str:
    """A five-field cron expression with numbers only (names and @macros translated), or
    BackupError saying which field is wrong. Times are UTC on the host."""
    text = (expr or "").strip().lower()
    text = _MACROS.get(text, text)
    fields = text.split()
    if len(fields) != 5:
        raise BackupError(f"cron expression {expr!r} needs 5 fields "
                          "(minute hour day-of-month month day-of-week)")
    out = []
    for (label, lo, hi), f in zip(_FIELDS, fields, strict=True):
        names = _MONTHS if label == "month" else _DAYS if label == "day of week" else {}
        for name, num in names.items():
            f = re.sub(rf"\b{name}\b", str(num), f)
        for elem in f.split(","):
            m = _ELEM_RE.fullmatch(elem)
            if not m:
                raise BackupError(f"cron expression {expr!r}: bad {label} {elem!r}")
            a, b, step = m.group(1), m.group(2), m.group(3)
            for v in (a, b):
                if v is not None and not lo <= int(v) <= hi:
                    raise BackupError(f"cron expression {expr!r}: {label} {v} is outside "
                                      f"{lo}-{hi}")
            if a is not None and b is not None and int(a) > int(b):
                raise BackupError(f"cron expression {expr!r}: {label} range {a}-{b} is reversed")
            if step is not None and int(step) < 1:
                raise BackupError(f"cron expression {expr!r}: {label} step must be at least 1")
        out.append(f)
    return " ".join(out)


def _field_matches(f: str, value: int, lo: int, hi: int) -> bool:
    for elem in f.split(","):
        m = _ELEM_RE.fullmatch(elem)
        if not m:
            continue
        a, b, step = m.group(1), m.group(2), m.group(3)
        st = int(step) if step else 1
        if a is None:
            first, last = lo, hi
        elif b is not None:
            first, last = int(a), int(b)
        else:
            first, last = int(a), (hi if step else int(a))
        if first <= value <= last and (value - first) % st == 0:
            return True
    return False


def cron_matches(expr: str, when: datetime) -> bool:
    """Whether a (normalized) cron expression fires at ``when`` (UTC), as the scheduler's
    awk does: day of month and day of week are ORed when both are restricted."""
    mi, ho, dm, mo, dw = expr.split()
    dow = (when.weekday() + 1) % 7
    ok_dm = _field_matches(dm, when.day, 1, 31)
    ok_dw = _field_matches(dw, dow, 0, 7) or (dow == 0 and _field_matches(dw, 7, 0, 7))
    if dm.startswith("*") or dw.startswith("*"):
        day = ok_dm and ok_dw
    else:
        day = ok_dm or ok_dw
    return (_field_matches(mi, when.minute, 0, 59) and _field_matches(ho, when.hour, 0, 23)
            and _field_matches(mo, when.month, 1, 12) and day)


def cron_for(frequency: str, service: str) -> str | None:
    """The cron expression of a named frequency. The minute comes from the service's name, so
    a host's backups do not all start at once (UTC: daily 02:MM, weekly Sunday 03:MM,
    monthly on the 1st at 04:MM)."""
    if frequency not in FREQUENCIES:
        raise BackupError(f"frequency {frequency!r} is not one of {', '.join(FREQUENCIES)}")
    minute = int(hashlib.sha1(service.encode(), usedforsecurity=False).hexdigest(), 16) % 60
    return {
        "hourly": f"{minute} * * * *",
        "daily": f"{minute} 2 * * *",
        "weekly": f"{minute} 3 * * 0",
        "monthly": f"{minute} 4 1 * *",
        "none": None,
    }[frequency]


def schedule_of(dest: DestinationConfig, service: str) -> str | None:
    """The cron expression a destination's schedule runs on (None: not scheduled)."""
    if dest.cron:
        return normalize_cron(dest.cron)
    return cron_for(dest.frequency, service)
