"""`havsh hostname ...`: custom hostnames (domains) of services, on their host's proxy."""

from __future__ import annotations

import click

from havsh_tui.cli import CLIError, Context, emit, json_option

PROXY_FIELDS = ("proxy_image", "base_domain", "tls", "proxy_bind")


def proxy_options(fn):
    """``--base-domain``, ``--tls`` and ``--proxy-bind`` of `havsh host add|set`."""
    fn = click.option("--proxy-bind", metavar="ADDRESS",
                      help="Host address the proxy publishes 80 and 443 on (default 0.0.0.0).")(fn)
    fn = click.option("--tls", type=click.Choice(["acme", "internal"]),
                      help="Certificates: acme (automatic HTTPS, the default) or internal "
                           "(Caddy's own CA, for private networks).")(fn)
    fn = click.option("--base-domain", metavar="DOMAIN",
                      help="Platform domain: every service gets <service>.DOMAIN (make a "
                           "wildcard DNS record *.DOMAIN to the host); 'none' removes it.")(fn)
    return fn


def proxy_settings(base_domain: str | None, tls: str | None, proxy_bind: str | None) -> dict:
    """The Host fields those options give (validated), leaving out the ones not given."""
    from havsh_tui.ops.hosts import OpsError
    from havsh_tui.ops.proxy import validate_base_domain, validate_bind

    out: dict = {}
    try:
        if base_domain is not None:
            none = base_domain.strip().lower() in ("", "none", "-")
            out["base_domain"] = None if none else validate_base_domain(base_domain)
        if tls is not None:
            out["tls"] = tls
        if proxy_bind is not None:
            out["proxy_bind"] = validate_bind(proxy_bind)
    except OpsError as exc:
        raise CLIError(str(exc), kind=getattr(exc, "kind", "usage"), code=2) from None
    return out


def save_proxy_bind(inventory, name: str, bind: str):
    """Set a host's proxy bind address in the inventory (no connection needed)."""
    from dataclasses import replace

    host = replace(inventory.get_host(name), proxy_bind=bind)
    inventory.update_host(host)
    return host


def apply_proxy(ctx: Context, host, changed: dict) -> tuple[dict, str]:
    """After `havsh host set`: push proxy settings that changed to the host's proxy.
    Returns (JSON fields, human text) to add to the command's output."""
    from havsh_tui.cli.reporter import CLIReporter
    from havsh_tui.ops.hosts import OpsError
    from havsh_tui.ops.proxy import apply_host_settings, dns_record, host_address
    from havsh_tui.remote.ssh import RemoteError

    if not set(changed) & set(PROXY_FIELDS):
        return {}, ""
    try:
        state = apply_host_settings(ctx.inventory, ctx.pool, host, fields=set(changed),
                                    reporter=CLIReporter(ctx.json), audit=_audit(ctx))
    except (OpsError, RemoteError) as exc:
        return ({"proxy": {"applied": False, "error": str(exc)}},
                f"\n  saved, but not applied to the host's proxy: {exc}\n"
                "  run the same `havsh host set` again when the host answers")
    if state is None:
        return ({"proxy": {"applied": False, "error": "no proxy yet"}},
                f"\n  {host.name} has no proxy yet: `havsh host bootstrap {host.name}` "
                "starts it with these settings")
    out = {"applied": True, "base_domain": state.base_domain, "tls": state.tls}
    text = f"\n  proxy: base domain {state.base_domain or '(none)'}, TLS {state.tls}"
    if state.base_domain:
        rec = dns_record("*." + state.base_domain, host_address(ctx.pool.session(host)))
        out["dns"] = rec
        text += "\n" + "\n".join(_dns_lines(rec))
    return {"proxy": out}, text


def _audit(ctx: Context):
    from havsh_tui.core.audit import AuditLog

    return AuditLog(ctx.paths.audit_log)


def _service(ctx: Context, ref: str):
    from havsh_tui.cli.service import resolve_service

    return resolve_service(ctx, ref)


