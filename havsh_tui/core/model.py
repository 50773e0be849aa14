"""The domain model: service types and their rules, statuses, hosts and services."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class ServiceType(enum.StrEnum):
    LIVE = "live"
    TEST = "test"
    DEMO = "demo"
    COPY = "copy"
    PREVIEW = "preview"

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def rules(self) -> TypeRules:
        return TYPE_RULES[self]

    @classmethod
    def parse(cls, text: str) -> ServiceType:
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown service type {text!r} (one of: {choices})") from None


@dataclass(frozen=True)
class TypeRules:
    """What the product enforces for one service type (shared/DESIGN.md)."""

    description: str
    #: Backups are on by default for a new service of this type.
    backups_default: bool
    #: Demo data is loaded at creation unless the user says otherwise (None: not created by init).
    demo_default: bool | None
    #: The user may change the demo choice in the wizard.
    demo_choice: bool
    #: Deletion, and being the target of a copy or restore, need the name typed.
    needs_typed_name: bool
    #: Neutralize is forced (previews) rather than offered.
    neutralize_forced: bool
    #: The wizard can create this type directly (copies and previews come from elsewhere).
    wizard_creatable: bool


TYPE_RULES: dict[ServiceType, TypeRules] = {
    ServiceType.LIVE: TypeRules(
        "Production: real data, used every day",
        backups_default=True,
        demo_default=False,
        demo_choice=False,
        needs_typed_name=True,
        neutralize_forced=False,
        wizard_creatable=True,
    ),
    ServiceType.TEST: TypeRules(
        "A sandbox for modules, updates and training; not for real data",
        backups_default=False,
        demo_default=False,
        demo_choice=True,
        needs_typed_name=False,
        neutralize_forced=False,
        wizard_creatable=True,
    ),
    ServiceType.DEMO: TypeRules(
        "A showcase with sample data",
        backups_default=False,
        demo_default=True,
        demo_choice=False,
        needs_typed_name=False,
        neutralize_forced=False,
        wizard_creatable=True,
    ),
    ServiceType.COPY: TypeRules(
        "A clone of another service: the whole database and filestore",
        backups_default=False,
        demo_default=None,
        demo_choice=False,
        needs_typed_name=False,
        neutralize_forced=False,
        wizard_creatable=False,
    ),
    ServiceType.PREVIEW: TypeRules(
        "A neutralized copy for a GitHub pull request",
        backups_default=False,
        demo_default=None,
        demo_choice=False,
        needs_typed_name=False,
        neutralize_forced=True,
        wizard_creatable=False,
    ),
}


def neutralize_default(source_type: ServiceType) -> bool:
    """A copy offers neutralize, on by default when its source is Live."""
    return source_type is ServiceType.LIVE


class ServiceStatus(enum.StrEnum):
    CREATING = "creating"
    RUNNING = "running"
    STOPPED = "stopped"
    UPDATING = "updating"
    FAILED = "failed"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    #: The inventory knows it but its container is gone from the host.
    MISSING = "missing"
    #: Not known yet (the host has not answered since the app started).
    UNKNOWN = "unknown"

    def display(self, service_type: ServiceType | None = None) -> str:
        if self is ServiceStatus.RUNNING and service_type is ServiceType.PREVIEW:
            return "Active"
        return self.value.capitalize()


@dataclass
class Host:
    """How to reach one Docker host over SSH, and its per-host settings."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    identity_file: str | None = None
    jump: str | None = None
    #: Use this ssh_config alias (address then holds the alias).
    ssh_alias: str | None = None
    postgres_image: str = "postgres:16"
    odoo_image: str = "odoo:17.0"
    proxy_image: str = "caddy:2"
    base_domain: str | None = None
    tls: str = "acme"
    #: The address havsh-proxy publishes 80 and 443 on (an IP address of the host).
    proxy_bind: str = "0.0.0.0"
    created_at: datetime = field(default_factory=utcnow)

    @property
    def destination(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"{user}{self.address}{port}"


@dataclass
class Step:
    """One recorded step of a multi-step operation."""

    name: str
    state: str = "pending"  # pending, running, done, failed, skipped
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str = ""


@dataclass
class Service:
    """One Odoo service on one host. Its key is (host, name)."""

    name: str
    host: str
    type: ServiceType
    odoo_version: str
    image: str
    status: ServiceStatus = ServiceStatus.UNKNOWN
    database: str = ""
    url: str = ""
    #: Custom hostnames (a cache of the host proxy's routes.json; the first is primary).
    hostnames: list[str] = field(default_factory=list)
    #: For copies and previews: the source's slug (label sh.hav.source).
    source: str | None = None
    #: For copies and previews: the source's host, and when its snapshot was taken.
    source_host: str | None = None
    snapshot_at: datetime | None = None
    #: For previews: "<owner>/<repo>#<n>".
    pr: str | None = None
    #: For previews: the PR head commit it runs (or is being brought to), the PR's title and
    #: its head branch, as GitHub gave them. The key of a preview is ``pr``, never the branch.
    head_sha: str | None = None
    pr_title: str | None = None
    pr_branch: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    config: dict[str, str] = field(default_factory=dict)
    demo: bool = False
    language: str = "en_US"
    country: str | None = None
    container_id: str | None = None
    last_error: str | None = None
    failed_step: str | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.host, self.name)

    @property
    def status_label(self) -> str:
        return self.status.display(self.type)
