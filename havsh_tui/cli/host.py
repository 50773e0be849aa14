"""`havsh host ...`: add, list, check, change and remove hosts.

SSH works as OpenSSH does: DEST is ``[user@]address[:port]`` or an alias of your
``~/.ssh/config`` (``$HAVSH_SSH_CONFIG`` to use another file), whose HostName, User, Port,
IdentityFile, IdentitiesOnly, IdentityAgent, ProxyJump and ProxyCommand apply; the agent
(``$SSH_AUTH_SOCK``) is used unless IdentitiesOnly.

Host keys: a key never seen is refused with its fingerprint, unless you pin it
(``--accept-host-key SHA256:...``), accept it explicitly (``--trust-on-first-use``), or answer
the question on a terminal. A changed key is always refused; ``havsh host forget-key NAME``
removes the old one on purpose.

Encrypted keys: on a terminal you are asked for the passphrase (hidden input). Otherwise
give ``--passphrase-file FILE`` (its first line), or set ``$HAVSH_SSH_PASSPHRASE_FILE`` for
every command. Passphrases are never saved.
"""

from __future__ import annotations

import functools
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from havsh_tui.cli import CLIError, Context, dumps, emit, json_option
from havsh_tui.cli.hostname import apply_proxy, proxy_options, proxy_settings, save_proxy_bind


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


def _interactive(ctx: Context) -> bool:
    return not ctx.json and sys.stdin.isatty()


def _tty_passphrase(key_path: str, wrong_before: bool) -> str | None:
    if wrong_before:
        click.echo("Bad passphrase, try again.", err=True)
    answer = click.prompt(f"Enter passphrase for key '{key_path}'", hide_input=True,
                          default="", show_default=False, err=True)
    return answer or None


def _ssh_options(ctx: Context):
    """The SSH options of this command: the settings', plus a passphrase source."""
    from havsh_tui.remote.hosts import PassphraseCache

    opts = ctx.extra.get("ssh_options")
    if opts is not None:
        return opts
    opts = ctx.ssh_options()
    pf = ctx.extra.get("passphrase_file")
    if pf:
        opts.passphrase_file = Path(pf)
    if opts.passphrase_file is None and _interactive(ctx):
        opts.passphrase_callback = PassphraseCache(_tty_passphrase)
    ctx.extra["ssh_options"] = opts
    return opts


def _pool(ctx: Context):
    """ctx.pool, made with this command's SSH options."""
    if ctx._pool is None:
        from havsh_tui.remote.hosts import HostPool

        ctx._pool = HostPool(_ssh_options(ctx))
    return ctx._pool


def passphrase_option(fn):
    """``--passphrase-file FILE``: the passphrase of an encrypted SSH key, from a file."""

    @click.option("--passphrase-file", type=click.Path(dir_okay=False, exists=True),
                  help="File whose first line is the passphrase of an encrypted SSH key "
                       "(else asked on a terminal; or set $HAVSH_SSH_PASSPHRASE_FILE).")
    @functools.wraps(fn)
    def wrapper(ctx: Context, *args, passphrase_file=None, **kwargs):
        if passphrase_file:
            ctx.extra["passphrase_file"] = passphrase_file
        return fn(ctx, *args, **kwargs)

    return wrapper


def _check_key_flags(accept_fp: str | None, trust_on_first_use: bool) -> None:
    if accept_fp and trust_on_first_use:
        raise CLIError("give either --accept-host-key or --trust-on-first-use, not both",
                       kind="usage", code=2)
    if accept_fp and not accept_fp.startswith("SHA256:"):
        raise CLIError("--accept-host-key takes a SHA256:... fingerprint", kind="usage", code=2)


def _with_host_key_question(ctx: Context, opts, action, host_name: str | None = None):
    """Run ``action()``; on a terminal, an unknown host key is asked about as OpenSSH does
    (yes, or the fingerprint itself), saved to the app's known_hosts, and ``action`` runs
    again. Elsewhere the UnknownHostKey goes up (the message says how to pin it)."""
    from havsh_tui.remote.ssh import UnknownHostKey, add_known_host

    seen: set[str] = set()
    while True:
        try:
            return action()
        except UnknownHostKey as exc:
            if not _interactive(ctx) or exc.hostname in seen:
                raise
            seen.add(exc.hostname)
            click.echo(
                f"The authenticity of host '{exc.hostname}' can't be established.\n"
                f"{exc.key_type} key fingerprint is {exc.fingerprint}.", err=True)
            answer = click.prompt(
                "Are you sure you want to continue connecting (yes/no/[fingerprint])?",
                default="no", show_default=False, prompt_suffix=" ", err=True).strip()
            if answer != "yes" and answer != exc.fingerprint:
                raise CLIError("host key not accepted: nothing was saved",
                               kind="host_key_rejected") from None
            add_known_host(opts.known_hosts, exc.hostname, exc.key)
            if host_name:
                _audit(ctx).append(host_name, "host.accept-key", exc.hostname, "ok",
                                   f"{exc.key_type} {exc.fingerprint} (asked)")
            click.echo(f"Warning: permanently added '{exc.hostname}' ({exc.key_type}) to "
                       f"{opts.known_hosts}.", err=True)


