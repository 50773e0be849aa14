"""The stand-in's cron: "send" mail through every active real mail server, on a timer.

Each tick, for each database this server runs crons for: when the mail queue cron
(xml id mail.ir_cron_mail_scheduler_action) is active, every active ir_mail_server whose
smtp_host is not `invalid` gets one delivery: a log line and a row in mail_mail_sent.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from . import db, log

_logger = logging.getLogger("odoo.addons.base.models.ir_cron")
_logger_mail = logging.getLogger("odoo.addons.base.models.ir_mail_server")

DEFAULT_INTERVAL = 5.0


def interval() -> float:
    try:
        value = float(os.environ.get("STANDIN_MAIL_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        value = DEFAULT_INTERVAL
    return max(value, 0.1)


def cron_databases(cfg: dict[str, Any]) -> list[str]:
    names = [n.strip() for n in str(cfg.get("db_name") or "").split(",") if n.strip()]
    if names:
        return names
    dbs = db.list_dbs(cfg)
    dbfilter = str(cfg.get("dbfilter") or "")
    if dbfilter and "%h" not in dbfilter and "%d" not in dbfilter:
        import re

        pattern = re.compile(dbfilter)
        dbs = [d for d in dbs if pattern.match(d)]
    return dbs


def process_database(cfg: dict[str, Any], dbname: str) -> int:
    """One run of the mail queue cron on one database; returns the number of sends."""
    conn = db.connect(cfg, dbname)
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT to_regclass('ir_cron'), to_regclass('mail_mail_sent'),"
                       " to_regclass('ir_mail_server')")
            if not all(cr.fetchone()):
                return 0
            cr.execute(
                "SELECT c.id, c.cron_name FROM ir_cron c JOIN ir_model_data d"
                " ON d.res_id = c.id AND d.model = 'ir.cron'"
                " WHERE d.module = 'mail' AND d.name = 'ir_cron_mail_scheduler_action'"
                " AND c.active")
            job = cr.fetchone()
            if not job:
                return 0
            cron_id, cron_name = job
            with log.dbname(dbname):
                _logger.info("Starting job `%s`.", cron_name)
                cr.execute(
                    "SELECT id, name, smtp_host, smtp_port FROM ir_mail_server WHERE active"
                    " AND COALESCE(smtp_host, '') NOT IN ('', 'invalid') ORDER BY sequence, id")
                servers = cr.fetchall()
                for server_id, name, host, port in servers:
                    _logger_mail.info("Mail delivery via SMTP host %s:%s", host, port)
                    cr.execute(
                        "INSERT INTO mail_mail_sent (server_id, server_name, smtp_host, smtp_port,"
                        " sent_at) VALUES (%s, %s, %s, %s, now() at time zone 'UTC')",
                        (server_id, name, host, port))
                cr.execute(
                    "UPDATE ir_cron SET lastcall = now() at time zone 'UTC',"
                    " nextcall = now() at time zone 'UTC' + interval '1 hour' WHERE id = %s",
                    (cron_id,))
                conn.commit()
                _logger.info("Job `%s` done.", cron_name)
                return len(servers)
    finally:
        conn.close()


class MailCron(threading.Thread):
    def __init__(self, cfg: dict[str, Any], stopping: threading.Event) -> None:
        super().__init__(name="odoo.service.cron.cron0", daemon=True)
        self.cfg = cfg
        self.stopping = stopping
        self.failing: set[str] = set()

    def run(self) -> None:
        period = interval()
        while not self.stopping.wait(period):
            self.tick()

    def tick(self) -> None:
        try:
            dbs = cron_databases(self.cfg)
        except Exception as exc:
            if "__list__" not in self.failing:
                _logger.warning("Cannot list the databases for the crons: %s", exc)
                self.failing.add("__list__")
            return
        self.failing.discard("__list__")
        for dbname in dbs:
            if self.stopping.is_set():
                return
            try:
                process_database(self.cfg, dbname)
                self.failing.discard(dbname)
            except Exception as exc:
                # PostgreSQL may be restarting: warn once, retry with a new connection next tick
                if dbname not in self.failing:
                    with log.dbname(dbname):
                        _logger.warning("Exception in cron: %s", str(exc).strip())
                    self.failing.add(dbname)
