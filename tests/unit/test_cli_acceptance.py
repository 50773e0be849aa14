"""The names the issues give the CLI, locked: commands, arguments and flags that users'
scripts and the acceptance checks call. Renaming one breaks them, so it must break this first.
"""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from havsh_tui.cli import cli

# (command path, flags it must take). From issues 2-9, word for word.
NAMED: list[tuple[str, tuple[str, ...]]] = [
    # issue 3
    ("host add", ("--ssh", "--port", "--user", "--identity", "--jump", "--accept-host-key",
                  "--trust-on-first-use", "--postgres-image", "--odoo-image", "--proxy-image")),
    ("host set", ("--postgres-image", "--odoo-image", "--proxy-image", "--base-domain", "--tls")),
    ("host ls", ()),
    ("host check", ("--accept-host-key", "--trust-on-first-use")),
    ("host rm", ()),
    ("host forget-key", ()),
    ("host bootstrap", ()),
    ("host push-image", ("--from",)),
    # issue 4
    ("service create", ("--type", "--host", "--odoo", "--image", "--demo", "--no-demo",
                        "--config", "--admin-password-file")),
    ("service ls", ()),
    ("service show", ()),
    ("service start", ()),
    ("service stop", ()),
    ("service restart", ()),
    ("service neutralize", ()),
    ("service rm", ("--yes", "--confirm-name")),
    ("rescan", ()),
    # issue 5
    ("service copy", ("--host", "--neutralize", "--no-neutralize", "--image")),
    # issue 6
    ("logs", ("-f", "--tail", "--since", "--level", "--grep")),
    # issue 7
    ("github login", ("--api-url",)),
    ("repo connect", ("--branch", "--subdir")),
    ("repo ls", ()),
    ("repo deploy", ("--ref",)),
    ("repo disconnect", ()),
    ("repo previews", ()),
    ("preview reconcile", ()),
    ("preview watch", ("--interval",)),
    # issue 8
    ("backup schedule", ("--dest", "--frequency", "--keep", "--cron")),
    ("backup dest add", ()),
    ("backup dest ls", ()),
    ("backup dest rm", ()),
    ("backup create", ("--dest",)),
    ("backup ls", ()),
    ("backup restore", ("--service", "--new", "--host", "--from-file", "--confirm-name")),
    # issue 9
    ("service open", ()),
    ("hostname add", ()),
    ("hostname rm", ()),
]


def _command(path: str) -> click.Command:
    cmd: click.Command = cli
    for word in path.split():
        assert isinstance(cmd, click.Group), f"{path}: {word!r} is under a plain command"
        sub = cmd.get_command(click.Context(cmd), word)
        assert sub is not None, f"`havsh {path}`: no {word!r}"
        cmd = sub
    return cmd


def _flags(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params for o in (*getattr(p, "opts", ()),
                                              *getattr(p, "secondary_opts", ()))}


def _leaves(group: click.Group, prefix: str = ""):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        path = f"{prefix}{name}"
        if isinstance(sub, click.Group):
            yield from _leaves(sub, path + " ")
        else:
            yield path, sub


@pytest.mark.parametrize(("path", "flags"), NAMED, ids=[p for p, _ in NAMED])
def test_named_command_and_flags(path, flags):
    cmd = _command(path)
    assert not isinstance(cmd, click.Group), f"`havsh {path}` should be a command"
    missing = set(flags) - _flags(cmd)
    assert not missing, f"`havsh {path}` lacks {sorted(missing)}"


def test_top_level_groups_listed():
    """Issue 2: `havsh --help` lists host, service, preview, backup, logs, rescan."""
    out = CliRunner().invoke(cli, ["--help"])
    assert out.exit_code == 0
    listed = out.output.split("Commands:", 1)[1]
    for name in ("host", "service", "preview", "backup", "logs", "rescan"):
        assert f"\n  {name} " in listed, name


def test_every_leaf_takes_json():
    leaves = dict(_leaves(cli))
    assert len(leaves) > 40
    without = [p for p, c in leaves.items() if "--json" not in _flags(c)]
    assert not without, f"no --json on: {without}"


def test_version():
    out = CliRunner().invoke(cli, ["--version"])
    assert out.exit_code == 0 and "havsh" in out.output


def test_choices_are_the_named_ones():
    """The values the issues name for --type, --frequency, --level, --tls and repo previews."""
    def choices(path, flag):
        (param,) = [p for p in _command(path).params if flag in getattr(p, "opts", ())]
        return {c.lower() for c in param.type.choices}

    assert {"live", "test", "demo"} <= choices("service create", "--type")
    assert {"hourly", "daily", "weekly", "monthly", "none"} <= choices("backup schedule",
                                                                       "--frequency")
    assert {"debug", "info", "warning", "error"} <= choices("logs", "--level")
    assert {"acme", "internal"} <= choices("host set", "--tls")
    assert {"acme", "internal"} <= choices("host add", "--tls")
    onoff = [p for p in _command("repo previews").params if isinstance(p, click.Argument)][0]
    assert set(onoff.type.choices) == {"on", "off"}


def test_level_flag_takes_the_issue_spelling():
    """`--level WARNING` as issue 6 writes it (upper case) parses."""
    param = [p for p in _command("logs").params if "--level" in getattr(p, "opts", ())][0]
    assert param.type.convert("WARNING", param, None).lower() == "warning"


