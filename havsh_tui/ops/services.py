"""Services: create, start, stop, restart, delete, neutralize, and their rules.

Every multi-step operation records its steps in the inventory as it goes. On failure it
removes what it created on the host, and marks the service Failed with the failing step and
the tail of its log, so nothing is ever half-made and unmarked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import docker.errors

from havsh_tui.core import names
from havsh_tui.core.model import Service, ServiceStatus, ServiceType, Step, utcnow
from havsh_tui.core.secrets import generate_password
from havsh_tui.ops import odoo, proxy
from havsh_tui.ops.bootstrap import bootstrap_host, psql
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.images import ensure_image
from havsh_tui.ops.reporter import NullReporter, Reporter, check_cancelled
from havsh_tui.remote.drops import drops_mapped
from havsh_tui.remote.http import http_request
from havsh_tui.remote.ssh import RemoteError

LOG_TAIL = 60


class StepFailed(OpsError):
    def __init__(self, step: str, message: str, log: str = "") -> None:
        self.step = step
        self.log = log
        self.kind = "step_failed"
        self.extra = {"step": step, "log": log}
        super().__init__(f"step '{step}' failed: {message}")


class NeedsConfirmation(OpsError):
    def __init__(self, message: str) -> None:
        self.kind = "needs_confirmation"
        super().__init__(message)


@dataclass
class CreateSpec:
    """What the wizard or `havsh service create` asks for."""

    name: str
    host: str
    type: ServiceType
    odoo_version: str = "17.0"
    image: str | None = None
    demo: bool | None = None
    language: str | None = None
    country: str | None = None
    admin_password: str | None = None
    config: dict[str, str] = field(default_factory=dict)

    def resolved_demo(self) -> bool:
        rules = self.type.rules
        if self.demo is None or not rules.demo_choice:
            if self.demo is not None and self.demo != rules.demo_default:
                raise OpsError(
                    f"a {self.type.label} service is created "
                    f"{'with' if rules.demo_default else 'without'} demo data"
                )
            return bool(rules.demo_default)
        return self.demo


@dataclass
class CreateResult:
    service: Service
    admin_password: str
    generated_password: bool
    seconds: float

    def to_dict(self) -> dict:
        from havsh_tui.core.serde import to_dict

        d = to_dict(self.service)
        d["admin_password"] = self.admin_password if self.generated_password else None
        d["seconds"] = round(self.seconds, 1)
        return d


class _Steps:
    """Runs named steps, mirroring each to the reporter and to the inventory record."""

    def __init__(self, inventory, service: Service, reporter: Reporter) -> None:
        self.inventory = inventory
        self.service = service
        self.reporter = reporter
        self.current: str | None = None

    def _save(self) -> None:
        self.service.updated_at = utcnow()
        self.inventory.upsert_service(self.service)

    def run(self, name: str, fn: Callable[[], object], detail: str = ""):
        check_cancelled(self.reporter)
        self.current = name
        step = Step(name=name, state="running", started_at=utcnow(), detail=detail)
        self.service.steps.append(step)
        self._save()
        self.reporter.step(name, "running", detail)
        result = fn()
        step.state = "done"
        step.finished_at = utcnow()
        self._save()
        self.reporter.step(name, "done")
        return result

    def fail(self, message: str, log: str) -> None:
        for step in self.service.steps:
            if step.state == "running":
                step.state = "failed"
                step.finished_at = utcnow()
                step.detail = message[:500]
        self.service.status = ServiceStatus.FAILED
        self.service.failed_step = self.current
        self.service.last_error = (message + ("\n" + log if log else ""))[-8000:]
        try:
            self._save()
        except Exception:  # noqa: BLE001 - the original failure matters more
            pass
        if self.current:
            self.reporter.step(self.current, "failed", message)


def service_env(service: Service, db_password: str) -> dict[str, str]:
    """The connection settings the Odoo image's entrypoint reads (ODOO-CONTRACT.md)."""
    return {
        "HOST": names.POSTGRES_CONTAINER,
        "PORT": "5432",
        "USER": names.role_name(service.name),
        "PASSWORD": db_password,
    }


