"""`havsh host ...`: add, list, check, change and remove hosts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import click

from havsh_tui.cli import CLIError, Context, emit, json_option


def _audit(ctx: Context):
    from havsh_tui.core.audit import AuditLog

    return AuditLog(ctx.paths.audit_log)


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


@click.group()
def host() -> None:
    """Add, check and manage the Docker hosts reached over SSH."""


@host.command("add")
@click.argument("name")
@click.option("--ssh", "dest", required=True, help="[user@]address[:port], or an ssh_config alias.")
@click.option("--port", type=int, help="SSH port (default 22, or the ssh_config's).")
@click.option("--user", help="SSH user (default: the ssh_config's, else your login).")
@click.option("--identity", type=click.Path(dir_okay=False), help="Private key file.")
@click.option("--jump", help="A jump host, [user@]address[:port] or alias (ProxyJump).")
@click.option("--accept-host-key", "accept_fp", metavar="SHA256:...", help="Pin the host key.")
@click.option("--trust-on-first-use", is_flag=True, help="Accept the key shown on first contact.")
@click.option("--postgres-image", help="PostgreSQL image for this host (default postgres:16).")
@click.option("--odoo-image", help="Default Odoo image for new services on this host.")
@click.option("--proxy-image", help="Reverse-proxy image for this host (default caddy:2).")
@click.option("--no-check", is_flag=True, help="Save without connecting (the host is down).")
@json_option
def host_add(ctx: Context, name, dest, port, user, identity, jump, accept_fp,
             trust_on_first_use, postgres_image, odoo_image, proxy_image, no_check) -> None:
    """Add a host NAME reached over SSH at DEST, after testing the connection."""
    from havsh_tui.core.model import Host
    from havsh_tui.ops.hosts import add_host
    from havsh_tui.remote.hosts import parse_destination

    if accept_fp and trust_on_first_use:
        raise CLIError("give either --accept-host-key or --trust-on-first-use, not both",
                       kind="usage", code=2)
    if accept_fp and not accept_fp.startswith("SHA256:"):
        raise CLIError("--accept-host-key takes a SHA256:... fingerprint", kind="usage", code=2)
    try:
        d_user, address, d_port = parse_destination(dest)
    except ValueError as exc:
        raise CLIError(f"bad --ssh destination {dest!r}: {exc}", kind="usage", code=2) from None
    s = ctx.settings
    h = Host(
        name=name,
        address=address,
        port=port or d_port or 22,
        user=user or d_user,
        identity_file=identity,
        jump=jump,
        postgres_image=postgres_image or s.default_postgres_image,
        odoo_image=odoo_image or s.default_odoo_image_template.format(
            version=s.default_odoo_version),
        proxy_image=proxy_image or s.default_proxy_image,
    )
    added = add_host(
        ctx.inventory, h, ctx.ssh_options(), accept_fingerprint=accept_fp,
        trust_on_first_use=trust_on_first_use, check=not no_check, audit=_audit(ctx),
    )
    lines = [f"added host {name} ({h.destination})"]
    if added.fingerprint:
        note = " (new, saved to known_hosts)" if added.accepted_new_key else ""
        lines.append(f"  host key  {added.key_type} {added.fingerprint}{note}")
        lines.append(f"  docker    {added.docker_version} (API {added.api_version}), "
                     f"root {added.docker_root}")
    emit(ctx, added.to_dict(), "\n".join(lines))


@host.command("ls")
@click.option("--check", "do_check", is_flag=True, help="Also poll every host's health.")
@json_option
def host_ls(ctx: Context, do_check: bool) -> None:
    """List the hosts (with --check, their health, polled in parallel)."""
    hosts = ctx.inventory.list_hosts()
    health = {}
    if do_check and hosts:
        health = _check_many(ctx, hosts)
    rows = []
    for h in hosts:
        d = {
            "name": h.name, "destination": h.destination, "address": h.address, "port": h.port,
            "user": h.user, "jump": h.jump, "postgres_image": h.postgres_image,
            "odoo_image": h.odoo_image, "proxy_image": h.proxy_image,
            "services": len(ctx.inventory.list_services(host=h.name)),
        }
        if do_check:
            d["health"] = health[h.name].to_dict()
        rows.append(d)
    if ctx.json:
        emit(ctx, rows)
        return
    if not rows:
        click.echo("no hosts yet: add one with `havsh host add NAME --ssh user@address`")
        return
    for d in rows:
        line = f"{d['name']:<16} {d['destination']:<28} {d['services']:>3} services"
        if do_check:
            hh = health[d["name"]]
            line += ("  " + _health_summary(hh)) if hh.reachable else f"  UNREACHABLE: {hh.error}"
        click.echo(line)


def _health_summary(h) -> str:
    return (f"docker {h.docker_version}, {h.cpus} cpu, load {h.load1}, "
            f"mem {_fmt_bytes(h.mem_available)} free, disk {_fmt_bytes(h.disk_free)} free, "
            f"{h.managed_containers} managed, rtt {h.rtt_ms} ms")


def _check_many(ctx: Context, hosts) -> dict:
    from havsh_tui.ops.hosts import check_host

    pool = ctx.pool
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as ex:
        results = list(ex.map(lambda h: check_host(pool.session(h)), hosts))
    return {r.host: r for r in results}


@host.command("check")
@click.argument("name")
@json_option
def host_check(ctx: Context, name: str) -> None:
    """Poll one host's health; exits 1 when it is unreachable."""
    h = ctx.inventory.get_host(name)
    health = _check_many(ctx, [h])[name]
    emit(ctx, health.to_dict(),
         f"{name}: " + (_health_summary(health) if health.reachable
                        else f"UNREACHABLE: {health.error}"))
    if not health.reachable:
        raise SystemExit(1)


