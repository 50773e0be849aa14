"""Backup policies (destinations and schedules per service) and the scheduler on each host.

The policies live in the inventory (values ``backup/<host>/<service>``). What runs them is a
container on the host, ``havsh-backups``, made from the host's own PostgreSQL image: it needs
pg_dump of the server's version and a POSIX shell, nothing else (no Python, no cron, no
zip: see scripts/lib.sh). havsh writes its schedule file and recreates it whenever a schedule
of that host changes; it then runs with no havsh anywhere (restart policy unless-stopped,
docker's init as PID 1 to reap the jobs). It mounts:
  * the engine's volumes directory read-only (each filestore is read from there, so the
    scheduler never holds a service's volume: deleting a service is never blocked by it);
  * each host directory that a schedule writes to.
Only directories on the service's own host can be scheduled: the laptop may be closed, and
the scheduler holds no keys to other hosts.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field

import docker.errors

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceType
from havsh_tui.ops.backup.jobs import postgres_image, scripts_digest, scripts_tar
from havsh_tui.ops.backup.model import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    DEFAULT_KEEP,
    FORMATS,
    FREQUENCIES,
    BackupError,
    BackupPolicy,
    DestinationConfig,
    DestinationSpec,
    normalize_cron,
    policy_key,
    schedule_of,
)
from havsh_tui.ops.reporter import NullReporter, Reporter

SCHEDULER_CONTAINER = "havsh-backups"
SCHEDULER_ROLE = "backup-scheduler"
LABEL_CONFIG = "sh.hav.config"


# -- policies ---------------------------------------------------------------------------------
def get_policy(inventory, service: Service) -> BackupPolicy:
    return BackupPolicy.from_dict(inventory.get_value(policy_key(service.host, service.name)))


def save_policy(inventory, service: Service, policy: BackupPolicy) -> None:
    if policy.destinations:
        chosen = next((d for d in policy.destinations if d.primary), policy.destinations[0])
        for d in policy.destinations:
            d.primary = d is chosen
    names_seen: set[str] = set()
    for d in policy.destinations:
        if d.name in names_seen:
            raise BackupError(f"{service.name} has two destinations named {d.name!r}")
        names_seen.add(d.name)
    inventory.set_value(policy_key(service.host, service.name), policy.to_dict())


def add_destination(inventory, service: Service, spec: str, *, name: str | None = None,
                    primary: bool = False, compression: str = DEFAULT_COMPRESSION,
                    format: str = "zip") -> DestinationConfig:
    """Add a destination to a service (``host``, ``host:PATH``, ``local:PATH``, ``HOST:PATH``).

    The first one added next to the implicit ``host`` keeps ``host`` too, as primary unless
    ``primary`` is given."""
    parsed = DestinationSpec.parse(spec)
    if parsed.kind == "remote":
        inventory.get_host(parsed.host)
        if parsed.host == service.host:
            parsed = DestinationSpec("host", parsed.path)
    if compression not in COMPRESSIONS:
        raise BackupError(f"compression must be one of {', '.join(COMPRESSIONS)}")
    if format not in FORMATS:
        raise BackupError(f"format must be one of {', '.join(FORMATS)}")
    canonical = str(parsed)
    policy = get_policy(inventory, service)
    if not policy.destinations and canonical != "host":
        policy.destinations.append(DestinationConfig(name="host", spec="host", primary=True))
    new_name = name or canonical
    if policy.get(new_name) or any(d.spec == canonical for d in policy.destinations):
        raise BackupError(f"{service.name} has the destination {new_name!r} already")
    dest = DestinationConfig(name=new_name, spec=canonical,
                             primary=primary or not policy.destinations,
                             compression=compression, format=format)
    if dest.primary:
        for d in policy.destinations:
            d.primary = False
    policy.destinations.append(dest)
    save_policy(inventory, service, policy)
    return dest


def set_primary(inventory, service: Service, name: str) -> BackupPolicy:
    policy = get_policy(inventory, service)
    target = policy.get(name)
    if target is None:
        raise BackupError(f"{service.name} has no destination {name!r}")
    for d in policy.destinations:
        d.primary = d is target
    save_policy(inventory, service, policy)
    return policy


def remove_destination(inventory, secret_store, pool, service: Service, name: str,
                       reporter: Reporter | None = None) -> BackupPolicy:
    """Forget a destination (its backups stay where they are). The primary can go only when
    another one remains; that one becomes primary."""
    policy = get_policy(inventory, service)
    target = policy.get(name)
    if target is None:
        raise BackupError(f"{service.name} has no destination {name!r} "
                          f"(see `havsh backup dest ls {service.name}`)")
    if target.primary and len(policy.destinations) == 1 and target.spec == "host":
        raise BackupError(f"{name!r} is {service.name}'s only destination: a service always "
                          "has one (its safety backups go there)")
    policy.destinations.remove(target)
    if target.primary and policy.destinations:
        policy.destinations[0].primary = True
    save_policy(inventory, service, policy)
    if target.scheduled:
        configure_scheduler(inventory, secret_store, pool, service.host, reporter)
    return policy


def set_schedule(inventory, secret_store, pool, service: Service, dest: str, frequency: str,
                 keep: int | None, *, cron: str | None = None, reporter: Reporter | None = None,
                 audit=None) -> DestinationConfig:
    """Schedule backups of ``service`` to one of its destinations (added if it is a spec not
    configured yet), keeping the newest ``keep`` scheduled ones there; frequency ``none``
    (and no cron) stops it. Then the host's scheduler is reconfigured."""
    if frequency not in FREQUENCIES:
        raise BackupError(f"frequency must be one of {', '.join(FREQUENCIES)}")
    if cron:
        cron = normalize_cron(cron)
    policy = get_policy(inventory, service)
    target = policy.get(dest)
    if target is None:
        add_destination(inventory, service, dest)
        policy = get_policy(inventory, service)
        target = policy.get(str(DestinationSpec.parse(dest))) or policy.get(dest)
        assert target is not None
    enabled = frequency != "none" or bool(cron)
    if enabled:
        spec = target.parsed
        if spec.on_host(service.host) != service.host:
            raise BackupError(
                f"a schedule runs on {service.host} itself, so it can only write to a "
                f"directory there (host or host:PATH), not {target.spec}. Copy backups "
                f"elsewhere with `havsh backup create {service.name} --dest {target.spec}`.")
        if keep is None:
            keep = target.keep or DEFAULT_KEEP
        if keep < 1:
            raise BackupError("--keep must be at least 1 (the newest N scheduled backups stay)")
    target.frequency = frequency if not cron else "custom"
    target.cron = cron
    target.keep = keep if enabled and keep is not None else 0
    save_policy(inventory, service, policy)
    configure_scheduler(inventory, secret_store, pool, service.host, reporter)
    if audit is not None:
        audit.append(service.host, "backup.schedule", service.name, "ok",
                     {"dest": target.name, "frequency": target.frequency, "cron": cron,
                      "keep": target.keep})
    return target