LABEL_SOURCE_HOST = "sh.hav.source-host"
LABEL_SNAPSHOT = "sh.hav.snapshot"
#: Previews: the PR head commit the container runs.
LABEL_HEAD = "sh.hav.head"


def service_labels(service: Service) -> dict[str, str]:
    labels = names.service_labels(
        service.name, service.type.value, service.odoo_version,
        source=service.source, pr=service.pr,
    )
    if service.source_host:
        labels[LABEL_SOURCE_HOST] = service.source_host
    if service.snapshot_at:
        labels[LABEL_SNAPSHOT] = service.snapshot_at.isoformat()
    if service.head_sha:
        labels[LABEL_HEAD] = service.head_sha
    return labels


def _host_config(client: docker.DockerClient, service: Service, *, restart: bool):
    # The addons volume is always mounted (read-only: Odoo never writes its addons path), so
    # connecting a repository later needs no new container, and the image's anonymous
    # VOLUME for /mnt/extra-addons is not left behind by every removed container.
    binds = {names.volume_name(service.name): {"bind": odoo.DATA_DIR, "mode": "rw"},
             names.addons_volume_name(service.name): {"bind": odoo.ADDONS_DIR, "mode": "ro"}}
    return client.api.create_host_config(
        binds=binds,
        network_mode=names.NETWORK_NAME,
        restart_policy={"Name": "unless-stopped"} if restart else None,
    )


def _networking(client: docker.DockerClient, alias: str):
    return client.api.create_networking_config(
        {names.NETWORK_NAME: client.api.create_endpoint_config(aliases=[alias])}
    )


def container_logs(client: docker.DockerClient, container: str, tail: int = LOG_TAIL) -> str:
    try:
        return client.api.logs(container, tail=tail).decode(errors="replace")
    except (docker.errors.APIError, RemoteError):
        return ""


def run_odoo_once(
    client: docker.DockerClient,
    service: Service,
    db_password: str,
    conf: str,
    args: list[str],
    reporter: Reporter,
    *,
    suffix: str = "init",
    timeout: float = 1800.0,
) -> str:
    """Run a one-off ``odoo ...`` through the image's entrypoint, like `docker run --rm`.

    Streams its log to the reporter and raises StepFailed with the log's tail on a non-zero
    exit. The container is always removed.
    """
    name = f"{names.container_name(service.name)}-{suffix}"
    labels = service_labels(service) | {names.LABEL_ROLE: suffix}
    try:
        client.api.remove_container(name, force=True)
    except docker.errors.NotFound:
        pass
    cid = client.api.create_container(
        service.image, command=["odoo", *args], name=name, labels=labels,
        environment=service_env(service, db_password),
        host_config=_host_config(client, service, restart=False),
        networking_config=_networking(client, name),
    )["Id"]
    lines: list[str] = []
    try:
        client.api.put_archive(cid, "/etc/odoo", odoo.conf_tar(conf))
        client.api.start(cid)
        buf = b""
        deadline = time.monotonic() + timeout
        with drops_mapped(client, f"the log of `odoo {' '.join(args[:2])}`"):
            for chunk in client.api.logs(cid, stream=True, follow=True):
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace")
                    lines.append(line)
                    reporter.log(line)
                del lines[:-400]
                if time.monotonic() > deadline:
                    raise StepFailed(suffix, f"odoo did not finish within {timeout:.0f} s",
                                     "\n".join(lines[-LOG_TAIL:]))
                if reporter.cancelled():
                    raise StepFailed(suffix, "cancelled", "\n".join(lines[-LOG_TAIL:]))
        if buf:
            lines.append(buf.decode(errors="replace"))
        code = client.api.wait(cid, timeout=60)["StatusCode"]
        if code != 0:
            tail = "\n".join(lines[-LOG_TAIL:]) or container_logs(client, cid)
            raise StepFailed(suffix, f"`odoo {' '.join(args)}` exited {code}", tail)
        return "\n".join(lines)
    finally:
        try:
            client.api.remove_container(cid, force=True)
        except (docker.errors.APIError, RemoteError):
            pass


