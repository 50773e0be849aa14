"""`odoo neutralize -d D`: run every installed module's data/neutralize.sql in one transaction."""

from __future__ import annotations

import logging
import sys

from . import config, db, log, modules, paths

_logger = logging.getLogger("odoo.cli.neutralize")
_logger_mod = logging.getLogger("odoo.modules.neutralize")


def neutralization_queries(addons: list[str], installed: list[str]) -> list[str]:
    queries = []
    for module in installed:
        filename = modules.module_resource(addons, module, "data", "neutralize.sql")
        if filename:
            with open(filename, encoding="utf-8") as fh:
                queries.append(fh.read().strip())
    return queries


def main(args: list[str]) -> None:
    parser = config.build_parser()
    parser.add_option("--stdout", action="store_true", dest="to_stdout",
                      help="Output the neutralization SQL instead of applying it")
    cfg = config.parse(args, parser)
    log.init_logger(cfg.get("logfile"), cfg.get("log_level") or "info", cfg.get("log_handler"))
    names = cfg.db_names
    if not names:
        _logger.error('Neutralize command needs a database name. Use "-d" argument')
        sys.exit(1)
    dbname = names[0]
    to_stdout = bool(cfg.get("to_stdout"))
    if not to_stdout:
        _logger.info("Starting %s database neutralization", dbname)
    try:
        addons = paths.addons_paths(cfg)
        conn = db.connect(cfg, dbname)
        try:
            with conn.cursor() as cr:
                installed = modules.installed_modules(cr)
                queries = neutralization_queries(addons, installed)
                if to_stdout:
                    print("BEGIN;")
                    for query in queries:
                        print(query.rstrip(";") + ";")
                    print("COMMIT;")
                else:
                    for query in queries:
                        cr.execute(query)
            conn.commit()
            if not to_stdout:
                _logger_mod.info("Neutralization finished")
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    except Exception:
        _logger.error("Neutralization of %s failed", dbname, exc_info=True)
        _logger.critical(
            "An error occurred during the neutralization. THE DATABASE IS NOT NEUTRALIZED!")
        sys.exit(1)
