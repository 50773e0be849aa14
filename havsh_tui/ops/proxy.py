"""The reverse proxy of a host: one Caddy container, ``havsh-proxy``, for every service.

What runs on the host
    ``havsh-proxy`` (the host's proxy image, ``caddy:2`` by default) on the ``havsh``
    network, publishing 80/tcp, 443/tcp and 443/udp (HTTP/3) on the host's proxy bind
    address (``0.0.0.0`` by default). Two named volumes: ``havsh-proxy-data`` at /data
    (certificates, keys, Caddy's internal CA) and ``havsh-proxy-config`` at /config.

How it is configured: a generated Caddyfile, then ``caddy reload``
    havsh keeps two files in the config volume, ``/config/havsh/routes.json`` (the truth:
    the host's base domain, its TLS mode and every service's custom hostnames) and
    ``/config/havsh/Caddyfile`` (generated from it and from the service containers that
    exist). The container runs ``caddy run --config /config/havsh/Caddyfile --adapter
    caddyfile``, so a re-created container (a new image) keeps its routes and certificates.
    A change writes both files and runs ``caddy reload`` inside the container: the reload
    goes through Caddy's admin API on the container's own localhost:2019, is graceful (no
    restart, open connections finish) and is refused, with the files rolled back, if the
    new config does not load. We use the ``caddy`` binary rather than curl or wget because
    every Caddy image has it, whatever else it has. Nothing here is meant to be edited by
    hand: the files say so.

Who may change them at once
    Two havsh processes (two laptops, or two tests) may change one host's routes at the same
    time, so every read-modify-write holds a lock on the host: a directory made with mkdir
    in the config volume (atomic), holding a token file; a lock older than a minute is
    taken as left by a killed process and broken. A change is two docker execs of constant
    scripts: one takes the lock and prints both files; the other gets the new files as a
    tar on its stdin, writes them, reloads Caddy, puts the old files back if Caddy refuses
    them, and releases the lock. A look that finds nothing to change takes no lock.

Which routes exist
    Every service container (label ``sh.hav.role=odoo``) gets its platform hostname
    ``<service>.<base domain>`` when the host has a base domain, plus its custom hostnames;
    the route goes away with the container. ``/websocket`` goes to port 8072 and the rest
    to 8069 of ``havsh-<slug>`` on the havsh network (Docker's DNS; resolved per request,
    so a route may exist before its container starts). Odoo listens on 8072 only in prefork
    mode (``workers > 0``); with the default ``workers = 0`` it serves /websocket on 8069,
    so the websocket route falls back to 8069 when 8072 refuses the connection. Services
    behind the proxy run with ``proxy_mode = True``.

TLS
    ``acme`` (the default): Caddy's automatic HTTPS, and HTTP redirects to HTTPS.
    ``internal``: certificates from Caddy's own CA, for private networks (and the tests);
    HTTP is served as well, since browsers do not trust that CA.

Without a base domain or a custom hostname a service has no URL: ``havsh service open``
forwards a local port over SSH instead (:class:`Tunnel`).
"""

from __future__ import annotations

import copy
import io
import ipaddress
import json
import re
import secrets as pysecrets
import select
import socket
import ssl
import tarfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import docker
import docker.errors

from havsh_tui.core import names
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.reporter import NullReporter, Reporter
from havsh_tui.remote.ssh import RemoteError

PROXY_CONTAINER = names.PROXY_CONTAINER
DATA_VOLUME = "havsh-proxy-data"
CONFIG_VOLUME = "havsh-proxy-config"
DATA_DIR = "/data"
CONFIG_DIR = "/config"
HAVSH_DIR = f"{CONFIG_DIR}/havsh"
CADDYFILE = f"{HAVSH_DIR}/Caddyfile"
STATE_FILE = f"{HAVSH_DIR}/routes.json"
LOCK_DIR = f"{HAVSH_DIR}/lock"
COMMAND = ["caddy", "run", "--config", CADDYFILE, "--adapter", "caddyfile"]

HTTP_PORT = 8069  # ops/odoo.py HTTP_PORT / WS_PORT (not imported: no cycle with services)
WS_PORT = 8072
TLS_MODES = ("acme", "internal")
DEFAULT_BIND = "0.0.0.0"
STATE_FORMAT = 1
LOCK_STALE_SECONDS = 60
LOCK_WAIT_SECONDS = 90.0

#: Constant scripts, run with `sh -c SCRIPT sh ARGS...`: values come in as "$1", "$2"...
#: and are never pasted in. They use only sh, mkdir, stat, date, cat, cp, mv, rm, tar and
#: caddy, which Caddy's Alpine image (busybox) and a Debian one both have.
#:
#: Lock (when $3 is a token; "-" reads without locking) and print both files:
#: "R" + routes.json (if it exists), NUL, "C" + Caddyfile (if it exists).
#: Exit 0: done (locked), 3: locked after breaking a stale lock, 1: busy.
#: $1 config dir, $2 lock dir, $3 token or -, $4 stale age in seconds.
_LOCK_READ_SCRIPT = r"""exec 2>/dev/null
rc=0
if [ "$3" != - ]; then
  if mkdir "$2" && : > "$2/$3"; then rc=0
  else
    t=$(stat -c %Y "$2") || exit 1
    now=$(date +%s)
    [ $((now - t)) -gt "$4" ] || exit 1
    rm -rf "$2"
    if mkdir "$2" && : > "$2/$3"; then rc=3; else exit 1; fi
  fi
fi
if [ -f "$1/routes.json" ]; then printf R; cat "$1/routes.json"; fi
printf '\0'
if [ -f "$1/Caddyfile" ]; then printf C; cat "$1/Caddyfile"; fi
exit $rc
"""
#: Write the files from a tar on stdin, `caddy reload` them ($4 = 1), put the old ones back
#: if Caddy refuses, then release the lock. A new container's admin API may need a moment.
#: $1 config dir, $2 lock dir, $3 token, $4 reload (1 or 0). Exit: caddy's, or 2 (tar).
_WRITE_RELOAD_SCRIPT = r"""exec 2>&1
d=$1
for f in routes.json Caddyfile; do
  if [ -f "$d/$f" ]; then cp -p "$d/$f" "$d/.$f.prev"; fi
done
if tar -x -f - -C "$d"; then
  rc=0
  if [ "$4" = 1 ]; then
    i=0
    while :; do
      out=$(caddy reload --config "$d/Caddyfile" --adapter caddyfile 2>&1); rc=$?
      [ $rc -eq 0 ] && break
      case "$out" in *"connection refused"*) ;; *) break ;; esac
      i=$((i + 1)); [ $i -ge 10 ] && break
      sleep 1
    done
    [ $rc -eq 0 ] || printf '%s
' "$out"
  fi
else
  rc=2
fi
if [ $rc -ne 0 ]; then
  for f in routes.json Caddyfile; do
    if [ -f "$d/.$f.prev" ]; then mv -f "$d/.$f.prev" "$d/$f"; fi
  done
fi
rm -f "$d/.routes.json.prev" "$d/.Caddyfile.prev"
if [ -e "$2/$3" ]; then rm -f "$2/$3"; rmdir "$2"; fi
exit $rc
"""
#: Release the lock, only if it is still ours. $1 lock dir, $2 token.
_UNLOCK_SCRIPT = 'if [ -e "$1/$2" ]; then rm -f "$1/$2"; rmdir "$1"; fi; exit 0'


