"""The layer rules of shared/DESIGN.md: core, remote, github and ops never import Textual,
core does no I/O but files, and no layer imports one above it.

Two checks, because each misses what the other sees: importing every module in a fresh
interpreter catches Textual pulled in indirectly (through a dependency or
``havsh_tui/__init__.py``); reading every file with ``ast`` catches imports that only run
later (inside a function, or under ``TYPE_CHECKING``). A package that does not exist yet is
skipped, not failed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "havsh_tui"

#: Bottom to top: each layer may import the ones before it, never one after it.
LAYERS = ["core", "remote", "github", "ops"]
#: Everything that is not one of the layers above sits on top (app, cli, screens, widgets...).

#: Top-level modules a layer must not import.
FORBIDDEN: dict[str, set[str]] = {
    "core": {"textual", "rich", "docker", "paramiko", "github", "requests", "urllib3"},
    "remote": {"textual"},
    "github": {"textual"},
    "ops": {"textual"},
}
#: Static only, for core: it does no network, no processes, no terminal output of its own.
CORE_STATIC_EXTRA = {"socket", "ssl", "subprocess", "http", "click", "asyncio"}

IMPORT_ALL = r"""
import importlib, json, sys, traceback
forbidden = set(sys.argv[2].split(","))
result = {"culprits": {}, "errors": {}}
for name in sys.argv[1].split(","):
    try:
        importlib.import_module(name)
    except BaseException:
        result["errors"][name] = traceback.format_exc(limit=3)
        continue
    loaded = sorted({m.split(".")[0] for m in sys.modules} & forbidden)
    if loaded:
        result["culprits"][name] = loaded
        break  # later modules could not be told apart from this one
print(json.dumps(result))
"""


def existing_layers() -> list[str]:
    return [layer for layer in LAYERS if (PACKAGE_DIR / layer / "__init__.py").exists()]


def module_names(layer: str) -> list[str]:
    names = []
    for path in sorted((PACKAGE_DIR / layer).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def layer_params() -> list[object]:
    return [
        pytest.param(
            layer,
            marks=pytest.mark.skipif(
                not (PACKAGE_DIR / layer / "__init__.py").exists(),
                reason=f"havsh_tui.{layer} does not exist yet",
            ),
        )
        for layer in LAYERS
    ]


def import_in_fresh_interpreter(names: list[str], forbidden: set[str]) -> dict[str, dict]:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, ",".join(names), ",".join(sorted(forbidden))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("layer", layer_params())
def test_importing_a_layer_loads_no_forbidden_module(layer: str) -> None:
    result = import_in_fresh_interpreter(module_names(layer), FORBIDDEN[layer])
    assert not result["errors"], "modules that fail to import:\n" + "\n".join(
        f"{name}:\n{tb}" for name, tb in result["errors"].items()
    )
    assert not result["culprits"], (
        f"importing {next(iter(result['culprits']))} loads "
        f"{', '.join(next(iter(result['culprits'].values())))}, which havsh_tui.{layer} "
        "must not use (shared/DESIGN.md, Layers)"
    )


def imported_modules(source: str, package: list[str]) -> list[tuple[int, str]]:
    """Every ``(line, absolute module name)`` imported anywhere in ``source``.

    ``package`` is the dotted package the file lives in, as parts, to resolve relative
    imports.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if not node.level:
                found.append((node.lineno, node.module or ""))
                continue
            base = ".".join(package[: len(package) - (node.level - 1)])
            if node.module:
                found.append((node.lineno, f"{base}.{node.module}"))
            else:
                # "from . import x": each name may be a submodule.
                found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return sorted(found)  # ast.walk goes breadth first; report in file order


def violations(source: str, package: list[str], layer: str, where: str) -> list[str]:
    """What in ``source`` (a file of ``layer``) breaks the layer rules, one line each."""
    forbidden = FORBIDDEN[layer] | (CORE_STATIC_EXTRA if layer == "core" else set())
    allowed_internal = set(LAYERS[: LAYERS.index(layer) + 1])
    problems = []
    for line, module in imported_modules(source, package):
        parts = module.split(".")
        if parts[0] in forbidden:
            problems.append(f"{where}:{line} imports {module}")
        elif parts[0] == "havsh_tui" and len(parts) > 1 and parts[1] not in allowed_internal:
            problems.append(f"{where}:{line} imports {module}, a layer above havsh_tui.{layer}")
    return problems


@pytest.mark.parametrize("layer", layer_params())
def test_no_file_of_a_layer_imports_what_it_must_not(layer: str) -> None:
    problems = []
    for path in sorted((PACKAGE_DIR / layer).rglob("*.py")):
        rel = path.relative_to(ROOT)
        package = list(rel.parts[:-1])
        problems += violations(path.read_text(encoding="utf-8"), package, layer, str(rel))
    assert not problems, "layer rule broken (shared/DESIGN.md, Layers):\n" + "\n".join(problems)


def test_the_static_check_catches_violations() -> None:
    # Guard against a checker that silently passes everything.
    source = (
        "import os\n"
        "from . import names\n"
        "from .model import Host\n"
        "def later():\n"
        "    from textual.app import App\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import rich.console\n"
        "from ..ops import copy\n"
        "from havsh_tui.remote import ssh\n"
        "import subprocess\n"
    )
    pkg = ["havsh_tui", "core"]
    modules = {m for _, m in imported_modules(source, pkg)}
    assert {"havsh_tui.core.names", "havsh_tui.core.model", "havsh_tui.ops"} <= modules
    found = violations(source, pkg, "core", "x.py")
    assert [p.split(" imports ")[1].split(",")[0] for p in found] == [
        "textual.app",
        "rich.console",
        "havsh_tui.ops",
        "havsh_tui.remote",
        "subprocess",
    ]
    # ops may use remote; remote may not use ops.
    assert violations("from ..remote import ssh\n", ["havsh_tui", "ops"], "ops", "o.py") == []
    assert violations("from ..ops import x\n", ["havsh_tui", "remote"], "remote", "r.py")


def test_the_import_check_catches_violations() -> None:
    result = import_in_fresh_interpreter(
        ["havsh_tui.core.model", "textual.widget", "havsh_tui.core.names"], {"textual"}
    )
    assert result["culprits"] == {"textual.widget": ["textual"]}
    result = import_in_fresh_interpreter(["havsh_tui.core.no_such_module"], {"textual"})
    assert "havsh_tui.core.no_such_module" in result["errors"]


def test_at_least_core_exists() -> None:
    assert "core" in existing_layers()
