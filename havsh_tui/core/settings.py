"""User settings: a typed dataclass read from ``settings.toml``.

Every field has a docstring (the string right below it); :func:`field_docs` reads them, so
the template that ``render_settings`` writes and the error messages say what a key means.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import math
import textwrap
import tomllib
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .paths import AppPaths
from .serde import atomic_write_bytes


class SettingsError(ValueError):
    """settings.toml is unreadable or holds a bad value; the message names the file and key."""


@dataclass
class Settings:
    """Everything the user can set in settings.toml. Unset keys take these defaults."""

    poll_interval: float = 5.0
    """Seconds between two polls of one host (each host is polled by its own worker)."""

    ssh_connect_timeout: float = 8.0
    """Seconds to wait for an SSH connection (TCP, key exchange and auth, every jump hop
    included) before giving up; 8 s keeps a silent host's error under 10 s end to end."""

    ssh_command_timeout: float = 60.0
    """Seconds a single remote command or Docker API call may take before it is abandoned."""

    default_odoo_version: str = "17.0"
    """The Odoo version the creation wizard proposes."""

    default_postgres_image: str = "postgres:16"
    """The PostgreSQL image bootstrap runs on a new host."""

    default_odoo_image_template: str = "odoo:{version}"
    """The Odoo image for a version; ``{version}`` is replaced by the Odoo version."""

    default_proxy_image: str = "caddy:2"
    """The reverse proxy image bootstrap runs on a new host."""

    log_max_lines: int = 100_000
    """Lines a log pane keeps in memory; older lines are dropped."""

    previews_per_parent: int = 5
    """At most this many previews of one parent service at a time; 0 means no limit."""

    preview_history_days: int = 14
    """Days a destroyed preview stays listed (previews screen, `havsh preview ls`) before the
    reconciler forgets its record; 0 keeps them all."""

    theme: str = "textual-dark"
    """The Textual theme name."""

    keymap: dict[str, str] = field(default_factory=dict)
    """Key overrides for App.set_keymap: binding id to keys, as ``service-restart = "ctrl+r"``."""

    def odoo_image(self, version: str) -> str:
        """The Odoo image for ``version`` from :attr:`default_odoo_image_template`."""
        return self.default_odoo_image_template.format(version=version)


_POSITIVE = ("poll_interval", "ssh_connect_timeout", "ssh_command_timeout")
_NON_NEGATIVE = ("previews_per_parent", "preview_history_days")
_NON_EMPTY = (
    "default_odoo_version",
    "default_postgres_image",
    "default_odoo_image_template",
    "default_proxy_image",
    "theme",
)