class ProxyError(OpsError):
    def __init__(self, message: str) -> None:
        self.kind = "proxy"
        super().__init__(message)


class ProxyMissing(ProxyError):
    def __init__(self, host: str = "the host") -> None:
        super().__init__(f"{host} has no {PROXY_CONTAINER} yet: "
                         "`havsh host bootstrap` creates it")
        self.kind = "proxy_missing"


class InvalidHostname(OpsError):
    def __init__(self, message: str) -> None:
        self.kind = "invalid_hostname"
        super().__init__(message)


class HostnameTaken(OpsError):
    def __init__(self, message: str, owner: str | None = None) -> None:
        self.kind = "hostname_taken"
        self.extra = {"owner": owner}
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# Validation: everything that goes into the Caddyfile passes through here or is a slug.

_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def validate_hostname(name: str, *, what: str = "hostname") -> str:
    """A DNS hostname for a site: returned lowercased, without a final dot.

    Strict on purpose: LDH labels of 1-63 characters, at least two labels, at most 253
    characters, no wildcard, no IP address, no Unicode (give the xn-- form), no label with
    '--' in its third and fourth places unless it is an xn-- label, no 'localhost'.
    """
    if not isinstance(name, str) or not name:
        raise InvalidHostname(f"{what} is empty")
    if name != name.strip() or any(c.isspace() for c in name):
        raise InvalidHostname(f"{what} {name!r} contains white space")
    if not name.isascii():
        raise InvalidHostname(f"{what} {name!r} is not ASCII: give its xn-- (punycode) form")
    host = name.lower()
    if host.endswith("."):
        host = host[:-1]
    if "*" in host:
        raise InvalidHostname(f"{what} {name!r}: wildcards are not supported")
    if ":" in host or "/" in host or "@" in host:
        raise InvalidHostname(f"{what} {name!r} must be a bare hostname "
                              "(no scheme, port, path or user)")
    try:
        ipaddress.ip_address(host)
        raise InvalidHostname(f"{what} {name!r} is an IP address, not a hostname")
    except ValueError:
        pass
    if len(host) > 253:
        raise InvalidHostname(f"{what} {name!r} is longer than 253 characters")
    labels = host.split(".")
    if len(labels) < 2:
        raise InvalidHostname(f"{what} {name!r} needs at least two labels (like erp.example.com)")
    for label in labels:
        if not label:
            raise InvalidHostname(f"{what} {name!r} has an empty label")
        if len(label) > 63:
            raise InvalidHostname(f"{what} {name!r}: label {label!r} is longer than 63")
        if not _LABEL_RE.fullmatch(label):
            raise InvalidHostname(
                f"{what} {name!r}: label {label!r} may only hold a-z, 0-9 and '-', "
                "and must not start or end with '-'")
        if label[2:4] == "--" and not label.startswith("xn--"):
            raise InvalidHostname(f"{what} {name!r}: label {label!r} has '--' in its third "
                                  "and fourth places (reserved for xn-- labels)")
    if labels[-1].isdigit():
        raise InvalidHostname(f"{what} {name!r}: the last label must not be all digits")
    if labels[-1] == "localhost":
        raise InvalidHostname(f"{what} {name!r}: localhost names are not served")
    return host


def validate_base_domain(domain: str) -> str:
    """A base domain: a hostname short enough that ``<service>.<domain>`` always fits."""
    host = validate_hostname(domain, what="base domain")
    if len(host) > 253 - names.SLUG_MAX - 1:
        raise InvalidHostname(f"base domain {domain!r} is too long for service hostnames "
                              f"(at most {253 - names.SLUG_MAX - 1} characters)")
    return host


def validate_tls(mode: str) -> str:
    if mode not in TLS_MODES:
        raise OpsError(f"TLS mode {mode!r} is not one of {', '.join(TLS_MODES)}")
    return mode


