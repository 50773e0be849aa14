"""`havsh service ...`: create, list, show, start, stop, restart, neutralize, rm."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from havsh_tui.cli import CLIError, Context, dumps, emit, json_option
from havsh_tui.cli.reporter import CLIReporter

#: The Odoo versions a service can be created with (issue 4; ops/odoo.VERSIONS).
ODOO_VERSIONS = ("16.0", "17.0", "18.0", "19.0")


def _audit(ctx: Context):
    from havsh_tui.core.audit import AuditLog

    return AuditLog(ctx.paths.audit_log)


def _secrets(ctx: Context):
    from havsh_tui.core.secrets import SecretStore

    return SecretStore(ctx.paths.secrets)


def service_json(s) -> dict:
    """The stable JSON shape of a service (scripts depend on these field names)."""
    return {
        "name": s.name,
        "type": s.type.value,
        "host": s.host,
        "status": s.status.value,
        "status_label": s.status_label,
        "odoo_version": s.odoo_version,
        "image": s.image,
        "url": s.url or None,
        "hostnames": list(s.hostnames),
        "database": s.database,
        "source": s.source,
        "source_host": s.source_host,
        "snapshot_at": s.snapshot_at.isoformat() if s.snapshot_at else None,
        "pr": s.pr,
        "created_at": s.created_at.isoformat(),
        "updated_at": s.updated_at.isoformat(),
        "config": s.config,
        "demo": s.demo,
        "failed_step": s.failed_step,
        "last_error": s.last_error,
    }


def resolve_service(ctx: Context, ref: str):
    """NAME, or HOST/NAME when the name is on more than one host."""
    from havsh_tui.core.inventory import Ambiguous

    host = None
    if "/" in ref:
        host, ref = ref.split("/", 1)
    try:
        return ctx.inventory.get_service(ref, host=host)
    except Ambiguous as exc:
        raise CLIError(f"{exc}; say which with HOST/{ref}", kind="ambiguous") from None


@click.group()
def service() -> None:
    """Create and run Odoo services (Live, Test, Demo; copies and previews too)."""


@service.command("create")
@click.argument("name")
@click.option("--type", "type_", required=True, type=click.Choice(["live", "test", "demo"]),
              help="Live (production), Test (sandbox) or Demo (sample data).")
@click.option("--host", "host", required=True, help="The host to create it on.")
@click.option("--odoo", "odoo_version", default=None, type=click.Choice(ODOO_VERSIONS),
              help="Odoo version (default: the image's tag, else the settings' default).")
@click.option("--image", help="Image reference (default: the host's Odoo image for the version).")
@click.option("--demo/--no-demo", default=None, help="Demo data (a Test service may turn it on).")
@click.option("--language", help="Load a language at creation, e.g. fr_FR.")
@click.option("--country", help="Country code of the company, e.g. BE.")
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE",
              help="Extra odoo.conf key (repeatable), e.g. workers=2.")
@click.option("--admin-password-file", type=click.File("r"),
              help="Read the admin password from a file (default: generated, shown once).")
@click.option("-v", "--verbose", is_flag=True, help="Show Odoo's log while it works.")
@json_option
def service_create(ctx: Context, name, type_, host, odoo_version, image, demo, language,
                   country, config, admin_password_file, verbose) -> None:
    """Create a service NAME on a host."""
    from havsh_tui.core.model import ServiceType
    from havsh_tui.ops.services import CreateSpec, create_service

    admin_password = None
    if admin_password_file is not None:
        admin_password = admin_password_file.read().strip()
        if len(admin_password) < 8:
            raise CLIError("the admin password must be at least 8 characters", kind="usage")
    version = _create_version(odoo_version, image, ctx.settings.default_odoo_version)
    spec = CreateSpec(
        name=name, host=host, type=ServiceType.parse(type_), odoo_version=version, image=image,
        demo=demo, language=language, country=country, admin_password=admin_password,
        config=_parse_config(config),
    )
    reporter = CLIReporter(ctx.json, verbose)
    result = create_service(ctx.inventory, _secrets(ctx), ctx.pool, spec, reporter,
                            audit=_audit(ctx))
    if ctx.json:
        click.echo(dumps({"event": "result", "service": service_json(result.service),
                          "admin_password": result.admin_password if result.generated_password
                          else None}))
        return
    click.echo(f"created {spec.type.label} service {name} on {host} in {result.seconds:.0f} s")
    if result.generated_password:
        click.echo(f"admin password (shown once, kept in secrets): {result.admin_password}")


def _create_version(asked: str | None, image: str | None, default: str) -> str:
    """The Odoo version of a new service: --odoo, else the --image's tag, else the default.
    An image tagged with another version than --odoo is refused, as in the wizard."""
    from havsh_tui.ops.odoo import version_from_image

    tagged = version_from_image(image) if image else None
    if asked and tagged and tagged != asked:
        raise CLIError(f"the image {image} is Odoo {tagged}, but --odoo {asked} is given",
                       kind="usage")
    return asked or tagged or default


def _parse_config(items) -> dict[str, str]:
    from havsh_tui.ops.odoo import ConfigError, parse_config_items

    try:
        return parse_config_items(list(items))
    except ConfigError as exc:
        raise CLIError(str(exc), kind="usage", code=2) from None


def _age(dt: datetime) -> str:
    secs = int((datetime.now(UTC) - dt).total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n:
            return f"{secs // n}{unit}"
    return f"{max(secs, 0)}s"


@service.command("ls")
@click.option("--host", help="Only this host's services.")
@click.option("--type", "type_", type=click.Choice(["live", "test", "demo", "copy", "preview"]))
@json_option
def service_ls(ctx: Context, host, type_) -> None:
    """List services, grouped by type."""
    from havsh_tui.core.model import ServiceType

    services = ctx.inventory.list_services(host=host)
    if type_:
        services = [s for s in services if s.type.value == type_]
    order = list(ServiceType)
    services.sort(key=lambda s: (order.index(s.type), s.name, s.host))
    if ctx.json:
        emit(ctx, [service_json(s) for s in services])
        return
    if not services:
        click.echo("no services yet: `havsh service create NAME --type test --host HOST`")
        return
    for t in order:
        group = [s for s in services if s.type is t]
        if not group:
            continue
        click.secho(f"{t.label} ({len(group)})", bold=True, fg="magenta" if t.value == "live"
                    else None)
        for s in group:
            # The dashboard's columns: name, host, Odoo, status, age, URL, source or PR.
            extra = s.source or s.pr or ""
            line = (f"  {s.name:<24} {s.host:<14} {s.odoo_version:<6} {s.status_label:<10} "
                    f"{_age(s.created_at):>5}  {s.url or '-'}")
            click.echo(f"{line}  {extra}".rstrip())


@service.command("show")
@click.argument("name")
@json_option
def service_show(ctx: Context, name) -> None:
    """Show one service, with its recorded steps."""
    s = resolve_service(ctx, name)
    d = service_json(s)
    d["steps"] = [{"name": st.name, "state": st.state, "detail": st.detail} for st in s.steps]
    if ctx.json:
        emit(ctx, d)
        return
    for k, v in d.items():
        if k in ("steps", "config"):
            continue
        if v not in (None, "", []):
            click.echo(f"{k:<14} {', '.join(v) if isinstance(v, list) else v}")
    if s.config:
        click.echo("config         " + ", ".join(f"{k}={v}" for k, v in s.config.items()))
    if s.steps:
        click.echo("steps:")
        for st in s.steps:
            click.echo(f"  {st.state:<8} {st.name}  {st.detail}")


def _lifecycle(action: str):
    @click.argument("name")
    @json_option
    def command(ctx: Context, name) -> None:
        from havsh_tui.ops import services as ops

        s = resolve_service(ctx, name)
        fn = {"start": ops.start_service, "stop": ops.stop_service,
              "restart": ops.restart_service}[action]
        updated = fn(ctx.inventory, ctx.pool, s, audit=_audit(ctx))
        emit(ctx, service_json(updated), f"{action}: {updated.name} is {updated.status_label}")

    command.__doc__ = {"start": "Start a stopped service.",
                       "stop": "Stop a service (its data is kept).",
                       "restart": "Restart a service."}[action]
    return command


for _action in ("start", "stop", "restart"):
    service.command(_action)(_lifecycle(_action))


@service.command("neutralize")
@click.argument("name")
@click.option("--confirm-name", help="A Live service needs its name typed.")
@json_option
def service_neutralize(ctx: Context, name, confirm_name) -> None:
    """Neutralize a service's database (no mail out, crons off), then verify it."""
    from havsh_tui.ops.services import neutralize_service

    s = resolve_service(ctx, name)
    check = neutralize_service(ctx.inventory, _secrets(ctx), ctx.pool, s,
                               confirm_name=confirm_name, reporter=CLIReporter(ctx.json),
                               audit=_audit(ctx))
    emit(ctx, {"service": s.name, "neutralized": check.to_dict()},
         f"{s.name} is neutralized (verified: mail servers archived, crons off)")