def _destination(dest: str, opts):
    from havsh_tui.remote.hosts import is_ssh_config_alias, parse_destination

    try:
        d_user, address, d_port = parse_destination(dest)
    except ValueError as exc:
        raise CLIError(f"bad --ssh destination {dest!r}: {exc}", kind="usage", code=2) from None
    alias = address if (d_user is None and d_port is None
                        and is_ssh_config_alias(address, opts)) else None
    return d_user, address, d_port, alias


@click.group()
def host() -> None:
    """Add, check and manage the Docker hosts reached over SSH.

    \b
    DEST is [user@]address[:port] or an alias of ~/.ssh/config ($HAVSH_SSH_CONFIG).
    Unknown host keys: --accept-host-key SHA256:... or --trust-on-first-use (or answer on
    a terminal). Changed keys are refused until `havsh host forget-key NAME`.
    Encrypted keys: asked on a terminal, or --passphrase-file FILE.
    """


@host.command("add")
@click.argument("name")
@click.option("--ssh", "dest", required=True, help="[user@]address[:port], or an ssh_config alias.")
@click.option("--port", type=click.IntRange(1, 65535),
              help="SSH port (default 22, or the ssh_config's).")
@click.option("--user", help="SSH user (default: the ssh_config's, else your login).")
@click.option("--identity", type=click.Path(dir_okay=False), help="Private key file.")
@click.option("--jump", help="Jump host(s), [user@]address[:port] or alias, comma-separated "
                             "for a chain (ProxyJump).")
@click.option("--accept-host-key", "accept_fp", metavar="SHA256:...", help="Pin the host key.")
@click.option("--trust-on-first-use", is_flag=True,
              help="Accept the key shown on first contact (and those of new jump hosts).")
@click.option("--postgres-image", help="PostgreSQL image for this host (default postgres:16).")
@click.option("--odoo-image", help="Default Odoo image for new services on this host.")
@click.option("--proxy-image", help="Reverse-proxy image for this host (default caddy:2).")
@proxy_options
@click.option("--no-check", is_flag=True, help="Save without connecting (the host is down).")
@json_option
@passphrase_option
def host_add(ctx: Context, name, dest, port, user, identity, jump, accept_fp,
             trust_on_first_use, postgres_image, odoo_image, proxy_image, no_check,
             base_domain=None, tls=None, proxy_bind=None) -> None:
    """Add a host NAME reached over SSH at DEST, after testing the connection."""
    from havsh_tui.core.model import Host
    from havsh_tui.ops.hosts import add_host

    _check_key_flags(accept_fp, trust_on_first_use)
    opts = _ssh_options(ctx)
    d_user, address, d_port, alias = _destination(dest, opts)
    if identity:
        identity = str(Path(identity).expanduser().absolute())
    s = ctx.settings
    h = Host(
        name=name,
        address=address,
        port=port or d_port or 22,
        user=user or d_user,
        identity_file=identity,
        jump=jump,
        ssh_alias=alias,
        postgres_image=postgres_image or s.default_postgres_image,
        odoo_image=odoo_image or s.default_odoo_image_template.format(
            version=s.default_odoo_version),
        proxy_image=proxy_image or s.default_proxy_image,
        **proxy_settings(base_domain, tls, proxy_bind),
    )
    added = _with_host_key_question(ctx, opts, lambda: add_host(
        ctx.inventory, h, opts, accept_fingerprint=accept_fp,
        trust_on_first_use=trust_on_first_use, check=not no_check, audit=_audit(ctx),
    ), name)
    lines = [f"added host {name} ({h.destination})"]
    if added.fingerprint:
        note = " (new, saved to known_hosts)" if added.accepted_new_key else ""
        lines.append(f"  host key  {added.key_type} {added.fingerprint}{note}")
        lines.append(f"  docker    {added.docker_version} (API {added.api_version}), "
                     f"root {added.docker_root}")
    emit(ctx, added.to_dict(), "\n".join(lines))