def validate_bind(address: str) -> str:
    """The host address the proxy publishes 80 and 443 on: an IP address."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise OpsError(f"proxy bind address {address!r} is not an IP address") from None


def platform_hostname(slug: str, base_domain: str | None) -> str | None:
    return f"{slug}.{base_domain}" if base_domain else None


def with_proxy_mode(conf: str) -> str:
    """odoo.conf with ``proxy_mode = True`` in [options], unless it sets proxy_mode already
    (a user's explicit choice wins)."""
    if re.search(r"^\s*proxy_mode\s*=", conf, re.M):
        return conf
    lines = conf.splitlines()
    try:
        at = next(i for i, line in enumerate(lines) if line.strip() == "[options]") + 1
    except StopIteration:
        lines.insert(0, "[options]")
        at = 1
    lines.insert(at, "proxy_mode = True")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The state (routes.json) and the Caddyfile made from it: pure, unit-tested.


@dataclass
class ProxyState:
    """What havsh keeps on the host: its platform domain, TLS mode, custom hostnames."""

    base_domain: str | None = None
    tls: str = "acme"
    #: slug -> its custom hostnames, in the order they were added (the first is primary).
    hostnames: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = {"format": STATE_FORMAT, "generated_by": "havsh; do not edit by hand",
               "base_domain": self.base_domain, "tls": self.tls,
               "hostnames": {k: list(v) for k, v in sorted(self.hostnames.items()) if v}}
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ProxyState:
        """Parse routes.json; entries that do not validate are dropped, never rendered."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ProxyError(f"{STATE_FILE} on the host is not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise ProxyError(f"{STATE_FILE} on the host is not a JSON object")
        state = cls()
        try:
            base = doc.get("base_domain")
            state.base_domain = validate_base_domain(base) if base else None
        except OpsError:
            state.base_domain = None
        tls = doc.get("tls")
        state.tls = tls if tls in TLS_MODES else "acme"
        for slug, hosts in (doc.get("hostnames") or {}).items():
            if not names.is_valid_slug(slug) or not isinstance(hosts, list):
                continue
            good = []
            for h in hosts:
                try:
                    h = validate_hostname(h)
                except OpsError:
                    continue
                if h not in good:
                    good.append(h)
            if good:
                state.hostnames[slug] = good
        return state

    def owner_of(self, hostname: str) -> str | None:
        """The slug whose custom hostnames hold ``hostname``."""
        for slug, hosts in self.hostnames.items():
            if hostname in hosts:
                return slug
        return None

    def custom(self, slug: str) -> list[str]:
        return list(self.hostnames.get(slug, []))


@dataclass(frozen=True)
class Route:
    slug: str
    hostnames: tuple[str, ...]

    @property
    def upstream(self) -> str:
        return names.container_name(self.slug)


def plan_routes(state: ProxyState, slugs: Iterable[str]) -> list[Route]:
    """One route per present service that has a hostname; a hostname is served once.

    Custom hostnames claim first (a platform name somebody took as a custom one stays
    theirs); among services, the first by name wins. The ops below refuse such clashes,
    so this only guards against a hand-edited or stale state.
    """
    present = sorted(set(slugs))
    claimed: dict[str, str] = {}
    for slug in present:
        for h in state.hostnames.get(slug, []):
            claimed.setdefault(h, slug)
    routes = []
    for slug in present:
        hosts: list[str] = []
        plat = platform_hostname(slug, state.base_domain)
        if plat and claimed.setdefault(plat, slug) == slug:
            hosts.append(plat)
        for h in state.hostnames.get(slug, []):
            if claimed.get(h) == slug and h not in hosts:
                hosts.append(h)
        if hosts:
            routes.append(Route(slug, tuple(hosts)))
    return routes


def primary_hostname(state: ProxyState, slug: str) -> str | None:
    """The first custom hostname, else the platform one, else None (tunnel only)."""
    custom = state.hostnames.get(slug)
    if custom:
        return custom[0]
    return platform_hostname(slug, state.base_domain)


def service_url(state: ProxyState | None, slug: str) -> str:
    host = primary_hostname(state, slug) if state is not None else None
    return f"https://{host}" if host else ""


CADDYFILE_HEADER = (
    "# Generated by havsh from routes.json in this directory: do not edit by hand.\n"
    "# Change it with `havsh hostname add|rm` and `havsh host set --base-domain|--tls`.\n"
)


def render_caddyfile(state: ProxyState, slugs: Iterable[str]) -> str:
    """The whole Caddyfile for a host's proxy."""
    out = [CADDYFILE_HEADER, "{",
           "\t# Caddy's internal CA is not installed into this container's trust store.",
           "\tskip_install_trust",
           "}", ""]
    for route in plan_routes(state, slugs):
        if state.tls == "internal":
            addresses = [f"{scheme}://{h}" for h in route.hostnames for scheme in ("http", "https")]
        else:
            addresses = list(route.hostnames)
        out.append(f"# service {route.slug}")
        out.append(", ".join(addresses) + " {")
        if state.tls == "internal":
            out.append("\ttls internal")
        out += [
            "\t@websocket path /websocket /websocket/*",
            "\thandle @websocket {",
            # Odoo opens its evented port only in prefork mode (workers > 0); in threaded
            # mode (the default) nothing listens there and 8069 serves /websocket itself.
            # So: 8072 first, and 8069 when 8072 refuses (remembered for a while).
            f"\t\treverse_proxy {route.upstream}:{WS_PORT} {route.upstream}:{HTTP_PORT} {{",
            "\t\t\tlb_policy first",
            "\t\t\tlb_try_duration 3s",
            "\t\t\tlb_try_interval 50ms",
            "\t\t\tfail_duration 30s",
            "\t\t}",
            "\t}",
            "\thandle {",
            f"\t\treverse_proxy {route.upstream}:{HTTP_PORT}",
            "\t}",
            "}",
            "",
        ]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# On the host: files in the proxy's config volume, the lock, the reload.


def _exec(client, argv: list[str], *, user: str | None = None) -> tuple[int, str]:
    ex = client.api.exec_create(PROXY_CONTAINER, argv, user=user or "")
    out = client.api.exec_start(ex["Id"]).decode(errors="replace")
    code = client.api.exec_inspect(ex["Id"]).get("ExitCode")
    return int(code if code is not None else -1), out


def _tar(files: dict[str, bytes], *, directory: bool = True) -> bytes:
    """A tar of ``files``: under ``havsh/`` (for put_archive at /config), or bare (for
    extraction inside that directory)."""
    buf = io.BytesIO()
    now = int(time.time())
    prefix = "havsh/" if directory else ""
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if directory:
            d = tarfile.TarInfo("havsh")
            d.type = tarfile.DIRTYPE
            d.mode = 0o755
            d.mtime = now
            tar.addfile(d)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{prefix}{name}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read_files(client) -> dict[str, bytes]:
    """routes.json and Caddyfile from the proxy's config volume ({} when not written yet)."""
    try:
        stream, _ = client.api.get_archive(PROXY_CONTAINER, HAVSH_DIR)
    except docker.errors.NotFound as exc:
        if "container" in str(exc).lower() and "no such" in str(exc).lower():
            raise ProxyMissing() from None
        return {}
    data = b"".join(stream)
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and base in ("routes.json", "Caddyfile"):
                fh = tar.extractfile(member)
                if fh is not None:
                    out[base] = fh.read()
    return out


def _write_files(client, caddyfile: str, state_json: str) -> None:
    client.api.put_archive(PROXY_CONTAINER, CONFIG_DIR, _tar(
        {"routes.json": state_json.encode(), "Caddyfile": caddyfile.encode()}))


def read_state(client) -> ProxyState | None:
    """The host's proxy state; None when the proxy has none yet. Raises ProxyMissing."""
    files = _read_files(client)
    if "routes.json" not in files:
        return None
    return ProxyState.from_json(files["routes.json"])


def server_slugs(client) -> list[str]:
    """Slugs of the service containers on the host (running or not): one list call."""
    rows = client.api.containers(
        all=True, filters={"label": [f"{names.LABEL_MANAGED}=1", f"{names.LABEL_ROLE}=odoo"]})
    out = []
    for row in rows:
        slug = (row.get("Labels") or {}).get(names.LABEL_SERVICE)
        if slug and f"/{names.container_name(slug)}" in (row.get("Names") or []):
            out.append(slug)
    return sorted(set(out))


def _parse_dump(out: bytes) -> dict[str, bytes]:
    routes, _, caddyfile = out.partition(b"\0")
    files = {}
    if routes.startswith(b"R"):
        files["routes.json"] = routes[1:]
    if caddyfile.startswith(b"C"):
        files["Caddyfile"] = caddyfile[1:]
    return files


class _HostLock:
    """The mkdir lock in the proxy's config volume (see the module docstring). Taking it
    also reads the files (one exec); :meth:`write` writes, reloads and releases it in one
    more, so a change holds the lock for two round trips and a reload."""

    def __init__(self, client, reporter: Reporter, timeout: float = LOCK_WAIT_SECONDS) -> None:
        self.client = client
        self.reporter = reporter
        self.timeout = timeout
        self.token = pysecrets.token_hex(8)
        self.held = False

    def acquire(self) -> dict[str, bytes]:
        """Take the lock; returns the files as they are under it."""
        from havsh_tui.ops.streams import exec_process

        deadline = time.monotonic() + self.timeout
        delay = 0.05
        while True:
            proc = self._start(exec_process, ["sh", "-c", _LOCK_READ_SCRIPT, "sh", HAVSH_DIR,
                                              LOCK_DIR, self.token, str(LOCK_STALE_SECONDS)])
            try:
                out = proc.drain()
                code = proc.exit_code()
            finally:
                proc.close()
            if code in (0, 3):
                self.held = True
                if code == 3:
                    self.reporter.warning(f"{PROXY_CONTAINER}: broke a lock older than "
                                          f"{LOCK_STALE_SECONDS} s (a killed havsh left it)")
                return _parse_dump(out)
            if code != 1:
                raise ProxyError(f"cannot lock the proxy configuration: {proc.stderr_text()}")
            if time.monotonic() > deadline:
                raise ProxyError(f"the proxy configuration stayed locked for {self.timeout:.0f}"
                                 " s (another havsh is changing it)")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.3)

    def _start(self, exec_process, argv: list[str], stdin: bool = False):
        try:
            return exec_process(self.client, PROXY_CONTAINER, argv, stdin=stdin)
        except docker.errors.NotFound:
            raise ProxyMissing() from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # exec into a stopped container
                raise ProxyError(f"{PROXY_CONTAINER} is not running: "
                                 "`havsh host bootstrap` starts it") from None
            raise

    def write(self, caddyfile: str, state_json: str, *, reload: bool = True) -> None:
        """Write both files, reload Caddy (the old files come back if it refuses), and
        release the lock: one exec, the tar on its stdin."""
        from havsh_tui.ops.streams import exec_process

        proc = self._start(exec_process, ["sh", "-c", _WRITE_RELOAD_SCRIPT, "sh", HAVSH_DIR,
                                          LOCK_DIR, self.token, "1" if reload else "0"],
                           stdin=True)
        try:
            data = _tar({"routes.json": state_json.encode(), "Caddyfile": caddyfile.encode()},
                        directory=False)
            proc.write_all(data)
            proc.close_stdin()
            out = proc.drain().decode(errors="replace")
            code = proc.exit_code(timeout=60)
        finally:
            proc.close()
        self.held = False
        if code != 0:
            lines = out.strip().splitlines()
            errors = [ln for ln in lines if ln.startswith("Error")] or lines[-5:]
            raise ProxyError("Caddy refused the new configuration (the previous one stays): "
                             + "\n".join(errors))

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            _exec(self.client, ["sh", "-c", _UNLOCK_SCRIPT, "sh", LOCK_DIR, self.token])
        except (docker.errors.APIError, RemoteError, OSError):
            pass  # stale after a minute; the next writer breaks it


