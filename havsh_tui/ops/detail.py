"""What the service detail screen shows from the host: its containers, the size of its data
volume and database, its odoo.conf, and CPU and memory samples from docker stats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import docker
import docker.errors

from havsh_tui.core import names
from havsh_tui.core.model import Service
from havsh_tui.ops import odoo
from havsh_tui.ops.copy import database_size
from havsh_tui.ops.hosts import OpsError
from havsh_tui.remote.ssh import RemoteError

# A constant script; the directory is "$1".
_DU_SCRIPT = 'du -sb "$1" 2>/dev/null | cut -f1'


@dataclass
class ContainerInfo:
    name: str
    role: str
    state: str
    status: str
    image: str
    id: str
    created: datetime | None = None


@dataclass
class ServiceFacts:
    """One look at a service on its host. A fact that could not be read is None, and
    ``errors`` says why, so one failure (a stopped PostgreSQL) does not hide the rest."""

    containers: list[ContainerInfo] = field(default_factory=list)
    volume_bytes: int | None = None
    database_bytes: int | None = None
    conf: str | None = None
    started_at: str | None = None
    errors: list[str] = field(default_factory=list)


def _exec_text(client: docker.DockerClient, container: str, argv: list[str]) -> tuple[int, str]:
    ex = client.api.exec_create(container, argv)
    out = client.api.exec_start(ex["Id"]).decode(errors="replace")
    return int(client.api.exec_inspect(ex["Id"]).get("ExitCode") or 0), out


def volume_size(client: docker.DockerClient, service: Service, helper_image: str) -> int:
    """Bytes used in the service's data volume: ``du`` in its running container, or in a
    short-lived read-only helper container when the service is stopped."""
    cname = names.container_name(service.name)
    try:
        running = client.api.inspect_container(cname)["State"].get("Running")
    except docker.errors.NotFound:
        running = False
    if running:
        code, out = _exec_text(client, cname, ["sh", "-c", _DU_SCRIPT, "sh", odoo.DATA_DIR])
        if code == 0 and out.strip().isdigit():
            return int(out.strip())
    from havsh_tui.ops.streams import start_helper

    h = start_helper(
        client, helper_image, ["sh", "-c", _DU_SCRIPT, "sh", "/src"],
        binds={names.volume_name(service.name): {"bind": "/src", "mode": "ro"}},
        service=service.name, purpose="measure",
    )
    try:
        out = h.drain().decode(errors="replace")
        h.wait(120)
    finally:
        h.remove()
    if not out.strip().isdigit():
        raise OpsError(f"could not measure {names.volume_name(service.name)}: {out[-200:]!r}")
    return int(out.strip())


def service_facts(session, service: Service) -> ServiceFacts:
    """Containers, volume and database sizes and odoo.conf of one service (a few calls)."""
    from havsh_tui.ops.config import read_conf

    facts = ServiceFacts()
    client = session.docker()
    rows = client.api.containers(
        all=True, filters={"label": f"{names.LABEL_SERVICE}={service.name}"}
    )
    for row in sorted(rows, key=lambda r: r["Names"][0]):
        labels = row.get("Labels") or {}
        created = row.get("Created")
        facts.containers.append(ContainerInfo(
            name=row["Names"][0].lstrip("/"),
            role=labels.get(names.LABEL_ROLE, ""),
            state=row.get("State", ""),
            status=row.get("Status", ""),
            image=row.get("Image", ""),
            id=row["Id"][:12],
            created=datetime.fromtimestamp(created).astimezone() if created else None,
        ))
    cname = names.container_name(service.name)
    try:
        facts.started_at = client.api.inspect_container(cname)["State"].get("StartedAt")
        facts.conf = read_conf(client, cname)
    except (docker.errors.APIError, OpsError) as exc:
        facts.errors.append(f"odoo.conf: {exc}")
    try:
        facts.database_bytes = database_size(client, service.database)
    except (OpsError, docker.errors.APIError, RemoteError, ValueError) as exc:
        facts.errors.append(f"database size: {exc}")
    try:
        facts.volume_bytes = volume_size(client, service, session.host.postgres_image)
    except (OpsError, docker.errors.APIError, RemoteError, ValueError) as exc:
        facts.errors.append(f"volume size: {exc}")
    return facts


@dataclass
class StatsSample:
    """One docker stats reading: CPU as a percentage of one core, memory in bytes."""

    cpu_percent: float
    memory_bytes: int
    memory_limit: int | None


def cpu_percent(stats: dict) -> float:
    """The CPU use between the two samples of one stats reading, as docker stats computes it
    (100 % = one core busy)."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage", 0)
    pre_total = (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0)
    pre_system = pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [1])
    cpu_delta, system_delta = total - pre_total, system - pre_system
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    return cpu_delta / system_delta * cpus * 100.0


def memory_bytes(stats: dict) -> int:
    """Memory in use without the page cache, as docker stats shows it (cgroup v1 and v2)."""
    mem = stats.get("memory_stats") or {}
    usage = int(mem.get("usage") or 0)
    detail = mem.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
    return max(usage - int(cache or 0), 0)


def container_stats(client: docker.DockerClient, container: str) -> StatsSample | None:
    """One stats reading of a container; None when it is not running."""
    try:
        stats = client.api.stats(container, stream=False)
    except docker.errors.NotFound:
        return None
    if not (stats.get("memory_stats") or {}).get("usage") and not stats.get("pids_stats"):
        # A stopped container answers with empty stats.
        return None
    limit = (stats.get("memory_stats") or {}).get("limit")
    return StatsSample(cpu_percent(stats), memory_bytes(stats), int(limit) if limit else None)