def _dns_lines(dns: dict) -> list[str]:
    lines = ["Create this DNS record, if it is not there yet:",
             f"  {dns['name']}  {dns['type']}  {dns['value']}"]
    if dns.get("note"):
        lines.append(f"  ({dns['note']})")
    return lines


@click.group()
def hostname() -> None:
    """Custom hostnames of services: their routes, DNS records and certificates.

    Every service also gets <service>.<base domain> when its host has a base domain
    (`havsh host set HOST --base-domain DOMAIN`).
    """


@hostname.command("add")
@click.argument("service")
@click.argument("name", metavar="HOSTNAME")
@json_option
def hostname_add(ctx: Context, service: str, name: str) -> None:
    """Serve SERVICE (NAME or HOST/NAME) at HOSTNAME too, e.g. erp.example.com.

    A hostname belongs to one service only. The proxy picks it up at once, without a
    restart; the first custom hostname becomes the service's URL.
    """
    from havsh_tui.cli.reporter import CLIReporter
    from havsh_tui.ops.proxy import add_hostname

    s = _service(ctx, service)
    change = add_hostname(ctx.inventory, ctx.pool, s, name, reporter=CLIReporter(ctx.json),
                          audit=_audit(ctx))
    head = (f"{change.hostname} → {s.name} on {s.host}"
            + (" (it had it already)" if change.action == "unchanged" else ""))
    lines = [head, f"  url  {change.url}"]
    if change.dns:
        lines += _dns_lines(change.dns)
    emit(ctx, change.to_dict(), "\n".join(lines))


@hostname.command("rm")
@click.argument("service")
@click.argument("name", metavar="HOSTNAME")
@json_option
def hostname_rm(ctx: Context, service: str, name: str) -> None:
    """Stop serving SERVICE at HOSTNAME (its other hostnames are untouched)."""
    from havsh_tui.cli.reporter import CLIReporter
    from havsh_tui.ops.proxy import remove_hostname

    s = _service(ctx, service)
    change = remove_hostname(ctx.inventory, ctx.pool, s, name, reporter=CLIReporter(ctx.json),
                             audit=_audit(ctx))
    emit(ctx, change.to_dict(), f"removed {change.hostname} from {s.name} on {s.host}"
         + (f"; its url is now {change.url}" if change.url else
            "; it has no hostname left (`havsh service open` reaches it)"))


def _expiry(cert) -> str:
    if cert is None:
        return ""
    if cert.error:
        return f"certificate: {cert.error}"
    days = cert.days_left
    return (f"certificate until {cert.not_after:%Y-%m-%d %H:%M} UTC "
            f"({days:.1f} days), {cert.issuer}")


@hostname.command("ls")
@click.argument("service", required=False)
@click.option("--certs", is_flag=True, help="Also read each certificate's expiry (TLS handshake).")
@json_option
def hostname_ls(ctx: Context, service: str | None, certs: bool) -> None:
    """List the hostnames of SERVICE as its host's proxy has them (or of every service, from
    the inventory, without SERVICE)."""
    from havsh_tui.ops.proxy import service_hostnames

    if service is None:
        rows = [{"service": s.name, "host": s.host, "url": s.url or None,
                 "hostnames": list(s.hostnames)}
                for s in ctx.inventory.list_services()]
        if ctx.json:
            emit(ctx, rows)
            return
        for r in rows:
            extra = ("  + " + ", ".join(r["hostnames"])) if r["hostnames"] else ""
            click.echo(f"{r['service']:<24} {r['host']:<14} {r['url'] or '-'}{extra}")
        if not rows:
            click.echo("no services")
        return
    s = _service(ctx, service)
    info = service_hostnames(ctx.inventory, ctx.pool, s, certs=certs)
    if ctx.json:
        emit(ctx, info.to_dict())
        return
    click.echo(f"{s.name} on {s.host}: {info.url or 'no hostname: `havsh service open`'}"
               f"  (TLS {info.tls})")
    for h, kind in ([(info.platform, "platform")] if info.platform else []) + [
            (h, "custom") for h in info.hostnames]:
        click.echo(f"  {h:<40} {kind:<9} {_expiry(info.certs.get(h))}".rstrip())


COMMANDS = [hostname]
