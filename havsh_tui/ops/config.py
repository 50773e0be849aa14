"""A service's extra odoo.conf keys: validate them, rewrite odoo.conf in its container, and
record them in the inventory. Odoo reads odoo.conf only when it starts, so a change applies
at the next restart (or at once with ``restart=True``).
"""

from __future__ import annotations

import io
import tarfile

import docker.errors

from havsh_tui.core import names
from havsh_tui.core.model import Service
from havsh_tui.ops import odoo, proxy
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.reporter import NullReporter, Reporter


def config_lines(config: dict[str, str]) -> str:
    """The extra configuration as the ``key = value`` lines a user edits, sorted by key."""
    return "".join(f"{k} = {v}\n" for k, v in sorted(config.items()))


def parse_config_text(text: str) -> dict[str, str]:
    """Parse what a user typed: one ``key=value`` (or ``key = value``) per line.

    Blank lines and ``#`` or ``;`` comments are skipped. Raises odoo.ConfigError naming the
    line of the first bad entry (odoo.parse_config_items's rules: no managed keys, one line).
    """
    items: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            raise odoo.ConfigError(
                f"line {number}: sections are not needed, every key goes in [options]"
            )
        try:
            odoo.parse_config_items([line])
        except odoo.ConfigError as exc:
            raise odoo.ConfigError(f"line {number}: {exc}") from None
        items.append(line)
    return odoo.parse_config_items(items)


def read_conf(client: docker.DockerClient, container: str) -> str:
    """The odoo.conf inside a container (running or not), via the archive API."""
    try:
        stream, _stat = client.api.get_archive(container, odoo.CONF_PATH)
    except docker.errors.NotFound:
        raise OpsError(f"{container} has no {odoo.CONF_PATH}") from None
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("odoo.conf")
        if member is None:
            raise OpsError(f"{odoo.CONF_PATH} of {container} is not a file")
        return member.read().decode(errors="replace")


def set_service_config(
    inventory,
    pool,
    service: Service,
    config: dict[str, str] | list[str] | str,
    reporter: Reporter | None = None,
    *,
    restart: bool = False,
    audit=None,
) -> Service:
    """Replace the extra odoo.conf keys of a service; returns the updated record.

    ``config`` is a dict, ``key=value`` items, or the text of an editor. The new odoo.conf
    is written into the service's container and read back to check it, then recorded as
    ``Service.config``. The server picks it up when it next starts; ``restart`` restarts it
    now. Nothing is written when the keys are invalid.
    """
    reporter = reporter or NullReporter()
    if isinstance(config, str):
        parsed = parse_config_text(config)
    else:
        parsed = odoo.parse_config_items(config)
    host = inventory.get_host(service.host)
    cname = names.container_name(service.name)
    # As ops/services.create_server_container writes it: the server runs behind havsh-proxy,
    # so proxy_mode stays on (unless the user's keys set it themselves).
    conf = proxy.with_proxy_mode(odoo.render_conf(service.database, parsed))
    reporter.step("connect", "running", host.destination)
    client = pool.session(host).docker()
    reporter.step("connect", "done")
    reporter.step("write odoo.conf", "running", odoo.CONF_PATH)
    try:
        client.api.put_archive(cname, "/etc/odoo", odoo.conf_tar(conf))
    except docker.errors.NotFound:
        reporter.step("write odoo.conf", "failed", "container missing")
        raise OpsError(f"{service.name}: its container is missing on {service.host}") from None
    if read_conf(client, cname) != conf:
        reporter.step("write odoo.conf", "failed", "read back differs")
        raise OpsError(f"{cname}: odoo.conf did not read back as written")
    reporter.step("write odoo.conf", "done")
    updated = inventory.update_service(service.host, service.name, config=parsed)
    for key, value in sorted(parsed.items()):
        reporter.log(f"{key} = {value}")
    if restart:
        reporter.step("restart", "running")
        client.api.restart(cname, timeout=30)
        reporter.step("restart", "done")
    if audit is not None:
        # Keys only: a value may be a password (smtp_password and the like).
        audit.append(service.host, "service.config", service.name, "ok",
                     "keys: " + (", ".join(sorted(parsed)) or "none"))
    return updated
