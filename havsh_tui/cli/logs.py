"""`havsh logs NAME`: a service's container log, parsed, filtered, followed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import click

from havsh_tui.cli import CLIError, Context, dumps, json_option

_COLOURS = {"DEBUG": "bright_black", "INFO": None, "WARNING": "yellow", "ERROR": "red",
            "CRITICAL": "bright_red"}


def parse_since(text: str) -> float:
    """``10m``, ``2h``, ``1d``, ``30s``, a UNIX time, or an ISO time → UNIX seconds."""
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return (datetime.now(UTC) - timedelta(seconds=float(text[:-1]) * units[text[-1]])
                ).timestamp()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(f"--since {text!r}: give 10m, 2h, 1d, a UNIX time or an ISO time",
                       kind="usage", code=2) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@click.command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep following (reconnects after a drop).")
@click.option("--tail", "tail", default="200", help="Lines from the end to start with (or all).")
@click.option("--since", help="Start at this time: 10m, 2h, 1d, a UNIX or ISO time.")
@click.option("--level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                                           case_sensitive=False),
              help="Only lines at this level or above (tracebacks go with their line).")
@click.option("--grep", help="Only lines matching this regular expression (case-insensitive).")
@json_option
def logs(ctx: Context, name, follow, tail, since, level, grep) -> None:
    """Print a service's log: plain lines (coloured on a TTY), or JSON objects with --json."""
    from havsh_tui.cli.service import resolve_service
    from havsh_tui.core.names import container_name
    from havsh_tui.ops.logs import LogFilter, LogLine, LogStream

    s = resolve_service(ctx, name)
    host = ctx.inventory.get_host(s.host)
    try:
        flt = LogFilter.build(level, grep)
    except ValueError as exc:
        raise CLIError(str(exc), kind="usage", code=2) from None
    if tail != "all" and not str(tail).isdigit():
        raise CLIError("--tail takes a number or 'all'", kind="usage", code=2)
    pool = ctx.pool
    stream = LogStream(lambda: pool.session(host), container_name(s.name),
                       tail=tail if tail == "all" else int(tail),
                       since=parse_since(since) if since else None, follow=follow)
    colour = sys.stdout.isatty() and not ctx.json
    out = sys.stdout
    try:
        for item in stream.lines():
            if not isinstance(item, LogLine):
                msg = f"-- {item.kind}: {item.detail}"
                if ctx.json:
                    click.echo(dumps({"event": item.kind, "detail": item.detail}), err=True)
                else:
                    click.secho(msg, err=True, dim=True)
                continue
            if not flt.matches(item):
                continue
            if ctx.json:
                out.write(dumps(item.to_dict()) + "\n")
            elif colour:
                out.write(click.style(item.text, fg=_COLOURS.get(item.effective_level or "")) + "\n")
            else:
                out.write(item.text + "\n")
            if follow:
                out.flush()
    except BrokenPipeError:
        stream.stop()
    except KeyboardInterrupt:
        stream.stop()


COMMANDS = [logs]
