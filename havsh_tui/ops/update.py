"""Update a service's image: get the new image onto the host (pull, or stream it from
another engine), then recreate the Odoo container from it on the same data volume.

The old container is stopped and renamed aside, not removed, until the new one has passed
its health check; any failure before that puts the old one back (and starts it again if it
was running), so a bad image never leaves a service without a server.
"""

from __future__ import annotations

import re
import time

import docker
import docker.errors

from havsh_tui.core import names
from havsh_tui.core import secrets as sk
from havsh_tui.core.model import Service, ServiceStatus, utcnow
from havsh_tui.core.secrets import generate_password, password_usable
from havsh_tui.ops import odoo
from havsh_tui.ops.bootstrap import psql
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.images import ImageMissing, _short, has_image, push_image, stream_pull
from havsh_tui.ops.reporter import NullReporter, Reporter
from havsh_tui.ops.services import (
    StepFailed,
    _Steps,
    create_server_container,
    wait_healthy,
)
from havsh_tui.remote.ssh import RemoteError

#: A docker image reference: [registry[:port]/]path[:tag][@digest], lowercase path.
_IMAGE_RE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[0-9a-f]{64})?"
)

_BUSY = {ServiceStatus.CREATING, ServiceStatus.UPDATING, ServiceStatus.DESTROYING}


def validate_image_ref(ref: str) -> str:
    """Return ``ref`` stripped if it is a well-formed image reference, else raise OpsError."""
    ref = ref.strip()
    if not ref:
        raise OpsError("the image reference is empty")
    if len(ref) > 255 or not _IMAGE_RE.fullmatch(ref):
        raise OpsError(f"{ref!r} is not an image reference (like odoo:17.0 or "
                       "registry.example.com/acme/odoo:17.0)")
    return ref


def previous_name(slug: str) -> str:
    """Where the old container waits while its replacement proves itself."""
    return f"{names.container_name(slug)}-previous"


def pull_image(client: docker.DockerClient, host: str, ref: str, reporter: Reporter) -> str:
    """Pull ``ref`` even if the host has a copy (a tag such as odoo:17.0 moves); returns the
    image ID. When the pull fails but the host has the image, the local one is kept with a
    warning; when it has none, ImageMissing says how to push it instead."""
    try:
        stream_pull(client, ref, reporter)
    except (docker.errors.APIError, docker.errors.NotFound) as exc:
        if not has_image(client, ref):
            raise ImageMissing(host, ref, _short(exc)) from exc
        reporter.warning(f"could not pull {ref} ({_short(exc)}); using the image {host} has")
    return client.api.inspect_image(ref)["Id"]