@service.command("rm")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.option("--confirm-name", help="A Live service needs its name typed.")
@click.option("--backup/--no-backup", "backup", default=None,
              help="Take a safety backup (to its primary destination) first; if it fails, "
                   "nothing is deleted. Default: on for a Live service, off otherwise.")
@json_option
def service_rm(ctx: Context, name, yes, confirm_name, backup) -> None:
    """Delete a service: its container, database, role and volume.

    A Live service is backed up first (a safety backup to its primary destination) unless
    --no-backup; any other with --backup. If that backup fails, nothing is deleted. With
    --json, "backup" says where it went (HOST:PATH, or null)."""
    from havsh_tui.ops.services import delete_service

    s = resolve_service(ctx, name)
    if s.type.rules.needs_typed_name:
        if confirm_name is None and not ctx.json and click.get_text_stream("stdin").isatty():
            confirm_name = click.prompt(f"{s.name} is Live. Type its name to delete it")
    elif not yes:
        if ctx.json or not click.get_text_stream("stdin").isatty():
            raise CLIError(f"deleting {s.name} needs --yes", kind="needs_confirmation")
        click.confirm(f"Delete {s.type.label} service {s.name} on {s.host} and all its data?",
                      abort=True)
    if backup is None:
        backup = s.type.rules.backups_default
    secrets, audit, reporter = _secrets(ctx), _audit(ctx), CLIReporter(ctx.json)
    made: list = []
    offer = None
    if backup:
        from havsh_tui.ops.backup import backup_offer

        safety = backup_offer(ctx.inventory, secrets, ctx.pool, reporter=reporter, audit=audit)

        def offer(service):
            made.append(safety(service))
            return made[-1]

    removed = delete_service(ctx.inventory, secrets, ctx.pool, s, confirm_name=confirm_name,
                             reporter=reporter, audit=audit, backup_offer=offer)
    where = made[0].where if made else None
    emit(ctx, {"removed": s.name, "host": s.host, "objects": removed, "backup": where},
         f"deleted {s.name}: " + (", ".join(removed) or "nothing was left on the host")
         + (f"\nsafety backup: {where}" if where else ""))


