"""`odoo [options]`: create/initialize databases, then serve HTTP and run the mail cron."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from . import config, cron, db, log, modules, paths, release, web

_logger = logging.getLogger("odoo")
_logger_server = logging.getLogger("odoo.service.server")
_logger_cli = logging.getLogger("odoo.cli.server")


def report_configuration(cfg: config.Config, addons: list[str]) -> None:
    _logger.info("Odoo version %s", release.version)
    if os.path.isfile(cfg["config"]):
        _logger.info("Using configuration file at %s", cfg["config"])
    _logger.info("addons paths: %s", addons)
    host = cfg.get("db_host") or os.environ.get("PGHOST", "default")
    port = cfg.get("db_port") or os.environ.get("PGPORT", "default")
    user = cfg.get("db_user") or os.environ.get("PGUSER", "default")
    _logger.info("database: %s@%s:%s", user, host, port)


def preload_registries(cfg: config.Config, addons: list[str], dbnames: list[str],
                       init: list[str]) -> int:
    for dbname in dbnames:
        log.set_dbname(dbname)
        try:
            loader = modules.Loader(cfg, dbname, addons)
            loader.load(init, cfg.comma("update"), cfg.with_demo, cfg.comma("load_language"))
        except Exception:
            _logger_server.critical("Failed to initialize database `%s`.", dbname,
                                    exc_info=True)
            return -1
    return 0


class Runner:
    def __init__(self, cfg: config.Config) -> None:
        self.cfg = cfg
        self.stopping = threading.Event()
        self.signals = 0
        self.servers: list[web.Server] = []

    def on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals > 1:
            os._exit(1)  # a second signal forces the shutdown, as in Odoo
        self.stopping.set()

    def spawn_http(self) -> None:
        cfg = self.cfg
        app = web.App(cfg)
        interface = str(cfg.get("http_interface") or "")
        port = int(cfg.get("http_port") or 8069)
        httpd = web.make_server(app, interface, port, "http")
        self.servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                         name="odoo.service.httpd", daemon=True).start()
        _logger_server.info("HTTP service (werkzeug) running on %s:%s",
                            interface or "0.0.0.0", port)
        if int(cfg.get("workers") or 0) > 0:
            # Odoo opens the gevent (longpolling/websocket) port only in prefork mode
            gport = int(cfg.get("gevent_port") or 8072)
            gev = web.make_server(app, interface, gport, "gevent")
            self.servers.append(gev)
            threading.Thread(target=gev.serve_forever, kwargs={"poll_interval": 0.2},
                             name="odoo.service.gevent", daemon=True).start()
            _logger_server.info("Evented Service (longpolling) running on %s:%s",
                                interface or "0.0.0.0", gport)
            for _ in range(int(cfg["workers"])):
                _logger_server.info("Worker WorkerHTTP (%s) alive", os.getpid())

    def shutdown(self) -> None:
        _logger_server.info("Initiating shutdown")
        _logger_server.info("Hit CTRL-C again or send a second signal to force the shutdown.")
        for srv in self.servers:
            srv.stopping.set()
        for srv in self.servers:
            threading.Thread(target=srv.shutdown, daemon=True).start()
        for srv in self.servers:
            try:
                srv.server_close()
            except OSError:
                pass
        logging.shutdown()

    def run(self, addons: list[str], init: list[str]) -> int:
        cfg = self.cfg
        stop = bool(cfg.get("stop_after_init"))
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        if not stop and cfg.get("http_enable", True):
            self.spawn_http()
        rc = preload_registries(cfg, addons, cfg.db_names, init)
        if stop:
            self.shutdown()
            return rc
        if int(cfg.get("max_cron_threads") or 0) > 0:
            cron.MailCron(cfg, self.stopping).start()
        while not self.stopping.wait(1.0):
            pass
        self.shutdown()
        return 0


def main(args: list[str]) -> None:
    cfg = config.parse(args)
    log.init_logger(cfg.get("logfile"), cfg.get("log_level") or "info", cfg.get("log_handler"))
    for warning in cfg.get("_warnings", []):
        logging.getLogger("odoo.tools.config").warning(warning)
    if cfg.get("_cli_addons_path"):
        try:
            paths.check_cli_addons_path(str(cfg.get("addons_path") or ""))
        except paths.AddonsPathError as exc:
            config.build_parser().error(str(exc))
    addons = paths.addons_paths(cfg)
    report_configuration(cfg, addons)

    pidfile = cfg.get("pidfile")
    if pidfile:
        with open(pidfile, "w", encoding="ascii") as fh:
            fh.write(str(os.getpid()))

    import psycopg2

    init = cfg.comma("init")
    for dbname in cfg.db_names:
        try:
            db.create_empty_database(cfg, dbname)
            if "base" not in init:
                init = [*init, "base"]
        except psycopg2.ProgrammingError as err:
            if err.pgcode == db.INSUFFICIENT_PRIVILEGE:
                _logger_cli.info("Could not determine if database %s exists, skipping "
                                 "auto-creation: %s", dbname, str(err).strip())
            else:
                raise
        except db.DatabaseExists:
            pass

    rc = Runner(cfg).run(addons, init)
    if pidfile:
        try:
            os.unlink(pidfile)
        except OSError:
            pass
    sys.exit(rc)
