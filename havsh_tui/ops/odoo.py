"""What havsh knows of Odoo: only the surface of shared/ODOO-CONTRACT.md.

The image's entrypoint, the ``odoo`` command line, odoo.conf, the standard tables and the
HTTP endpoints. Nothing here may depend on a particular build of Odoo.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import time

VERSIONS = ("16.0", "17.0", "18.0", "19.0")
HTTP_PORT = 8069
WS_PORT = 8072
DATA_DIR = "/var/lib/odoo"
ADDONS_DIR = "/mnt/extra-addons"
CONF_PATH = "/etc/odoo/odoo.conf"

#: odoo.conf keys that havsh manages itself; a user's extra configuration may not set them.
MANAGED_KEYS = frozenset(
    {"db_host", "db_port", "db_user", "db_password", "data_dir", "addons_path", "dbfilter",
     "db_name", "list_db", "admin_passwd"}
)
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_LOG_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2},\d{3}) (?P<pid>\d+) "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<db>\S+) (?P<logger>[^:\s]+): ?"
    r"(?P<message>.*)$"
)


class ConfigError(ValueError):
    pass


def major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise ConfigError(f"not an Odoo version: {version!r}") from None


def version_from_image(image: str) -> str | None:
    """``odoo:17.0`` → ``17.0``; None when the tag says nothing."""
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    m = re.match(r"^(\d+)\.0", tag)
    return f"{m.group(1)}.0" if m else None


def demo_flags(version: str, demo: bool) -> list[str]:
    """Up to 18.0 demo loads unless --without-demo=all; from 19.0 only with --with-demo."""
    if major(version) >= 19:
        return ["--with-demo"] if demo else []
    return [] if demo else ["--without-demo=all"]


def parse_config_items(items: list[str] | tuple[str, ...] | dict[str, str]) -> dict[str, str]:
    """Validate extra odoo.conf keys given as ``key=value``."""
    pairs = items.items() if isinstance(items, dict) else None
    out: dict[str, str] = {}
    if pairs is None:
        parsed = []
        for item in items:
            if "=" not in item:
                raise ConfigError(f"config {item!r} is not key=value")
            k, _, v = item.partition("=")
            parsed.append((k.strip(), v.strip()))
        pairs = parsed
    for k, v in pairs:
        if not _KEY_RE.match(k):
            raise ConfigError(f"config key {k!r} is not a valid odoo.conf key")
        if k in MANAGED_KEYS:
            raise ConfigError(f"config key {k!r} is managed by havsh and cannot be set")
        if "\n" in v or "\r" in v:
            raise ConfigError(f"config value of {k!r} must be on one line")
        out[k] = v
    return out


def render_conf(database: str, extra: dict[str, str], *, proxy_mode: bool = False,
                admin_passwd: str | None = None) -> str:
    lines = [
        "[options]",
        f"addons_path = {ADDONS_DIR}",
        f"data_dir = {DATA_DIR}",
        f"dbfilter = ^{database}$",
        f"db_name = {database}",
        "list_db = False",
    ]
    if admin_passwd:
        lines.append(f"admin_passwd = {admin_passwd}")
    if proxy_mode:
        lines.append("proxy_mode = True")
    for k, v in sorted(extra.items()):
        lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


def conf_tar(content: str) -> bytes:
    """A tar holding odoo.conf, for put_archive into /etc/odoo of a created container."""
    buf = io.BytesIO()
    data = content.encode()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("odoo.conf")
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _ab64(raw: bytes) -> str:
    """passlib's adapted base64: standard alphabet with '.' for '+', no padding."""
    return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")


def pbkdf2_sha512_hash(password: str, rounds: int = 100_000, salt: bytes | None = None) -> str:
    """The hash Odoo stores in res_users.password (passlib's pbkdf2_sha512 format)."""
    salt = salt if salt is not None else os.urandom(16)
    checksum = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return f"$pbkdf2-sha512${rounds}${_ab64(salt)}${_ab64(checksum)}"


def parse_log_line(line: str) -> dict | None:
    """Split an Odoo log line into its fields; None for continuation lines (tracebacks)."""
    m = _LOG_RE.match(line)
    if not m:
        return None
    d = m.groupdict()
    d["timestamp"] = f"{d.pop('date')} {d.pop('time')}"
    d["pid"] = int(d["pid"])
    return d