@host.command("rm")
@click.argument("name")
@json_option
def host_rm(ctx: Context, name: str) -> None:
    """Remove a host from the inventory (refused while it has services)."""
    from havsh_tui.ops.hosts import remove_host

    remove_host(ctx.inventory, name, audit=_audit(ctx))
    emit(ctx, {"removed": name}, f"removed host {name}")


@host.command("set")
@click.argument("name")
@click.option("--postgres-image")
@click.option("--odoo-image")
@click.option("--proxy-image")
@json_option
def host_set(ctx: Context, name, postgres_image, odoo_image, proxy_image) -> None:
    """Change a host's settings."""
    h = ctx.inventory.get_host(name)
    changed = {}
    for field_name, value in (("postgres_image", postgres_image), ("odoo_image", odoo_image),
                              ("proxy_image", proxy_image)):
        if value is not None:
            setattr(h, field_name, value)
            changed[field_name] = value
    if not changed:
        raise CLIError("nothing to change: give at least one option", kind="usage", code=2)
    ctx.inventory.update_host(h)
    _audit(ctx).append(name, "host.set", name, "ok", ", ".join(f"{k}={v}" for k, v in changed.items()))
    emit(ctx, {"host": name, "changed": changed},
         f"{name}: " + ", ".join(f"{k} = {v}" for k, v in changed.items()))


@host.command("forget-key")
@click.argument("name")
@json_option
def host_forget_key(ctx: Context, name: str) -> None:
    """Remove the host's saved key, so that a changed key can be accepted on purpose."""
    from havsh_tui.ops.hosts import forget_host_key

    h = ctx.inventory.get_host(name)
    entry, removed = forget_host_key(h, ctx.ssh_options())
    _audit(ctx).append(name, "host.forget-key", entry, "ok", f"{removed} line(s)")
    msg = f"removed {removed} key line(s) for {entry} from {ctx.paths.known_hosts}"
    if removed == 0:
        msg += (f"; if the key is in ~/.ssh/known_hosts, remove it with "
                f"`ssh-keygen -R '{entry}'`")
    emit(ctx, {"host": name, "known_hosts_entry": entry, "removed": removed}, msg)


@host.command("bootstrap")
@click.argument("name")
@json_option
def host_bootstrap(ctx: Context, name: str) -> None:
    """Create the havsh network and PostgreSQL on a host, where missing (idempotent)."""
    from havsh_tui.cli.reporter import CLIReporter
    from havsh_tui.core.secrets import SecretStore
    from havsh_tui.ops.bootstrap import bootstrap_host

    h = ctx.inventory.get_host(name)
    result = bootstrap_host(ctx.pool.session(h), SecretStore(ctx.paths.secrets),
                            CLIReporter(ctx.json), audit=_audit(ctx))
    if result.noop:
        human = f"{name}: already bootstrapped, nothing changed ({', '.join(result.unchanged)})"
    else:
        human = f"{name}: created {', '.join(result.created) or 'nothing'}" + (
            f"; changed {', '.join(result.changed)}" if result.changed else "")
    emit(ctx, result.to_dict(), human)


@host.command("push-image")
@click.argument("name")
@click.argument("image")
@click.option("--from", "source", required=True, metavar="HOST|local",
              help="Another host of the inventory, or `local` for this machine's engine.")
@json_option
def host_push_image(ctx: Context, name: str, image: str, source: str) -> None:
    """Stream IMAGE to host NAME from another host or the local engine (docker save | load)."""
    from havsh_tui.cli.reporter import CLIReporter
    from havsh_tui.ops.images import push_image
    from havsh_tui.remote.docker_api import local_docker_client

    target = ctx.inventory.get_host(name)
    if source == "local":
        try:
            src = local_docker_client()
            src.ping()
        except Exception as exc:  # noqa: BLE001
            raise CLIError(f"no local Docker engine answers: {exc}") from None
    else:
        if source == name:
            raise CLIError("--from names the target host itself", kind="usage", code=2)
        src = ctx.pool.session(ctx.inventory.get_host(source)).docker()
    dst = ctx.pool.session(target).docker()
    result = push_image(src, dst, image, CLIReporter(ctx.json))
    _audit(ctx).append(name, "image.load", image, "ok", f"from {source}")
    if ctx.json:
        emit(ctx, result)
    elif result["skipped"]:
        click.echo(f"{name} has {image} already (same image ID)")
    else:
        click.echo(f"\npushed {image} to {name}: {result['bytes'] / 1e6:.1f} MB "
                   f"in {result['seconds']} s")
COMMANDS = [host]
