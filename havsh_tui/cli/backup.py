"""`havsh backup ...`: destinations, schedules, backup now, list, restore, delete, download."""

from __future__ import annotations

import click

from havsh_tui.cli import CLIError, Context, dumps, emit, json_option
from havsh_tui.cli.reporter import CLIReporter
from havsh_tui.cli.service import resolve_service, service_json


def _audit(ctx: Context):
    from havsh_tui.core.audit import AuditLog

    return AuditLog(ctx.paths.audit_log)


def _secrets(ctx: Context):
    from havsh_tui.core.secrets import SecretStore

    return SecretStore(ctx.paths.secrets)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _dest_json(d, service: str | None = None) -> dict:
    from havsh_tui.ops.backup.model import schedule_of

    return {"name": d.name, "spec": d.spec, "primary": d.primary, "frequency": d.frequency,
            "cron": d.cron, "keep": d.keep, "compression": d.compression, "format": d.format,
            "runs_on": schedule_of(d, service) if service else d.cron}


@click.group()
def backup() -> None:
    """Backups: Odoo-format zips (dump.sql, filestore/, manifest.json), their destinations and
    schedules, and restores.

    Destinations: `host` (the service's host, /var/lib/havsh/backups/SERVICE/), `host:PATH`,
    `local:PATH` (this machine, PATH/HOST/SERVICE/) and `HOST:PATH` (another host). Schedules
    run on the service's host, in the container havsh-backups, with no havsh running.
    """


# -- destinations -----------------------------------------------------------------------------
@backup.group("dest")
def dest() -> None:
    """A service's destinations; exactly one is primary (safety backups go there)."""


@dest.command("add")
@click.argument("service")
@click.argument("spec")
@click.option("--name", help="A short name for it (default: the spec).")
@click.option("--primary", is_flag=True, help="Make it the primary destination.")
@click.option("--compression", type=click.Choice(["store", "deflate", "max"]),
              default="store",
              help="The dump: store (no compression, the default: as fast as pg_dump + tar), "
                   "deflate (zlib's fastest level: a ~3x smaller dump, ~1.6x the time) or max "
                   "(level 9: the smallest zip, several times slower); filestore files are "
                   "always stored.")
@click.option("--format", "format_", type=click.Choice(["zip", "custom"]), default="zip",
              help="zip: dump.sql, restorable by Odoo too. custom: dump.dump (pg_dump -Fc), "
                   "havsh only.")
@json_option
def dest_add(ctx: Context, service, spec, name, primary, compression, format_) -> None:
    """Add a destination SPEC (host, host:PATH, local:PATH, HOST:PATH) to SERVICE."""
    from havsh_tui.ops.backup import add_destination

    s = resolve_service(ctx, service)
    d = add_destination(ctx.inventory, s, spec, name=name, primary=primary,
                        compression=compression, format=format_)
    emit(ctx, _dest_json(d, s.name), f"{s.name}: destination {d.name} ({d.spec})"
         + (" is the primary" if d.primary else " added"))


@dest.command("ls")
@click.argument("service", required=False)
@json_option
def dest_ls(ctx: Context, service) -> None:
    """List the destinations of SERVICE (or of every service), with their schedules."""
    from havsh_tui.ops.backup import get_policy

    services = [resolve_service(ctx, service)] if service else ctx.inventory.list_services()
    rows = []
    for s in services:
        policy = get_policy(ctx.inventory, s)
        for d in policy.effective():
            rows.append({"service": s.name, "host": s.host, **_dest_json(d, s.name),
                         "implicit": not policy.destinations})
    if ctx.json:
        emit(ctx, rows)
        return
    if not rows:
        click.echo("no services")
        return
    for r in rows:
        sched = (f"{r['frequency']} ({r['runs_on']} UTC), keep {r['keep']}" if r["runs_on"]
                 else "no schedule")
        mark = "*" if r["primary"] else " "
        click.echo(f"{mark} {r['service']:<22} {r['host']:<12} {r['name']:<34} {sched}"
                   + ("  [default]" if r["implicit"] else ""))


@dest.command("rm")
@click.argument("service")
@click.argument("name")
@json_option
def dest_rm(ctx: Context, service, name) -> None:
    """Forget destination NAME of SERVICE (its backups stay where they are)."""
    from havsh_tui.ops.backup import remove_destination

    s = resolve_service(ctx, service)
    policy = remove_destination(ctx.inventory, _secrets(ctx), ctx.pool, s, name,
                                CLIReporter(ctx.json))
    emit(ctx, {"service": s.name, "destinations": [_dest_json(d) for d in policy.destinations]},
         f"{s.name}: destination {name} removed (primary: {policy.primary.name})")


@dest.command("primary")
@click.argument("service")
@click.argument("name")
@json_option
def dest_primary(ctx: Context, service, name) -> None:
    """Make NAME the primary destination of SERVICE."""
    from havsh_tui.ops.backup import set_primary

    s = resolve_service(ctx, service)
    policy = set_primary(ctx.inventory, s, name)
    emit(ctx, {"service": s.name, "primary": policy.primary.name},
         f"{s.name}: {policy.primary.name} is the primary destination")