@dataclass
class SyncResult:
    state: ProxyState
    slugs: list[str]
    changed: bool = False
    reloaded: bool = False


def sync(client, change: Callable[[ProxyState], None] | None = None, *,
         reporter: Reporter | None = None, initial: ProxyState | None = None) -> SyncResult:
    """Apply ``change`` to the host's state, regenerate the Caddyfile, reload if it changed.

    ``change`` runs on a copy of the state, once to see whether anything would change and
    again under the lock, on the state as it is then: it must have no other side effects.

    Without a change (or with one that changes nothing) and a Caddyfile that is up to date,
    nothing is locked or written: a look costs two calls. ``initial`` is the state to start
    from when the host has none yet (bootstrap). ``change`` may raise to refuse.
    """
    reporter = reporter or NullReporter()

    def plan(files: dict[str, bytes]) -> tuple[ProxyState, ProxyState, list[str], str]:
        if "routes.json" in files:
            before = ProxyState.from_json(files["routes.json"])
        elif initial is not None:
            before = copy.deepcopy(initial)
        else:
            raise ProxyError(f"{PROXY_CONTAINER} has no {STATE_FILE}: "
                             "`havsh host bootstrap` writes it")
        after = copy.deepcopy(before)
        if change is not None:
            change(after)
        slugs = server_slugs(client)
        return before, after, slugs, render_caddyfile(after, slugs)

    def same(files: dict[str, bytes], text: str, after: ProxyState) -> bool:
        return (files.get("Caddyfile", b"").decode(errors="replace") == text
                and files.get("routes.json", b"").decode(errors="replace") == after.to_json())

    files = _read_files(client)
    _before, after, slugs, text = plan(files)
    if same(files, text, after):
        return SyncResult(after, slugs)
    lock = _HostLock(client, reporter)
    files = lock.acquire()
    try:
        _before, after, slugs, text = plan(files)
        if same(files, text, after):
            return SyncResult(after, slugs)
        lock.write(text, after.to_json())
    finally:
        lock.release()
    return SyncResult(after, slugs, changed=True, reloaded=True)