def enable_default_backups(inventory, secret_store, pool, service: Service,
                           reporter: Reporter | None = None, audit=None) -> BackupPolicy | None:
    """What a new service gets: for a Live one (TypeRules.backups_default), daily backups on
    its host, the newest DEFAULT_KEEP kept. Returns the policy, or None for other types."""
    if not service.type.rules.backups_default:
        return None
    policy = get_policy(inventory, service)
    if any(d.scheduled for d in policy.destinations):
        return policy
    set_schedule(inventory, secret_store, pool, service, "host", "daily", DEFAULT_KEEP,
                 reporter=reporter, audit=audit)
    return get_policy(inventory, service)


def forget_backups(inventory, secret_store, pool, service: Service,
                   reporter: Reporter | None = None) -> None:
    """After a service is deleted: drop its policy and take it out of the scheduler. Its
    backups stay in their destinations (`havsh backup ls` still lists them)."""
    policy = get_policy(inventory, service)
    inventory.delete_value(policy_key(service.host, service.name))
    scheduled = any(d.scheduled for d in policy.destinations)
    if not scheduled:
        # Another inventory may have scheduled it: its line goes too.
        client = pool.session(inventory.get_host(service.host)).docker()
        scheduled = any(len(f := ln.split()) == _N_FIELDS and f[_F_SERVICE] == service.name
                        for ln in _read_conf(client))
    if scheduled:
        configure_scheduler(inventory, secret_store, pool, service.host, reporter,
                            forget={service.name})


# -- the scheduler container ------------------------------------------------------------------
@dataclass
class SchedulerState:
    host: str
    action: str  # created, replaced, unchanged, removed, none
    schedules: list[str] = field(default_factory=list)
    container: str | None = None
    #: Services whose schedules another inventory wrote (they have no policy in this one):
    #: kept as they were.
    kept: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


#: Fields of a schedule.conf line (see scripts/scheduler.sh): 5 of cron, then these.
_F_SERVICE, _F_OUTDIR, _F_FSDIR, _N_FIELDS = 5, 8, 12, 15


