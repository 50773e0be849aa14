"""Rebuild the service inventory from the hosts' labels, and the live-status poll.

The labels on the hosts are the truth (DESIGN.md): a lost laptop loses nothing, and two
sysadmins with two laptops see the same services. One docker call per host, filtered on our
labels, serves both the rescan and the dashboard's live status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceStatus, ServiceType, utcnow
from havsh_tui.ops.odoo import version_from_image
from havsh_tui.remote.ssh import RemoteError

_STATE = {
    "running": ServiceStatus.RUNNING,
    "restarting": ServiceStatus.RUNNING,
    "paused": ServiceStatus.STOPPED,
    "exited": ServiceStatus.STOPPED,
    "created": ServiceStatus.STOPPED,
    "dead": ServiceStatus.FAILED,
    "removing": ServiceStatus.DESTROYING,
}


@dataclass
class ObservedService:
    """What one container's labels and state say about a service."""

    name: str
    type: ServiceType
    odoo_version: str
    image: str
    status: ServiceStatus
    container_id: str
    source: str | None
    source_host: str | None
    pr: str | None
    created: datetime | None


def observe_host(client) -> dict[str, ObservedService]:
    """The managed Odoo containers of one host, by service slug: a single API call."""
    rows = client.api.containers(
        all=True,
        filters={"label": [f"{names.LABEL_MANAGED}=1", f"{names.LABEL_ROLE}=odoo"]},
    )
    return observed_from_rows(rows)


def _is_odoo(row: dict) -> bool:
    labels = row.get("Labels") or {}
    return labels.get(names.LABEL_MANAGED) == "1" and labels.get(names.LABEL_ROLE) == "odoo"


def observed_from_rows(rows: list[dict]) -> dict[str, ObservedService]:
    """The services in rows of a containers list (the Docker API's /containers/json)."""
    found: dict[str, ObservedService] = {}
    for row in rows:
        labels = row.get("Labels") or {}
        slug = labels.get(names.LABEL_SERVICE)
        if not slug:
            continue
        try:
            stype = ServiceType(labels.get(names.LABEL_TYPE, ""))
        except ValueError:
            continue
        created = row.get("Created")
        found[slug] = ObservedService(
            name=slug,
            type=stype,
            odoo_version=labels.get(names.LABEL_ODOO) or version_from_image(row["Image"]) or "?",
            image=row.get("Image", ""),
            status=_STATE.get(row.get("State", ""), ServiceStatus.UNKNOWN),
            container_id=row["Id"],
            source=labels.get(names.LABEL_SOURCE),
            source_host=labels.get("sh.hav.source-host"),
            pr=labels.get(names.LABEL_PR),
            created=datetime.fromtimestamp(created).astimezone() if created else None,
        )
    return found


def statuses_from_rows(rows: list[dict]) -> dict[str, ServiceStatus]:
    """Each service's status from the rows of any list of our containers (the rows of
    other roles are left out, as observe_host's label filter does)."""
    out: dict[str, ServiceStatus] = {}
    for row in rows:
        if not _is_odoo(row):
            continue
        labels = row["Labels"]
        slug = labels.get(names.LABEL_SERVICE)
        if not slug:
            continue
        try:
            ServiceType(labels.get(names.LABEL_TYPE, ""))
        except ValueError:
            continue
        out[slug] = _STATE.get(row.get("State", ""), ServiceStatus.UNKNOWN)
    return out


def poll_statuses(session) -> dict[str, ServiceStatus]:
    """Live status of every service on a host, for the dashboard. No call of its own when
    ``check_host`` just listed the host's containers (the poller calls both in turn);
    else one docker call."""
    from havsh_tui.ops.hosts import take_polled_rows

    rows = take_polled_rows(session)
    if rows is not None:
        return statuses_from_rows(rows)
    return {slug: o.status for slug, o in observe_host(session.docker()).items()}


@dataclass
class RescanResult:
    host: str
    reachable: bool = True
    error: str | None = None
    adopted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: Services whose URL or custom hostnames were set again from the host's proxy.
    urls: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


#: Statuses an operation in progress (maybe in another process) owns: rescan leaves them be.
_BUSY = {ServiceStatus.CREATING, ServiceStatus.DESTROYING, ServiceStatus.UPDATING}


def rescan_host(inventory, pool, host, audit=None) -> RescanResult:
    """Adopt labelled services the inventory lacks, refresh known ones, mark the gone Missing."""
    result = RescanResult(host=host.name)
    try:
        client = pool.session(host).docker()
        observed = observe_host(client)
    except (RemoteError, OSError) as exc:
        result.reachable = False
        result.error = str(exc)
        return result
    except Exception as exc:  # noqa: BLE001 - a host that errors must not stop the others
        result.reachable = False
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    known = {s.name: s for s in inventory.list_services(host=host.name)}
    for slug, o in observed.items():
        s = known.get(slug)
        if s is None:
            inventory.upsert_service(Service(
                name=slug, host=host.name, type=o.type, odoo_version=o.odoo_version,
                image=o.image, status=o.status, database=names.database_name(slug),
                source=o.source, source_host=o.source_host, pr=o.pr,
                created_at=(o.created or utcnow()),
                container_id=o.container_id,
            ))
            result.adopted.append(slug)
            continue
        if s.status in _BUSY:
            result.unchanged.append(slug)
            continue
        changes = {}
        if s.status is not o.status and not (s.status is ServiceStatus.FAILED
                                             and o.status is ServiceStatus.STOPPED):
            changes["status"] = o.status
        if s.container_id != o.container_id:
            changes["container_id"] = o.container_id
        if s.image != o.image and o.image:
            changes["image"] = o.image
        if changes:
            inventory.update_service(host.name, slug, **changes)
            result.updated.append(slug)
        else:
            result.unchanged.append(slug)
    for slug, s in known.items():
        if slug in observed or s.status in _BUSY or s.status in (
            ServiceStatus.FAILED, ServiceStatus.DESTROYED, ServiceStatus.MISSING
        ):
            continue
        inventory.update_service(host.name, slug, status=ServiceStatus.MISSING)
        result.missing.append(slug)
    result.urls = _refresh_urls(inventory, client, host.name, list(observed))
    if audit is not None and (result.adopted or result.missing):
        audit.append(host.name, "rescan", host.name, "ok",
                     f"adopted {result.adopted}, missing {result.missing}")
    return result


def _refresh_urls(inventory, client, host_name: str, slugs: list[str]) -> list[str]:
    """URLs and custom hostnames from the host's proxy (routes.json is their truth), so an
    adopted service, or one whose hostnames another havsh changed, shows the right ones.
    No proxy, or one that can't be read: the inventory's URLs stay as they are."""
    from havsh_tui.ops import proxy

    try:
        state = proxy.read_state(client)
    except Exception:  # noqa: BLE001 - no proxy (ProxyMissing) or it did not answer
        return []
    if state is None:
        return []
    return proxy.refresh_urls(inventory, host_name, state, slugs)


def rescan_all(inventory, pool, audit=None, max_workers: int = 16) -> list[RescanResult]:
    from concurrent.futures import ThreadPoolExecutor

    hosts = inventory.list_hosts()
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(hosts))) as ex:
        return list(ex.map(lambda h: rescan_host(inventory, pool, h, audit), hosts))
