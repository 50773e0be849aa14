"""PostgreSQL connections, as Odoo opens them (libpq defaults for unset options)."""

from __future__ import annotations

import os
from typing import Any

# psycopg2 is imported where it is used, so that the pure parts of the stand-in (config,
# manifests, passwords) can be unit-tested without it.

INSUFFICIENT_PRIVILEGE = "42501"


def connection_info(cfg: dict[str, Any], dbname: str) -> dict[str, Any]:
    app = str(cfg.get("db_app_name") or "odoo-{pid}").replace("{pid}", str(os.getpid()))
    info: dict[str, Any] = {"dbname": dbname, "application_name": app}
    for p in ("host", "port", "user", "password", "sslmode"):
        value = cfg.get("db_" + p)
        if value:
            info[p] = value
    return info


def connect(cfg: dict[str, Any], dbname: str, autocommit: bool = False) -> Any:
    import psycopg2

    conn = psycopg2.connect(connect_timeout=10, **connection_info(cfg, dbname))
    conn.autocommit = autocommit
    return conn


class DatabaseExists(Exception):
    pass


def create_empty_database(cfg: dict[str, Any], name: str) -> None:
    """Odoo's _create_empty_database: CREATE DATABASE as the connecting role."""
    from psycopg2 import sql

    conn = connect(cfg, "postgres", autocommit=True)
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT datname FROM pg_database WHERE datname = %s", (name,))
            if cr.fetchall():
                raise DatabaseExists(f"database {name!r} already exists!")
            template = cfg.get("db_template") or "template0"
            collate = sql.SQL("LC_COLLATE 'C'" if template == "template0" else "")
            cr.execute(
                sql.SQL("CREATE DATABASE {} ENCODING 'unicode' {} TEMPLATE {}").format(
                    sql.Identifier(name), collate, sql.Identifier(template)
                )
            )
    finally:
        conn.close()
    if cfg.get("unaccent"):
        conn = connect(cfg, name, autocommit=True)
        try:
            with conn.cursor() as cr:
                cr.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        finally:
            conn.close()


def list_dbs(cfg: dict[str, Any]) -> list[str]:
    """The databases this server exposes (Odoo's list_dbs(force=True))."""
    names = [n.strip() for n in str(cfg.get("db_name") or "").split(",") if n.strip()]
    if not cfg.get("dbfilter") and names:
        return sorted(names)
    templates = tuple({"postgres", cfg.get("db_template") or "template0"})
    conn = connect(cfg, "postgres", autocommit=True)
    try:
        with conn.cursor() as cr:
            cr.execute(
                "SELECT datname FROM pg_database WHERE datdba = (SELECT usesysid FROM pg_user"
                " WHERE usename = current_user) AND NOT datistemplate AND datallowconn"
                " AND datname NOT IN %s ORDER BY datname",
                (templates,),
            )
            return [r[0] for r in cr.fetchall()]
    finally:
        conn.close()


def is_initialized(cr: Any) -> bool:
    cr.execute(
        "SELECT 1 FROM pg_class WHERE relname = 'ir_module_module' AND relkind = 'r'"
        " AND pg_table_is_visible(oid)"
    )
    return cr.fetchone() is not None