@cache
def field_docs() -> dict[str, str]:
    """Field name to its docstring, read from this module's source (empty if unavailable)."""
    try:
        source = textwrap.dedent(inspect.getsource(Settings))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    previous: str | None = None
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            previous = node.target.id
            continue
        if (
            previous
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docs[previous] = inspect.cleandoc(node.value.value)
        previous = None
    return docs


def _type_name(tp: Any) -> str:
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if typing.get_origin(tp) is dict:
        return "a table of strings"
    return str(tp)


def _check_value(file: Path, key: str, tp: Any, value: Any) -> Any:
    """Return ``value`` converted to ``tp``, or raise SettingsError saying what was expected."""

    def wrong() -> SettingsError:
        return SettingsError(
            f"{file}: setting {key!r} must be {_type_name(tp)}, "
            f"got {type(value).__name__} {value!r}"
        )

    if tp is float:
        # TOML has no implicit conversions, but `poll_interval = 5` obviously means 5.0.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong()
        value = float(value)
        if not math.isfinite(value):
            raise SettingsError(f"{file}: setting {key!r} must be a finite number, got {value}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if tp is str or tp is bool:
        if not isinstance(value, tp):
            raise wrong()
        return value
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict):
            raise wrong()
        for k, v in value.items():
            if not isinstance(v, str):
                raise SettingsError(
                    f'{file}: {key}.{k} must be a string of keys like "ctrl+r", got {v!r}'
                )
        return dict(value)
    return value


def _check_ranges(file: Path, settings: Settings) -> None:
    for key in _POSITIVE:
        if getattr(settings, key) <= 0:
            raise SettingsError(f"{file}: setting {key!r} must be greater than 0")
    for key in _NON_NEGATIVE:
        if getattr(settings, key) < 0:
            raise SettingsError(f"{file}: setting {key!r} must not be negative")
    for key in _NON_EMPTY:
        if not getattr(settings, key).strip():
            raise SettingsError(f"{file}: setting {key!r} must not be empty")
    if settings.log_max_lines < 100:
        raise SettingsError(f"{file}: setting 'log_max_lines' must be at least 100")
    try:
        settings.odoo_image("17.0")
    except (KeyError, IndexError, ValueError) as exc:
        raise SettingsError(
            f"{file}: setting 'default_odoo_image_template' may only use {{version}}, "
            f'as in "odoo:{{version}}" ({exc!r})'
        ) from None


def settings_from_mapping(data: dict[str, Any], *, source: Path | str = "<settings>") -> Settings:
    """Validate ``data`` (a parsed TOML document) into Settings; errors name ``source``."""
    file = Path(source)
    hints = typing.get_type_hints(Settings)
    known = [f.name for f in dataclasses.fields(Settings)]
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in hints:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SettingsError(
                f"{file}: unknown setting {key!r}{hint} (known settings: {', '.join(known)})"
            )
        values[key] = _check_value(file, key, hints[key], value)
    settings = Settings(**values)
    _check_ranges(file, settings)
    return settings


def load_settings(paths: AppPaths) -> Settings:
    """Read ``paths.settings``; a missing file means all defaults."""
    file = paths.settings
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise SettingsError(f"{file}: cannot read settings: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"{file}: settings file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{file}: not valid TOML: {exc}") from None
    return settings_from_mapping(data, source=file)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON's string escapes (\" \\ \n \t \uXXXX) are all valid TOML basic-string escapes.
        return json.dumps(value)
    raise TypeError(f"cannot write {value!r} as TOML")


def render_settings(settings: Settings, *, include_defaults: bool = False) -> str:
    """``settings`` as TOML, each key preceded by its docstring as a comment.

    Only values that differ from the defaults are written unless ``include_defaults``, so a
    future havsh with better defaults still applies them; defaults appear commented out.
    """
    docs = field_docs()
    defaults = Settings()
    lines = ["# havsh settings. Unset keys take their defaults.", ""]
    tables: list[str] = []
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        is_default = value == getattr(defaults, f.name)
        if is_default and not include_defaults:
            continue
        doc = docs.get(f.name, "")
        comment = [f"# {line}".rstrip() for line in doc.splitlines()]
        if isinstance(value, dict):
            block = comment + [f"[{f.name}]"]
            block += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in sorted(value.items())]
            tables.append("\n".join(block))
            continue
        prefix = "# " if is_default else ""
        lines += comment + [f"{prefix}{f.name} = {_toml_value(value)}", ""]
    # Tables must come after every top-level key in TOML.
    text = "\n".join(lines).rstrip() + "\n"
    if tables:
        text += "\n" + "\n\n".join(tables) + "\n"
    return text


def save_settings(paths: AppPaths, settings: Settings) -> None:
    """Write ``settings`` to ``paths.settings`` atomically (non-default values only)."""
    _check_ranges(paths.settings, settings)
    paths.settings.parent.mkdir(parents=True, exist_ok=True)
    text = render_settings(settings)
    # Round-trip before replacing the user's file: never write something we cannot read.
    settings_from_mapping(tomllib.loads(text), source=paths.settings)
    atomic_write_bytes(paths.settings, text.encode(), mode=0o600)