# ---------------------------------------------------------------------------------------------
# Bootstrap: the container, its volumes, its first state.


def _labels(role: str) -> dict[str, str]:
    return {names.LABEL_MANAGED: "1", names.LABEL_ROLE: role}


def _port_bindings(bind: str) -> dict[str, list[dict[str, str]]]:
    return {"80/tcp": [{"HostIp": bind, "HostPort": "80"}],
            "443/tcp": [{"HostIp": bind, "HostPort": "443"}],
            "443/udp": [{"HostIp": bind, "HostPort": "443"}]}


def _normal_bindings(raw: dict | None) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for port, binds in (raw or {}).items():
        out[port] = sorted(((b.get("HostIp") or "0.0.0.0"), str(b.get("HostPort") or ""))
                           for b in (binds or []))
    return out


def _mismatch(attrs: dict, host) -> str | None:
    """Why an existing proxy container is not what the host's settings ask; None if right."""
    cfg = attrs.get("Config") or {}
    if cfg.get("Image") != host.proxy_image:
        return f"image {cfg.get('Image')} (want {host.proxy_image})"
    if list(cfg.get("Cmd") or []) != COMMAND:
        return "command " + " ".join(cfg.get("Cmd") or [])
    want = _normal_bindings(_port_bindings(validate_bind(host.proxy_bind)))
    if _normal_bindings((attrs.get("HostConfig") or {}).get("PortBindings")) != want:
        return f"published ports (want 80, 443 on {host.proxy_bind})"
    mounts = {m.get("Destination"): m.get("Name") for m in attrs.get("Mounts") or []}
    if mounts.get(DATA_DIR) != DATA_VOLUME or mounts.get(CONFIG_DIR) != CONFIG_VOLUME:
        return "volumes"
    return None


def _ensure_volume(client, name: str, role: str, result) -> None:
    vols = client.api.volumes(filters={"name": name}).get("Volumes") or []
    if not any(v["Name"] == name for v in vols):
        client.api.create_volume(name, labels=_labels(role))
        result.created.append(f"volume {name}")


def host_state(host) -> ProxyState:
    """The state a new proxy starts from: the inventory's settings for the host."""
    return ProxyState(base_domain=host.base_domain or None, tls=host.tls or "acme")


def _create_proxy(client, host, bind: str, result, reporter: Reporter, audit,
                  recreated: str | None) -> dict | None:
    """Create and start the proxy container; None when done, or the attrs of the one that
    another havsh created at the same moment (the caller then checks it like any other)."""
    from havsh_tui.ops.images import ensure_image

    ensure_image(client, host.name, host.proxy_image, reporter)
    host_config = client.api.create_host_config(
        binds={DATA_VOLUME: {"bind": DATA_DIR, "mode": "rw"},
               CONFIG_VOLUME: {"bind": CONFIG_DIR, "mode": "rw"}},
        port_bindings={80: (bind, 80), 443: (bind, 443), "443/udp": (bind, 443)},
        restart_policy={"Name": "unless-stopped"},
        network_mode=names.NETWORK_NAME,
    )
    networking = client.api.create_networking_config(
        {names.NETWORK_NAME: client.api.create_endpoint_config(aliases=[PROXY_CONTAINER])})
    try:
        cid = client.api.create_container(
            host.proxy_image, name=PROXY_CONTAINER, command=COMMAND, labels=_labels("proxy"),
            ports=[80, 443, (443, "udp")], host_config=host_config,
            networking_config=networking,
        )["Id"]
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
        # Another havsh (a second laptop, a parallel create) made it just now: use theirs.
        return client.api.inspect_container(PROXY_CONTAINER)
    files = _read_files(client)
    if "routes.json" not in files or "Caddyfile" not in files:
        state = (ProxyState.from_json(files["routes.json"]) if "routes.json" in files
                 else host_state(host))
        _write_files(client, render_caddyfile(state, server_slugs(client)), state.to_json())
    try:
        client.api.start(cid)
    except docker.errors.APIError as exc:
        # Most often 80 or 443 is taken by another web server on the host.
        client.api.remove_container(cid, force=True)
        raise ProxyError(
            f"{PROXY_CONTAINER} does not start on {host.name}: {exc.explanation or exc}. "
            f"If another program holds port 80 or 443 on {bind}, free it, or publish "
            f"the proxy elsewhere: `havsh host set {host.name} --proxy-bind ADDRESS`"
        ) from None
    if recreated:
        result.changed.append(f"container {PROXY_CONTAINER} re-created ({recreated})")
    else:
        result.created.append(f"container {PROXY_CONTAINER}")
    if audit:
        audit.append(host.name, "container.create", PROXY_CONTAINER, "ok", host.proxy_image)
    result.ids["proxy"] = cid
    return None