def update_image(
    inventory,
    secret_store,
    pool,
    service: Service,
    image: str,
    reporter: Reporter | None = None,
    *,
    push_from: docker.DockerClient | None = None,
    push_from_name: str = "",
    pull: bool = True,
    audit=None,
) -> Service:
    """Recreate a service's container from ``image``, keeping its volume and database.

    The image comes from ``push_from`` (another engine's client: `docker save | docker load`
    through the two connections) when given, else from a pull (``pull``), else it must be on
    the host already. A different Odoo major version is refused: that needs a database
    upgrade, which is tested on a copy first. Returns the updated record. On failure the old
    container is restored and StepFailed says which step failed.
    """
    reporter = reporter or NullReporter()
    image = validate_image_ref(image)
    service = inventory.get_service(service.name, host=service.host)
    if service.status in _BUSY:
        raise OpsError(f"{service.name} is {service.status_label} (another operation is "
                       "running on it); try again when it is done")
    version = odoo.version_from_image(image) or service.odoo_version
    if odoo.major(version) != odoo.major(service.odoo_version):
        raise OpsError(
            f"{image} is Odoo {version}, {service.name} runs {service.odoo_version}: a new "
            "major version needs a database upgrade. Test it on a copy first (copy the "
            "service with the new image)."
        )
    db_password = secret_store.get(sk.service_db_password_key(service.host, service.name))
    if db_password is None:
        raise OpsError(f"the database password of {service.name} is not in the secrets store")
    host = inventory.get_host(service.host)
    session = pool.session(host)
    cname = names.container_name(service.name)
    aside = previous_name(service.name)
    old_image, old_version, old_status = service.image, service.odoo_version, service.status
    old_cid = service.container_id
    service.steps = []
    service.status = ServiceStatus.UPDATING
    service.updated_at = utcnow()
    inventory.upsert_service(service)
    steps = _Steps(inventory, service, reporter)
    started = time.monotonic()
    was_running = False
    renamed = False
    new_cid: str | None = None
    client: docker.DockerClient | None = None
    try:
        client = steps.run("connect", session.docker, host.destination)
        _recover_aside(client, cname, aside, reporter)
        try:
            old = client.api.inspect_container(cname)
        except docker.errors.NotFound:
            raise OpsError(f"{service.name}: its container is missing on {service.host}; "
                           "`havsh rescan` to refresh") from None
        was_running = bool(old["State"].get("Running"))
        if push_from is not None:
            steps.run("push image", lambda: push_image(push_from, client, image, reporter),
                      f"{image} from {push_from_name or 'another engine'}")
            image_id = client.api.inspect_image(image)["Id"]
        elif pull:
            image_id = steps.run("pull image", lambda: pull_image(client, host.name, image,
                                                                  reporter), image)
        else:
            image_id = steps.run("image", lambda: _local_image(client, host.name, image), image)
        if old.get("Image") == image_id and old.get("Config", {}).get("Image") == image:
            reporter.log(f"{cname} runs this image already ({image_id[:19]}); recreating anyway")
        conf = odoo.render_conf(service.database, service.config)
        if was_running:
            steps.run("stop", lambda: client.api.stop(cname, timeout=30), cname)
        steps.run("set aside", lambda: client.api.rename(cname, aside), f"{cname} → {aside}")
        renamed = True
        service.image, service.odoo_version = image, version
        if not password_usable(db_password):
            db_password = steps.run("database password", lambda: _rotate_db_password(
                client, secret_store, service), "the old one began with '-'")
        new_cid = steps.run("container", lambda: create_server_container(
            client, service, db_password, conf), f"{cname} from {image}")
        service.container_id = new_cid
        steps.run("start", lambda: client.api.start(new_cid))
        steps.run("health", lambda: wait_healthy(session, service, reporter))
        if not was_running:
            steps.run("stop", lambda: client.api.stop(new_cid, timeout=30),
                      "it was stopped before the update")
        steps.run("remove previous", lambda: client.api.remove_container(aside, force=True),
                  aside)
    except BaseException as exc:
        log = getattr(exc, "log", "") or ""
        steps.fail(str(exc), log)
        restored = _roll_back(client, cname, aside, new_cid, renamed, was_running, reporter)
        service.image, service.odoo_version = old_image, old_version
        if restored and was_running and client is not None:
            try:
                wait_healthy(session, service, reporter, timeout=120)
                reporter.log(f"{cname} answers /web/health again")
            except Exception as health_exc:  # noqa: BLE001 - said, and the record says so
                restored = False
                reporter.warning(f"the previous container is back but not healthy: "
                                 f"{health_exc}")
        if restored:
            # The old server is back as it was: the record says so, and keeps the error.
            service.status = old_status
            service.container_id = old_cid
        try:
            inventory.upsert_service(service)
        except Exception:  # noqa: BLE001 - the original failure matters more
            pass
        if audit is not None:
            audit.append(host.name, "service.update-image", service.name, "failed",
                         f"{image}: {str(exc)[:200]}")
        if isinstance(exc, StepFailed):
            raise
        if isinstance(exc, (OpsError, RemoteError, OSError, docker.errors.APIError)):
            raise StepFailed(steps.current or "update", str(exc), log) from exc
        raise
    service.status = ServiceStatus.RUNNING if was_running else ServiceStatus.STOPPED
    service.last_error = None
    service.failed_step = None
    service.updated_at = utcnow()
    inventory.upsert_service(service)
    reporter.log(f"{service.name} now runs {image} ({time.monotonic() - started:.1f} s)")
    if audit is not None:
        audit.append(host.name, "service.update-image", service.name, "ok",
                     f"{old_image} -> {image}")
    return service


def _local_image(client: docker.DockerClient, host: str, ref: str) -> str:
    try:
        return client.api.inspect_image(ref)["Id"]
    except docker.errors.ImageNotFound:
        raise ImageMissing(host, ref, "pull disabled") from None


def _recover_aside(client: docker.DockerClient, cname: str, aside: str,
                   reporter: Reporter) -> None:
    """An update that died half-way (havsh killed) may have left the old container aside."""
    try:
        client.api.inspect_container(aside)
    except docker.errors.NotFound:
        return
    try:
        client.api.inspect_container(cname)
    except docker.errors.NotFound:
        reporter.warning(f"{aside} was left by an interrupted update: putting it back")
        client.api.rename(aside, cname)
        return
    reporter.warning(f"removing {aside}, left by an earlier update")
    client.api.remove_container(aside, force=True)


def _roll_back(client, cname: str, aside: str, new_cid: str | None, renamed: bool,
               was_running: bool, reporter: Reporter) -> bool:
    """Put the old container back; True when the service is as it was before the update."""
    if client is None:
        return True
    try:
        if new_cid is not None:
            client.api.remove_container(new_cid, force=True)
        if renamed:
            # A replacement that failed half-way (created, then its odoo.conf refused) holds
            # the name without an ID we know: the old container is safely aside.
            try:
                client.api.remove_container(cname, force=True)
            except docker.errors.NotFound:
                pass
            client.api.rename(aside, cname)
        if was_running:
            client.api.start(cname)
        reporter.log(f"rolled back: {cname} runs its previous image again"
                     if was_running else f"rolled back: {cname} is the previous container")
        return True
    except Exception as exc:  # noqa: BLE001 - report it; the record stays Failed
        reporter.warning(f"could not roll back ({exc}); `havsh service show` and the host's "
                         f"`docker ps -a` show what is left ({aside})")
        return False


def _rotate_db_password(client, secret_store, service) -> str:
    """A new database password for the service's role, stored before it is used."""
    new = generate_password()
    psql(client, "ALTER ROLE :\"role\" PASSWORD :'pw';\n",
         variables={"role": names.role_name(service.name), "pw": new})
    secret_store.set(sk.service_db_password_key(service.host, service.name), new)
    return new