def container_address(client: docker.DockerClient, container: str) -> str:
    attrs = client.api.inspect_container(container)
    nets = attrs.get("NetworkSettings", {}).get("Networks") or {}
    ip = (nets.get(names.NETWORK_NAME) or {}).get("IPAddress")
    if not ip:
        raise OpsError(f"{container} has no address on the {names.NETWORK_NAME} network")
    return ip


#: A container that has been restarted this many times while its health is awaited is
#: crashing, not starting: the step fails with its log.
RESTARTS_GIVEN_UP = 3


def wait_healthy(session, service: Service, reporter: Reporter, timeout: float = 180.0) -> None:
    """Poll /web/health through the SSH connection until it answers pass."""
    client = session.docker()
    cname = names.container_name(service.name)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    reattached = False
    while time.monotonic() < deadline:
        check_cancelled(reporter)
        attrs = client.api.inspect_container(cname)
        state = attrs["State"]
        if not state.get("Running"):
            raise StepFailed("health", f"the container exited ({state.get('ExitCode')})",
                             container_logs(client, cname))
        if state.get("Restarting"):
            # Docker counts a container waiting to be restarted as running, without an
            # address: say what it is, and give up once it keeps crashing.
            restarts = int(attrs.get("RestartCount") or 0)
            last = (f"the container is restarting after exit code {state.get('ExitCode')} "
                    f"({restarts} restarts)")
            if restarts >= RESTARTS_GIVEN_UP:
                raise StepFailed("health", f"the container keeps crashing: {last}",
                                 container_logs(client, cname))
            time.sleep(1.0)
            continue
        nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        if names.NETWORK_NAME not in nets and not reattached:
            # Running, but off the havsh network (its endpoint was lost): put it back, once.
            reattached = True
            reporter.warning(f"{cname} was not on the {names.NETWORK_NAME} network: "
                             "connecting it again")
            try:
                client.api.connect_container_to_network(cname, names.NETWORK_NAME,
                                                        aliases=[cname])
            except docker.errors.APIError as exc:
                last = f"could not connect it to {names.NETWORK_NAME}: {exc}"
        try:
            ip = container_address(client, cname)
            res = http_request(session.ssh, ip, odoo.HTTP_PORT, "GET", "/web/health",
                               timeout=5)
            if res.status == 200 and res.json().get("status") == "pass":
                return
            last = f"HTTP {res.status}"
        except (OSError, ValueError, OpsError) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(0.5)
    raise StepFailed("health", f"/web/health did not pass within {timeout:.0f} s ({last})",
                     container_logs(client, cname))


# -- database objects -------------------------------------------------------------------------
def create_role_and_database(client, service: Service, db_password: str) -> None:
    role, db = names.role_name(service.name), names.database_name(service.name)
    psql(client, "CREATE ROLE :\"role\" LOGIN PASSWORD :'pw';\n",
         variables={"role": role, "pw": db_password})
    psql(client, "CREATE DATABASE :\"db\" OWNER :\"role\" TEMPLATE template0 ENCODING 'UTF8';\n",
         variables={"db": db, "role": role})


#: Databases beside a service's own that a cut run can leave: a restore loads into
#: ``<db>__restore`` and swaps the current data to ``<db>__old`` (ops/backup/restore.py).
LEFTOVER_DATABASE_SUFFIXES = ("__restore", "__old")


def drop_database_and_role(client, slug: str) -> list[str]:
    """Drop the service's database (and the leftovers of a cut restore beside it) and its
    role, those that exist; returns what was dropped."""
    role, db = names.role_name(slug), names.database_name(slug)
    dropped = []
    candidates = [db, *(db + suffix for suffix in LEFTOVER_DATABASE_SUFFIXES)]
    present = set(psql(client, "SELECT datname FROM pg_database "
                               "WHERE datname IN (:'a', :'b', :'c');\n",
                       variables=dict(zip("abc", candidates, strict=True))).split())
    for name in candidates:
        if name in present:
            psql(client, "DROP DATABASE :\"db\" WITH (FORCE);\n", variables={"db": name})
            dropped.append(f"database {name}")
    exists = psql(client, "SELECT 1 FROM pg_roles WHERE rolname = :'role';\n",
                  variables={"role": role}).strip()
    if exists:
        psql(client, "DROP ROLE :\"role\";\n", variables={"role": role})
        dropped.append(f"role {role}")
    return dropped


