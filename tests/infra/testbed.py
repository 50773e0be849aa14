"""The havsh test bed: two real Docker hosts behind real sshd, on this one machine.

    python -m tests.infra.testbed up        # bring everything up (idempotent, fast when up)
    python -m tests.infra.testbed down      # stop what `up` started, clean test leftovers
    python -m tests.infra.testbed status    # show what runs (exit 0 when all is up)
    python -m tests.infra.testbed images    # only build/load the test images
    python -m tests.infra.testbed packages  # only install missing Debian packages

Host A is this machine: its own dockerd on /var/run/docker.sock, sshd on 127.0.0.1:2222.
Host B lives in the network namespace `hostb` (10.213.9.2, veth vb0/vb1), with its own
dockerd (/run/docker-b/docker.sock, data root /var/lib/docker-b) and an sshd on
10.213.9.2:22 whose mount namespace has B's socket at /var/run/docker.sock, so that B looks
like a stock Debian host. See /work/shared/TESTBED.md.

Test images are built without a registry: a debootstrap'ed Debian base, imported with
`docker import`, then `docker build` of every tests/infra/images/*/Dockerfile. Each image is
keyed on a hash of its inputs (label sh.hav.testbed.hash) and only rebuilt when they change.

`up` writes /run/havsh-testbed/state.json with what the tests need (see `Host`).
Stdlib only: tests/run.sh runs this module with the system python before any venv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- constants

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
IMAGES_DIR = HERE / "images"
BASE_PACKAGES_FILE = IMAGES_DIR / "base-packages.txt"

WORK = Path(os.environ.get("HAVSH_TESTBED_WORK", "/var/lib/havsh-testbed"))
RUN = Path("/run/havsh-testbed")
STATE_FILE = RUN / "state.json"
LOCK_FILE = RUN / "lock"
ENGINE_A_MARK = RUN / "engine-a.json"  # exists only when *we* started engine A
OWNER_FILE = RUN / "owner"  # the pytest run that brought the testbed up (see session_begin)
USERS_DIR = RUN / "users"  # one file per pytest process using the testbed

LOG_DIR = WORK / "logs"
KEYS_DIR = WORK / "client"
CLIENT_KEY = KEYS_DIR / "id_ed25519"
AUTHORIZED_KEYS = WORK / "authorized_keys"
KNOWN_HOSTS = WORK / "known_hosts"
SSH_CONFIG = WORK / "ssh_config"
BUILD_DIR = WORK / "build"
DEB_CACHE = WORK / "cache" / "debs"

PACKAGES = [
    "docker.io",
    "openssh-server",
    "openssh-client",
    "debootstrap",
    "debian-archive-keyring",
    "iproute2",
    "iptables",
    "tmux",
    "curl",
    "ca-certificates",
    "procps",
    "util-linux",
]

# Engine A: the machine's own.
SOCK_A = "/var/run/docker.sock"
PIDFILE_A = "/var/run/docker.pid"

# Engine B: in its own network namespace (TESTBED.md §4).
NETNS = "hostb"
NETNS_PATH = f"/run/netns/{NETNS}"
VETH_HOST, VETH_NS = "vb0", "vb1"
ADDR_HOST, ADDR_B, PREFIX = "10.213.9.1", "10.213.9.2", 24
B_RUN = Path("/run/docker-b")
SOCK_B = str(B_RUN / "docker.sock")
PIDFILE_B = str(B_RUN / "docker.pid")
DATA_ROOT_B = "/var/lib/docker-b"
EXEC_ROOT_B = str(B_RUN / "exec")
BIP_B = "10.214.0.1/24"

# Images.
SUITE, VARIANT, MIRROR = "bookworm", "minbase", "http://deb.debian.org/debian"
IMAGE_PATH_ENV = (
    "PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)
HASH_LABEL = "sh.hav.testbed.hash"
BASE_REPO = "havsh-test/base"
ODOO_VERSIONS = ("16.0", "17.0", "18.0", "19.0")
# Bump when the way the base is made changes (what is stripped, import changes, ...).
BASE_RECIPE = 2
# Bump when the way derived images are built changes.
DERIVED_RECIPE = 1
# Globs removed from the debootstrap tree before import (a removed directory is recreated
# empty): docs, caches, the cluster that the postgresql package creates (the entrypoint
# makes its own in PGDATA), and PostgreSQL's LLVM JIT (~140 MB; without its provider
# library PostgreSQL runs with JIT unavailable, silently).
STRIP = [
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/i18n",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/*-old",
    "var/log",
    "var/lib/postgresql/*",
    "etc/postgresql/*",
    "usr/lib/postgresql/*/lib/llvmjit*",
    "usr/lib/postgresql/*/lib/bitcode",
    "usr/lib/*/libLLVM-*.so*",
    "usr/lib/*/libz3.so*",
]
# Where the test-object labels live: down removes these leftovers from both engines.
TEST_LABELS = ("sh.hav.managed=1", "sh.hav.test=1")

SSHD = "/usr/sbin/sshd"


def _docker_bin() -> str:
    # docker.io's own client (20.10, API 1.41) matches the engine; the 28.x client on PATH
    # negotiates down too, but the legacy builder (DOCKER_BUILDKIT=0) is only sure with 20.10.
    return (
        "/usr/bin/docker"
        if os.path.exists("/usr/bin/docker")
        else (shutil.which("docker") or "docker")
    )


def _docker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_BUILDKIT"] = "0"
    env["DOCKER_CLI_HINTS"] = "false"
    return env


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Host:
    """One test host, as a test sees it."""

    name: str  # ssh alias in ssh_config: "hosta" / "hostb"
    address: str
    port: int
    user: str
    client_key: str  # private key (ed25519) that the sshd accepts
    known_hosts: str  # OpenSSH known_hosts with both hosts' keys
    ssh_config: str  # OpenSSH client config with aliases hosta / hostb
    docker_socket: str  # the engine's socket on this machine, for direct inspection
    netns: str | None  # network namespace name (None: the machine's own)
    sshd_pid: int | None
    docker_root: str | None = None  # the engine's Docker Root Dir

    @property
    def docker_host(self) -> str:
        """DOCKER_HOST for direct (non-SSH) inspection from the test process."""
        return f"unix://{self.docker_socket}"

    @property
    def ssh_url(self) -> str:
        """docker-py / DOCKER_HOST style URL reaching this host's engine over SSH."""
        return f"ssh://{self.user}@{self.address}:{self.port}"

    @property
    def key_path(self) -> Path:
        return Path(self.client_key)

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts)

    @property
    def ssh_config_path(self) -> Path:
        return Path(self.ssh_config)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Host:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass(frozen=True)
class Images:
    """The test images' tags (present on both engines), and why any are missing."""

    base: str | None
    postgres: str | None
    caddy: str | None
    odoo: dict[str, str]  # "17.0" -> "havsh-test/odoo:17.0"
    all: list[str]
    errors: dict[str, str]  # image dir -> build error

    def odoo_tag(self, version: str) -> str:
        try:
            return self.odoo[version]
        except KeyError:
            why = self.errors.get("odoo", "not built")
            raise LookupError(f"no test image havsh-test/odoo:{version}: {why}") from None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Images:
        return cls(
            base=d.get("base"),
            postgres=d.get("postgres"),
            caddy=d.get("caddy"),
            odoo=dict(d.get("odoo") or {}),
            all=list(d.get("all") or []),
            errors=dict(d.get("errors") or {}),
        )


@dataclasses.dataclass(frozen=True)
class Testbed:
    """What the pytest `testbed` fixture gives: state.json, parsed."""

    hosts: dict[str, Host]
    images: Images
    work_dir: Path
    ssh_config: Path
    known_hosts: Path
    client_key: Path
    state: dict[str, Any]

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Testbed:
        return cls(
            hosts={n: Host.from_dict(h) for n, h in state["hosts"].items()},
            images=Images.from_dict(state.get("images") or {}),
            work_dir=Path(state["work_dir"]),
            ssh_config=Path(state["ssh_config"]),
            known_hosts=Path(state["known_hosts"]),
            client_key=Path(state["client_key"]),
            state=state,
        )


class TestbedError(RuntimeError):
    pass


# --------------------------------------------------------------------------- small helpers

_T0 = time.monotonic()
QUIET = False