# -- schedules --------------------------------------------------------------------------------
@backup.command("schedule")
@click.argument("service")
@click.option("--dest", "dest_name", default="host", show_default=True,
              help="A destination of the service on its own host (host or host:PATH).")
@click.option("--frequency", type=click.Choice(["hourly", "daily", "weekly", "monthly", "none"]),
              default=None, help="How often (none stops it). Times are UTC on the host.")
@click.option("--cron", "cron", metavar="EXPR", help="Any other schedule, e.g. '*/15 * * * *'.")
@click.option("--keep", type=int, help="Scheduled backups kept there (default 7).")
@json_option
def backup_schedule(ctx: Context, service, dest_name, frequency, cron, keep) -> None:
    """Schedule backups of SERVICE; they run on its host with no havsh open."""
    from havsh_tui.ops.backup import set_schedule
    from havsh_tui.ops.backup.model import schedule_of

    if frequency is None and not cron:
        raise CLIError("say --frequency or --cron", kind="usage", code=2)
    s = resolve_service(ctx, service)
    d = set_schedule(ctx.inventory, _secrets(ctx), ctx.pool, s, dest_name, frequency or "none",
                     keep, cron=cron, reporter=CLIReporter(ctx.json), audit=_audit(ctx))
    when = schedule_of(d, s.name)
    emit(ctx, {"service": s.name, **_dest_json(d, s.name)},
         f"{s.name} -> {d.name}: " + (f"{d.frequency} ({when} UTC), the newest {d.keep} kept"
                                      if when else "no schedule"))


@backup.command("scheduler")
@click.argument("host", required=False)
@json_option
def backup_scheduler(ctx: Context, host) -> None:
    """Show the scheduler container of HOST (or of every host): schedules and last runs."""
    from havsh_tui.ops.backup import scheduler_status

    hosts = [ctx.inventory.get_host(host)] if host else ctx.inventory.list_hosts()
    states = [scheduler_status(ctx.pool, h) for h in hosts]
    if ctx.json:
        emit(ctx, states)
        return
    for st in states:
        if not st["container"]:
            click.echo(f"{st['host']}: no scheduler (no schedules)")
            continue
        click.echo(f"{st['host']}: havsh-backups {st['status']}, "
                   f"{len(st['schedules'])} schedule(s)")
        for line in st["schedules"]:
            f = line.split()
            click.echo(f"  {' '.join(f[:5]):<18} {f[5]} -> {f[8]} keep {f[9]}")
        for line in st["log"][-10:]:
            click.echo(f"  | {line}")


# -- backup now, list -------------------------------------------------------------------------
@backup.command("create")
@click.argument("service")
@click.option("--dest", "dest_name", help="A destination (name or spec; default: the primary). "
                                          "A new spec is added to the service's destinations.")
@click.option("--format", "format_", type=click.Choice(["zip", "custom"]),
              help="zip (dump.sql, Odoo restores it too) or custom (dump.dump, havsh only).")
@click.option("--compression", type=click.Choice(["store", "deflate", "max"]),
              help="The dump (default: the destination's, store unless set): store, deflate "
                   "(smaller, slower) or max (level 9: the smallest, several times slower).")
@click.option("--store", "store", is_flag=True, help="Same as --compression store.")
@click.option("--max-compression", "max_compression", is_flag=True,
              help="Same as --compression max: the smallest zip, several times slower.")
@click.option("-v", "--verbose", is_flag=True)
@json_option
def backup_create(ctx: Context, service, dest_name, format_, compression, store,
                  max_compression, verbose) -> None:
    """Back up SERVICE now (it keeps running)."""
    from havsh_tui.ops.backup import create_backup

    asked = {c for c, on in (("store", store), ("max", max_compression), (compression, True))
             if on and c}
    if len(asked) > 1:
        raise CLIError("say one compression (--compression, --store or --max-compression)",
                       kind="usage", code=2)
    s = resolve_service(ctx, service)
    compression = next(iter(asked), None)
    record = create_backup(ctx.inventory, _secrets(ctx), ctx.pool, s, dest=dest_name,
                           format=format_, compression=compression,
                           reporter=CLIReporter(ctx.json, verbose), audit=_audit(ctx))
    if ctx.json:
        click.echo(dumps({"event": "result", "backup": record.to_dict()}))
        return
    click.echo(f"backup {record.id}: {_mb(record.size)} in {record.where}")
    click.echo(f"sha256 {record.sha256}")


