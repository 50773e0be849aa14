"""The ``havsh`` command. No arguments opens the TUI; subcommands run the same ops headless.

Every subcommand takes ``--json``: results go to stdout as JSON, errors to stderr as
``{"error": {"type": ..., "message": ...}}``, and a failure exits non-zero.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import click

from havsh_tui import __version__

EXIT_ERROR = 1
EXIT_USAGE = 2


class CLIError(Exception):
    """A user-facing failure of a command: printed plainly, or as JSON with --json."""

    def __init__(self, message: str, *, kind: str = "error", code: int = EXIT_ERROR, **extra):
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.extra = extra


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, default=_jsonable, indent=None, sort_keys=False)


@dataclass
class Context:
    """What every command needs, made lazily so `havsh --help` touches no file."""

    json: bool = False
    _paths: Any = None
    _settings: Any = None
    _inventory: Any = None
    _pool: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def paths(self):
        if self._paths is None:
            from havsh_tui.core.paths import AppPaths

            self._paths = AppPaths.from_env()
            self._paths.ensure()
        return self._paths

    @property
    def settings(self):
        if self._settings is None:
            from havsh_tui.core.settings import load_settings

            self._settings = load_settings(self.paths)
        return self._settings

    @property
    def inventory(self):
        if self._inventory is None:
            from havsh_tui.core.inventory import open_inventory

            self._inventory = open_inventory(self.paths)
            recovered = getattr(self._inventory, "recovered_from", None)
            if recovered:
                warn(
                    self,
                    f"the inventory file was corrupt; it was kept aside as {recovered} "
                    "and a new one was started. Run `havsh rescan` to rebuild it from the hosts.",
                )
        return self._inventory

    def ssh_options(self):
        from havsh_tui.remote.hosts import SSHOptions

        s = self.settings
        return SSHOptions.default(
            self.paths.known_hosts,
            connect_timeout=s.ssh_connect_timeout,
            command_timeout=s.ssh_command_timeout,
        )

    @property
    def pool(self):
        if self._pool is None:
            from havsh_tui.remote.hosts import HostPool

            self._pool = HostPool(self.ssh_options())
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def warn(ctx: Context, message: str) -> None:
    if ctx.json:
        click.echo(dumps({"warning": message}), err=True)
    else:
        click.secho(f"warning: {message}", fg="yellow", err=True)


def emit(ctx: Context, data: Any, human: str | None = None) -> None:
    """Print a result: JSON on stdout with --json, else the human text."""
    if ctx.json:
        click.echo(dumps(data))
    elif human is not None:
        click.echo(human)


def _error_kind(exc: BaseException) -> str:
    return getattr(exc, "kind", None) or type(exc).__name__


def _fail(ctx: Context, exc: BaseException, code: int = EXIT_ERROR) -> None:
    message = str(exc) or type(exc).__name__
    if ctx.json:
        payload = {"error": {"type": _error_kind(exc), "message": message}}
        payload["error"].update(getattr(exc, "extra", {}) or {})
        click.echo(dumps(payload), err=True)
    else:
        click.secho(f"havsh: error: {message}", fg="red", err=True)
    sys.exit(code)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is meant for the user (everything else is a bug: traceback)."""
    from havsh_tui.core.names import InvalidName
    from havsh_tui.ops.hosts import OpsError
    from havsh_tui.remote.ssh import RemoteError

    errors: list[type[BaseException]] = [CLIError, InvalidName, OpsError, RemoteError]
    try:
        from havsh_tui.core.inventory import InventoryError

        errors.append(InventoryError)
    except ImportError:
        pass
    try:
        from havsh_tui.core.settings import SettingsError

        errors.append(SettingsError)
    except ImportError:
        pass
    return tuple(errors)


def json_option(fn):
    """Give a command ``--json`` and turn every user-facing error into a clean exit."""

    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
    @click.pass_obj
    @functools.wraps(fn)
    def wrapper(ctx: Context, as_json: bool, *args, **kwargs):
        ctx.json = ctx.json or as_json
        try:
            return fn(ctx, *args, **kwargs)
        except _user_errors() as exc:
            _fail(ctx, exc, getattr(exc, "code", EXIT_ERROR))
        except KeyboardInterrupt:
            _fail(ctx, CLIError("interrupted", kind="interrupted"), 130)
        finally:
            ctx.close()

    return wrapper


class HavshGroup(click.Group):
    """Turns usage errors into JSON too when --json is on the command line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_ERROR)
        except click.ClickException as exc:
            if "--json" in argv:
                payload = {"error": {"type": "usage", "message": exc.format_message()}}
                click.echo(dumps(payload), err=True)
            else:
                exc.show()
            sys.exit(exc.exit_code)


@click.group(cls=HavshGroup, invoke_without_command=True)
@click.version_option(__version__, "--version", "-V", prog_name="havsh")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (any command).")
@click.pass_context
def cli(click_ctx: click.Context, as_json: bool) -> None:
    """hav.sh in a terminal: Odoo services on your own servers, over SSH.

    With no command, opens the TUI. Every command takes --json. Files live under
    $HAVSH_HOME when it is set, else in the XDG directories.
    """
    click_ctx.obj = Context(json=as_json)
    if click_ctx.invoked_subcommand is None:
        from havsh_tui.app import run_tui

        sys.exit(run_tui())


@click.command("rescan")
@click.option("--host", "host_name", help="Only this host.")
@json_option
def rescan(ctx: Context, host_name: str | None) -> None:
    """Rebuild the service inventory from the labels on the hosts."""
    from havsh_tui.ops.rescan import rescan_all, rescan_host

    if host_name:
        results = [rescan_host(ctx.inventory, ctx.pool, ctx.inventory.get_host(host_name))]
    else:
        results = rescan_all(ctx.inventory, ctx.pool)
    lines = []
    for r in results:
        if not r.reachable:
            lines.append(f"{r.host}: UNREACHABLE ({r.error})")
            continue
        lines.append(f"{r.host}: {len(r.adopted)} adopted, {len(r.updated)} updated, "
                     f"{len(r.missing)} missing, {len(r.unchanged)} unchanged")
        for slug in r.adopted:
            lines.append(f"  + {slug}")
        for slug in r.missing:
            lines.append(f"  ? {slug} (its container is gone)")
        for slug in r.urls:
            lines.append(f"  ~ {slug}: URL and hostnames set from the host's proxy")
    emit(ctx, [r.to_dict() for r in results], "\n".join(lines) or "no hosts")
    if any(not r.reachable for r in results):
        sys.exit(EXIT_ERROR)


#: Command modules under havsh_tui/cli/; each exports COMMANDS, a list of click commands.
#: A module that is not there yet (a feature not built) is simply not listed.
COMMAND_MODULES = ("host", "service", "logs", "backup", "preview", "repo", "github",
                   "hostname")


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"havsh_tui.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"havsh_tui.cli.{name}":
                raise
            continue
        for command in mod.COMMANDS:
            cli.add_command(command)
    cli.add_command(rescan)


_register()


def main() -> None:
    cli(prog_name="havsh")