def ensure_proxy(client, host, result, reporter: Reporter | None = None, audit=None) -> str:
    """Create, fix or start ``havsh-proxy`` as the host's settings say; idempotent.

    A container whose image, command, published ports or volumes differ is re-created
    (its volumes, so its certificates and routes, stay). Once the host has a routes.json
    it is the truth: bootstrap does not overwrite it (two laptops with different settings
    would fight), it warns; `havsh host set` changes it.
    """
    reporter = reporter or NullReporter()
    bind = validate_bind(host.proxy_bind)
    validate_tls(host.tls)
    _ensure_volume(client, DATA_VOLUME, "proxy-data", result)
    _ensure_volume(client, CONFIG_VOLUME, "proxy-config", result)
    try:
        attrs = client.api.inspect_container(PROXY_CONTAINER)
    except docker.errors.NotFound:
        attrs = None
    recreated = None
    if attrs is not None:
        recreated = _mismatch(attrs, host)
        if recreated:
            reporter.log(f"{PROXY_CONTAINER}: {recreated}: re-creating it "
                         "(its certificates and routes stay in its volumes)")
            client.api.remove_container(PROXY_CONTAINER, force=True)
            attrs = None
    if attrs is None:
        attrs = _create_proxy(client, host, bind, result, reporter, audit, recreated)
        if attrs is None:
            return result.ids["proxy"]
    cid = attrs["Id"]
    if names.NETWORK_NAME not in (attrs.get("NetworkSettings", {}).get("Networks") or {}):
        client.api.connect_container_to_network(PROXY_CONTAINER, names.NETWORK_NAME,
                                                aliases=[PROXY_CONTAINER])
        result.changed.append(f"{PROXY_CONTAINER} connected to {names.NETWORK_NAME}")
    running = bool(attrs["State"].get("Running"))
    files = _read_files(client)
    if "routes.json" not in files or "Caddyfile" not in files:
        state = (ProxyState.from_json(files["routes.json"]) if "routes.json" in files
                 else host_state(host))
        if running:
            lock = _HostLock(client, reporter)
            lock.acquire()
            try:
                lock.write(render_caddyfile(state, server_slugs(client)), state.to_json())
            finally:
                lock.release()
        else:  # nobody can change it while it is not running: no lock (it needs exec)
            _write_files(client, render_caddyfile(state, server_slugs(client)), state.to_json())
        result.changed.append(f"{PROXY_CONTAINER} routes written")
    else:
        state = ProxyState.from_json(files["routes.json"])
        want = host_state(host)
        if (state.base_domain, state.tls) != (want.base_domain, want.tls):
            reporter.warning(
                f"{host.name}'s proxy serves base domain {state.base_domain or '(none)'} with "
                f"TLS {state.tls}; this inventory says {want.base_domain or '(none)'}, "
                f"{want.tls}. The host's settings stay; `havsh host set {host.name} "
                "--base-domain ... --tls ...` changes them.")
    if not running:
        client.api.start(PROXY_CONTAINER)
        result.changed.append(f"container {PROXY_CONTAINER} started")
        if audit:
            audit.append(host.name, "container.start", PROXY_CONTAINER, "ok")
    else:
        result.unchanged.append(f"container {PROXY_CONTAINER}")
    result.ids["proxy"] = cid
    return cid


# ---------------------------------------------------------------------------------------------
# Services: their routes follow their containers; their URL follows their hostnames.


def attach_service(client, service, reporter: Reporter | None = None, *,
                   fresh: bool = False) -> str:
    """Make the host's routes match its containers (this service's included), and set
    ``service.url`` and ``service.hostnames`` from the host's state. Returns the URL.

    ``fresh``: a new service; custom hostnames a deleted namesake left behind (an unclean
    removal) are dropped rather than inherited. Best effort: a host without a proxy, or a
    proxy that cannot be changed now, gives a warning, and the service is still reachable
    with `havsh service open`.
    """
    reporter = reporter or NullReporter()
    slug = service.name

    def drop_leftovers(state: ProxyState) -> None:
        state.hostnames.pop(slug, None)

    try:
        res = sync(client, drop_leftovers if fresh else None, reporter=reporter)
    except ProxyMissing:
        reporter.warning(f"{service.host} has no {PROXY_CONTAINER}: no route for {slug} "
                         "(`havsh host bootstrap` adds the proxy; `havsh service open` works)")
        return service.url
    except (OpsError, docker.errors.APIError, RemoteError, OSError) as exc:
        reporter.warning(f"the route of {slug} could not be updated now ({exc}); "
                         "the next change on this host's proxy retries it")
        return service.url
    service.url = service_url(res.state, slug)
    service.hostnames = res.state.custom(slug)
    return service.url


def detach_service(client, slug: str, reporter: Reporter | None = None) -> list[str]:
    """Drop a removed service's custom hostnames and routes. Call it after its container is
    gone. Returns what went (for the removal's summary); best effort like attach."""
    reporter = reporter or NullReporter()

    def forget(state: ProxyState) -> None:
        state.hostnames.pop(slug, None)

    try:
        before = read_state(client)
        res = sync(client, forget, reporter=reporter)
    except ProxyMissing:
        return []
    except (OpsError, docker.errors.APIError, RemoteError, OSError) as exc:
        reporter.warning(f"the routes of {slug} could not be removed now ({exc})")
        return []
    plat = platform_hostname(slug, before.base_domain) if before else None
    hosts = ([plat] if plat else []) + (before.custom(slug) if before else [])
    return [f"routes {', '.join(hosts)}"] if res.changed and hosts else []


# ---------------------------------------------------------------------------------------------
# Ops on hostnames (inventory + host), for the CLI and the TUI.


@dataclass
class HostnameChange:
    service: str
    host: str
    hostname: str
    action: str  # added, removed, unchanged
    url: str
    platform: str | None
    hostnames: list[str]
    dns: dict | None = None

    def to_dict(self) -> dict:
        return {"service": self.service, "host": self.host, "hostname": self.hostname,
                "action": self.action, "url": self.url or None, "platform": self.platform,
                "hostnames": self.hostnames, "dns": self.dns}


def _url_host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] if url else ""


def _check_inventory(inventory, service, hostname: str) -> None:
    for other in inventory.list_services():
        if (other.host, other.name) == (service.host, service.name):
            continue
        if hostname in (other.hostnames or []) or _url_host(other.url) == hostname:
            raise HostnameTaken(f"{hostname} belongs to {other.name} on {other.host} already",
                                owner=f"{other.host}/{other.name}")


def host_address(session) -> str | None:
    """The address havsh reaches the host at: the ssh target if it is an IP literal, else the
    peer of the SSH connection (not through a jump host, where that is the jump's)."""
    host = session.host
    if host.proxy_bind not in ("0.0.0.0", "::"):
        return host.proxy_bind
    target = session.ssh.target
    try:
        return str(ipaddress.ip_address(target.hostname))
    except ValueError:
        pass
    if target.jump is None and target.proxy_command is None:
        try:
            return str(session.ssh.transport().getpeername()[0])
        except (OSError, AttributeError, IndexError, RemoteError):
            return None
    return None


def dns_record(hostname: str, address: str | None) -> dict:
    """The record to create for a hostname: A or AAAA to the host's public address."""
    rec: dict = {"name": hostname + ".", "type": "A or AAAA",
                 "value": address or "<the host's public address>", "note": ""}
    if address:
        ip = ipaddress.ip_address(address)
        rec["type"] = "AAAA" if ip.version == 6 else "A"
        if not ip.is_global:
            rec["note"] = (f"havsh reaches the host at {address}, which is not a public "
                           "address: point the record at the address the internet sees")
    return rec


def _session_and_client(inventory, pool, service):
    session = pool.session(inventory.get_host(service.host))
    return session, session.docker()