def remove_service_objects(client, slug: str) -> list[str]:
    """Remove every Docker and PostgreSQL object of a service. Safe to run twice."""
    removed: list[str] = []
    for c in client.api.containers(all=True, filters={"label": f"{names.LABEL_SERVICE}={slug}"}):
        client.api.remove_container(c["Id"], force=True, v=False)
        removed.append(f"container {c['Names'][0].lstrip('/')}")
    removed += drop_database_and_role(client, slug)
    for vol in (names.volume_name(slug), names.addons_volume_name(slug)):
        try:
            client.api.remove_volume(vol, force=True)
            removed.append(f"volume {vol}")
        except docker.errors.NotFound:
            pass
    removed += proxy.detach_service(client, slug)
    return removed


def set_admin_password(client, service: Service, password: str) -> None:
    psql(client, "UPDATE res_users SET password = :'hash' WHERE login = 'admin';\n",
         database=names.database_name(service.name),
         variables={"hash": odoo.pbkdf2_sha512_hash(password)})


def create_server_container(client, service: Service, db_password: str, conf: str,
                            reporter: Reporter | None = None, *, fresh: bool = False) -> str:
    """The service's server container, behind the host's proxy: ``proxy_mode = True`` in
    its odoo.conf, its route added and ``service.url`` set (ops/proxy.py). ``fresh``: a new
    service, which inherits nothing a deleted namesake left in the proxy."""
    cname = names.container_name(service.name)
    conf = proxy.with_proxy_mode(conf)
    cid = client.api.create_container(
        service.image, name=cname, labels=service_labels(service),
        environment=service_env(service, db_password),
        host_config=_host_config(client, service, restart=True),
        networking_config=_networking(client, cname),
        ports=[odoo.HTTP_PORT, odoo.WS_PORT],
    )["Id"]
    client.api.put_archive(cid, "/etc/odoo", odoo.conf_tar(conf))
    proxy.attach_service(client, service, reporter, fresh=fresh)
    return cid


# -- create -----------------------------------------------------------------------------------
def reserve(inventory, service: Service) -> None:
    """Add the record under the inventory's lock: of two creates of one name, one wins."""
    from havsh_tui.core.inventory import AlreadyExists

    try:
        inventory.add_service(service)
    except AlreadyExists:
        raise OpsError(f"a service named {service.name!r} exists on {service.host} already "
                       "(or another havsh is creating it right now)") from None


def target_leftovers(client, slug: str) -> list[str]:
    """Every object named for ``slug`` on a host: a copy refuses to start over any of them
    (its cleanup would remove them), whoever made them."""
    found = []
    cname = names.container_name(slug)
    seen = set()
    for c in client.api.containers(all=True, filters={"label": f"{names.LABEL_SERVICE}={slug}"}):
        seen.add(c["Id"])
        found.append(f"container {c['Names'][0].lstrip('/')}")
    try:
        c = client.api.inspect_container(cname)
        if c["Id"] not in seen:
            found.append(f"container {cname}")
    except docker.errors.NotFound:
        pass
    vols = {v["Name"] for v in client.api.volumes().get("Volumes") or []}
    for vol in (names.volume_name(slug), names.addons_volume_name(slug)):
        if vol in vols:
            found.append(f"volume {vol}")
    try:
        running = client.api.inspect_container(names.POSTGRES_CONTAINER)["State"]["Running"]
    except docker.errors.NotFound:
        running = False
    if running:
        out = psql(client, "SELECT 'database ' || datname FROM pg_database WHERE datname = :'db' "
                   "UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname = :'role';\n",
                   variables={"db": names.database_name(slug), "role": names.role_name(slug)})
        found += [line for line in out.splitlines() if line.strip()]
    return found


def is_failed_creation(s: Service) -> bool:
    """A Live, Test or Demo service whose creation failed (its cleanup took the container; a
    service that ever ran has one): it may be created again under its name."""
    return (s.status is ServiceStatus.FAILED and s.type.rules.wizard_creatable
            and not s.container_id)


