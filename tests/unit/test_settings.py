"""Settings: defaults, TOML overrides, clear errors, save and reload, paths."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from havsh_tui.core.paths import AppPaths
from havsh_tui.core.settings import (
    Settings,
    SettingsError,
    field_docs,
    load_settings,
    render_settings,
    save_settings,
)


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths(home=tmp_path / "home").ensure()


def write(paths: AppPaths, text: str) -> None:
    paths.settings.write_text(text, encoding="utf-8")


def test_missing_file_gives_defaults(paths: AppPaths) -> None:
    s = load_settings(paths)
    assert s == Settings()
    assert s.poll_interval == 5.0
    assert s.ssh_connect_timeout == 8.0
    assert s.ssh_command_timeout == 60.0
    assert s.default_odoo_version == "17.0"
    assert s.default_postgres_image == "postgres:16"
    assert s.default_odoo_image_template == "odoo:{version}"
    assert s.default_proxy_image == "caddy:2"
    assert s.log_max_lines == 100_000
    assert s.previews_per_parent == 5
    assert s.theme == "textual-dark"
    assert s.keymap == {}
    assert s.odoo_image("16.0") == "odoo:16.0"


def test_toml_overrides(paths: AppPaths) -> None:
    write(
        paths,
        'poll_interval = 2\ntheme = "nord"\nlog_max_lines = 5000\n'
        '[keymap]\n"service-restart" = "ctrl+r"\n',
    )
    s = load_settings(paths)
    assert s.poll_interval == 2.0 and isinstance(s.poll_interval, float)
    assert s.theme == "nord"
    assert s.log_max_lines == 5000
    assert s.keymap == {"service-restart": "ctrl+r"}
    assert s.ssh_command_timeout == 60.0  # untouched keys keep their defaults


def test_unknown_key_names_key_and_file(paths: AppPaths) -> None:
    write(paths, "pol_interval = 3\n")
    with pytest.raises(SettingsError) as err:
        load_settings(paths)
    message = str(err.value)
    assert "'pol_interval'" in message
    assert str(paths.settings) in message
    assert "did you mean 'poll_interval'" in message


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('poll_interval = "fast"', "'poll_interval' must be a number"),
        ("log_max_lines = 1.5", "'log_max_lines' must be an integer"),
        ("previews_per_parent = true", "'previews_per_parent' must be an integer"),
        ("theme = 3", "'theme' must be a string"),
        ('keymap = "ctrl+r"', "'keymap' must be a table"),
        ("[keymap]\nquit = 1", "keymap.quit must be a string"),
        ("poll_interval = 0", "greater than 0"),
        ("poll_interval = inf", "finite"),
        ("previews_per_parent = -1", "not be negative"),
        ('default_odoo_image_template = "odoo:{ver}"', "{version}"),
        ('theme = ""', "must not be empty"),
    ],
)
def test_wrong_values_are_clear(paths: AppPaths, toml: str, fragment: str) -> None:
    write(paths, toml + "\n")
    with pytest.raises(SettingsError) as err:
        load_settings(paths)
    assert fragment in str(err.value)
    assert str(paths.settings) in str(err.value)


def test_invalid_toml(paths: AppPaths) -> None:
    write(paths, "poll_interval = = 3\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(paths)


def test_save_and_load_round_trip(paths: AppPaths) -> None:
    s = Settings(
        poll_interval=1.5,
        theme='we"ird\\theme',
        keymap={"service-restart": "ctrl+r", "app.quit": "ctrl+q"},
        previews_per_parent=0,
    )
    save_settings(paths, s)
    assert load_settings(paths) == s
    text = paths.settings.read_text()
    # Only what differs from the defaults is written, so better defaults still apply later.
    assert "ssh_command_timeout" not in text
    assert "# Seconds between two polls" in text
    assert os.stat(paths.settings).st_mode & 0o777 == 0o600


def test_defaults_template_is_loadable(paths: AppPaths) -> None:
    text = render_settings(Settings(), include_defaults=True)
    for f in dataclasses.fields(Settings):
        assert f.name in text
    write(paths, text)
    assert load_settings(paths) == Settings()


def test_every_field_has_a_docstring() -> None:
    docs = field_docs()
    for f in dataclasses.fields(Settings):
        assert docs.get(f.name), f"Settings.{f.name} has no docstring"


def test_paths_from_env(tmp_path: Path) -> None:
    p = AppPaths.from_env({"HAVSH_HOME": str(tmp_path / "h")})
    assert p.home == p.data_dir == p.config_dir == tmp_path / "h"
    assert p.inventory == tmp_path / "h" / "inventory.json"
    assert p.settings == tmp_path / "h" / "settings.toml"
    assert p.secrets == tmp_path / "h" / "secrets.json"
    assert p.known_hosts == tmp_path / "h" / "known_hosts"
    assert p.audit_log == tmp_path / "h" / "audit.log"
    assert p.lock == tmp_path / "h" / "inventory.lock"
    assert p.logs_dir.parent == p.data_dir


def test_paths_xdg_when_no_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    p = AppPaths.from_env({"HAVSH_HOME": ""})
    assert p.inventory == tmp_path / "data" / "havsh" / "inventory.json"
    assert p.secrets.parent == p.known_hosts.parent == p.audit_log.parent == p.data_dir
    assert p.settings == tmp_path / "config" / "havsh" / "settings.toml"


def test_ensure_makes_private_dirs(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = AppPaths(home=tmp_path / "a" / "b").ensure()
    finally:
        os.umask(old)
    for d in (p.home, p.logs_dir, tmp_path / "a"):
        assert os.stat(d).st_mode & 0o777 == 0o700, d
    p.ensure()  # twice is fine
