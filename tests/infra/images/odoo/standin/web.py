"""The HTTP side: /web/health, /web/login, /web/session/authenticate, /websocket."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import crypt, db, log, release

_werkzeug = logging.getLogger("werkzeug")
_logger_http = logging.getLogger("odoo.http")
_logger_auth = logging.getLogger("odoo.addons.base.models.res_users")

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class JsonError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def db_filter(cfg: dict[str, Any], dbs: list[str], host: str | None = None) -> list[str]:
    """Odoo's http.db_filter."""
    if cfg.get("dbfilter"):
        host = (host or "").partition(":")[0]
        if host.startswith("www."):
            host = host[4:]
        domain = host.partition(".")[0]
        pattern = re.compile(
            str(cfg["dbfilter"]).replace("%h", re.escape(host)).replace("%d", re.escape(domain))
        )
        return [d for d in dbs if pattern.match(d)]
    names = [n.strip() for n in str(cfg.get("db_name") or "").split(",") if n.strip()]
    if names:
        return sorted(set(names).intersection(dbs))
    return list(dbs)


class App:
    """State shared by both listening ports."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.sessions: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.workers = int(cfg.get("workers") or 0)
        self.gevent_port = int(cfg.get("gevent_port") or 8072)

    def dbs(self, host: str | None) -> list[str]:
        try:
            return db_filter(self.cfg, db.list_dbs(self.cfg), host)
        except Exception:
            _logger_http.warning("Listing databases failed", exc_info=True)
            return []

    def cheap_db(self) -> str | None:
        """The database a request is for, when the configuration alone says it."""
        names = [n.strip() for n in str(self.cfg.get("db_name") or "").split(",") if n.strip()]
        if len(names) == 1 and not self.cfg.get("dbfilter"):
            return names[0]
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "Werkzeug/2.0.2"
    sys_version = "Python/{}.{}.{}".format(*sys.version_info[:3])
    protocol_version = "HTTP/1.1"
    app: App
    port_kind: str  # "http" or "gevent"

    # -- plumbing ---------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None

    def _log_request(self, code: int) -> None:
        elapsed = time.monotonic() - getattr(self, "_t0", time.monotonic())
        addr = self.client_address[0]
        if self.app.cfg.get("proxy_mode"):
            fwd = self.headers.get("X-Forwarded-For") if self.headers else None
            if fwd:
                addr = fwd.split(",")[-1].strip()
        _werkzeug.info('%s - - [%s] "%s" %s - %d %.3f %.3f', addr, self.log_date_time_string(),
                       self.requestline, code, 0, 0.0, elapsed)

    def _send(self, code: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response_only(code)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())
        self.send_header("X-Standin-Port", str(self.server.server_address[1]))
        if body or code not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._log_request(code)

    def _redirect(self, location: str, code: int = 303) -> None:
        body = (f'<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n'
                f'<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the '
                f'target URL: <a href="{html.escape(location)}">{html.escape(location)}</a>. '
                f'If not, click the link.\n').encode()
        self._send(code, body, headers={"Location": location})

    def _cookies(self) -> dict[str, str]:
        out = {}
        for part in (self.headers.get("Cookie") or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k:
                out[k] = v
        return out

    def _body(self) -> bytes:
        return self._request_body

    def _read_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        self._request_body = self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        self._t0 = time.monotonic()
        log.set_dbname(None)
        self._read_body()
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)
        try:
            self.route(self.command, path, query)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            _logger_http.exception("Exception during request handling.")
            try:
                self._send(500, b"<h1>Internal Server Error</h1>")
            except OSError:
                pass

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = _dispatch  # noqa: N815

    # -- routes -----------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        cheap = self.app.cheap_db()
        if cheap and path != "/websocket":
            log.set_dbname(cheap)
        if path == "/web/health":
            return self.health(query)
        if path == "/websocket":
            return self.websocket()
        if path == "/web/session/authenticate":
            return self.authenticate()
        if path == "/web/login":
            return self.login(method)
        if path in ("/", "/odoo", "/web"):
            home = "/odoo" if release.major >= 18 else "/web"
            if path == "/":
                return self._redirect(home)
            sid = self._cookies().get("session_id")
            if sid and sid in self.app.sessions:
                return self._send(200, self._page("Odoo", "<div class='o_web_client'></div>"))
            return self._redirect(f"/web/login?redirect={urllib.parse.quote(path)}")
        if path in ("/web/database/selector", "/web/database/manager"):
            if not self.app.cfg.get("list_db", True):
                return self._send(403, b"<h1>Forbidden</h1><p>The database manager has been"
                                       b" disabled by the administrator</p>")
            items = "".join(f"<li><a href='/web?db={html.escape(d)}'>{html.escape(d)}</a></li>"
                            for d in self.app.dbs(self.headers.get("Host")))
            return self._send(200, self._page("Odoo", f"<ul class='list-group'>{items}</ul>"))
        return self._send(404, b"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n"
                               b"<h1>Not Found</h1>\n<p>The requested URL was not found on the "
                               b"server.</p>\n")

    def health(self, query: dict[str, list[str]]) -> None:
        status: dict[str, Any] = {"status": "pass"}
        code = 200
        if query.get("db_server_status", ["0"])[0].lower() in ("1", "true", "yes"):
            try:
                conn = db.connect(self.app.cfg, "postgres")
                conn.close()
                status["db_server_status"] = True
            except Exception:
                status = {"status": "fail", "db_server_status": False}
                code = 500
        self._send(code, json.dumps(status).encode(), "application/json; charset=utf-8",
                   {"Cache-Control": "no-store"})

    def _page(self, title: str, inner: str) -> bytes:
        return (
            "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<meta charset=\"utf-8\"/>\n"
            f"<title>{html.escape(title)}</title>\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
            f"</head>\n<body>\n{inner}\n</body>\n</html>\n"
        ).encode()

    def _request_db(self) -> str | None:
        sid = self._cookies().get("session_id")
        session = self.app.sessions.get(sid or "")
        dbs = self.app.dbs(self.headers.get("Host"))
        if session and session.get("db") in dbs:
            return str(session["db"])
        return dbs[0] if len(dbs) == 1 else None

    def login(self, method: str) -> None:
        dbname = self._request_db()
        if not dbname:
            return self._redirect("/web/database/selector")
        log.set_dbname(dbname)
        error = ""
        if method == "POST":
            form = urllib.parse.parse_qs(self._body().decode("utf-8", "replace"))
            login = form.get("login", [""])[0]
            password = form.get("password", [""])[0]
            try:
                uid = self.check_credentials(dbname, login, password)
                sid = self.new_session(dbname, uid, login)
                home = "/odoo" if release.major >= 18 else "/web"
                return self._send(303, b"", headers={
                    "Location": form.get("redirect", [home])[0] or home,
                    "Set-Cookie": f"session_id={sid}; HttpOnly; Path=/; SameSite=Lax"})
            except JsonError:
                error = "<p class='alert alert-danger' role='alert'>Wrong login/password</p>"
        csrf = secrets.token_hex(20)
        form_html = (
            "<form class='oe_login_form' role='form' method='post' action='/web/login'>\n"
            f"<input type='hidden' name='csrf_token' value='{csrf}'/>\n"
            "<div class='mb-3 field-login'><label for='login' class='form-label'>Email</label>"
            "<input type='text' placeholder='Email' name='login' id='login' required='required'"
            " autofocus='autofocus' autocapitalize='off' class='form-control'/></div>\n"
            "<div class='mb-3'><label for='password' class='form-label'>Password</label>"
            "<input type='password' placeholder='Password' name='password' id='password'"
            " required='required' autocomplete='current-password' class='form-control'/></div>\n"
            f"{error}<div class='clearfix oe_login_buttons text-center gap-1 d-grid mb-1 pt-3'>"
            "<button type='submit' class='btn btn-primary'>Log in</button></div>\n"
            "<input type='hidden' name='redirect'/>\n</form>"
        )
        self._send(200, self._page("Login | YourCompany",
                                   f"<div class='container py-5'><div class='oe_login_form'>"
                                   f"{form_html}</div></div>"))

    def new_session(self, dbname: str, uid: int, login: str) -> str:
        sid = secrets.token_urlsafe(30)
        with self.app.lock:
            self.app.sessions[sid] = {"db": dbname, "uid": uid, "login": login}
        return sid

    def check_credentials(self, dbname: str, login: str, password: str) -> int:
        """res_users' password check; a valid plaintext password is re-hashed, as in Odoo."""
        if not login or not password:
            raise JsonError("odoo.exceptions.AccessDenied", "Access Denied")
        conn = db.connect(self.app.cfg, dbname)
        try:
            with conn.cursor() as cr:
                cr.execute(
                    "SELECT id, COALESCE(password, '') FROM res_users WHERE login = %s"
                    " AND active", (login,))
                row = cr.fetchone()
                if not row:
                    _logger_auth.info("Login failed for db:%s login:%s from %s", dbname, login,
                                      self.client_address[0])
                    raise JsonError("odoo.exceptions.AccessDenied", "Access Denied")
                uid, stored = row
                valid, replacement = crypt.verify_and_update(password, stored)
                if not valid:
                    _logger_auth.info("Login failed for db:%s login:%s from %s", dbname, login,
                                      self.client_address[0])
                    raise JsonError("odoo.exceptions.AccessDenied", "Access Denied")
                if replacement:
                    cr.execute("UPDATE res_users SET password = %s WHERE id = %s",
                               (replacement, uid))
                cr.execute("INSERT INTO res_users_log (create_uid, create_date, write_uid,"
                           " write_date) VALUES (%s, now() at time zone 'UTC', %s,"
                           " now() at time zone 'UTC')", (uid, uid))
            conn.commit()
            _logger_auth.info("Login successful for db:%s login:%s from %s", dbname, login,
                              self.client_address[0])
            return int(uid)
        finally:
            conn.close()

    def session_info(self, dbname: str, uid: int) -> dict[str, Any]:
        conn = db.connect(self.app.cfg, dbname)
        try:
            with conn.cursor() as cr:
                cr.execute(
                    "SELECT u.login, p.name, p.id, p.lang, p.tz, c.id, c.name FROM res_users u"
                    " JOIN res_partner p ON p.id = u.partner_id JOIN res_company c"
                    " ON c.id = u.company_id WHERE u.id = %s", (uid,))
                login, name, partner_id, lang, tz, company_id, company = cr.fetchone()
                cr.execute("SELECT value FROM ir_config_parameter WHERE key = 'web.base.url'")
                row = cr.fetchone()
        finally:
            conn.close()
        is_admin = uid == 2
        return {
            "uid": uid,
            "is_system": is_admin,
            "is_admin": is_admin,
            "is_public": False,
            "user_context": {"lang": lang or "en_US", "tz": tz or False, "uid": uid},
            "db": dbname,
            "server_version": release.version,
            "server_version_info": list(release.version_info),
            "name": name,
            "username": login,
            "partner_display_name": f"{company}, {name}",
            "partner_id": partner_id,
            "web.base.url": row[0] if row else "http://localhost:8069",
            "user_companies": {
                "current_company": company_id,
                "allowed_companies": {str(company_id): {"id": company_id, "name": company}},
            },
        }

    def authenticate(self) -> None:
        req_id: Any = None
        try:
            try:
                payload = json.loads(self._body() or b"{}")
                req_id = payload.get("id")
                params = payload.get("params") or {}
                dbname, login, password = params["db"], params["login"], params["password"]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise JsonError("builtins.TypeError",
                                f"authenticate() missing required argument: {exc}") from exc
            if not db_filter(self.app.cfg, [dbname], self.headers.get("Host")):
                raise JsonError("odoo.exceptions.AccessError", "Database not found.")
            log.set_dbname(dbname)
            try:
                uid = self.check_credentials(str(dbname), str(login), str(password))
                result = self.session_info(str(dbname), uid)
            except JsonError:
                raise
            except Exception as exc:
                _logger_http.warning("authenticate on %s failed: %s", dbname, exc)
                raise JsonError(f"{type(exc).__module__}.{type(exc).__name__}", str(exc)) \
                    from exc
            sid = self.new_session(str(dbname), uid, str(login))
            body = json.dumps({"jsonrpc": "2.0", "id": req_id, "result": result}).encode()
            self._send(200, body, "application/json", {
                "Set-Cookie": f"session_id={sid}; Expires=Fri, 01 Jan 2100 00:00:00 GMT;"
                              " Max-Age=604800; HttpOnly; Path=/; SameSite=Lax"})
        except JsonError as err:
            debug = "" if err.name.endswith("AccessDenied") else traceback.format_exc()
            body = json.dumps({"jsonrpc": "2.0", "id": req_id, "error": {
                "code": 200, "message": "Odoo Server Error",
                "data": {"name": err.name, "debug": debug, "message": err.message,
                         "arguments": [err.message], "context": {}},
            }}).encode()
            self._send(200, body, "application/json")

    # -- websocket --------------------------------------------------------------------
    def websocket(self) -> None:
        evented = self.port_kind == "gevent"
        if self.app.workers and not evented:
            # prefork: only the gevent worker (8072) holds websockets, as in Odoo
            msg = ("Couldn't bind the websocket. Is the connection opened on the evented port"
                   f" ({self.app.gevent_port})?")
            _logger_http.error(msg)
            return self._send(500, f"<h1>Internal Server Error</h1><p>{msg}</p>".encode())
        upgrade = (self.headers.get("Upgrade") or "").lower()
        connection = (self.headers.get("Connection") or "").lower()
        key = self.headers.get("Sec-WebSocket-Key")
        missing = [h for h, ok in (("upgrade", upgrade == "websocket"),
                                   ("connection", "upgrade" in connection),
                                   ("sec-websocket-key", bool(key)),
                                   ("sec-websocket-version",
                                    self.headers.get("Sec-WebSocket-Version") == "13"))
                   if not ok]
        if missing:
            body = ("<!doctype html>\n<html lang=en>\n<title>400 Bad Request</title>\n"
                    "<h1>Bad Request</h1>\n<p>Empty or missing header(s): "
                    f"{', '.join(missing)}</p>\n").encode()
            return self._send(400, body, headers={"Sec-WebSocket-Version": "13"})
        accept = base64.b64encode(hashlib.sha1((key or "").encode() + WS_GUID.encode())
                                  .digest()).decode()
        self.send_response_only(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("X-Standin-Port", str(self.server.server_address[1]))
        self.end_headers()
        self.wfile.flush()
        self._log_request(101)
        self.close_connection = True
        self._ws_loop()

    def _ws_loop(self) -> None:
        sock = self.connection
        sock.settimeout(1.0)
        stopping = self.server.stopping  # type: ignore[attr-defined]
        buf = b""
        while not stopping.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                frame = _parse_frame(buf)
                if frame is None:
                    break
                opcode, payload, used = frame
                buf = buf[used:]
                try:
                    if opcode == 0x8:  # close
                        sock.sendall(_frame(0x8, payload[:2] or struct.pack(">H", 1000)))
                        return
                    if opcode == 0x9:  # ping
                        sock.sendall(_frame(0xA, payload))
                except OSError:
                    return
        try:
            sock.sendall(_frame(0x8, struct.pack(">H", 1001)))
        except OSError:
            pass


def _parse_frame(buf: bytes) -> tuple[int, bytes, int] | None:
    if len(buf) < 2:
        return None
    opcode = buf[0] & 0x0F
    masked = buf[1] & 0x80
    length = buf[1] & 0x7F
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length = struct.unpack(">H", buf[2:4])[0]
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length = struct.unpack(">Q", buf[2:10])[0]
        pos = 10
    mask = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        mask = buf[pos:pos + 4]
        pos += 4
    if len(buf) < pos + length:
        return None
    payload = buf[pos:pos + length]
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload, pos + length


def _frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[Handler]) -> None:
        self.stopping = threading.Event()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


def make_server(app: App, interface: str, port: int, kind: str) -> Server:
    handler = type(f"Handler_{kind}", (Handler,), {"app": app, "port_kind": kind})
    return Server((interface or "0.0.0.0", port), handler)