def _schedule_lines(inventory, host: str) -> tuple[list[str], dict[str, str], dict[str, str],
                                                   set[str]]:
    """The schedule file's lines, the host roots to mount, the services' volumes, and the
    services whose schedules this inventory owns (those with a backup policy in it)."""
    lines: list[str] = []
    roots: dict[str, str] = {}
    volumes: dict[str, str] = {}
    owned: set[str] = set()
    for service in inventory.list_services(host=host):
        if inventory.get_value(policy_key(service.host, service.name)) is not None:
            owned.add(service.name)
        policy = get_policy(inventory, service)
        for dest in policy.destinations:
            cron = schedule_of(dest, service.name)
            if not cron:
                continue
            spec = dest.parsed
            if spec.on_host(host) != host:
                continue
            mount = roots.setdefault(spec.path, f"/backups/{len(roots)}")
            volumes[service.name] = names.volume_name(service.name)
            database = service.database or names.database_name(service.name)
            lines.append(" ".join([
                cron, service.name, database, service.odoo_version or "0.0", mount,
                str(dest.keep or DEFAULT_KEEP), dest.compression, dest.format,
                f"@{service.name}", host, service.type.value,
            ]))
    return lines, roots, volumes, owned


def _read_conf(client) -> list[str]:
    """The schedule lines in the host's scheduler container (none if it has no file)."""
    import io
    import tarfile

    try:
        stream, _ = client.api.get_archive(SCHEDULER_CONTAINER, "/havsh/schedule.conf")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("schedule.conf")
            text = member.read().decode() if member else ""
    except (docker.errors.APIError, tarfile.TarError, KeyError):
        return []
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _foreign_lines(client, current: dict, owned: set[str], roots: dict[str, str],
                   binds: dict[str, dict]) -> tuple[list[str], list[str]]:
    """The lines of the running scheduler that another inventory wrote: those of services
    this one has no policy for, whose containers still exist. Their directories are mounted
    again (``roots``, ``binds``); returns the lines, rewritten for the new mounts, and
    their services. Two operators with two inventories share one scheduler per host this
    way: each replaces the schedules it owns and keeps the others'."""
    old_mounts: dict[str, str] = {}
    for bind in (current.get("HostConfig") or {}).get("Binds") or []:
        parts = bind.rsplit(":", 2)
        if len(parts) >= 2:
            old_mounts[parts[1]] = parts[0]
    existing = {(c.get("Labels") or {}).get(names.LABEL_SERVICE) for c in client.api.containers(
        all=True, filters={"label": [names.LABEL_SERVICE]})}
    lines, services = [], []
    for line in _read_conf(client):
        fields = line.split()
        if len(fields) != _N_FIELDS:
            continue
        svc = fields[_F_SERVICE]
        if svc in owned or svc not in existing:
            continue
        path = old_mounts.get(fields[_F_OUTDIR])
        if path is None:
            continue
        fields[_F_OUTDIR] = roots.setdefault(path, f"/backups/{len(roots)}")
        fsdir = fields[_F_FSDIR]
        if not fsdir.startswith("/volumes/"):
            mount = f"/vol/{svc}"
            source = old_mounts.get(mount)
            if source is None:
                continue
            binds[source] = {"bind": mount, "mode": "ro"}
        lines.append(" ".join(fields))
        services.append(svc)
    return lines, services