def _host_row(ctx: Context, h) -> dict:
    return {
        "name": h.name, "destination": h.destination, "address": h.address, "port": h.port,
        "user": h.user, "identity_file": h.identity_file, "jump": h.jump,
        "ssh_alias": h.ssh_alias, "postgres_image": h.postgres_image,
        "odoo_image": h.odoo_image, "proxy_image": h.proxy_image,
        "base_domain": h.base_domain, "tls": h.tls, "proxy_bind": h.proxy_bind,
        "services": len(ctx.inventory.list_services(host=h.name)),
    }


@host.command("ls")
@click.option("--check", "do_check", is_flag=True, help="Also poll every host's health.")
@json_option
@passphrase_option
def host_ls(ctx: Context, do_check: bool) -> None:
    """List the hosts (with --check, their health, polled in parallel)."""
    hosts = ctx.inventory.list_hosts()
    health = _check_many(ctx, hosts) if do_check and hosts else {}
    rows = []
    for h in hosts:
        d = _host_row(ctx, h)
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
            f"{h.managed_containers} managed, rtt {h.rtt_ms} ms"
            + "".join(f", {name} {state}" for name, state in (h.platform or {}).items()))


def _check_many(ctx: Context, hosts) -> dict:
    """Poll hosts in parallel, one session (SSH connection) each."""
    from havsh_tui.ops.hosts import check_host

    pool = _pool(ctx)
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as ex:
        results = list(ex.map(lambda h: check_host(pool.session(h)), hosts))
    return {r.host: r for r in results}


@host.command("check")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--accept-host-key", "accept_fp", metavar="SHA256:...",
              help="Pin a new host key first (after `havsh host forget-key NAME`).")
@click.option("--trust-on-first-use", is_flag=True, help="Accept a host key never seen.")
@json_option
@passphrase_option
def host_check(ctx: Context, names: tuple[str, ...], accept_fp, trust_on_first_use) -> None:
    """Poll hosts' health (all hosts when no NAME); exits 1 when one is unreachable.

    With --json: the health on stdout (one object for one NAME, else a list), and for an
    unreachable host also an error object on stderr. --accept-host-key and
    --trust-on-first-use (one NAME only) accept the host's key before the poll.
    """
    hosts = [ctx.inventory.get_host(n) for n in names] or ctx.inventory.list_hosts()
    if not hosts:
        raise CLIError("no hosts yet: add one with `havsh host add NAME --ssh user@address`",
                       kind="no_hosts")
    _check_key_flags(accept_fp, trust_on_first_use)
    if accept_fp or trust_on_first_use or (len(names) == 1 and _interactive(ctx)):
        if len(names) != 1:
            raise CLIError("--accept-host-key and --trust-on-first-use need exactly one NAME",
                           kind="usage", code=2)
        opts = _ssh_options(ctx)
        session = _pool(ctx).session(hosts[0])  # the poll below reuses this connection
        for hop in session.ssh.target.hops():
            hop.trust_on_first_use = trust_on_first_use
        session.ssh.target.accept_fingerprint = accept_fp

        def verify():
            session.ssh.client()
            return session.ssh.all_accepted_keys()

        try:
            for kh_name, kt, kfp in _with_host_key_question(ctx, opts, verify, hosts[0].name):
                _audit(ctx).append(hosts[0].name, "host.accept-key", kh_name, "ok",
                                   f"{kt} {kfp}")
        except CLIError:
            raise
        except Exception:  # noqa: BLE001 - the poll below reports it, with its kind
            pass
    health = _check_many(ctx, hosts)
    results = [health[h.name] for h in hosts]
    if ctx.json:
        emit(ctx, results[0].to_dict() if len(names) == 1 else [r.to_dict() for r in results])
    else:
        for r in results:
            click.echo(f"{r.host}: " + (_health_summary(r) if r.reachable
                                        else f"UNREACHABLE: {r.error}"))
    down = [r for r in results if not r.reachable]
    if down:
        if ctx.json:
            for r in down:
                click.echo(dumps({"error": {"type": r.error_kind or "host_unreachable",
                                            "message": r.error, "host": r.host,
                                            **r.error_extra}}), err=True)
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
@click.option("--ssh", "dest", help="New [user@]address[:port] or ssh_config alias.")
@click.option("--port", type=click.IntRange(1, 65535))
@click.option("--user")
@click.option("--identity", type=click.Path(dir_okay=False),
              help="Private key file ('' to use the ssh_config's or the agent).")