def name_taken(s: Service) -> bool:
    """Whether this record keeps its name from a new service on its host."""
    return s.status is not ServiceStatus.DESTROYED and not is_failed_creation(s)


def validate_new_service(inventory, spec: CreateSpec) -> Service | None:
    """Refuse what can't be created; returns the record of a failed creation of the same
    name, which a new try replaces (the host is checked to hold nothing of it first)."""
    names.validate_slug(spec.name)
    if not spec.type.rules.wizard_creatable:
        raise OpsError(f"a {spec.type.label} service is not created here: "
                       + ("use `havsh service copy`" if spec.type is ServiceType.COPY
                          else "previews come from GitHub pull requests"))
    inventory.get_host(spec.host)
    retried = None
    for s in inventory.list_services(host=spec.host):
        if s.name == spec.name and s.status is not ServiceStatus.DESTROYED:
            if is_failed_creation(s):
                retried = s
                continue
            raise OpsError(f"a service named {spec.name!r} exists on {spec.host} already")
    odoo.major(spec.odoo_version)
    return retried


def refuse_leftovers(client, host: str, slug: str, what: str = "a new service") -> None:
    """Nothing named for ``slug`` may exist on the host before it is created: a failure's
    cleanup removes everything of that name, so starting over someone else's database or
    volume would destroy it."""
    leftovers = target_leftovers(client, slug)
    if leftovers:
        raise OpsError(
            f"{host} already holds {', '.join(leftovers)}: {what} named {slug} will not "
            "touch them. If they are a service's, `havsh rescan` adopts it (and `havsh "
            "service rm` removes it); otherwise remove them by hand or choose another name")


def create_service(inventory, secret_store, pool, spec: CreateSpec,
                   reporter: Reporter | None = None, audit=None) -> CreateResult:
    """Create a Live, Test or Demo service: database, volume, init, container, health."""
    from havsh_tui.core import secrets as sk

    reporter = reporter or NullReporter()
    started = time.monotonic()
    retried = validate_new_service(inventory, spec)
    host = inventory.get_host(spec.host)
    demo = spec.resolved_demo()
    config = odoo.parse_config_items(spec.config)
    image = spec.image or _default_image(host, spec.odoo_version)
    generated = spec.admin_password is None
    admin_password = spec.admin_password or generate_password(16)
    db_password = generate_password()
    service = Service(
        name=spec.name, host=spec.host, type=spec.type, odoo_version=spec.odoo_version,
        image=image, status=ServiceStatus.CREATING,
        database=names.database_name(spec.name), config=config, demo=demo,
        language=spec.language or "en_US", country=spec.country,
    )
    if retried is not None:
        # A new try after a failed creation: its record goes (the host is checked below).
        inventory.remove_service(spec.host, spec.name)
    # Adding the record first is the reservation: a second create of the name fails here.
    reserve(inventory, service)
    steps = _Steps(inventory, service, reporter)
    session = pool.session(host)
    created_on_host = False
    try:
        client = steps.run("connect", session.docker, host.destination)
        cname = names.container_name(spec.name)
        try:
            client.api.inspect_container(cname)
            raise OpsError(f"{spec.host} has a container {cname} already; "
                           "`havsh rescan` adopts it")
        except docker.errors.NotFound:
            pass
        steps.run("bootstrap", lambda: bootstrap_host(session, secret_store, reporter, audit))
        steps.run("check names", lambda: refuse_leftovers(client, host.name, spec.name),
                  f"container, volumes, database and role of {spec.name}")
        steps.run("image", lambda: ensure_image(client, host.name, service.image, reporter),
                  service.image)
        secret_store.set(sk.service_db_password_key(host.name, spec.name), db_password)
        secret_store.set(sk.service_admin_password_key(host.name, spec.name), admin_password)
        created_on_host = True
        steps.run("database", lambda: create_role_and_database(client, service, db_password),
                  f"role {names.role_name(spec.name)}, database {service.database}")
        steps.run("volume", lambda: client.api.create_volume(
            names.volume_name(spec.name), labels=service_labels(service)),
            names.volume_name(spec.name))
        conf = odoo.render_conf(service.database, config)
        init_args = ["-d", service.database, "-i", "base", "--stop-after-init",
                     *odoo.demo_flags(spec.odoo_version, demo)]
        if spec.language and spec.language != "en_US":
            init_args.append(f"--load-language={spec.language}")
        steps.run("init", lambda: run_odoo_once(client, service, db_password, conf, init_args,
                                                reporter), " ".join(init_args))
        steps.run("admin password", lambda: set_admin_password(client, service, admin_password))
        cid = steps.run("container", lambda: create_server_container(
            client, service, db_password, conf, reporter, fresh=True),
            names.container_name(spec.name))
        service.container_id = cid
        steps.run("start", lambda: client.api.start(cid))
        steps.run("health", lambda: wait_healthy(session, service, reporter))
    except BaseException as exc:
        log = getattr(exc, "log", "") or ""
        steps.fail(str(exc), log)
        if created_on_host:
            _cleanup(session, spec.name, service, inventory, reporter)
        if audit:
            audit.append(host.name, "service.create", spec.name, "failed", str(exc)[:200])
        if isinstance(exc, StepFailed):
            raise
        if isinstance(exc, (OpsError, RemoteError, docker.errors.APIError)):
            raise StepFailed(steps.current or "create", str(exc), log) from exc
        raise
    service.status = ServiceStatus.RUNNING
    service.last_error = None
    service.failed_step = None
    service.updated_at = utcnow()
    inventory.upsert_service(service)
    if audit:
        audit.append(host.name, "service.create", spec.name, "ok", service.image)
    enable_backups(inventory, secret_store, pool, service, reporter, audit)
    return CreateResult(service, admin_password, generated, time.monotonic() - started)


