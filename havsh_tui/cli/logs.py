"""`havsh logs NAME`: a service's container log, parsed, filtered, followed."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import click

from havsh_tui.cli import CLIError, Context, dumps, json_option

#: One encoder for every line: json.dumps with options builds a new one per call, which
#: costs more than the line. A LogLine holds only str, int, bool and None.
_LINE_JSON = json.JSONEncoder(ensure_ascii=True, separators=(", ", ": "))

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
    colour = sys.stdout.isatty() and not ctx.json
    # Odoo's fields are parsed only when something needs them: a plain `havsh logs -f`
    # passes lines through as fast as they come.
    stream = LogStream(lambda: pool.session(host), container_name(s.name),
                       tail=tail if tail == "all" else int(tail),
                       since=parse_since(since) if since else None, follow=follow,
                       parse=bool(ctx.json or colour or flt.min_level))
    out = sys.stdout
    matches = flt.matches if flt.active else None
    try:
        # One write (and, following, one flush) per batch: a batch is what one read from
        # the network brought, so nothing waits in a buffer while the stream is idle.
        for batch in stream.batches():
            parts: list[str] = []
            for item in batch:
                if not isinstance(item, LogLine):
                    _event(ctx, item.kind, item.detail)
                    continue
                if matches is not None and not matches(item):
                    continue
                if ctx.json:
                    parts.append(_LINE_JSON.encode(item.to_dict()))
                elif colour:
                    parts.append(click.style(item.text,
                                             fg=_COLOURS.get(item.effective_level or "")))
                else:
                    parts.append(item.text)
            if parts:
                parts.append("")
                out.write("\n".join(parts))
                if follow:
                    out.flush()
        out.flush()
    except BrokenPipeError:
        stream.stop()
        _quiet_stdout()
    except KeyboardInterrupt:
        stream.stop()


def _event(ctx: Context, kind: str, detail: str) -> None:
    """A stream event (drop, reconnect, restart) goes to stderr, never among the lines."""
    if ctx.json:
        click.echo(dumps({"event": kind, "detail": detail}), err=True)
    else:
        click.secho(f"-- {kind}: {detail}", err=True, dim=True)


def _quiet_stdout() -> None:
    # `havsh logs -f x | head`: the reader went away. Point stdout at /dev/null so that the
    # interpreter's final flush does not raise a second BrokenPipeError.
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass

COMMANDS = [logs]
