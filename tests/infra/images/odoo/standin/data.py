"""Rows that the stand-in's built-in modules write when they are installed."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import struct
import uuid
import zlib
from typing import Any


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


def png(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    """A real, solid-colour PNG image (so attachments have plausible bytes)."""
    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def svg_avatar(initial: str, colour: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8' ?>"
        "<svg height='180' width='180' xmlns='http://www.w3.org/2000/svg'>"
        f"<rect fill='{colour}' height='180' width='180'/>"
        "<text fill='#ffffff' font-size='96' text-anchor='middle' x='90' y='125' "
        f"font-family='sans-serif'>{initial}</text></svg>"
    ).encode()


class Env:
    """What a module's install step gets: a cursor and the database's context."""

    def __init__(self, cr: Any, dbname: str, data_dir: str, demo: bool, module: str,
                 serie: str) -> None:
        self.cr = cr
        self.dbname = dbname
        self.data_dir = data_dir
        self.demo = demo
        self.module = module
        self.serie = serie
        self.now = utcnow()

    def insert(self, table: str, values: dict[str, Any]) -> int:
        from psycopg2 import sql

        values = dict(values)
        values.setdefault("create_uid", 1)
        values.setdefault("write_uid", 1)
        values.setdefault("create_date", self.now)
        values.setdefault("write_date", self.now)
        cols = list(values)
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(sql.Placeholder() * len(cols)),
        )
        self.cr.execute(query, [values[c] for c in cols])
        return int(self.cr.fetchone()[0])

    def xmlid(self, name: str, model: str, res_id: int, module: str | None = None,
              noupdate: bool = False) -> None:
        self.cr.execute(
            "INSERT INTO ir_model_data (module, name, model, res_id, noupdate, create_uid,"
            " create_date, write_uid, write_date) VALUES (%s, %s, %s, %s, %s, 1, %s, 1, %s)"
            " ON CONFLICT (module, name) DO UPDATE SET res_id = EXCLUDED.res_id,"
            " model = EXCLUDED.model, write_date = EXCLUDED.write_date",
            (module or self.module, name, model, res_id, noupdate, self.now, self.now),
        )

    def record(self, xml_name: str, model: str, table: str, values: dict[str, Any],
               noupdate: bool = False) -> int:
        res_id = self.insert(table, values)
        self.xmlid(xml_name, model, res_id, noupdate=noupdate)
        return res_id

    def ref(self, xmlid: str) -> int:
        module, name = xmlid.split(".", 1)
        self.cr.execute(
            "SELECT res_id FROM ir_model_data WHERE module = %s AND name = %s", (module, name)
        )
        row = self.cr.fetchone()
        if not row:
            raise ValueError(f"External ID not found in the system: {xmlid}")
        return int(row[0])

    def set_param(self, key: str, value: str) -> None:
        self.cr.execute(
            "INSERT INTO ir_config_parameter (key, value, create_uid, create_date, write_uid,"
            " write_date) VALUES (%s, %s, 1, %s, 1, %s) ON CONFLICT (key) DO UPDATE SET"
            " value = EXCLUDED.value, write_date = EXCLUDED.write_date",
            (key, value, self.now, self.now),
        )

    def filestore(self) -> str:
        return os.path.join(self.data_dir, "filestore", self.dbname)

    def attach(self, name: str, content: bytes, mimetype: str, res_model: str, res_id: int,
               res_field: str | None = None, **extra: Any) -> int:
        """An ir_attachment whose bytes live in the filestore, as Odoo's _file_write does."""
        checksum = hashlib.sha1(content).hexdigest()
        fname = f"{checksum[:2]}/{checksum}"
        full = os.path.join(self.filestore(), fname)
        if not os.path.exists(full):
            os.makedirs(os.path.dirname(full), exist_ok=True)
            tmp = f"{full}.{os.getpid()}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(content)
            os.replace(tmp, full)
        values = {
            "name": name,
            "res_model": res_model,
            "res_id": res_id,
            "res_field": res_field,
            "type": "binary",
            "store_fname": fname,
            "file_size": len(content),
            "checksum": checksum,
            "mimetype": mimetype,
            "index_content": mimetype.split("/")[0] if mimetype.startswith("image") else None,
            "public": False,
        }
        values.update(extra)
        return self.insert("ir_attachment", values)

    def cron(self, xml_name: str, name: str, interval_number: int, interval_type: str,
             code: str, model: str, active: bool = True, priority: int = 5) -> int:
        action = self.insert("ir_act_server", {
            "name": json.dumps({"en_US": name}), "state": "code", "usage": "ir_cron",
            "model_name": model, "code": code,
        })
        self.xmlid(f"{xml_name}_ir_actions_server", "ir.actions.server", action)
        return self.record(xml_name, "ir.cron", "ir_cron", {
            "ir_actions_server_id": action, "cron_name": name, "user_id": 1,
            "active": active, "interval_number": interval_number,
            "interval_type": interval_type, "nextcall": self.now, "priority": priority,
        }, noupdate=True)


SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.sql")


def create_base_schema(cr: Any) -> None:
    with open(SCHEMA_FILE, encoding="utf-8") as fh:
        cr.execute(fh.read())


# -- base ---------------------------------------------------------------------------------

DEMO_COMPANIES = [
    ("res_partner_12", "Azure Interior", "Fremont", "azure.Interior24@example.com"),
    ("res_partner_2", "Deco Addict", "Pleasant Hill", "deco_addict@example.com"),
    ("res_partner_3", "Gemini Furniture", "Fairfield", "gemini_furniture@example.com"),
    ("res_partner_18", "Lumber Inc", "Stockton", "lumber-inv92@example.com"),
    ("res_partner_4", "Ready Mat", "Tracy", "ready.mat28@example.com"),
    ("res_partner_10", "The Jackson Group", "Buffalo", "jackson.group82@example.com"),
    ("res_partner_1", "Wood Corner", "Turlock", "wood.corner26@example.com"),
]
DEMO_PEOPLE = [
    ("res_partner_address_15", "Brandon Freeman", "res_partner_12", "brandon.freeman@example.com"),
    ("res_partner_address_28", "Colleen Diaz", "res_partner_12", "colleen.diaz83@example.com"),
    ("res_partner_address_16", "Nicole Ford", "res_partner_12", "nicole.ford75@example.com"),
    ("res_partner_address_3", "Douglas Fletcher", "res_partner_2", "douglas.fletcher@example.com"),
]
DEMO_COLOURS = [(0x22, 0x88, 0xcc), (0xcc, 0x44, 0x22), (0x33, 0xaa, 0x55), (0x88, 0x55, 0xaa)]


def install_base(env: Env) -> None:
    ins = env.record
    ins("lang_en", "res.lang", "res_lang", {
        "name": "English (US)", "code": "en_US", "iso_code": "en", "url_code": "en",
        "active": True})
    main_partner = ins("main_partner", "res.partner", "res_partner", {
        "name": "YourCompany", "complete_name": "YourCompany", "is_company": True,
        "email": "info@yourcompany.com", "lang": "en_US", "partner_share": False})
    company = ins("main_company", "res.company", "res_company", {
        "name": "YourCompany", "partner_id": main_partner, "email": "info@yourcompany.com"})
    env.cr.execute("UPDATE res_partner SET company_id = %s WHERE id = %s", (company, main_partner))
    root_partner = ins("partner_root", "res.partner", "res_partner", {
        "name": "OdooBot", "complete_name": "OdooBot", "company_id": company,
        "email": "odoobot@example.com", "partner_share": False, "lang": "en_US"})
    admin_name = "Mitchell Admin" if env.demo else "Administrator"
    admin_partner = ins("partner_admin", "res.partner", "res_partner", {
        "name": admin_name, "complete_name": admin_name, "company_id": company,
        "email": "admin@yourcompany.example.com", "partner_share": False, "lang": "en_US",
        "tz": "Europe/Brussels"})
    public_partner = ins("public_partner", "res.partner", "res_partner", {
        "name": "Public user", "complete_name": "Public user", "company_id": company,
        "active": False})
    template_partner = ins("template_portal_user_id_res_partner", "res.partner", "res_partner", {
        "name": "Portal User Template", "complete_name": "Portal User Template",
        "company_id": company, "active": False})
    ins("user_root", "res.users", "res_users", {
        "login": "__system__", "password": None, "partner_id": root_partner,
        "company_id": company, "active": False})
    ins("user_admin", "res.users", "res_users", {
        "login": "admin", "password": "admin", "partner_id": admin_partner,
        "company_id": company})
    ins("public_user", "res.users", "res_users", {
        "login": "public", "password": None, "partner_id": public_partner,
        "company_id": company, "active": False, "share": True})
    ins("template_portal_user_id", "res.users", "res_users", {
        "login": "portaltemplate", "password": None, "partner_id": template_partner,
        "company_id": company, "active": False, "share": True})

    env.set_param("database.secret", str(uuid.uuid4()))
    env.set_param("database.uuid", str(uuid.uuid1()))
    env.set_param("database.create_date", env.now.strftime("%Y-%m-%d %H:%M:%S"))
    env.set_param("web.base.url", "http://localhost:8069")
    env.set_param("base.login_cooldown_after", "10")
    env.set_param("base.login_cooldown_duration", "60")

    env.cron("autovacuum_job", "Base: Auto-vacuum internal data", 1, "days",
             "model._run_vacuum_cleaner()", "ir.autovacuum")
    env.cron("ir_cron_res_users_deletion", "Base: Portal Users Deletion", 1, "days",
             "model._gc_portal_users()", "res.users.deletion", priority=10)

    logo = png((0x71, 0x4b, 0x67), 32)
    env.attach("image_1920", logo, "image/png", "res.partner", main_partner, "image_1920")
    env.attach("logo", logo, "image/png", "res.company", company, "logo")
    env.attach("image_1920", svg_avatar("O", "#875a7b"), "image/svg+xml", "res.partner",
               root_partner, "image_1920")

    if not env.demo:
        return
    # -- demo data
    for xml_name, name, city, email in DEMO_COMPANIES:
        ins(xml_name, "res.partner", "res_partner", {
            "name": name, "complete_name": name, "is_company": True, "city": city,
            "email": email, "lang": "en_US"}, noupdate=True)
    for xml_name, name, parent_xml, email in DEMO_PEOPLE:
        parent = env.ref(f"base.{parent_xml}")
        env.cr.execute("SELECT name FROM res_partner WHERE id = %s", (parent,))
        parent_name = env.cr.fetchone()[0]
        ins(xml_name, "res.partner", "res_partner", {
            "name": name, "complete_name": f"{parent_name}, {name}", "parent_id": parent,
            "email": email, "lang": "en_US"}, noupdate=True)
    demo_partner = ins("partner_demo", "res.partner", "res_partner", {
        "name": "Marc Demo", "complete_name": "Marc Demo", "company_id": company,
        "email": "mark.brown23@example.com", "partner_share": False, "lang": "en_US"},
        noupdate=True)
    ins("user_demo", "res.users", "res_users", {
        "login": "demo", "password": "demo", "partner_id": demo_partner,
        "company_id": company}, noupdate=True)
    ins("ir_mail_server_demo", "ir.mail_server", "ir_mail_server", {
        "name": "Demo SMTP", "smtp_host": "smtp.example.com", "smtp_port": 25,
        "smtp_encryption": "none", "smtp_authentication": "login", "sequence": 10,
        "active": True}, noupdate=True)
    for (xml_name, _n, _c, _e), colour in zip(DEMO_COMPANIES, DEMO_COLOURS, strict=False):
        env.attach("image_1920", png(colour), "image/png", "res.partner",
                   env.ref(f"base.{xml_name}"), "image_1920")
    env.attach("Company presentation.txt",
               b"YourCompany: demo document attached to the company partner.\n",
               "text/plain", "res.partner", main_partner)