def enable_backups(inventory, secret_store, pool, service: Service, reporter: Reporter,
                   audit=None) -> None:
    """A new Live service gets its default schedule (daily backups on its host). The service
    exists by then: a failure here is a warning, never a failed creation. Copies and previews
    are made elsewhere (ops/copy, ops/preview) and never come here."""
    if not service.type.rules.backups_default:
        return
    from havsh_tui.ops.backup.schedule import enable_default_backups

    try:
        policy = enable_default_backups(inventory, secret_store, pool, service,
                                        reporter=reporter, audit=audit)
    except Exception as exc:  # noqa: BLE001 - the service is made; say what is missing
        reporter.warning(
            f"{service.name} is created, but its daily backups could not be scheduled: {exc}"
            f" (`havsh backup schedule {service.name} --frequency daily` sets them up)")
        return
    if policy is not None:
        scheduled = [d for d in policy.destinations if d.scheduled]
        reporter.log("backups: " + (", ".join(
            f"{d.frequency} to {d.spec}, newest {d.keep} kept" for d in scheduled)
            or "none scheduled"))


def _default_image(host, version: str) -> str:
    """The host's default Odoo image, with its tag switched to the asked version."""
    ref = host.odoo_image
    repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    return f"{repo}:{version}"


def _cleanup(session, slug: str, service: Service, inventory, reporter: Reporter) -> None:
    try:
        removed = remove_service_objects(session.docker(), slug)
        service.container_id = None  # gone: the record is of a failed creation (retryable)
        reporter.log("cleaned up: " + (", ".join(removed) or "nothing to remove"))
        service.steps.append(Step("cleanup", "done", utcnow(), utcnow(), ", ".join(removed)))
    except Exception as exc:  # noqa: BLE001 - a dead host: say so, keep the record Failed
        msg = f"cleanup could not finish ({exc}); `havsh service rm {slug}` will retry it"
        reporter.warning(msg)
        service.steps.append(Step("cleanup", "failed", utcnow(), utcnow(), msg))
        service.last_error = (service.last_error or "") + "\n" + msg
    try:
        inventory.upsert_service(service)
    except Exception:  # noqa: BLE001
        pass


# -- lifecycle ---------------------------------------------------------------------------------
def _container(session, service: Service) -> str:
    return names.container_name(service.name)