def test_preview_watch_interval_defaults_to_60():
    param = [p for p in _command("preview watch").params
             if "--interval" in getattr(p, "opts", ())][0]
    assert float(param.default) == 60.0


def test_json_error_on_stderr_nonzero(tmp_path, monkeypatch):
    """Issue 2: errors as JSON on stderr, with a non-zero exit, under $HAVSH_HOME."""
    monkeypatch.setenv("HAVSH_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    out = runner.invoke(cli, ["--json", "service", "show", "acc-nosuch"])
    assert out.exit_code != 0
    err = json.loads(out.stderr.strip().splitlines()[-1])
    assert "acc-nosuch" in err["error"]["message"]
    assert out.stdout == ""
    # The flag after the subcommand works the same.
    out = runner.invoke(cli, ["host", "rm", "acc-nosuch", "--json"])
    assert out.exit_code != 0
    assert json.loads(out.stderr.strip().splitlines()[-1])["error"]["type"]


def test_empty_inventory_json_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("HAVSH_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    for args in (["service", "ls"], ["host", "ls"], ["preview", "ls"], ["repo", "ls"]):
        out = runner.invoke(cli, ["--json", *args])
        assert out.exit_code == 0, (args, out.output)
        assert json.loads(out.stdout) == [], args
    # Every app file lives under HAVSH_HOME.
    assert (tmp_path / "home" / "inventory.json").exists()


def test_readme_command_reference_is_complete():
    """README.md's command reference has a row for every command of the CLI."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Command reference", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `havsh ")]
    missing = []
    for path, _cmd in _leaves(cli):
        group, *rest = path.split()
        word = re.compile(r"(?<![\w-])" + re.escape(" ".join(rest)) + r"(?![\w-])")
        if not any(f"havsh {group}" in row and (not rest or word.search(row)) for row in rows
                   if re.search(rf"havsh {re.escape(group)}(?![\w-])", row)):
            missing.append(path)
    assert not missing, f"not in README's command reference: {missing}"


def test_create_odoo_versions_are_the_issue_ones(tmp_path, monkeypatch):
    """Issue 4: 16.0, 17.0, 18.0, 19.0; another version is a usage error before any work."""
    from havsh_tui.cli.service import ODOO_VERSIONS
    from havsh_tui.ops.odoo import VERSIONS

    assert ODOO_VERSIONS == VERSIONS == ("16.0", "17.0", "18.0", "19.0")
    monkeypatch.setenv("HAVSH_HOME", str(tmp_path / "home"))
    out = CliRunner().invoke(cli, ["--json", "service", "create", "acc-x", "--type", "test",
                                   "--host", "nohost", "--odoo", "15.0"])
    assert out.exit_code == 2
    assert json.loads(out.stderr.strip().splitlines()[-1])["error"]["type"] == "usage"


def test_create_version_follows_the_image():
    """As in the wizard: the image's tag gives the version; a clash with --odoo is refused."""
    from havsh_tui.cli import CLIError
    from havsh_tui.cli.service import _create_version

    assert _create_version(None, None, "17.0") == "17.0"
    assert _create_version("18.0", None, "17.0") == "18.0"
    assert _create_version(None, "odoo:18.0", "17.0") == "18.0"
    assert _create_version(None, "registry.example.com:5000/odoo:16.0-20240101", "17.0") == "16.0"
    assert _create_version(None, "my/odoo:latest", "17.0") == "17.0"
    assert _create_version("19.0", "my/odoo:custom", "17.0") == "19.0"
    assert _create_version("18.0", "odoo:18.0", "17.0") == "18.0"
    with pytest.raises(CLIError, match="is Odoo 16.0, but --odoo 18.0"):
        _create_version("18.0", "odoo:16.0", "17.0")


def test_service_ls_text_shows_url_and_origin(tmp_path, monkeypatch):
    """`havsh service ls` (issue 4): grouped by type, with each service's URL and source."""
    from havsh_tui.core.inventory import open_inventory
    from havsh_tui.core.model import Host, Service, ServiceStatus, ServiceType
    from havsh_tui.core.paths import AppPaths

    monkeypatch.setenv("HAVSH_HOME", str(tmp_path / "home"))
    inv = open_inventory(AppPaths.from_env().ensure())
    inv.add_host(Host(name="hosta", address="127.0.0.1"))
    inv.add_service(Service(name="acc-prod", host="hosta", type=ServiceType.LIVE,
                            odoo_version="17.0", image="odoo:17.0",
                            status=ServiceStatus.RUNNING, url="https://erp.example.com"))
    inv.add_service(Service(name="acc-copy", host="hosta", type=ServiceType.COPY,
                            odoo_version="17.0", image="odoo:17.0", source="acc-prod",
                            status=ServiceStatus.STOPPED))
    out = CliRunner().invoke(cli, ["service", "ls"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("Live (1)") and "Copy (1)" in lines
    (prod,) = [ln for ln in lines if ln.startswith("  acc-prod ")]
    assert "https://erp.example.com" in prod and "Running" in prod
    (copy,) = [ln for ln in lines if ln.startswith("  acc-copy ")]
    assert copy.split()[-2:] == ["-", "acc-prod"]