def configure_scheduler(inventory, secret_store, pool, host_name: str,
                        reporter: Reporter | None = None,
                        forget: set[str] | frozenset[str] = frozenset()) -> SchedulerState:
    """Make the host's scheduler container match the schedules of its services.

    Schedules this inventory owns (services with a backup policy here, and ``forget``: ones
    just deleted) are written from it; the others in the running scheduler (another
    operator's inventory wrote them) are kept while their services exist.
    """
    from havsh_tui.core.secrets import postgres_superuser_key

    reporter = reporter or NullReporter()
    host = inventory.get_host(host_name)
    session = pool.session(host)
    client = session.docker()
    lines, roots, volumes, owned = _schedule_lines(inventory, host_name)
    try:
        current = client.api.inspect_container(SCHEDULER_CONTAINER)
    except docker.errors.NotFound:
        current = None
    binds: dict[str, dict] = {}
    foreign: list[str] = []
    state = SchedulerState(host=host_name, action="none",
                           schedules=[ln.split(" @")[0] for ln in lines])
    if current is not None:
        foreign, state.kept = _foreign_lines(client, current, owned | set(forget), roots, binds)
        if state.kept:
            reporter.log(f"{host_name}: keeping the schedules of {', '.join(state.kept)} "
                         "(another inventory's: no backup policy for them here)")
    if not lines and not foreign:
        if current is not None:
            client.api.remove_container(SCHEDULER_CONTAINER, force=True)
            state.action = "removed"
            reporter.log(f"{host_name}: no schedules left, the scheduler container was removed")
        return state
    password = secret_store.get(postgres_superuser_key(host_name))
    if not password:
        raise BackupError(f"the PostgreSQL password of {host_name} is not in the secrets store: "
                          f"bootstrap the host first (`havsh host bootstrap {host_name}`)")
    image = postgres_image(client)
    info = client.api.info()
    volumes_root = posixpath.join(info.get("DockerRootDir") or "/var/lib/docker", "volumes")
    binds[volumes_root] = {"bind": "/volumes", "mode": "ro"}
    for path, mount in roots.items():
        binds[path] = {"bind": mount, "mode": "rw"}
    conf_lines = []
    for line in lines:
        head, _, tail = line.partition(" @")
        svc, _, rest = tail.partition(" ")
        volume = volumes[svc]
        database = head.split()[6]
        try:
            mountpoint = client.api.inspect_volume(volume)["Mountpoint"]
        except docker.errors.NotFound:
            reporter.warning(f"{svc}: its volume {volume} is missing; its schedule is skipped")
            continue
        if posixpath.dirname(posixpath.dirname(mountpoint)) == volumes_root:
            fsdir = f"/volumes/{volume}/_data/filestore/{database}"
        else:
            # A volume driver with its own paths: mount the volume itself (it must then be
            # unscheduled before the service can be deleted).
            mount = f"/vol/{svc}"
            binds[volume] = {"bind": mount, "mode": "ro"}
            fsdir = f"{mount}/filestore/{database}"
        conf_lines.append(f"{head} {fsdir} {rest}")
    conf_lines.extend(foreign)
    conf = ("# havsh backup schedules (UTC): MIN HOUR DOM MON DOW SERVICE DB VERSION OUTDIR "
            "KEEP COMPRESSION FORMAT FSDIR HOST TYPE\n" + "\n".join(conf_lines) + "\n")
    digest = hashlib.sha256("\n".join([
        conf, image, scripts_digest(), repr(sorted(binds.items())),
        hashlib.sha256(password.encode()).hexdigest()]).encode()).hexdigest()[:20]
    if current is not None:
        same = (current["Config"].get("Labels") or {}).get(LABEL_CONFIG) == digest
        if same and current["State"].get("Running"):
            state.action = "unchanged"
            state.container = current["Id"]
            return state
        client.api.remove_container(SCHEDULER_CONTAINER, force=True)
    host_config = client.api.create_host_config(
        binds=binds, network_mode=names.NETWORK_NAME, restart_policy={"Name": "unless-stopped"},
        init=True, log_config={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    )
    labels = {names.LABEL_MANAGED: "1", names.LABEL_ROLE: SCHEDULER_ROLE, LABEL_CONFIG: digest}
    cid = client.api.create_container(
        image, name=SCHEDULER_CONTAINER, command=["sh", "/havsh/scheduler.sh"], entrypoint=[],
        labels=labels, user="0:0", host_config=host_config, working_dir="/",
        environment={"PGHOST": names.POSTGRES_CONTAINER, "PGPORT": "5432", "PGUSER": "postgres",
                     "PGPASSWORD": password, "TZ": "UTC"},
    )["Id"]
    client.api.put_archive(cid, "/", scripts_tar({"schedule.conf": conf.encode()}))
    client.api.start(cid)
    state.action = "replaced" if current is not None else "created"
    state.container = cid
    reporter.log(f"{host_name}: scheduler {state.action} with {len(conf_lines)} schedule(s)")
    return state


def scheduler_status(pool, host, tail: int = 20) -> dict:
    """The scheduler container of a host: its state, schedule file and last log lines."""
    client = pool.session(host).docker()
    try:
        attrs = client.api.inspect_container(SCHEDULER_CONTAINER)
    except docker.errors.NotFound:
        return {"host": host.name, "container": None, "running": False, "schedules": [],
                "log": []}
    schedules = _read_conf(client)
    log = client.api.logs(SCHEDULER_CONTAINER, tail=tail).decode(errors="replace").splitlines()
    return {"host": host.name, "container": attrs["Id"], "running": attrs["State"]["Running"],
            "status": attrs["State"]["Status"], "image": attrs["Config"]["Image"],
            "schedules": schedules, "log": log}


def is_backup_default(service_type: ServiceType) -> bool:
    return service_type.rules.backups_default