def start_service(inventory, pool, service: Service, audit=None,
                  reporter: Reporter | None = None) -> Service:
    session = pool.session(inventory.get_host(service.host))
    try:
        session.docker().api.start(_container(session, service))
    except docker.errors.NotFound:
        raise OpsError(f"{service.name}: its container is missing on {service.host} "
                       "(status Missing); `havsh rescan` to refresh") from None
    if audit:
        audit.append(service.host, "service.start", service.name, "ok")
    # Its platform route comes with the start (a base domain set while it was stopped).
    proxy.attach_service(session.docker(), service, reporter)
    return inventory.update_service(service.host, service.name, status=ServiceStatus.RUNNING,
                                    url=service.url, hostnames=list(service.hostnames))


def stop_service(inventory, pool, service: Service, audit=None) -> Service:
    session = pool.session(inventory.get_host(service.host))
    try:
        session.docker().api.stop(_container(session, service), timeout=30)
    except docker.errors.NotFound:
        raise OpsError(f"{service.name}: its container is missing on {service.host}") from None
    if audit:
        audit.append(service.host, "service.stop", service.name, "ok")
    return inventory.update_service(service.host, service.name, status=ServiceStatus.STOPPED)


def restart_service(inventory, pool, service: Service, audit=None) -> Service:
    session = pool.session(inventory.get_host(service.host))
    try:
        session.docker().api.restart(_container(session, service), timeout=30)
    except docker.errors.NotFound:
        raise OpsError(f"{service.name}: its container is missing on {service.host}") from None
    if audit:
        audit.append(service.host, "service.restart", service.name, "ok")
    return inventory.update_service(service.host, service.name, status=ServiceStatus.RUNNING)


def require_typed_name(service: Service, confirm_name: str | None, action: str) -> None:
    if service.type.rules.needs_typed_name and confirm_name != service.name:
        raise NeedsConfirmation(
            f"{service.name} is a Live service: to {action} it, type its name "
            f"(--confirm-name {service.name})"
        )


def delete_service(inventory, secret_store, pool, service: Service, *,
                   confirm_name: str | None = None, reporter: Reporter | None = None,
                   audit=None, backup_offer: Callable[[Service], object] | None = None,
                   ) -> list[str]:
    """Remove the container, database, role and volume. Live needs its name typed.

    ``backup_offer`` (see ops.backup.backup_offer) runs first, when the user accepted the
    backup the delete dialog offers; if it raises, nothing is removed."""
    reporter = reporter or NullReporter()
    require_typed_name(service, confirm_name, "delete")
    if backup_offer is not None:
        backup_offer(service)
    session = pool.session(inventory.get_host(service.host))
    inventory.update_service(service.host, service.name, status=ServiceStatus.DESTROYING)
    try:
        removed = remove_service_objects(session.docker(), service.name)
    except Exception as exc:
        inventory.update_service(service.host, service.name, status=ServiceStatus.FAILED,
                                 failed_step="delete", last_error=str(exc))
        if audit:
            audit.append(service.host, "service.rm", service.name, "failed", str(exc)[:200])
        raise
    from havsh_tui.core import secrets as sk

    inventory.remove_service(service.host, service.name)
    # Secrets go last: a failed delete must still be able to reach the database.
    for key in (sk.service_db_password_key(service.host, service.name),
                sk.service_admin_password_key(service.host, service.name)):
        secret_store.delete(key)
    if audit:
        audit.append(service.host, "service.rm", service.name, "ok", ", ".join(removed))
    _forget_backups(inventory, secret_store, pool, service, reporter)
    return removed


def _forget_backups(inventory, secret_store, pool, service: Service, reporter: Reporter) -> None:
    """Its backup policy goes, and the host's scheduler stops running its schedules (the
    backups themselves stay). The service is gone by then: a failure is a warning."""
    from havsh_tui.ops.backup.schedule import forget_backups

    try:
        forget_backups(inventory, secret_store, pool, service, reporter)
    except Exception as exc:  # noqa: BLE001 - the delete is done; say what is left
        reporter.warning(
            f"{service.name} is deleted, but the backup scheduler on {service.host} could not "
            f"be updated ({exc}); it still lists its schedules until the next schedule change")