@click.option("--jump", help="Jump host(s) ('' for none).")
@click.option("--postgres-image")
@click.option("--odoo-image")
@click.option("--proxy-image")
@proxy_options
@click.option("--accept-host-key", "accept_fp", metavar="SHA256:...")
@click.option("--trust-on-first-use", is_flag=True)
@click.option("--no-check", is_flag=True, help="Save a new address without connecting.")
@json_option
@passphrase_option
def host_set(ctx: Context, name, dest, port, user, identity, jump, postgres_image,
             odoo_image, proxy_image, accept_fp, trust_on_first_use, no_check,
             base_domain=None, tls=None, proxy_bind=None) -> None:
    """Change a host's settings, or how it is reached (tested before it is saved)."""
    from havsh_tui.ops.hosts import update_host

    _check_key_flags(accept_fp, trust_on_first_use)
    opts = _ssh_options(ctx)
    changes: dict = {}
    if dest is not None:
        d_user, address, d_port, alias = _destination(dest, opts)
        changes.update(address=address, ssh_alias=alias)
        if d_user:
            changes["user"] = d_user
        if d_port:
            changes["port"] = d_port
    if port is not None:
        changes["port"] = port
    if user is not None:
        changes["user"] = user or None
    if identity is not None:
        changes["identity_file"] = str(Path(identity).expanduser().absolute()) if identity \
            else None
    if jump is not None:
        changes["jump"] = jump or None
    for field_name, value in (("postgres_image", postgres_image), ("odoo_image", odoo_image),
                              ("proxy_image", proxy_image)):
        if value is not None:
            changes[field_name] = value
    proxy_kw = proxy_settings(base_domain, tls, proxy_bind)
    bind = proxy_kw.pop("proxy_bind", None)
    changes.update(proxy_kw)
    if not changes and bind is None:
        raise CLIError("nothing to change: give at least one option", kind="usage", code=2)
    before = ctx.inventory.get_host(name)
    after = _with_host_key_question(ctx, opts, lambda: update_host(
        ctx.inventory, name, changes, opts, check=not no_check, accept_fingerprint=accept_fp,
        trust_on_first_use=trust_on_first_use, audit=_audit(ctx)), name)
    if bind is not None:
        after = save_proxy_bind(ctx.inventory, name, bind)
        changes["proxy_bind"] = bind
    changed = {k: getattr(after, k) for k in changes if getattr(before, k) != getattr(after, k)}
    proxy_json, proxy_text = apply_proxy(ctx, after, changed)
    emit(ctx, {"host": name, "changed": changed, **proxy_json},
         f"{name}: " + (", ".join(f"{k} = {v}" for k, v in changed.items()) or "no change")
         + proxy_text)


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
@passphrase_option
def host_bootstrap(ctx: Context, name: str) -> None:
    """Create the havsh network, PostgreSQL (havsh-postgres) and the reverse proxy
    (havsh-proxy) on a host, where missing (idempotent: a second run changes nothing)."""
    from havsh_tui.cli.reporter import CLIReporter
    from havsh_tui.core.secrets import SecretStore
    from havsh_tui.ops.bootstrap import bootstrap_host

    h = ctx.inventory.get_host(name)
    result = bootstrap_host(_pool(ctx).session(h), SecretStore(ctx.paths.secrets),
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
@passphrase_option
def host_push_image(ctx: Context, name: str, image: str, source: str) -> None:
    """Stream IMAGE to host NAME from another host or the local engine (docker save | load)."""
    from havsh_tui.cli.reporter import CLIReporter
    from havsh_tui.ops.images import push_image_to

    ctx.inventory.get_host(name)
    if source == name:
        raise CLIError("--from names the target host itself", kind="usage", code=2)
    result = push_image_to(ctx.inventory, _pool(ctx), name, image, source,
                           CLIReporter(ctx.json), audit=_audit(ctx))
    if ctx.json:
        emit(ctx, result)
    elif result["skipped"]:
        click.echo(f"{name} has {image} already (same image ID)")
    else:
        click.echo(f"\npushed {image} to {name}: {result['bytes'] / 1e6:.1f} MB "
                   f"in {result['seconds']} s")


COMMANDS = [host]