@backup.command("ls")
@click.argument("service", required=False)
@click.option("--host", help="Only this host's services.")
@json_option
def backup_ls(ctx: Context, service, host) -> None:
    """List backups (newest first): time, size, destination, kind and sha256.

    Without SERVICE, every destination of every service is listed, and each host's default
    directory, which also holds the backups of deleted services."""
    from havsh_tui.ops.backup import list_backups

    reporter = CLIReporter(ctx.json)
    if service:
        records = list_backups(ctx.inventory, ctx.pool, service=resolve_service(ctx, service),
                               reporter=reporter)
    else:
        records = list_backups(ctx.inventory, ctx.pool, host=host, reporter=reporter)
    if ctx.json:
        emit(ctx, [r.to_dict() for r in records])
        return
    if not records:
        click.echo("no backups")
        return
    for r in records:
        fmt = "" if r.format == "zip" else "  havsh-only (custom)"
        click.echo(f"{r.id:<48} {r.created_at:%Y-%m-%d %H:%M}Z {_mb(r.size):>12} "
                   f"{r.kind:<9} {r.destination:<24} {r.sha256}{fmt}")


# -- restore ----------------------------------------------------------------------------------
@backup.command("restore")
@click.argument("backup_id", metavar="[BACKUP]", required=False)
@click.option("--service", "service", help="Replace the data of this service (a safety "
                                           "backup of it is taken first).")
@click.option("--new", "new", help="Restore into a new service (a Copy) called NEW.")
@click.option("--host", help="With --new: the host (default: the backup's).")
@click.option("--from-file", "from_file", type=click.Path(exists=True, dir_okay=False),
              help="A local zip instead of BACKUP (Odoo's database manager's too).")
@click.option("--image", help="With --new: the Odoo image (default: the backup's version).")
@click.option("--confirm-name", help="A Live service needs its name typed.")
@click.option("--neutralize/--no-neutralize", default=None,
              help="With --new: neutralize (default: on unless the backup is of a non-Live "
                   "service).")
@click.option("--allow-newer-odoo", is_flag=True,
              help="Restore a backup of a newer Odoo major version anyway.")
@click.option("-v", "--verbose", is_flag=True)
@json_option
def backup_restore(ctx: Context, backup_id, service, new, host, from_file, image, confirm_name,
                   neutralize, allow_newer_odoo, verbose) -> None:
    """Restore BACKUP (an id from `backup ls`) or --from-file ZIP into --service S or --new NAME."""
    from havsh_tui.ops.backup import RestoreSpec, restore_backup

    if bool(backup_id) == bool(from_file):
        raise CLIError("give a BACKUP id or --from-file ZIP", kind="usage", code=2)
    if bool(service) == bool(new):
        raise CLIError("say --service S or --new NAME", kind="usage", code=2)
    service_host = None
    if service:
        target = resolve_service(ctx, service)
        service, service_host = target.name, target.host
        if (target.type.rules.needs_typed_name and confirm_name is None and not ctx.json
                and click.get_text_stream("stdin").isatty()):
            confirm_name = click.prompt(
                f"{target.name} is Live: its data will be replaced. Type its name to go on")
    spec = RestoreSpec(backup_id=backup_id, from_file=from_file, service=service,
                       service_host=service_host, new=new, host=host, image=image,
                       confirm_name=confirm_name, neutralize=neutralize,
                       allow_newer=allow_newer_odoo)
    result = restore_backup(ctx.inventory, _secrets(ctx), ctx.pool, spec,
                            CLIReporter(ctx.json, verbose), audit=_audit(ctx))
    if ctx.json:
        click.echo(dumps({"event": "result", "restore": result.to_dict(),
                          "service": service_json(result.service)}))
        return
    click.echo(result.detail)


@backup.command("rm")
@click.argument("backup_id", metavar="BACKUP")
@click.option("--yes", is_flag=True, help="Do not ask.")
@json_option
def backup_rm(ctx: Context, backup_id, yes) -> None:
    """Delete one backup."""
    from havsh_tui.ops.backup import delete_backup, find_backup

    record = find_backup(ctx.inventory, ctx.pool, backup_id, reporter=CLIReporter(ctx.json))
    if not yes:
        if ctx.json or not click.get_text_stream("stdin").isatty():
            raise CLIError(f"deleting {record.id} needs --yes", kind="needs_confirmation")
        click.confirm(f"Delete backup {record.id} ({record.kind}, {_mb(record.size)}) from "
                      f"{record.where}?", abort=True)
    delete_backup(ctx.inventory, ctx.pool, record, audit=_audit(ctx))
    emit(ctx, {"deleted": record.id, "where": record.where}, f"deleted {record.id}")


@backup.command("download")
@click.argument("backup_id", metavar="BACKUP")
@click.argument("directory", type=click.Path(file_okay=False))
@json_option
def backup_download(ctx: Context, backup_id, directory) -> None:
    """Download BACKUP to DIRECTORY/HOST/SERVICE/ on this machine (checked against its sha256)."""
    from havsh_tui.ops.backup import download_backup, find_backup

    reporter = CLIReporter(ctx.json)
    record = find_backup(ctx.inventory, ctx.pool, backup_id, reporter=reporter)
    copy = download_backup(ctx.inventory, ctx.pool, record, directory, reporter)
    emit(ctx, copy.to_dict(), f"downloaded {record.id} to {copy.path}")


COMMANDS = [backup]
