"""The addons path as Odoo builds it: core addons, data_dir/addons/<serie>, then addons_path."""

from __future__ import annotations

import logging
import os
from typing import Any

from . import modules, release

_logger = logging.getLogger("odoo.tools.config")


class AddonsPathError(Exception):
    pass


def _is_addons_path(path: str) -> bool:
    try:
        entries = os.listdir(path)
    except OSError:
        return False
    for entry in entries:
        modpath = os.path.join(path, entry)
        if os.path.isfile(os.path.join(modpath, "__init__.py")) and modules.manifest_path(modpath):
            return True
    return False


def check_cli_addons_path(value: str) -> None:
    """Odoo <= 18 refuses a bad --addons-path on the command line; 19 warns and skips."""
    for raw in value.split(","):
        path = os.path.abspath(os.path.expanduser(raw.strip()))
        if not raw.strip():
            continue
        if not os.path.isdir(path):
            msg = f"option --addons-path: no such directory: {path!r}"
        elif not _is_addons_path(path):
            msg = f"option --addons-path: the path {path!r} is not a valid addons directory"
        else:
            continue
        if release.major >= 19:
            _logger.warning("%s, skipped", msg)
        else:
            raise AddonsPathError(msg)


def addons_paths(cfg: dict[str, Any]) -> list[str]:
    paths = [modules.BUILTIN_ADDONS]
    data_addons = os.path.join(str(cfg["data_dir"]), "addons", release.serie)
    try:
        os.makedirs(data_addons, mode=0o700, exist_ok=True)
        paths.append(data_addons)
    except OSError:
        if os.path.isdir(data_addons):
            paths.append(data_addons)
    value = cfg.get("addons_path") or ""
    if isinstance(value, list):
        value = ",".join(value)
    for raw in str(value).split(","):
        if not raw.strip():
            continue
        path = os.path.abspath(os.path.expanduser(raw.strip()))
        if os.path.isdir(path) and path not in paths:
            paths.append(path)
    return paths