def _record(inventory, service, state: ProxyState) -> None:
    inventory.update_service(service.host, service.name, url=service_url(state, service.name),
                             hostnames=state.custom(service.name))


def add_hostname(inventory, pool, service, hostname: str, *, reporter: Reporter | None = None,
                 audit=None) -> HostnameChange:
    """Give ``service`` the custom hostname; refused when anything else has it."""
    reporter = reporter or NullReporter()
    hostname = validate_hostname(hostname)
    _check_inventory(inventory, service, hostname)
    session, client = _session_and_client(inventory, pool, service)
    slug = service.name
    action = "added"

    def change(state: ProxyState) -> None:
        nonlocal action
        action = "added"
        present = set(server_slugs(client))
        if slug not in present:
            raise OpsError(f"{slug} has no container on {service.host}: "
                           "a hostname needs the service to exist there")
        owner = state.owner_of(hostname)
        if owner == slug:
            action = "unchanged"
            return
        if owner is not None:
            raise HostnameTaken(f"{hostname} belongs to {owner} on {service.host} already",
                                owner=f"{service.host}/{owner}")
        for other in present:
            if other != slug and platform_hostname(other, state.base_domain) == hostname:
                raise HostnameTaken(f"{hostname} is the platform hostname of {other} on "
                                    f"{service.host}", owner=f"{service.host}/{other}")
        if platform_hostname(slug, state.base_domain) == hostname:
            raise OpsError(f"{hostname} is {slug}'s platform hostname already")
        state.hostnames.setdefault(slug, []).append(hostname)

    res = sync(client, change, reporter=reporter)
    _record(inventory, service, res.state)
    if audit:
        audit.append(service.host, "hostname.add", f"{slug} {hostname}", "ok", action)
    return HostnameChange(slug, service.host, hostname, action, service_url(res.state, slug),
                          platform_hostname(slug, res.state.base_domain),
                          res.state.custom(slug), dns_record(hostname, host_address(session)))


def remove_hostname(inventory, pool, service, hostname: str, *,
                    reporter: Reporter | None = None, audit=None) -> HostnameChange:
    """Take a custom hostname away from ``service`` (its other routes are untouched)."""
    reporter = reporter or NullReporter()
    hostname = validate_hostname(hostname)
    _session, client = _session_and_client(inventory, pool, service)
    slug = service.name

    def change(state: ProxyState) -> None:
        if hostname in state.hostnames.get(slug, []):
            state.hostnames[slug].remove(hostname)
            if not state.hostnames[slug]:
                del state.hostnames[slug]
            return
        if platform_hostname(slug, state.base_domain) == hostname:
            raise OpsError(f"{hostname} is {slug}'s platform hostname: it goes with the "
                           "service, or with the host's base domain (`havsh host set "
                           f"{service.host} --base-domain none`)")
        owner = state.owner_of(hostname)
        raise OpsError(f"{hostname} is not a hostname of {slug}"
                       + (f" (it belongs to {owner})" if owner else ""))

    res = sync(client, change, reporter=reporter)
    _record(inventory, service, res.state)
    if audit:
        audit.append(service.host, "hostname.rm", f"{slug} {hostname}", "ok")
    return HostnameChange(slug, service.host, hostname, "removed", service_url(res.state, slug),
                          platform_hostname(slug, res.state.base_domain),
                          res.state.custom(slug))


@dataclass
class CertInfo:
    hostname: str
    not_after: datetime | None = None
    issuer: str = ""
    error: str = ""

    @property
    def days_left(self) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - datetime.now(UTC)).total_seconds() / 86400

    def to_dict(self) -> dict:
        return {"hostname": self.hostname,
                "not_after": self.not_after.isoformat() if self.not_after else None,
                "days_left": round(self.days_left, 2) if self.days_left is not None else None,
                "issuer": self.issuer, "error": self.error or None}


def _proxy_ip(client) -> str:
    attrs = client.api.inspect_container(PROXY_CONTAINER)
    nets = attrs.get("NetworkSettings", {}).get("Networks") or {}
    ip = (nets.get(names.NETWORK_NAME) or {}).get("IPAddress")
    if not ip:
        raise ProxyError(f"{PROXY_CONTAINER} has no address on the {names.NETWORK_NAME} network")
    return ip


def certificate_info(session, hostname: str, *, timeout: float = 10.0) -> CertInfo:
    """The certificate the proxy serves for ``hostname``, read by a TLS handshake with that
    SNI through the SSH connection (a direct-tcpip channel to the proxy's 443, as seen from
    the host). Nothing is verified: this reads the expiry, it does not vouch for it."""
    from cryptography import x509

    info = CertInfo(hostname)
    client = session.docker()
    try:
        chan = session.ssh.transport().open_channel(
            "direct-tcpip", (_proxy_ip(client), 443), ("127.0.0.1", 0), timeout=timeout)
    except docker.errors.NotFound:
        info.error = f"{session.host.name} has no {PROXY_CONTAINER}"
        return info
    except Exception as exc:  # noqa: BLE001 - paramiko raises several kinds
        info.error = f"cannot reach the proxy: {exc}"
        return info
    chan.settimeout(timeout)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=hostname)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    chan.sendall(pending)
                if time.monotonic() > deadline:
                    raise TimeoutError("TLS handshake timed out") from None
                data = chan.recv(65536)
                if not data:
                    raise ConnectionError("the proxy closed the connection") from None
                incoming.write(data)
        der = tls.getpeercert(binary_form=True)
        if not der:
            info.error = "no certificate"
            return info
        cert = x509.load_der_x509_certificate(der)
        info.not_after = cert.not_valid_after_utc
        info.issuer = cert.issuer.rfc4514_string()
    except (ssl.SSLError, OSError, ConnectionError) as exc:
        info.error = f"TLS handshake failed: {exc}"
    finally:
        chan.close()
    return info


@dataclass
class ServiceHostnames:
    service: str
    host: str
    url: str
    platform: str | None
    hostnames: list[str]
    tls: str
    certs: dict[str, CertInfo] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"service": self.service, "host": self.host, "url": self.url or None,
                "platform": self.platform, "hostnames": self.hostnames, "tls": self.tls,
                "certs": {k: v.to_dict() for k, v in self.certs.items()} or None}