@service.command("copy")
@click.argument("source")
@click.argument("new")
@click.option("--host", help="Target host (default: the source's host).")
@click.option("--neutralize/--no-neutralize", default=None,
              help="Neutralize the copy before it starts (default: on when the source is "
                   "Live, a Copy or a Preview).")
@click.option("--image", help="Odoo image of the copy (a newer version tests an upgrade).")
@click.option("--plan", "plan_only", is_flag=True,
              help="Only measure: sizes, file count, the target's free disk; copy nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Show the logs as it works.")
@json_option
def service_copy(ctx: Context, source, new, host, neutralize, image, plan_only,
                 verbose) -> None:
    """Copy SOURCE (database and filestore) to a new service NEW; the source keeps running.

    Progress goes to stderr (JSON lines on stdout with --json: step, progress with bytes,
    rate and ETA, then the result). A failed copy exits 1, names its step, and leaves
    nothing on the target; run the same command again to retry it.
    """
    from havsh_tui.ops.copy import CopySpec, copy_service, plan_copy
    from havsh_tui.ops.streams import human_bytes

    src = resolve_service(ctx, source)
    spec = CopySpec(source_host=src.host, source=src.name, name=new, host=host,
                    neutralize=neutralize, image=image)
    if plan_only:
        plan = plan_copy(ctx.inventory, ctx.pool, spec)
        if ctx.json:
            click.echo(dumps({"event": "plan", "plan": plan.to_dict()}))
        else:
            free = human_bytes(plan.target_disk_free) if plan.target_disk_free is not None \
                else "unknown"
            click.echo(f"copy {plan.source}@{plan.source_host} to {new}@{plan.target_host}")
            click.echo(f"  database   {human_bytes(plan.database_bytes)}")
            click.echo(f"  filestore  {plan.filestore_files} files, "
                       f"{human_bytes(plan.filestore_bytes)}")
            click.echo(f"  disk       {free} free on {plan.target_host}, about "
                       f"{human_bytes(plan.disk_needed)} needed")
            click.echo(f"  neutralize {'yes' if plan.neutralize else 'no'}"
                       + (f" ({plan.neutralize_reason})" if plan.neutralize_reason else ""))
            if plan.upgrade:
                click.echo(f"  {plan.upgrade}")
            for problem in plan.problems:
                click.secho(f"  problem: {problem}", fg="red")
        if plan.problems:
            raise CLIError("; ".join(plan.problems), kind="copy_refused")
        return
    copied = copy_service(ctx.inventory, _secrets(ctx), ctx.pool, spec,
                          CLIReporter(ctx.json, verbose), audit=_audit(ctx))
    if ctx.json:
        click.echo(dumps({"event": "result", "service": service_json(copied)}))
    else:
        click.echo(f"copied {src.name}@{src.host} to {copied.name}@{copied.host}")


