"""Modules: manifests on the addons path, their states in ir_module_module, install/update."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import time
from typing import Any

from . import data, db, release

_logger = logging.getLogger("odoo.modules.loading")
_logger_module = logging.getLogger("odoo.modules.module")
_logger_registry = logging.getLogger("odoo.modules.registry")
_logger_ir_module = logging.getLogger("odoo.addons.base.models.ir_module")

MANIFEST_NAMES = ("__manifest__.py", "__openerp__.py")
BUILTIN_ADDONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "addons")
INSTALLED_STATES = ("installed", "to upgrade", "to remove")

_DEFAULTS: dict[str, Any] = {
    "application": False,
    "author": "Odoo S.A.",
    "auto_install": False,
    "category": "Uncategorized",
    "data": [],
    "demo": [],
    "depends": [],
    "description": "",
    "installable": True,
    "license": "LGPL-3",
    "sequence": 100,
    "summary": "",
    "version": "1.0",
    "website": "",
}


class UserError(Exception):
    pass


class ManifestError(Exception):
    pass


def manifest_path(module_dir: str) -> str | None:
    for name in MANIFEST_NAMES:
        path = os.path.join(module_dir, name)
        if os.path.isfile(path):
            return path
    return None


def scan(addons_paths: list[str]) -> dict[str, str]:
    """Module name -> module dir; the first addons path that has a module wins."""
    found: dict[str, str] = {}
    for path in addons_paths:
        try:
            entries = sorted(os.listdir(path))
        except OSError:
            continue
        for entry in entries:
            module_dir = os.path.join(path, entry)
            if entry in found or not os.path.isdir(module_dir):
                continue
            if manifest_path(module_dir):
                found[entry] = module_dir
    return found


def adapt_version(version: str, serie: str = release.serie) -> str:
    """Odoo's adapt_version: prefix the series, so '1.2' becomes '17.0.1.2'."""
    version = str(version)
    if version == serie or not version.startswith(serie + "."):
        base_version = version
        version = f"{serie}.{version}"
    else:
        base_version = version[len(serie) + 1:]
    if not re.match(r"^[0-9]+\.[0-9]+(?:\.[0-9]+)?$", base_version):
        raise ValueError(
            f"Invalid version {base_version!r}. Modules should have a version in format "
            f"`x.y`, `x.y.z`, `{serie}.x.y` or `{serie}.x.y.z`."
        )
    return version