def service_hostnames(inventory, pool, service, *, certs: bool = False) -> ServiceHostnames:
    """A service's hostnames as its host's proxy has them (the inventory's cache is
    refreshed), with each certificate's expiry when ``certs``."""
    session, client = _session_and_client(inventory, pool, service)
    state = read_state(client) or ProxyState()
    present = service.name in server_slugs(client)
    plat = platform_hostname(service.name, state.base_domain) if present else None
    url = service_url(state, service.name) if present else ""
    custom = state.custom(service.name)
    cached = inventory.get_service(service.name, host=service.host)
    if (url, custom) != (cached.url, list(cached.hostnames or [])):
        inventory.update_service(service.host, service.name, url=url, hostnames=custom)
    out = ServiceHostnames(service.name, service.host, url, plat, custom, state.tls)
    if certs and present:
        for h in ([plat] if plat else []) + custom:
            out.certs[h] = certificate_info(session, h)
    return out


def apply_host_settings(inventory, pool, host, *, fields: Iterable[str] | None = None,
                        reporter: Reporter | None = None, audit=None) -> ProxyState | None:
    """Push the inventory's proxy settings of ``host`` to it (`havsh host set`): the
    container (image, bind address), then base domain and TLS mode, then refresh the URLs
    of its services in the inventory. ``fields``: only these of base_domain and tls (the
    ones the user changed; the others stay as the host has them). None when the host has
    no proxy yet: its first bootstrap starts it with these settings."""
    from havsh_tui.ops.bootstrap import BootstrapResult

    reporter = reporter or NullReporter()
    client = pool.session(host).docker()
    result = BootstrapResult(host=host.name)
    want = host_state(host)
    try:
        client.api.inspect_container(PROXY_CONTAINER)
        exists = True
    except docker.errors.NotFound:
        exists = False
    if not exists:
        return None
    ensure_proxy(client, host, result, NullReporter(), audit)

    push = {"base_domain", "tls"} if fields is None else {"base_domain", "tls"} & set(fields)

    def settings(state: ProxyState) -> None:
        if "base_domain" in push:
            state.base_domain = want.base_domain
        if "tls" in push:
            state.tls = want.tls

    res = sync(client, settings, reporter=reporter, initial=want)
    for msg in result.created + result.changed:
        reporter.log(msg)
    refresh_urls(inventory, host.name, res.state, res.slugs)
    if audit and push:
        audit.append(host.name, "proxy.settings", PROXY_CONTAINER, "ok",
                     f"base_domain={res.state.base_domain} tls={res.state.tls}")
    return res.state


def refresh_urls(inventory, host_name: str, state: ProxyState, slugs: list[str]) -> list[str]:
    """Set url and hostnames of the host's services in the inventory from the proxy's state;
    returns the names of the services that changed."""
    present = set(slugs)
    changes = {}
    for s in inventory.list_services(host=host_name):
        url = service_url(state, s.name) if s.name in present else s.url
        custom = state.custom(s.name)
        if (url, custom) != (s.url, list(s.hostnames or [])):
            changes[s.name] = {"url": url, "hostnames": custom}
    if changes:
        inventory.update_services(host_name, changes, missing_ok=True)
    return sorted(changes)


# ---------------------------------------------------------------------------------------------
# Without a hostname: a local port forwarded over SSH (like `ssh -L`).


class Tunnel:
    """Listen on a local port; each connection becomes a direct-tcpip channel over the host's
    SSH connection to ``target()`` (a container's address and port, as seen from the host)."""

    def __init__(self, ssh, target: Callable[[], tuple[str, int]], *,
                 bind: str = "127.0.0.1", port: int = 0) -> None:
        self.ssh = ssh
        self._target = target
        self._address: tuple[str, int] | None = None
        self._listener = socket.create_server((bind, port))
        self._listener.settimeout(0.5)
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self._thread = threading.Thread(target=self._accept_loop, name="havsh-tunnel",
                                        daemon=True)
        self._thread.start()

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.local_address
        return f"http://{host}:{port}/"

    def _open_channel(self):
        last: Exception | None = None
        for attempt in range(2):
            if self._address is None or attempt:
                self._address = self._target()  # the container may have a new address
            try:
                return self.ssh.transport().open_channel(
                    "direct-tcpip", self._address, ("127.0.0.1", 0), timeout=10)
            except Exception as exc:  # noqa: BLE001 - paramiko's kinds; retried once
                last = exc
        raise ConnectionError(f"cannot open a channel to {self._address}: {last}")

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        chan = None
        try:
            try:
                chan = self._open_channel()
            except (ConnectionError, RemoteError, OSError):
                return
            local_open = remote_open = True
            while (local_open or remote_open) and not self._closed.is_set():
                watch = ([conn] if local_open else []) + ([chan] if remote_open else [])
                ready, _, _ = select.select(watch, [], [], 0.5)
                if conn in ready:
                    data = conn.recv(65536)
                    if data:
                        chan.sendall(data)
                    else:
                        local_open = False
                        chan.shutdown_write()
                if chan in ready:
                    data = chan.recv(65536)
                    if data:
                        conn.sendall(data)
                    else:
                        remote_open = False
                        try:
                            conn.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
        except OSError:
            pass
        finally:
            if chan is not None:
                chan.close()
            conn.close()
            with self._lock:
                self._conns.discard(conn)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until closed (or ``timeout``); returns True when closed."""
        return self._closed.wait(timeout)

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            for c in list(self._conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(timeout=2)


def open_tunnel(session, service, *, port: int = 0, bind: str = "127.0.0.1") -> Tunnel:
    """A :class:`Tunnel` from a local port to the service's Odoo port 8069."""
    client = session.docker()
    cname = names.container_name(service.name)

    def target() -> tuple[str, int]:
        try:
            attrs = client.api.inspect_container(cname)
        except docker.errors.NotFound:
            raise ConnectionError(f"{cname} is gone from {service.host}") from None
        nets = attrs.get("NetworkSettings", {}).get("Networks") or {}
        ip = (nets.get(names.NETWORK_NAME) or {}).get("IPAddress")
        if not ip:
            raise ConnectionError(f"{cname} is not running (no address)")
        return ip, HTTP_PORT

    try:
        ip, _ = target()
    except ConnectionError as exc:
        raise OpsError(f"{service.name}: {exc}") from None
    tunnel = Tunnel(session.ssh, target, bind=bind, port=port)
    tunnel._address = (ip, HTTP_PORT)
    return tunnel