def _browser_available() -> bool:
    """A graphical browser can open: macOS, Windows, or a display. Without one, Python's
    webbrowser would start a text browser in this terminal, which we never want."""
    import os
    import sys

    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@service.command("open")
@click.argument("name")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Local port (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Only print the URL.")
@json_option
def service_open(ctx: Context, name, port, no_browser) -> None:
    """Reach a service through an SSH tunnel: a local port forwarded to its Odoo (8069).

    Prints the URL, opens a browser where there is one, and runs until Ctrl-C.
    """
    import faulthandler
    import signal
    import webbrowser

    from havsh_tui.ops.proxy import open_tunnel

    s = resolve_service(ctx, name)
    session = ctx.pool.session(ctx.inventory.get_host(s.host))
    tunnel = open_tunnel(session, s, port=port)

    # Our own handlers for Ctrl-C and SIGTERM: a process started with `&` from a
    # non-interactive shell inherits SIGINT as ignored, and Python then installs no
    # KeyboardInterrupt for it (CI's `service open` ignored its SIGINT for hours). They only
    # set a flag that the loop below reads: nothing is raised into a lock the loop holds.
    stopping: list[int] = []

    def stop(signum, _frame) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        url = tunnel.url
        emit(ctx, {"event": "listening", "service": s.name, "host": s.host, "url": url,
                   "proxy_url": s.url or None},
             f"{s.name} on {s.host}: {url}  (an SSH tunnel; Ctrl-C to stop)"
             + (f"\n  through the proxy: {s.url}" if s.url else ""))
        if not no_browser and not ctx.json and _browser_available():
            try:
                webbrowser.open(url)
            except webbrowser.Error:
                pass
        # Each new connection opens its channel through session.ssh, which reconnects
        # after a drop, so the tunnel outlives a flaky network.
        while not stopping and not tunnel.wait(0.25):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        # Stopping takes well under a second. Should the teardown (this tunnel, then the SSH
        # connections) ever hang, the process still ends 15 s from now, with every thread's
        # stack on stderr to say where.
        faulthandler.dump_traceback_later(15, exit=True)
        tunnel.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    emit(ctx, {"event": "closed", "connections": tunnel.connections},
         f"closed ({tunnel.connections} connection(s) served)")


COMMANDS = [service]