# -- web, bus, mail, contacts ------------------------------------------------------------------

def install_web(env: Env) -> None:
    env.set_param("web.max_file_upload_size", str(128 * 1024 * 1024))


def install_bus(env: Env) -> None:
    env.cr.execute(
        "CREATE TABLE IF NOT EXISTS bus_bus (id serial PRIMARY KEY, channel varchar,"
        " message varchar, create_uid integer, create_date timestamp, write_uid integer,"
        " write_date timestamp)"
    )


def install_mail(env: Env) -> None:
    env.cr.execute(
        """
        CREATE TABLE IF NOT EXISTS fetchmail_server (
            id serial PRIMARY KEY, name varchar NOT NULL, active boolean DEFAULT true,
            state varchar DEFAULT 'draft', server varchar, port integer,
            server_type varchar DEFAULT 'imap', is_ssl boolean DEFAULT false,
            "user" varchar, password varchar, create_uid integer, create_date timestamp,
            write_uid integer, write_date timestamp);
        -- The stand-in's record of every mail it "delivered" (not an Odoo table).
        CREATE TABLE IF NOT EXISTS mail_mail_sent (
            id serial PRIMARY KEY,
            server_id integer,
            server_name varchar,
            smtp_host varchar,
            smtp_port integer,
            sent_at timestamp NOT NULL DEFAULT (now() at time zone 'UTC'));
        """
    )
    env.cron("ir_cron_mail_scheduler_action", "Mail: Email Queue Manager", 1, "hours",
             "model.process_email_queue()", "mail.mail")
    env.cron("ir_cron_mail_gateway_action", "Mail: Fetchmail Service", 5, "minutes",
             "model._fetch_mails()", "fetchmail.server")
    env.cron("ir_cron_module_update_notification", "Publisher: Update Notification", 1,
             "weeks", "model.update_notification(None)", "publisher_warranty.contract")
    env.cron("ir_cron_delete_notification", "Notification: Delete Notifications older than"
             " 6 Month", 1, "days", "model._gc_notifications(max_age_days=180)",
             "mail.notification")
    if env.demo:
        env.record("fetchmail_server_demo", "fetchmail.server", "fetchmail_server", {
            "name": "Demo incoming mail", "server": "imap.example.com", "port": 993,
            "is_ssl": True, "state": "done", "active": True}, noupdate=True)


def install_contacts(env: Env) -> None:
    return None


DEMO_MODULES = {"base", "mail"}

INSTALLERS = {
    "base": install_base,
    "web": install_web,
    "bus": install_bus,
    "mail": install_mail,
    "contacts": install_contacts,
}