def log(msg: str) -> None:
    if not QUIET:
        print(f"[testbed {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    t = time.monotonic()
    log(f"{name} ...")
    try:
        yield
    finally:
        dt = time.monotonic() - t
        if timings is not None:
            timings[name] = round(dt, 2)
        log(f"{name}: {dt:.1f} s")


def run(
    cmd: list[str],
    *,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = 120,
    env: dict[str, str] | None = None,
    input: str | bytes | None = None,
) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL if input is None else None,
            input=input,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=not isinstance(input, bytes),
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        raise TestbedError(f"timed out after {timeout}s: {shlex.join(cmd)}") from e
    if check and p.returncode != 0:
        err = (p.stderr or "").strip() if capture else ""
        raise TestbedError(f"failed ({p.returncode}): {shlex.join(cmd)}\n{err}")
    return p


def _tail(path: Path | str, n: int = 30) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _read_pid(path: Path | str) -> int | None:
    try:
        return int(Path(path).read_text().strip().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None) -> bool:
    """True for a running (not zombie) process."""
    if not pid or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _is_proc(pid: int | None, exe_name: str, *must_contain: str) -> bool:
    """pid is alive, runs `exe_name` and its argv contains every `must_contain`."""
    if not pid_alive(pid):
        return False
    try:
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return False
    if os.path.basename(exe) != exe_name:
        return False
    joined = "\0".join(cmdline(pid))  # type: ignore[arg-type]
    return all(s in joined for s in must_contain)


def _ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _pid_netns(pid: int) -> int | None:
    return _ns_inode(f"/proc/{pid}/ns/net")


def _shares_our_uts(pid: int) -> bool:
    """True if pid has this machine's hostname namespace (host B's daemons must not)."""
    return _ns_inode(f"/proc/{pid}/ns/uts") == _ns_inode("/proc/self/ns/uts")


def stop_pid(pid: int | None, what: str, timeout: float = 20.0) -> None:
    """SIGTERM, wait, then SIGKILL. Only ever called with a PID that we started."""
    if not pid_alive(pid):
        return
    assert pid is not None
    log(f"stopping {what} (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    log(f"{what} (pid {pid}) ignored SIGTERM for {timeout:.0f}s: SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _rotate(log_path: Path) -> None:
    if log_path.exists() and log_path.stat().st_size > 0:
        with contextlib.suppress(OSError):
            log_path.replace(log_path.with_suffix(log_path.suffix + ".1"))


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    tmp.replace(path)
    return True


def _mounts_under(path: str) -> list[str]:
    """Mount points at or under `path`, deepest first."""
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path.rstrip("/") + "/"):
                found.append(mp)
    return sorted(set(found), key=len, reverse=True)


def _procs_rooted_under(path: str) -> list[int]:
    path = os.path.realpath(path)
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                r = os.readlink(f"/proc/{d}/root")
                if r == path or r.startswith(path + "/"):
                    pids.append(int(d))
    return pids


def _remove_tree(path: Path) -> None:
    """rm -rf a build tree safely: stop processes chrooted in it, unmount, stay on one fs."""
    if not path.exists():
        return
    for pid in _procs_rooted_under(str(path)):
        stop_pid(pid, f"process {cmdline(pid)[:2]} left in {path}", timeout=5)
    for mp in _mounts_under(str(path)):
        run(["umount", "-l", mp], check=False)
    run(["rm", "-rf", "--one-file-system", str(path)], timeout=600)


# --------------------------------------------------------------------------- locking


_lock_depth = 0
_lock_fd: int | None = None
_lock_mutex = threading.Lock()


@contextlib.contextmanager
def testbed_lock(timeout: float = 1800) -> Iterator[None]:
    """Exclusive flock on /run/havsh-testbed/lock; reentrant within one process."""
    global _lock_depth, _lock_fd
    with _lock_mutex:
        if _lock_depth == 0:
            RUN.mkdir(parents=True, exist_ok=True)
            fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        os.close(fd)
                        raise TestbedError(f"could not lock {LOCK_FILE} in {timeout}s") from None
                    time.sleep(0.2)
            _lock_fd = fd
        _lock_depth += 1
    try:
        yield
    finally:
        with _lock_mutex:
            _lock_depth -= 1
            if _lock_depth == 0 and _lock_fd is not None:
                fcntl.flock(_lock_fd, fcntl.LOCK_UN)
                os.close(_lock_fd)
                _lock_fd = None


# --------------------------------------------------------------------------- engine API


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def api(sock: str, method: str, path: str, timeout: float = 30, **query: Any) -> tuple[int, Any]:
    """A Docker Engine API call over a unix socket: (status, decoded JSON or text)."""
    if query:
        path += "?" + urllib.parse.urlencode(
            {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in query.items()}
        )
    conn = _UnixHTTPConnection(sock, timeout)
    try:
        conn.request(method, path, headers={"Host": "docker"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    text = body.decode(errors="replace")
    try:
        return resp.status, json.loads(text) if text else None
    except ValueError:
        return resp.status, text


def engine_ping(sock: str, timeout: float = 2) -> bool:
    try:
        status, body = api(sock, "GET", "/_ping", timeout=timeout)
    except OSError:
        return False
    return status == 200


def engine_info(sock: str) -> dict[str, Any]:
    status, body = api(sock, "GET", "/info")
    if status != 200:
        raise TestbedError(f"GET /info on {sock}: {status} {body}")
    return body


def image_inspect(sock: str, ref: str) -> dict[str, Any] | None:
    try:
        status, body = api(sock, "GET", f"/images/{urllib.parse.quote(ref, safe='/:@')}/json")
    except OSError:
        return None
    return body if status == 200 else None


def docker(sock: str, *args: str, **kw: Any) -> subprocess.CompletedProcess:
    return run([_docker_bin(), "-H", f"unix://{sock}", *args], env=_docker_env(), **kw)


# --------------------------------------------------------------------------- 1. packages


def missing_packages(pkgs: list[str] = PACKAGES) -> list[str]:
    if not shutil.which("dpkg-query"):
        return list(pkgs)
    p = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\n", *pkgs],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    ok = set()
    for line in p.stdout.splitlines():
        name, _, status = line.partition("\t")
        if status.startswith("ii"):
            ok.add(name.split(":")[0])
    return [p for p in pkgs if p not in ok]


def ensure_packages(pkgs: list[str] = PACKAGES) -> list[str]:
    """Install the missing Debian packages; apt-get update only when something is missing."""
    missing = missing_packages(pkgs)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise TestbedError(f"missing Debian packages {missing} and not root to install them")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Never let a package's maintainer script start its service (dockerd, sshd): the
    # testbed starts its own. Only add the standard policy-rc.d if there is none.
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\n# added by havsh testbed during apt-get install\nexit 101\n")
        policy.chmod(0o755)
        added_policy = True
    try:
        run(["apt-get", "update"], env=env, timeout=600, capture=False)
        run(
            ["apt-get", "install", "-y", "--no-install-recommends", *missing],
            env=env,
            timeout=1200,
            capture=False,
        )
    finally:
        if added_policy:
            policy.unlink(missing_ok=True)
    still = missing_packages(pkgs)
    if still:
        raise TestbedError(f"packages still missing after apt-get install: {still}")
    return missing


# --------------------------------------------------------------------------- 2. engine A


def _engine_a_owned_pid() -> int | None:
    """PID of engine A if we started it and it still runs."""
    try:
        mark = json.loads(ENGINE_A_MARK.read_text())
    except (OSError, ValueError):
        return None
    pid = mark.get("pid")
    return pid if _is_proc(pid, "dockerd", SOCK_A) else None


def _wait_engine(sock: str, pidfile: str, what: str, log_path: Path, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    pid = None
    seen_pid_at = None
    while time.monotonic() < deadline:
        pid = _read_pid(pidfile) or pid
        if engine_ping(sock, timeout=1):
            return pid or 0
        if pid and not pid_alive(pid):
            raise TestbedError(f"{what} exited during start; log {log_path}:\n{_tail(log_path)}")
        if pid is None and seen_pid_at is None:
            seen_pid_at = time.monotonic()
        time.sleep(0.1)
    raise TestbedError(
        f"{what} did not answer on {sock} in {timeout}s; log {log_path}:\n{_tail(log_path)}"
    )


def _start_daemon(argv: list[str], log_path: Path) -> None:
    """Start a daemon with `setsid -f` (new session, reparented, not our child)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    _rotate(log_path)
    with open(log_path, "ab") as logf:
        subprocess.run(
            ["setsid", "-f", *argv],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            check=True,
            timeout=30,
        )


def _clear_stale_engine_files(sock: str, pidfile: str) -> None:
    pid = _read_pid(pidfile)
    if pid and pid_alive(pid) and os.path.basename((cmdline(pid) or [""])[0]) == "dockerd":
        return  # a live dockerd: the caller decides
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pidfile)
    if os.path.exists(sock) and not engine_ping(sock, timeout=1):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)


def _clear_stale_containerd(exec_root: str) -> None:
    """A dockerd killed with -9 leaves its managed containerd's pidfile behind, and the
    containerd (killed by its parent-death signal) may linger as a zombie that nothing
    reaps. dockerd takes a zombie for a running containerd and times out connecting to it."""
    pidfile = os.path.join(exec_root, "containerd", "containerd.pid")
    pid = _read_pid(pidfile)
    if pid is not None and not _is_proc(pid, "containerd"):
        log(f"removing stale {pidfile} (pid {pid} is gone or a zombie)")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pidfile)


def ensure_engine_a() -> dict[str, Any]:
    """Engine A on /var/run/docker.sock. Reuse an engine that answers; start one if none."""
    if engine_ping(SOCK_A):
        owned_pid = _engine_a_owned_pid()
        if owned_pid:
            return {"pid": owned_pid, "owned": True, "started": False}
        ENGINE_A_MARK.unlink(missing_ok=True)
        log(
            f"engine A: an engine we did not start answers on {SOCK_A}: reusing it (down leaves it)"
        )
        return {"pid": _read_pid(PIDFILE_A), "owned": False, "started": False}
    # Nothing answers. Our own earlier engine may be hung or starting.
    owned_pid = _engine_a_owned_pid()
    if owned_pid:
        try:
            _wait_engine(SOCK_A, PIDFILE_A, "engine A", LOG_DIR / "dockerd-a.log", timeout=20)
            return {"pid": owned_pid, "owned": True, "started": False}
        except TestbedError:
            stop_pid(owned_pid, "hung engine A")
    pid = _read_pid(PIDFILE_A)
    if pid and _is_proc(pid, "dockerd"):
        raise TestbedError(
            f"a dockerd we did not start (pid {pid}, {PIDFILE_A}) runs, "
            f"but does not answer on {SOCK_A}"
        )
    _clear_stale_engine_files(SOCK_A, PIDFILE_A)
    _clear_stale_containerd("/var/run/docker")
    cfg = WORK / "engine-a" / "daemon.json"
    _write_if_changed(cfg, "{}\n")
    log_path = LOG_DIR / "dockerd-a.log"
    _start_daemon(
        [
            "dockerd",
            "--host",
            f"unix://{SOCK_A}",
            "--pidfile",
            PIDFILE_A,
            "--config-file",
            str(cfg),
        ],
        log_path,
    )
    pid = _wait_engine(SOCK_A, PIDFILE_A, "engine A", log_path)
    ENGINE_A_MARK.write_text(json.dumps({"pid": pid, "started_at": time.time()}))
    log(f"engine A: started dockerd pid {pid}")
    return {"pid": pid, "owned": True, "started": True}


# --------------------------------------------------------------------------- 3. netns + engine B


def _ip(*args: str, ns: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *args]
    if ns:
        cmd = ["nsenter", f"--net={NETNS_PATH}", *cmd]
    return run(cmd, check=check, timeout=30)


def _netns_valid() -> bool:
    return NETNS_PATH in _mounts_under(NETNS_PATH) and _ns_inode(NETNS_PATH) is not None


def _link_exists(name: str, ns: bool = False) -> bool:
    return _ip("link", "show", "dev", name, ns=ns, check=False).returncode == 0


def ensure_netns() -> None:
    """netns hostb with veth vb0 (10.213.9.1/24, here) <-> vb1 (10.213.9.2/24, in hostb)."""
    if os.path.exists(NETNS_PATH) and not _netns_valid():
        log(f"removing stale {NETNS_PATH}")
        _ip("netns", "del", NETNS, check=False)
        with contextlib.suppress(OSError):
            os.unlink(NETNS_PATH)
    if not os.path.exists(NETNS_PATH):
        _ip("netns", "add", NETNS)
    # A crash between `link add` and `set netns` leaves vb1 here; a lost namespace leaves
    # nothing. Recreate the pair unless both ends are where they belong.
    if _link_exists(VETH_NS):
        _ip("link", "del", VETH_NS, check=False)
    if not (_link_exists(VETH_HOST) and _link_exists(VETH_NS, ns=True)):
        _ip("link", "del", VETH_HOST, check=False)
        _ip("link", "del", VETH_NS, ns=True, check=False)
        _ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        _ip("link", "set", VETH_NS, "netns", NETNS)
    _ip("addr", "replace", f"{ADDR_HOST}/{PREFIX}", "dev", VETH_HOST)
    _ip("link", "set", VETH_HOST, "up")
    _ip("addr", "replace", f"{ADDR_B}/{PREFIX}", "dev", VETH_NS, ns=True)
    _ip("link", "set", VETH_NS, "up", ns=True)
    _ip("link", "set", "lo", "up", ns=True)
    # No default route in hostb: it is an air-gapped host, reachable only from here.


def _engine_b_pid() -> int | None:
    pid = _read_pid(PIDFILE_B)
    return pid if _is_proc(pid, "dockerd", DATA_ROOT_B) else None


def ensure_engine_b() -> dict[str, Any]:
    """Engine B: dockerd inside netns hostb (nsenter --net, not `ip netns exec`)."""
    B_RUN.mkdir(parents=True, exist_ok=True)
    ns_ino = _ns_inode(NETNS_PATH)
    cfg = WORK / "engine-b" / "daemon.json"
    # B's own identity key: by default both engines would read /etc/docker/key.json and
    # report the same engine ID.
    cfg_changed = _write_if_changed(
        cfg,
        json.dumps({"deprecated-key-path": str(WORK / "engine-b" / "key.json")}, indent=2) + "\n",
    )
    pid = _engine_b_pid()
    if pid and (cfg_changed or _shares_our_uts(pid)):
        stop_pid(pid, "engine B (its config changed)", timeout=45)
        pid = None
    if pid:
        if _pid_netns(pid) != ns_ino:
            # The namespace was recreated under a running engine: it is cut off.
            stop_pid(pid, "engine B (in a stale network namespace)", timeout=30)
        elif engine_ping(SOCK_B):
            return {"pid": pid, "started": False}
        else:
            try:
                _wait_engine(SOCK_B, PIDFILE_B, "engine B", LOG_DIR / "dockerd-b.log", timeout=20)
                return {"pid": pid, "started": False}
            except TestbedError:
                stop_pid(pid, "hung engine B", timeout=30)
    _clear_stale_engine_files(SOCK_B, PIDFILE_B)
    _clear_stale_containerd(EXEC_ROOT_B)
    log_path = LOG_DIR / "dockerd-b.log"
    _start_daemon(
        [
            "nsenter",
            f"--net={NETNS_PATH}",
            # Its own hostname too (docker info's Name), as a separate machine would have.
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            NETNS,
            "dockerd",
            "--host",
            f"unix://{SOCK_B}",
            "--data-root",
            DATA_ROOT_B,
            "--exec-root",
            EXEC_ROOT_B,
            "--pidfile",
            PIDFILE_B,
            "--bip",
            BIP_B,
            "--config-file",
            str(cfg),
            # Own containerd namespaces: if a system containerd runs (dockerd then uses it
            # instead of starting its own), A and B still never see each other's containers.
            "--containerd-namespace",
            "moby-hostb",
            "--containerd-plugins-namespace",
            "plugins.moby-hostb",
        ],
        log_path,
    )
    pid = _wait_engine(SOCK_B, PIDFILE_B, "engine B", log_path)
    if _pid_netns(pid) != ns_ino:
        raise TestbedError(f"engine B (pid {pid}) is not in netns {NETNS}")
    log(f"engine B: started dockerd pid {pid} in netns {NETNS}")
    return {"pid": pid, "started": True}


# --------------------------------------------------------------------------- 4. sshd


@dataclasses.dataclass(frozen=True)
class _SshdSpec:
    name: str
    address: str
    port: int
    netns: str | None
    docker_socket: str

    @property
    def dir(self) -> Path:
        return WORK / self.name

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def config(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def pidfile(self) -> Path:
        return self.dir / "sshd.pid"

    @property
    def log(self) -> Path:
        return LOG_DIR / f"sshd-{self.name}.log"


SSHD_A = _SshdSpec("hosta", "127.0.0.1", 2222, None, SOCK_A)
SSHD_B = _SshdSpec("hostb", ADDR_B, 22, NETNS, SOCK_B)
SSHDS = (SSHD_A, SSHD_B)


def _keygen(path: Path, comment: str) -> None:
    if path.exists() and path.with_suffix(".pub").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, path.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    os.chmod(path, 0o600)


def _known_hosts_entry(spec: _SshdSpec) -> str:
    pub = spec.host_key.with_suffix(".pub").read_text().split()
    host = spec.address if spec.port == 22 else f"[{spec.address}]:{spec.port}"
    return f"{host} {pub[0]} {pub[1]}\n"


def _sshd_config_text(spec: _SshdSpec) -> str:
    return f"""\
# havsh testbed sshd for {spec.name} (written by tests/infra/testbed.py)
Port {spec.port}
ListenAddress {spec.address}
HostKey {spec.host_key}
PidFile {spec.pidfile}
AuthorizedKeysFile {AUTHORIZED_KEYS}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
StreamLocalBindUnlink yes
X11Forwarding no
PrintMotd no
UseDNS no
# Tests open many connections and channels at once.
MaxStartups 200:30:400
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""


def ensure_ssh_files() -> bool:
    """Keys, authorized_keys, sshd configs, known_hosts, ssh_config. True if a config changed."""
    for d in (WORK, LOG_DIR, KEYS_DIR, SSHD_A.dir, SSHD_B.dir):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(WORK, 0o755)
    _keygen(CLIENT_KEY, "havsh-testbed-client")
    changed = False
    for spec in SSHDS:
        _keygen(spec.host_key, f"havsh-testbed-{spec.name}")
        changed |= _write_if_changed(spec.config, _sshd_config_text(spec))
    _write_if_changed(AUTHORIZED_KEYS, CLIENT_KEY.with_suffix(".pub").read_text(), 0o600)
    _write_if_changed(KNOWN_HOSTS, "".join(_known_hosts_entry(s) for s in SSHDS))
    blocks = []
    for spec in SSHDS:
        blocks.append(f"Host {spec.name}\n    HostName {spec.address}\n    Port {spec.port}\n")
    blocks.append(
        f"""Host hosta hostb {SSHD_A.address} {SSHD_B.address}
    User root
    IdentityFile {CLIENT_KEY}
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile {KNOWN_HOSTS}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    BatchMode yes
    ConnectTimeout 10
    LogLevel ERROR
"""
    )
    _write_if_changed(
        SSH_CONFIG, "# havsh testbed client config (tests/infra/testbed.py)\n" + "\n".join(blocks)
    )
    return changed


def _sshd_pid(spec: _SshdSpec) -> int | None:
    pid = _read_pid(spec.pidfile)
    if not _is_proc(pid, "sshd", str(spec.config)):
        return None
    if spec.netns and _pid_netns(pid) != _ns_inode(f"/run/netns/{spec.netns}"):  # type: ignore[arg-type]
        return None
    return pid


def _port_open(addr: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


# Host B's sshd: a private mount namespace in which /run is a fresh tmpfs that holds B's
# /run/docker-b (a directory bind mount, so an engine restart's new socket shows through)
# and /run/docker.sock -> /run/docker-b/docker.sock. Binding the socket *file* over
# /var/run/docker.sock (TESTBED.md §5) would pin the socket inode: after B's dockerd
# restarts, B's sshd would see a dead socket, and when A's dockerd recreates its socket the
# bind mount is detached and B's sessions would silently reach engine A.
_SSHD_B_SCRIPT = """\
set -eu
hostname "$HOSTNAME_B"
mount --make-rprivate /
mount --bind /run/docker-b "$STAGE"
mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m havsh-hostb-run /run
mkdir -p /run/sshd /run/lock /run/docker-b
chmod 1777 /run/lock
: > /run/utmp
mount --move "$STAGE" /run/docker-b
ln -s /run/docker-b/docker.sock /run/docker.sock
exec "$SSHD" -f "$CONF" -E "$LOG"
"""


def stop_sshd(spec: _SshdSpec) -> None:
    stop_pid(_sshd_pid(spec) or _stale_sshd_pid(spec), f"sshd {spec.name}", timeout=10)
    spec.pidfile.unlink(missing_ok=True)


def _stale_sshd_pid(spec: _SshdSpec) -> int | None:
    """Our sshd (by config path) even if it sits in a stale network namespace."""
    pid = _read_pid(spec.pidfile)
    return pid if _is_proc(pid, "sshd", str(spec.config)) else None


def start_sshd(spec: _SshdSpec) -> int:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    run([SSHD, "-t", "-f", str(spec.config)])
    spec.pidfile.unlink(missing_ok=True)
    _rotate(spec.log)
    spec.log.touch()
    if spec.netns is None:
        run([SSHD, "-f", str(spec.config), "-E", str(spec.log)])
    else:
        stage = spec.dir / "run-docker-b"
        stage.mkdir(exist_ok=True)
        env = dict(
            os.environ,
            STAGE=str(stage),
            SSHD=SSHD,
            CONF=str(spec.config),
            LOG=str(spec.log),
            HOSTNAME_B=spec.name,
        )
        run(
            [
                "nsenter",
                f"--net=/run/netns/{spec.netns}",
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "sh",
                "-c",
                _SSHD_B_SCRIPT,
            ],
            env=env,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid = _sshd_pid(spec)
        if pid:
            if spec.netns is None and not _port_open(spec.address, spec.port):
                time.sleep(0.05)
                continue
            return pid
        time.sleep(0.05)
    raise TestbedError(f"sshd {spec.name} did not start; log {spec.log}:\n{_tail(spec.log)}")


def ensure_sshd(spec: _SshdSpec, restart: bool = False) -> dict[str, Any]:
    pid = _sshd_pid(spec)
    if pid and spec.netns and _shares_our_uts(pid):
        restart = True
    if pid and not restart:
        return {"pid": pid, "started": False}
    stop_sshd(spec)
    pid = start_sshd(spec)
    log(f"sshd {spec.name}: started pid {pid} on {spec.address}:{spec.port}")
    return {"pid": pid, "started": True}


def ssh_cmd(host: str, *remote: str) -> list[str]:
    return ["ssh", "-F", str(SSH_CONFIG), host, *remote]


def verify_ssh() -> dict[str, dict[str, str]]:
    """`ssh -F ssh_config hostX docker info` on both hosts, in parallel."""
    fmt = "{{.DockerRootDir}}|{{.ID}}"
    procs = {
        s.name: subprocess.Popen(
            ssh_cmd(s.name, "docker", "info", "--format", shlex.quote(fmt)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in SSHDS
    }
    out: dict[str, dict[str, str]] = {}
    for name, p in procs.items():
        try:
            so, se = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise TestbedError(f"ssh {name} docker info timed out") from None
        if p.returncode != 0:
            raise TestbedError(f"ssh {name} docker info failed ({p.returncode}): {se.strip()}")
        root, _, ident = so.strip().partition("|")
        out[name] = {"docker_root": root, "id": ident}
    if out["hostb"]["docker_root"] != DATA_ROOT_B:
        raise TestbedError(
            f"hostb over ssh reports Docker Root Dir {out['hostb']['docker_root']!r}, "
            f"not {DATA_ROOT_B}"
        )
    if out["hosta"]["id"] == out["hostb"]["id"]:
        raise TestbedError("hosta and hostb report the same engine ID over ssh")
    return out


# --------------------------------------------------------------------------- 5. images


def base_packages() -> list[str]:
    pkgs: list[str] = []
    for line in BASE_PACKAGES_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkgs.extend(p for p in line.replace(",", " ").split() if p)
    return sorted(set(pkgs))


def _arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def base_key() -> str:
    recipe = {
        "recipe": BASE_RECIPE,
        "suite": SUITE,
        "variant": VARIANT,
        "mirror": MIRROR,
        "arch": _arch(),
        "packages": base_packages(),
        "env": IMAGE_PATH_ENV,
        "strip": STRIP,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def base_tag(key: str) -> str:
    return f"{BASE_REPO}:{key[:12]}"


def image_specs() -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Image dir name -> [(tag, build args)]: every images/*/ with a Dockerfile (and odoo)."""
    known: dict[str, list[tuple[str, dict[str, str]]]] = {
        "postgres": [("havsh-test/postgres:15", {})],
        "caddy": [("havsh-test/caddy:2", {})],
        "odoo": [(f"havsh-test/odoo:{v}", {"ODOO_VERSION": v}) for v in ODOO_VERSIONS],
    }
    specs = {name: known[name] for name in ("postgres", "caddy", "odoo")}
    if IMAGES_DIR.is_dir():
        for d in sorted(IMAGES_DIR.iterdir()):
            if d.is_dir() and (d / "Dockerfile").exists() and d.name not in specs:
                specs[d.name] = [(f"havsh-test/{d.name}:latest", {})]
    return specs


def _dir_digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d).as_posix()
        if "__pycache__" in p.parts or p.suffix == ".pyc" or p.is_dir():
            continue
        st = p.lstat()
        h.update(f"{rel}\0{'x' if st.st_mode & 0o111 else '-'}\0".encode())
        h.update(os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def derived_key(d: Path, bkey: str, args: dict[str, str]) -> str:
    payload = json.dumps(
        {"recipe": DERIVED_RECIPE, "base": bkey, "dir": _dir_digest(d), "args": args},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _has_image(sock: str, tag: str, key: str) -> bool:
    info = image_inspect(sock, tag)
    labels = ((info or {}).get("Config") or {}).get("Labels") or {}
    return labels.get(HASH_LABEL) == key


def build_base(key: str, timings: dict[str, float]) -> str:
    tag = base_tag(key)
    if _has_image(SOCK_A, tag, key):
        return tag
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    for old in BUILD_DIR.glob("rootfs-*"):  # leftovers of a crashed build
        log(f"removing leftover build tree {old}")
        _remove_tree(old)
    root = BUILD_DIR / f"rootfs-{key[:12]}"
    dlog = LOG_DIR / "debootstrap.log"
    _rotate(dlog)
    try:
        with phase("image base: debootstrap", timings):
            with open(dlog, "ab") as lf:
                p = subprocess.run(
                    [
                        "debootstrap",
                        f"--variant={VARIANT}",
                        f"--include={','.join(base_packages())}",
                        f"--cache-dir={DEB_CACHE}",
                        SUITE,
                        str(root),
                        MIRROR,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=lf,
                    stderr=lf,
                    timeout=1800,
                )
            # Maintainer scripts must not leave daemons behind (they run in the chroot).
            for pid in _procs_rooted_under(str(root)):
                stop_pid(pid, f"process {cmdline(pid)[:2]} left running by debootstrap", timeout=5)
            for mp in _mounts_under(str(root)):
                run(["umount", "-l", mp], check=False)
            if p.returncode != 0:
                raise TestbedError(
                    f"debootstrap failed ({p.returncode}); log {dlog}:\n{_tail(dlog, 40)}"
                )
        with phase("image base: strip + import", timings):
            for pattern in STRIP:
                for target in sorted(root.glob(pattern)):
                    if target.is_dir() and not target.is_symlink():
                        run(["rm", "-rf", "--one-file-system", str(target)])
                        target.mkdir(parents=True, exist_ok=True)
                    else:
                        target.unlink(missing_ok=True)
            tar = subprocess.Popen(
                [
                    "tar",
                    "-C",
                    str(root),
                    "--numeric-owner",
                    "--xattrs",
                    "--exclude=./dev/*",
                    "--exclude=./proc/*",
                    "--exclude=./sys/*",
                    "-c",
                    ".",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
            )
            imp = subprocess.run(
                [
                    _docker_bin(),
                    "-H",
                    f"unix://{SOCK_A}",
                    "import",
                    "-c",
                    f"ENV {IMAGE_PATH_ENV}",
                    "-c",
                    f"LABEL {HASH_LABEL}={key}",
                    "-c",
                    'CMD ["bash"]',
                    "-",
                    tag,
                ],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                env=_docker_env(),
                timeout=900,
            )
            assert tar.stdout is not None
            tar.stdout.close()
            tar_rc = tar.wait()
            if tar_rc != 0 or imp.returncode != 0:
                raise TestbedError(
                    f"tar | docker import failed (tar {tar_rc}, import {imp.returncode}): "
                    f"{imp.stderr}"
                )
    finally:
        _remove_tree(root)
    return tag


def build_derived(name: str, d: Path, tag: str, args: dict[str, str], base: str, key: str) -> None:
    blog = LOG_DIR / f"build-{tag.replace('/', '_').replace(':', '_')}.log"
    argv = [
        _docker_bin(),
        "-H",
        f"unix://{SOCK_A}",
        "build",
        "--pull=false",
        "--rm",
        "--force-rm",
        "--build-arg",
        f"BASE={base}",
        "--label",
        f"{HASH_LABEL}={key}",
        "-t",
        tag,
    ]
    for k, v in args.items():
        argv += ["--build-arg", f"{k}={v}"]
    with open(blog, "wb") as lf:
        p = subprocess.run(
            argv + [str(d)],
            stdin=subprocess.DEVNULL,
            stdout=lf,
            stderr=lf,
            env=_docker_env(),
            timeout=1800,
        )
    if p.returncode != 0:
        raise TestbedError(
            f"docker build {tag} from {d.relative_to(REPO)} failed ({p.returncode}); "
            f"log {blog}:\n{_tail(blog, 25)}"
        )
    if not _has_image(SOCK_A, tag, key):
        raise TestbedError(f"docker build {tag}: built, but no image with label {HASH_LABEL}={key}")


def _cleanup_old_images(sock: str, keep_base: str) -> None:
    status, images = api(sock, "GET", "/images/json", filters={"reference": [f"{BASE_REPO}:*"]})
    for img in images if status == 200 else []:
        for t in img.get("RepoTags") or []:
            if t.startswith(BASE_REPO + ":") and t != keep_base:
                api(sock, "DELETE", f"/images/{urllib.parse.quote(t, safe='/:')}")
    # Images of ours that lost their tag to a newer build.
    api(
        sock,
        "POST",
        "/images/prune",
        filters={"dangling": ["true"], "label": [HASH_LABEL]},
        timeout=120,
    )


def load_into_b(tags: list[str], timings: dict[str, float]) -> list[str]:
    """Give engine B the images: docker save | docker -H B load, only for IDs B lacks."""
    todo = []
    for tag in tags:
        a = image_inspect(SOCK_A, tag)
        if not a:
            continue
        b = image_inspect(SOCK_B, tag)
        if b and b["Id"] == a["Id"]:
            continue
        if image_inspect(SOCK_B, a["Id"]):
            repo, _, t = tag.rpartition(":")
            api(SOCK_B, "POST", f"/images/{a['Id']}/tag", repo=repo, tag=t)
            continue
        todo.append(tag)
    if not todo:
        return []
    with phase(f"images: load {len(todo)} into engine B", timings):
        save = subprocess.Popen(
            [_docker_bin(), "-H", f"unix://{SOCK_A}", "save", *todo],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_docker_env(),
        )
        load = subprocess.run(
            [_docker_bin(), "-H", f"unix://{SOCK_B}", "load", "-q"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            env=_docker_env(),
            timeout=1800,
        )
        assert save.stdout is not None
        save.stdout.close()
        save_err = save.stderr.read().decode(errors="replace") if save.stderr else ""
        if save.wait() != 0 or load.returncode != 0:
            raise TestbedError(f"docker save | load into B failed: {save_err} {load.stderr}")
    for tag in todo:
        a, b = image_inspect(SOCK_A, tag), image_inspect(SOCK_B, tag)
        if not (a and b and a["Id"] == b["Id"]):
            raise TestbedError(f"image {tag} did not arrive in engine B")
    return todo


def ensure_images(timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Build the missing/stale test images on engine A and load them into engine B.

    Returns {"tags": {...}, "errors": {dir: message}}. A failing image dir (or a missing
    odoo dir) is reported, not fatal: the other images are still built."""
    timings = timings if timings is not None else {}
    result: dict[str, Any] = {"base": None, "tags": {}, "errors": {}}
    bkey = base_key()
    with phase("images: base", timings):
        base = build_base(bkey, timings)
    result["base"] = base
    all_tags = [base]
    for name, variants in image_specs().items():
        d = IMAGES_DIR / name
        if not (d / "Dockerfile").exists():
            msg = f"{d.relative_to(REPO)}/Dockerfile does not exist: no {name} images"
            result["errors"][name] = msg
            log(f"WARNING: {msg}")
            continue
        for tag, args in variants:
            key = derived_key(d, bkey, args)
            if _has_image(SOCK_A, tag, key):
                result["tags"][tag] = name
                all_tags.append(tag)
                continue
            try:
                with phase(f"images: build {tag}", timings):
                    build_derived(name, d, tag, args, base, key)
            except TestbedError as e:
                result["errors"][name] = str(e)
                log(f"WARNING: {e}")
                break
            result["tags"][tag] = name
            all_tags.append(tag)
    load_into_b(all_tags, timings)
    for sock in (SOCK_A, SOCK_B):
        _cleanup_old_images(sock, base)
    result["all"] = all_tags
    return result


def images_fresh() -> bool:
    """Every expected image on A and B carries the current hash (no build needed)."""
    try:
        bkey = base_key()
        wanted = [(base_tag(bkey), bkey)]
        for name, variants in image_specs().items():
            d = IMAGES_DIR / name
            if (d / "Dockerfile").exists():
                wanted += [(tag, derived_key(d, bkey, args)) for tag, args in variants]
        return all(_has_image(s, t, k) for t, k in wanted for s in (SOCK_A, SOCK_B))
    except (OSError, TestbedError):
        return False


# --------------------------------------------------------------------------- test leftovers


def remove_test_objects(sock: str, labels: tuple[str, ...] = TEST_LABELS) -> dict[str, int]:
    """Remove containers, then volumes and networks, that carry any of `labels`."""
    counts = {"containers": 0, "volumes": 0, "networks": 0}
    if not engine_ping(sock):
        return counts
    for label in labels:
        _, cs = api(sock, "GET", "/containers/json", all=1, filters={"label": [label]})
        for c in cs or []:
            status, _ = api(sock, "DELETE", f"/containers/{c['Id']}", force=1, v=1, timeout=60)
            counts["containers"] += status in (204, 404)
    for label in labels:
        _, vs = api(sock, "GET", "/volumes", filters={"label": [label]})
        for v in (vs or {}).get("Volumes") or []:
            status, _ = api(sock, "DELETE", f"/volumes/{urllib.parse.quote(v['Name'])}", force=1)
            counts["volumes"] += status in (204, 404)
        _, ns = api(sock, "GET", "/networks", filters={"label": [label]})
        for n in ns or []:
            status, _ = api(sock, "DELETE", f"/networks/{n['Id']}")
            counts["networks"] += status in (204, 404)
    return counts


# --------------------------------------------------------------------------- state


def _images_state(images: dict[str, Any]) -> dict[str, Any]:
    tags = images["tags"]
    return {
        "base": images["base"],
        "postgres": "havsh-test/postgres:15" if "havsh-test/postgres:15" in tags else None,
        "caddy": "havsh-test/caddy:2" if "havsh-test/caddy:2" in tags else None,
        "odoo": {
            v: f"havsh-test/odoo:{v}" for v in ODOO_VERSIONS if f"havsh-test/odoo:{v}" in tags
        },
        "all": images["all"],
        "errors": images["errors"],
    }


def _update_state_images(images: dict[str, Any]) -> None:
    state = load_state()
    if state:
        state["images"] = _images_state(images)
        _write_state(state)


def load_state() -> dict[str, Any] | None:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None


def _write_state(state: dict[str, Any]) -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=False) + "\n")
    tmp.replace(STATE_FILE)


def is_up() -> bool:
    """Cheap check (no ssh): state file present, engines answer, both sshd run."""
    state = load_state()
    if not state:
        return False
    return (
        engine_ping(SOCK_A)
        and _netns_valid()
        and _engine_b_pid() is not None
        and engine_ping(SOCK_B)
        and all(_sshd_pid(s) for s in SSHDS)
    )


# --------------------------------------------------------------------------- up / down


def up() -> dict[str, Any]:
    if os.geteuid() != 0:
        raise TestbedError("the testbed needs root (dockerd, sshd, network namespaces)")
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with testbed_lock():
        with phase("packages", timings):
            ensure_packages()
        for d in (WORK, RUN, LOG_DIR):
            d.mkdir(parents=True, exist_ok=True)
        with phase("engine A", timings):
            a = ensure_engine_a()
        if a["started"]:
            remove_test_objects(SOCK_A)  # leftovers of a crashed run
        with phase("netns + engine B", timings):
            ensure_netns()
            b = ensure_engine_b()
        if b["started"]:
            remove_test_objects(SOCK_B)
        with phase("sshd", timings):
            changed = ensure_ssh_files()
            sshd = {s.name: ensure_sshd(s, restart=changed) for s in SSHDS}
        with phase("images", timings):
            images = ensure_images(timings)
        with phase("verify over ssh", timings):
            seen = verify_ssh()
        info_a, info_b = engine_info(SOCK_A), engine_info(SOCK_B)
        hosts = {}
        for spec, info in ((SSHD_A, info_a), (SSHD_B, info_b)):
            hosts[spec.name] = dataclasses.asdict(
                Host(
                    name=spec.name,
                    address=spec.address,
                    port=spec.port,
                    user="root",
                    client_key=str(CLIENT_KEY),
                    known_hosts=str(KNOWN_HOSTS),
                    ssh_config=str(SSH_CONFIG),
                    docker_socket=spec.docker_socket,
                    netns=spec.netns,
                    sshd_pid=sshd[spec.name]["pid"],
                    docker_root=info.get("DockerRootDir"),
                )
            )
            hosts[spec.name]["docker_id"] = info.get("ID")
            hosts[spec.name]["docker_version"] = info.get("ServerVersion")
        state = {
            "version": 1,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "work_dir": str(WORK),
            "client_key": str(CLIENT_KEY),
            "known_hosts": str(KNOWN_HOSTS),
            "ssh_config": str(SSH_CONFIG),
            "hosts": hosts,
            "engines": {
                "hosta": {"socket": SOCK_A, "pid": a["pid"], "owned": a["owned"]},
                "hostb": {
                    "socket": SOCK_B,
                    "pid": b["pid"],
                    "owned": True,
                    "netns": NETNS,
                    "veth": [VETH_HOST, VETH_NS],
                    "bip": BIP_B,
                },
            },
            "images": _images_state(images),
            "timings": timings,
        }
        assert seen["hostb"]["docker_root"] == hosts["hostb"]["docker_root"]
        _write_state(state)
    total = time.monotonic() - t0
    log(f"up: done in {total:.1f} s ({', '.join(f'{k} {v}s' for k, v in timings.items())})")
    if images["errors"]:
        for name, msg in images["errors"].items():
            log(f"WARNING: images from {name!r} missing: {msg.splitlines()[0]}")
    return state


def _procs_in_netns(ns_ino: int | None) -> list[int]:
    if ns_ino is None:
        return []
    me = os.getpid()
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me and _pid_netns(int(d)) == ns_ino and pid_alive(int(d)):
            pids.append(int(d))
    return pids


def _managed_containerd_pid(exec_root: str) -> int | None:
    pid = _read_pid(os.path.join(exec_root, "containerd", "containerd.pid"))
    return pid if _is_proc(pid, "containerd") else None


def _leftover_shims(exec_root: str) -> list[int]:
    """containerd shims of an engine that is already stopped: a dockerd killed while it
    created a container leaves a shim that no later engine knows about."""
    address = f"-address\0{os.path.join(exec_root, 'containerd', 'containerd.sock')}"
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.path.basename(os.readlink(f"/proc/{d}/exe"))
        except OSError:
            continue
        if exe.startswith("containerd-shim") and address in "\0".join(cmdline(int(d))):
            pids.append(int(d))
    return pids


def down() -> None:
    if os.geteuid() != 0:
        raise TestbedError("the testbed needs root")
    t0 = time.monotonic()
    with testbed_lock():
        owned_a = _engine_a_owned_pid()
        # 1. test leftovers. On an engine A that we did not start, sh.hav.managed=1 objects
        # may be somebody's real services: leave those, remove only sh.hav.test=1 ones.
        for what, sock, labels in (
            ("hostb", SOCK_B, TEST_LABELS),
            ("hosta", SOCK_A, TEST_LABELS if owned_a else ("sh.hav.test=1",)),
        ):
            try:
                c = remove_test_objects(sock, labels)
                if any(c.values()):
                    log(f"{what}: removed test leftovers {c}")
            except OSError as e:
                log(f"{what}: could not clean test objects: {e}")
        # 2. sshd
        for spec in SSHDS:
            stop_sshd(spec)
        down_extras()  # side sshds and hostc of the fault tests (see the end of this file)
        # 3. engine B, then whatever still runs in hostb (its containerd, shims, sessions)
        ns_ino = _ns_inode(NETNS_PATH) if _netns_valid() else None
        pid_b = _engine_b_pid()
        containerd_b = _managed_containerd_pid(EXEC_ROOT_B)
        stop_pid(pid_b, "engine B", timeout=45)
        stop_pid(containerd_b, "engine B's containerd", timeout=15)
        for pid in _leftover_shims(EXEC_ROOT_B):
            stop_pid(pid, "a leftover containerd shim of engine B", timeout=5)
        for pid in _procs_in_netns(ns_ino):
            stop_pid(pid, f"leftover in netns {NETNS}: {' '.join(cmdline(pid)[:3])}", timeout=10)
        _clear_stale_engine_files(SOCK_B, PIDFILE_B)
        # 4. network
        _ip("link", "del", VETH_HOST, check=False)
        if os.path.exists(NETNS_PATH):
            _ip("netns", "del", NETNS, check=False)
        # 5. engine A, only if we started it
        if owned_a:
            containerd_a = _managed_containerd_pid("/var/run/docker")
            stop_pid(owned_a, "engine A", timeout=45)
            stop_pid(containerd_a, "engine A's containerd", timeout=15)
            for pid in _leftover_shims("/var/run/docker"):
                stop_pid(pid, "a leftover containerd shim of engine A", timeout=5)
            _clear_stale_engine_files(SOCK_A, PIDFILE_A)
        elif engine_ping(SOCK_A):
            log("engine A: not started by the testbed, left running")
        ENGINE_A_MARK.unlink(missing_ok=True)
        STATE_FILE.unlink(missing_ok=True)
        OWNER_FILE.unlink(missing_ok=True)
        if USERS_DIR.is_dir():
            for f in USERS_DIR.iterdir():
                f.unlink(missing_ok=True)
    log(f"down: done in {time.monotonic() - t0:.1f} s")


# --------------------------------------------------------------------------- pytest sessions


def _session_log(msg: str) -> None:
    with contextlib.suppress(OSError):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOG_DIR / "sessions.log", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} {msg}\n")


def session_begin(run_id: str, pid: int | None = None) -> dict[str, Any]:
    """For the pytest `testbed` fixture: make sure it is up, count this process as a user.

    If it was down, this run brings it up and owns it: the last process of the same run to
    call session_end() takes it down again. A testbed that was already up is left up (and
    so is one that `python -m tests.infra.testbed up` confirmed meanwhile)."""
    pid = pid or os.getpid()
    with testbed_lock():
        if not is_up():
            _session_log(f"run {run_id}: testbed down, bringing it up")
            up()
            OWNER_FILE.write_text(run_id)
        elif not images_fresh():
            log("test image inputs changed: rebuilding")
            _update_state_images(ensure_images())
        USERS_DIR.mkdir(parents=True, exist_ok=True)
        (USERS_DIR / str(pid)).write_text(run_id)
        state = load_state()
        assert state is not None
        return state


def session_end(run_id: str, pid: int | None = None) -> None:
    pid = pid or os.getpid()
    with testbed_lock():
        (USERS_DIR / str(pid)).unlink(missing_ok=True)
        others = []
        if USERS_DIR.is_dir():
            for f in USERS_DIR.iterdir():
                if not f.name.isdigit() or not pid_alive(int(f.name)):
                    f.unlink(missing_ok=True)
                elif f.read_text() == run_id:
                    others.append(f.name)
        try:
            owner = OWNER_FILE.read_text()
        except OSError:
            owner = None
        if owner == run_id and not others:
            _session_log(f"run {run_id}: last user of the testbed it brought up: down")
            down()


# --------------------------------------------------------------------------- status / CLI


def status() -> bool:
    ok = True

    def line(name: str, good: bool, detail: str) -> None:
        nonlocal ok
        ok &= good
        print(f"{'ok  ' if good else 'DOWN'} {name:10} {detail}")

    miss = missing_packages()
    line("packages", not miss, "all installed" if not miss else f"missing: {' '.join(miss)}")
    a_up = engine_ping(SOCK_A)
    owned = _engine_a_owned_pid()
    line(
        "engine A",
        a_up,
        f"{SOCK_A} " + (f"(ours, pid {owned})" if owned else "(not started by us)" if a_up else ""),
    )
    line("netns", _netns_valid() and _link_exists(VETH_HOST), f"{NETNS} {VETH_HOST}<->{VETH_NS}")
    pid_b = _engine_b_pid()
    line("engine B", bool(pid_b) and engine_ping(SOCK_B), f"{SOCK_B} pid {pid_b}")
    for s in SSHDS:
        pid = _sshd_pid(s)
        line(f"sshd {s.name[-1].upper()}", bool(pid), f"{s.address}:{s.port} pid {pid}")
    if a_up and pid_b:
        line(
            "images",
            images_fresh(),
            "all built and loaded into B" if images_fresh() else "stale or missing",
        )
    state = load_state()
    line("state", state is not None, str(STATE_FILE))
    if state and state.get("images", {}).get("errors"):
        for name, msg in state["images"]["errors"].items():
            print(f"WARN image dir {name}: {msg.splitlines()[0]}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.infra.testbed", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "command", choices=["up", "down", "status", "images", "packages", "state", "is-up"]
    )
    ns = ap.parse_args(argv)
    try:
        if ns.command == "up":
            with testbed_lock():
                up()
                # Brought up (or confirmed) by hand: no pytest run takes it down at its end.
                OWNER_FILE.unlink(missing_ok=True)
            print(STATE_FILE)
        elif ns.command == "down":
            down()
        elif ns.command == "is-up":
            return 0 if is_up() else 1
        elif ns.command == "status":
            return 0 if status() else 1
        elif ns.command == "state":
            state = load_state()
            print(json.dumps(state, indent=2) if state else "{}")
            return 0 if state else 1
        elif ns.command == "packages":
            with phase("packages"):
                got = ensure_packages()
            log("installed: " + " ".join(got) if got else "all packages present")
        elif ns.command == "images":
            if os.geteuid() != 0:
                raise TestbedError("needs root")
            timings: dict[str, float] = {}
            with testbed_lock():
                if not engine_ping(SOCK_A) or not engine_ping(SOCK_B):
                    raise TestbedError("engines A and B must be up: run `up` first")
                with phase("images", timings):
                    images = ensure_images(timings)
                _update_state_images(images)
            for tag in images["all"]:
                print(tag)
            if images["errors"]:
                for name, msg in images["errors"].items():
                    print(f"ERROR {name}: {msg}", file=sys.stderr)
                return 1
    except TestbedError as e:
        print(f"[testbed] ERROR: {e}", file=sys.stderr)
        return 1
    return 0



# =========================================================================== extras for fault tests
# Added for the host tests (issue 3): a third namespace (hostc) with no sshd, side sshds
# (private sshd processes with their own host key, config and log, e.g. inside hostb so that
# they reach engine B), DROP rules, and temporary authorized keys. None of these touch
# hosta's or hostb's own sshd, engine or veth: tests of other engineers that run at the
# same time against the two hosts are not disturbed. `down` removes what is left over.

EXTRA_DIR = WORK / "extra"
EXTRA_LOCK = RUN / "extras.lock"
HOSTC = "hostc"
HOSTC_PATH = f"/run/netns/{HOSTC}"
VETH_C_HOST, VETH_C_NS = "vc0", "vc1"
HOSTC_GW = "10.213.10.1"
#: Nothing listens there: connections are refused at once.
HOSTC_REFUSED = "10.213.10.2"
#: Every packet to it is dropped inside hostc (an nft rule): connections time out.
HOSTC_BLACKHOLE = "10.213.10.3"
_NFT_BLACKHOLE = "havsh_blackhole"


@contextlib.contextmanager
def _extras_lock(timeout: float = 120) -> Iterator[None]:
    RUN.mkdir(parents=True, exist_ok=True)
    fd = os.open(EXTRA_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TestbedError(f"could not lock {EXTRA_LOCK} in {timeout}s") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def _in_ns(netns: str | None, *cmd: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", *cmd] if netns else list(cmd)


def _nft(netns: str | None, script: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(_in_ns(netns, "nft", "-f", "-"), input=script, check=check, timeout=30)


def _ns_path_valid(path: str) -> bool:
    return path in _mounts_under(path) and _ns_inode(path) is not None


def ensure_hostc() -> dict[str, str]:
    """netns hostc: veth vc0 (10.213.10.1, here) <-> vc1 (10.213.10.2 and .3, in hostc), no
    sshd, and a rule that drops every packet to .3. Idempotent; safe from several processes."""
    with _extras_lock():
        if os.path.exists(HOSTC_PATH) and not _ns_path_valid(HOSTC_PATH):
            run(["ip", "netns", "del", HOSTC], check=False)
            with contextlib.suppress(OSError):
                os.unlink(HOSTC_PATH)
        if not os.path.exists(HOSTC_PATH):
            run(["ip", "netns", "add", HOSTC])
        here = run(["ip", "link", "show", "dev", VETH_C_HOST], check=False).returncode == 0
        there = run(_in_ns(HOSTC, "ip", "link", "show", "dev", VETH_C_NS),
                    check=False).returncode == 0
        if not (here and there):
            run(["ip", "link", "del", VETH_C_HOST], check=False)
            run(["ip", "link", "del", VETH_C_NS], check=False)
            run(["ip", "link", "add", VETH_C_HOST, "type", "veth", "peer", "name", VETH_C_NS])
            run(["ip", "link", "set", VETH_C_NS, "netns", HOSTC])
        run(["ip", "addr", "replace", f"{HOSTC_GW}/24", "dev", VETH_C_HOST])
        run(["ip", "link", "set", VETH_C_HOST, "up"])
        for addr in (HOSTC_REFUSED, HOSTC_BLACKHOLE):
            run(_in_ns(HOSTC, "ip", "addr", "replace", f"{addr}/24", "dev", VETH_C_NS))
        run(_in_ns(HOSTC, "ip", "link", "set", VETH_C_NS, "up"))
        run(_in_ns(HOSTC, "ip", "link", "set", "lo", "up"))
        _nft(HOSTC, f"table inet {_NFT_BLACKHOLE}\ndelete table inet {_NFT_BLACKHOLE}\n"
                    f"table inet {_NFT_BLACKHOLE} {{\n"
                    "  chain input { type filter hook input priority 0; policy accept;\n"
                    f"    ip daddr {HOSTC_BLACKHOLE} drop\n  }}\n}}\n")
    return {"netns": HOSTC, "refused": HOSTC_REFUSED, "blackhole": HOSTC_BLACKHOLE}


def remove_hostc() -> None:
    """Stop what runs in hostc (side sshds of the tests), then remove it and its veth."""
    with _extras_lock():
        if os.path.exists(HOSTC_PATH) and _ns_path_valid(HOSTC_PATH):
            for pid in _procs_in_netns(_ns_inode(HOSTC_PATH)):
                stop_pid(pid, f"leftover in netns {HOSTC}: {' '.join(cmdline(pid)[:3])}", 5)
        run(["ip", "link", "del", VETH_C_HOST], check=False)
        if os.path.exists(HOSTC_PATH):
            run(["ip", "netns", "del", HOSTC], check=False)


@contextlib.contextmanager
def drop_tcp_port(netns: str, port: int) -> Iterator[None]:
    """Silently drop every TCP packet to and from ``port`` inside ``netns`` (both ways, so a
    connection in place goes quiet, as on a dead link), then remove the rule."""
    table = f"havsh_drop_{port}"
    _nft(netns, f"table inet {table}\ndelete table inet {table}\n"
                f"table inet {table} {{\n"
                "  chain input { type filter hook input priority -10; policy accept;\n"
                f"    tcp dport {port} drop\n  }}\n"
                "  chain output { type filter hook output priority -10; policy accept;\n"
                f"    tcp sport {port} drop\n  }}\n}}\n")
    try:
        yield
    finally:
        _nft(netns, f"delete table inet {table}\n", check=False)


@contextlib.contextmanager
def authorized_key(public_key_line: str) -> Iterator[None]:
    """Let ``public_key_line`` log in to hosta and hostb (the testbed's authorized_keys, which
    both sshds read), then take it out again, leaving every other line as it was."""
    line = public_key_line.strip() + "\n"
    with _extras_lock():
        fd = os.open(AUTHORIZED_KEYS, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    try:
        yield
    finally:
        with _extras_lock():
            lines = AUTHORIZED_KEYS.read_text().splitlines(keepends=True)
            if line in lines:
                lines.remove(line)
            tmp = AUTHORIZED_KEYS.with_name(AUTHORIZED_KEYS.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.writelines(lines)
            os.replace(tmp, AUTHORIZED_KEYS)


# A side sshd runs in a private mount namespace with a fresh /run: B's docker directory
# moved in (docker="b", as for hostb's own sshd), or no Docker at all (docker="none"); and,
# for a test user, a passwd/group with that user bound over /etc's (the machine's files
# are not touched).
_SIDE_SCRIPT = """\
set -eu
mount --make-rprivate /
if [ -n "${DOCKER_DIR:-}" ]; then mount --bind "$DOCKER_DIR" "$STAGE"; fi
mount -t tmpfs -o mode=0755,nosuid,nodev,size=16m havsh-side-run /run
mkdir -p /run/sshd /run/lock
chmod 1777 /run/lock
: > /run/utmp
if [ -n "${DOCKER_DIR:-}" ]; then
  mkdir -p /run/docker-b
  mount --move "$STAGE" /run/docker-b
  ln -s /run/docker-b/docker.sock /run/docker.sock
fi
if [ -n "${PASSWD:-}" ]; then
  mount --bind "$PASSWD" /etc/passwd
  mount --bind "$GROUP" /etc/group
fi
exec "$SSHD" -f "$CONF" -E "$LOG"
"""

#: The user a side sshd can add (uid/gid 64999, not in group docker), for permission tests.
SIDE_USER = "havshuser"
SIDE_UID = 64999


def _children(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(d))
    return kids


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        for kid in _children(todo.pop()):
            out.append(kid)
            todo.append(kid)
    return out


@dataclasses.dataclass
class SideSshd:
    """A private sshd for one test: its own host key, config, authorized_keys and log."""

    name: str
    netns: str | None
    address: str
    port: int
    docker: str = "b"  # "b": engine B's socket at /var/run/docker.sock; "none": no Docker
    log_level: str = "VERBOSE"
    with_user: bool = False
    #: Serve this host key (e.g. hostb's own) instead of the side sshd's generated one.
    key_from: Path | None = None
    pid: int | None = None

    @property
    def dir(self) -> Path:
        return EXTRA_DIR / self.name

    @property
    def host_key(self) -> Path:
        return self.key_from or self.dir / "ssh_host_ed25519_key"

    @property
    def config(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def pidfile(self) -> Path:
        return self.dir / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def authorized_keys(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def known_hosts_name(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    def known_hosts_line(self) -> str:
        kind, b64 = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"{self.known_hosts_name} {kind} {b64}\n"

    def new_host_key(self) -> None:
        """A freshly generated host key (takes effect at the next start)."""
        self.key_from = None
        for p in (self.host_key, self.host_key.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        _keygen(self.host_key, f"havsh-side-{self.name}")

    def restart(self) -> int:
        """Stop (listener and connections) and start again, e.g. with a new host key."""
        self.stop()
        return self.start()

    def _write(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        for p in (EXTRA_DIR, WORK):
            os.chmod(p, 0o755)
        if not self.host_key.exists():
            _keygen(self.host_key, f"havsh-side-{self.name}")
        # 0644: sshd reads it as the user who logs in (root, or the test user).
        keys = AUTHORIZED_KEYS.read_text()
        _write_if_changed(self.authorized_keys, keys, 0o644)
        os.chmod(self.authorized_keys, 0o644)
        self.config.write_text(f"""\
# havsh side sshd {self.name} (tests/infra/testbed.py, fault-test extras)
Port {self.port}
ListenAddress {self.address}
HostKey {self.host_key}
PidFile {self.pidfile}
AuthorizedKeysFile {self.authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
UseDNS no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp internal-sftp
LogLevel {self.log_level}
""")
        if self.with_user:
            passwd = Path("/etc/passwd").read_text()
            group = Path("/etc/group").read_text()
            if not passwd.endswith("\n"):
                passwd += "\n"
            if not group.endswith("\n"):
                group += "\n"
            (self.dir / "passwd").write_text(
                passwd + f"{SIDE_USER}:x:{SIDE_UID}:{SIDE_UID}:havsh test user:/tmp:/bin/sh\n")
            (self.dir / "group").write_text(group + f"{SIDE_USER}:x:{SIDE_UID}:\n")

    def start(self) -> int:
        self._write()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        run([SSHD, "-t", "-f", str(self.config)])
        self.pidfile.unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)
        stage = self.dir / "stage"
        stage.mkdir(exist_ok=True)
        env = dict(os.environ, STAGE=str(stage), SSHD=SSHD, CONF=str(self.config),
                   LOG=str(self.log), DOCKER_DIR=str(B_RUN) if self.docker == "b" else "")
        if self.with_user:
            env.update(PASSWD=str(self.dir / "passwd"), GROUP=str(self.dir / "group"))
        run(_in_ns(self.netns, "unshare", "--mount", "--propagation", "private",
                   "sh", "-c", _SIDE_SCRIPT), env=env)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid = _read_pid(self.pidfile)
            if _is_proc(pid, "sshd", str(self.config)) and _port_open(self.address, self.port):
                self.pid = pid
                return pid  # type: ignore[return-value]
            time.sleep(0.05)
        raise TestbedError(f"side sshd {self.name} did not start:\n{_tail(self.log)}")

    def sessions(self) -> list[int]:
        """The per-connection processes of this sshd (and what runs under them)."""
        return _descendants(self.pid) if self.pid else []

    def kill_sessions(self) -> list[int]:
        """SIGKILL every connection of this sshd: clients see their connection reset."""
        pids = self.sessions()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            _reap(pid)
        return pids

    def stop(self) -> None:
        """Stop the listener and its connections (all PIDs this sshd started)."""
        if self.pid is None:
            self.pid = _read_pid(self.pidfile)
            if not _is_proc(self.pid, "sshd", str(self.config)):
                self.pid = None
        if self.pid is not None:
            self.kill_sessions()
            stop_pid(self.pid, f"side sshd {self.name}", timeout=10)
        self.pid = None
        self.pidfile.unlink(missing_ok=True)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def side_sshd(name: str, *, netns: str | None = NETNS, address: str = ADDR_B, port: int,
              docker: str = "b", log_level: str = "VERBOSE", with_user: bool = False,
              key_from: Path | None = None) -> SideSshd:
    """Start a side sshd (by default inside hostb, reaching engine B) and return it; the
    caller stops it with ``.stop()``. It serves a freshly generated host key, or
    ``key_from`` (``SSHD_B.host_key`` makes it present host B's own key)."""
    s = SideSshd(name, netns, address, port, docker, log_level, with_user, key_from)
    s.dir.mkdir(parents=True, exist_ok=True)
    old = _read_pid(s.pidfile)
    if _is_proc(old, "sshd", str(s.config)):
        s.pid = old
        s.stop()  # a leftover of a crashed run of the same test
    if key_from is None:
        s.new_host_key()
        s.key_from = None
    s.start()
    return s


def down_extras() -> None:
    """Stop every side sshd still running, and remove hostc (called by `down`)."""
    if EXTRA_DIR.is_dir():
        for d in EXTRA_DIR.iterdir():
            pid = _read_pid(d / "sshd.pid")
            if _is_proc(pid, "sshd", str(d / "sshd_config")):
                for kid in _descendants(pid):  # type: ignore[arg-type]
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(kid, signal.SIGKILL)
                stop_pid(pid, f"side sshd {d.name}", timeout=10)
    if os.path.exists(HOSTC_PATH) or run(["ip", "link", "show", "dev", VETH_C_HOST],
                                         check=False).returncode == 0:
        remove_hostc()


if __name__ == "__main__":
    sys.exit(main())