def load_manifest(module: str, module_dir: str) -> dict[str, Any]:
    """Parse a module's manifest with ast.literal_eval; any problem raises ManifestError."""
    path = manifest_path(module_dir)
    if not path:
        raise ManifestError(f"module {module}: no manifest file in {module_dir}")
    try:
        with open(path, encoding="utf-8") as fh:
            parsed = ast.literal_eval(fh.read())
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError,
            UnicodeDecodeError) as exc:
        raise ManifestError(f"module {module}: cannot parse the manifest {path}: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ManifestError(f"module {module}: the manifest {path} is not a dictionary")
    manifest = dict(_DEFAULTS)
    manifest.update(parsed)
    manifest["name"] = parsed.get("name", module)
    manifest["technical_name"] = module
    manifest["path"] = module_dir
    if not manifest["depends"] and module != "base":
        manifest["depends"] = ["base"]
    if not isinstance(manifest["depends"], (list, tuple)):
        raise ManifestError(f"module {module}: 'depends' must be a list in {path}")
    if "license" not in parsed:
        _logger_module.warning(
            "Missing `license` key in manifest for %r, defaulting to LGPL-3", module)
    return manifest


def _jsonb(text: str) -> str:
    return json.dumps({"en_US": text or ""})


class Loader:
    """Odoo's update_list + button_install/upgrade + load_modules, for one database."""

    def __init__(self, cfg: dict[str, Any], dbname: str, addons_paths: list[str]) -> None:
        self.cfg = cfg
        self.dbname = dbname
        self.addons_paths = addons_paths
        self.available = scan(addons_paths)
        self.manifests: dict[str, dict[str, Any]] = {}
        self.broken: dict[str, Exception] = {}
        self.states: dict[str, str] = {}
        self.queries = 0

    # -- manifests and ir_module_module ------------------------------------------------
    def read_manifests(self, report: bool) -> None:
        for name, path in self.available.items():
            try:
                self.manifests[name] = load_manifest(name, path)
            except ManifestError as exc:
                self.broken[name] = exc
                if report:
                    _logger_module.debug("Failed to load the manifest of module %r", name,
                                         exc_info=(type(exc), exc, exc.__traceback__))

    def load_states(self, cr: Any) -> None:
        cr.execute("SELECT name, state FROM ir_module_module")
        self.states = dict(cr.fetchall())

    def update_list(self, cr: Any, env: data.Env) -> None:
        _logger_ir_module.info("updating modules list")
        self.load_states(cr)
        for name, m in sorted(self.manifests.items()):
            values = {
                "shortdesc": _jsonb(m["name"]), "summary": _jsonb(m["summary"]),
                "description": _jsonb(m["description"]), "author": m["author"],
                "website": m["website"], "license": m["license"],
                "application": bool(m["application"]),
                "auto_install": m["auto_install"] is not False, "sequence": m["sequence"],
            }
            if name not in self.states:
                state = "uninstalled" if m["installable"] else "uninstallable"
                mod_id = env.insert("ir_module_module", dict(values, name=name, state=state))
                env.xmlid(f"module_{name}", "ir.module.module", mod_id, module="base",
                          noupdate=True)
                self.states[name] = state
            else:
                cr.execute(
                    "UPDATE ir_module_module SET shortdesc=%s, summary=%s, description=%s,"
                    " author=%s, website=%s, license=%s, application=%s, auto_install=%s,"
                    " sequence=%s, write_date=%s WHERE name=%s RETURNING id",
                    (values["shortdesc"], values["summary"], values["description"],
                     values["author"], values["website"], values["license"],
                     values["application"], values["auto_install"], values["sequence"],
                     env.now, name),
                )
                mod_id = cr.fetchone()[0]
                state = self.states[name]
                if state == "uninstallable" and m["installable"]:
                    state = "uninstalled"
                elif state == "uninstalled" and not m["installable"]:
                    state = "uninstallable"
                if state != self.states[name]:
                    cr.execute("UPDATE ir_module_module SET state=%s WHERE id=%s",
                               (state, mod_id))
                    self.states[name] = state
            cr.execute("DELETE FROM ir_module_module_dependency WHERE module_id = %s",
                       (mod_id,))
            auto = m["auto_install"]
            for dep in m["depends"]:
                env.insert("ir_module_module_dependency", {
                    "name": dep, "module_id": mod_id,
                    "auto_install_required": (dep in auto) if isinstance(auto, (list, tuple,
                                                                                set)) else True,
                })

    # -- marking -----------------------------------------------------------------------
    def _check(self, name: str) -> dict[str, Any]:
        if name in self.broken:
            exc = self.broken[name]
            _logger_module.error("Failed to load the manifest of module %r", name,
                                 exc_info=(type(exc), exc, exc.__traceback__))
            raise ManifestError(str(exc)) from exc
        return self.manifests[name]

    def mark_install(self, name: str, chain: tuple[str, ...] = ()) -> None:
        if self.states.get(name) in ("installed", "to install", "to upgrade"):
            return
        if name in chain:
            raise UserError(f"Circular dependency between modules: {' -> '.join(chain)}")
        m = self._check(name)
        if not m["installable"] or self.states.get(name) == "uninstallable":
            raise UserError(f"Module {name!r} is not installable.")
        for dep in m["depends"]:
            if dep not in self.manifests and dep not in self.broken:
                raise UserError(
                    f"You try to install module {name!r} that depends on module {dep!r}.\n"
                    "But the latter module is not available in your system."
                )
            self.mark_install(dep, chain + (name,))
        self.states[name] = "to install"

    def auto_install(self) -> None:
        ready = ("installed", "to install", "to upgrade")
        changed = True
        while changed:
            changed = False
            for name, m in sorted(self.manifests.items()):
                auto = m["auto_install"]
                if self.states.get(name) != "uninstalled" or not auto:
                    continue
                trigger = list(auto) if isinstance(auto, (list, tuple, set)) else m["depends"]
                if all(self.states.get(d) in ready for d in trigger):
                    self.mark_install(name)
                    changed = True

    def order(self, names: list[str]) -> list[str]:
        depth: dict[str, int] = {}

        def level(n: str, seen: tuple[str, ...] = ()) -> int:
            if n in depth:
                return depth[n]
            deps = self.manifests.get(n, {}).get("depends", [])
            d = 0 if not deps else 1 + max(level(x, seen + (n,)) for x in deps if x not in seen)
            depth[n] = d
            return d

        return sorted(names, key=lambda n: (level(n), n))

    # -- loading -----------------------------------------------------------------------
    def module_data_files(self, name: str, demo: bool) -> list[tuple[str, str]]:
        m = self.manifests[name]
        files = [("data", f) for f in m.get("data") or []]
        if demo:
            files += [("demo", f) for f in m.get("demo") or []]
        return files

    def run_data(self, cr: Any, name: str, demo: bool) -> None:
        m = self.manifests[name]
        for _kind, rel in self.module_data_files(name, demo):
            path = os.path.join(m["path"], rel)
            _logger.info("loading %s/%s", name, rel)
            with open(path, "rb") as fh:  # a missing data file fails the install, as in Odoo
                content = fh.read()
            if rel.endswith(".sql"):
                cr.execute(content.decode("utf-8"))
                self.queries += 1

    def install_one(self, cr: Any, name: str, demo: bool) -> None:
        state = self.states[name]
        m = self.manifests[name]
        version = adapt_version(m["version"])
        env = data.Env(cr, self.dbname, self.data_dir(), demo, name, release.serie)
        if state == "to install":
            _logger_registry.info("module %s: creating or updating database tables", name)
        builtin = m["path"].startswith(BUILTIN_ADDONS + os.sep)
        if builtin and name in data.INSTALLERS and state == "to install":
            data.INSTALLERS[name](env)
        elif not builtin:
            self.run_data(cr, name, demo and state == "to install")
        if state == "to install" and demo and builtin and name in data.DEMO_MODULES:
            _logger.info("Module %s: loading demo", name)
        cr.execute(
            "UPDATE ir_module_module SET state = 'installed', latest_version = %s,"
            " demo = (CASE WHEN state = 'to install' THEN %s"
            " ELSE demo END), write_date = %s WHERE name = %s",
            (version, demo, env.now, name),
        )
        self.states[name] = "installed"

    def data_dir(self) -> str:
        return str(self.cfg["data_dir"])

    def load(self, init: list[str], update: list[str], new_db_demo: bool,
             languages: list[str]) -> None:
        """Load (and install/update) the modules of the database; raise on failure."""
        t0 = time.monotonic()
        update_module = bool(init or update)
        conn = db.connect(self.cfg, self.dbname)
        try:
            cr = conn.cursor()
            _logger.info("loading %d modules...", 1)
            t1 = time.monotonic()
            if not db.is_initialized(cr):
                if not update_module:
                    _logger.error(
                        "Database %s not initialized, you can force it with `-i base`",
                        self.dbname)
                    return
                _logger.info("init db")
                data.create_base_schema(cr)
                new_db = True
                if "base" not in init:
                    init = ["base", *init]
            else:
                new_db = False
            _logger.info("%d modules loaded in %.2fs, %d queries (+%d extra)", 1,
                         time.monotonic() - t1, self.queries, 0)
            env = data.Env(cr, self.dbname, self.data_dir(), new_db_demo, "base", release.serie)
            self.read_manifests(report=update_module)
            if update_module:
                self.update_list(cr, env)
            else:
                self.load_states(cr)
            if new_db:
                self.states["base"] = "uninstalled"
            demo = new_db_demo if new_db else self._db_demo(cr)

            marked_install = False
            if update_module:
                requested = [n for n in dict.fromkeys(init + update) if n != "all"]
                invalid = [n for n in requested if n not in self.states
                           and n not in self.manifests and n not in self.broken]
                if invalid:
                    _logger.warning("invalid module names, ignored: %s", ", ".join(invalid))
                names = list(self.manifests) if "all" in init else init
                for name in names:
                    if name in invalid:
                        continue
                    if name not in self.manifests and name not in self.broken:
                        continue
                    before = self.states.get(name)
                    if before in ("installed", "to upgrade") and name in init and "all" not in init:
                        continue
                    self.mark_install(name)
                    marked_install = marked_install or before != self.states.get(name)
                upd = [n for n, s in self.states.items() if s == "installed"] \
                    if "all" in update else update
                for name in upd:
                    if name in invalid or self.states.get(name) != "installed":
                        continue
                    self._check(name)
                    self.states[name] = "to upgrade"
                    for dep in self.manifests[name]["depends"]:  # a dependency added since
                        if dep not in self.manifests and dep not in self.broken:
                            raise UserError(
                                f"Module {name!r} depends on module {dep!r}, which is not"
                                " available in your system.")
                        if self.states.get(dep) in (None, "uninstalled"):
                            self.mark_install(dep)
                            marked_install = True
                if marked_install:
                    self.auto_install()
                for name, state in self.states.items():
                    if state in ("to install", "to upgrade"):
                        cr.execute("UPDATE ir_module_module SET state = %s WHERE name = %s",
                                   (state, name))
                conn.commit()

            todo = self.order([n for n, s in self.states.items()
                               if s in ("to install", "to upgrade")]) if update_module else []
            loaded = [n for n, s in self.states.items()
                      if s in ("installed", "to install", "to upgrade")]
            t1 = time.monotonic()
            _logger.info("loading %d modules...", len(loaded))
            for name in todo:
                self._check(name)
                self.install_one(cr, name, demo)
                conn.commit()
            for lang in languages:
                self.load_language(cr, lang)
                conn.commit()
            _logger.info("%d modules loaded in %.2fs, %d queries (+%d extra)", len(loaded),
                         time.monotonic() - t1, self.queries + len(todo) * 7, 0)
            _logger.info("Modules loaded.")
            conn.commit()
        except Exception:
            conn.rollback()
            raise
        finally:
            conn.close()
        _logger_registry.info("Registry loaded in %.3fs", time.monotonic() - t0)

    @staticmethod
    def _db_demo(cr: Any) -> bool:
        cr.execute("SELECT demo FROM ir_module_module WHERE name = 'base'")
        row = cr.fetchone()
        return bool(row and row[0])

    def load_language(self, cr: Any, code: str) -> None:
        if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?(@[a-zA-Z]+)?", code):
            raise UserError(f"No language with code {code!r} exists")
        name = LANG_NAMES.get(code, code)
        logging.getLogger("odoo.addons.base.models.res_lang").info(
            "Activating language %s", code)
        cr.execute(
            "INSERT INTO res_lang (name, code, iso_code, url_code, active, create_date,"
            " write_date, create_uid, write_uid) VALUES (%s, %s, %s, %s, true,"
            " now() at time zone 'UTC', now() at time zone 'UTC', 1, 1)"
            " ON CONFLICT (code) DO UPDATE SET active = true",
            (name, code, code, code.split("_")[0]),
        )
        logging.getLogger("odoo.tools.translate").info(
            "loading translation file for language '%s'", code)


LANG_NAMES = {
    "fr_FR": "French / Français",
    "fr_BE": "French (BE) / Français (BE)",
    "de_DE": "German / Deutsch",
    "es_ES": "Spanish / Español",
    "nl_NL": "Dutch / Nederlands",
    "nl_BE": "Dutch (BE) / Nederlands (BE)",
    "it_IT": "Italian / Italiano",
    "pt_BR": "Portuguese (BR) / Português (BR)",
    "pt_PT": "Portuguese / Português",
    "en_GB": "English (UK)",
}


def installed_modules(cr: Any) -> list[str]:
    cr.execute("SELECT name FROM ir_module_module WHERE state IN %s ORDER BY id",
               (INSTALLED_STATES,))
    return [r[0] for r in cr.fetchall()]


def module_resource(addons_paths: list[str], module: str, *parts: str) -> str | None:
    for path in addons_paths:
        candidate = os.path.join(path, module, *parts)
        if os.path.isdir(os.path.join(path, module)):
            return candidate if os.path.exists(candidate) else None
    return None