# -- neutralize --------------------------------------------------------------------------------
NEUTRALIZE_CHECK_SQL = """
SELECT
  coalesce((SELECT lower(value) FROM ir_config_parameter
            WHERE key = 'database.is_neutralized'), '') AS flag,
  (SELECT count(*) FROM ir_mail_server WHERE active AND smtp_host <> 'invalid') AS live_servers,
  (SELECT count(*) FROM ir_mail_server WHERE active AND smtp_host = 'invalid') AS dummy_servers,
  (SELECT count(*) FROM ir_cron c
     LEFT JOIN ir_model_data d ON d.model = 'ir.cron' AND d.res_id = c.id
    WHERE c.active AND NOT (coalesce(d.module, '') = 'base'
                            AND coalesce(d.name, '') = 'autovacuum_job')) AS active_crons;
"""


@dataclass
class NeutralizeCheck:
    flag: bool
    live_mail_servers: int
    dummy_mail_servers: int
    active_crons: int

    @property
    def ok(self) -> bool:
        return (self.flag and self.live_mail_servers == 0 and self.dummy_mail_servers >= 1
                and self.active_crons == 0)

    def to_dict(self) -> dict:
        return {"is_neutralized": self.flag, "live_mail_servers": self.live_mail_servers,
                "dummy_mail_servers": self.dummy_mail_servers,
                "active_crons": self.active_crons, "ok": self.ok}


def check_neutralized(client, database: str) -> NeutralizeCheck:
    out = psql(client, NEUTRALIZE_CHECK_SQL, database=database).strip()
    flag, live, dummy, crons = out.split("|")
    return NeutralizeCheck(flag == "true", int(live), int(dummy), int(crons))


def neutralize_database(session, secret_store, service: Service, reporter: Reporter, *,
                        running: bool) -> NeutralizeCheck:
    """``odoo neutralize`` through the entrypoint, then verify the flags. Idempotent here:
    the flag is checked first, since Odoo's neutralize is not."""
    from havsh_tui.core import secrets as sk

    client = session.docker()
    before = check_neutralized(client, service.database)
    if before.ok:
        reporter.log("already neutralized: nothing to do")
        return before
    if running:
        ex = client.api.exec_create(
            names.container_name(service.name),
            ["/entrypoint.sh", "odoo", "neutralize", "-d", service.database],
        )
        out = client.api.exec_start(ex["Id"]).decode(errors="replace")
        for line in out.splitlines():
            reporter.log(line)
        code = client.api.exec_inspect(ex["Id"])["ExitCode"]
        if code != 0:
            raise StepFailed("neutralize", f"odoo neutralize exited {code}", out[-4000:])
    else:
        pw = secret_store.get(sk.service_db_password_key(service.host, service.name))
        if pw is None:
            raise OpsError("the database password of this service is not in the secrets store")
        conf = odoo.render_conf(service.database, service.config)
        run_odoo_once(client, service, pw, conf, ["neutralize", "-d", service.database],
                      reporter, suffix="neutralize")
    after = check_neutralized(client, service.database)
    if not after.ok:
        raise StepFailed("verify neutralization", f"the flags are not right: {after.to_dict()}")
    return after


def neutralize_service(inventory, secret_store, pool, service: Service, *,
                       confirm_name: str | None = None, reporter: Reporter | None = None,
                       audit=None) -> NeutralizeCheck:
    """Neutralize a service's database (refused on Live unless its name is typed)."""
    reporter = reporter or NullReporter()
    require_typed_name(service, confirm_name, "neutralize")
    session = pool.session(inventory.get_host(service.host))
    client = session.docker()
    try:
        running = client.api.inspect_container(
            names.container_name(service.name))["State"]["Running"]
    except docker.errors.NotFound:
        raise OpsError(f"{service.name}: its container is missing on {service.host}") from None
    result = neutralize_database(session, secret_store, service, reporter, running=running)
    if audit:
        audit.append(service.host, "service.neutralize", service.name, "ok")
    return result
