"""Host-side jobs: a container of the host's own PostgreSQL image running one of the scripts.

Everything heavy in a backup or a restore happens on the host, in such a job: the data never
crosses SSH unless its destination is elsewhere. A job is created (labelled for its
service), gets the scripts with put_archive, and runs to the end on its own: if the SSH
connection drops, the job goes on, and havsh reconnects, waits for it and reads its output
from the container's log. Only jobs that stream data to or from havsh (a local
destination, an upload) depend on the connection, and they fail cleanly when it goes.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources

import docker
import docker.errors
import requests
import urllib3

from havsh_tui.core import names
from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.images import ensure_image
from havsh_tui.ops.reporter import NullReporter, Reporter
from havsh_tui.ops.streams import frames, raw_socket, shutdown_write
from havsh_tui.remote.ssh import HostUnreachable

SCRIPTS = ("lib.sh", "backup.sh", "restore.sh", "store.sh", "scheduler.sh")
SCRIPTS_DIR = "/havsh"
#: How long a job may stay out of reach (SSH down) before havsh gives up waiting for it.
RECONNECT_WINDOW = 180.0
#: Errors that mean "the connection to the host went away", after which a retry may work
#: (not a refused key or a missing Docker: those stay wrong however often one asks).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    HostUnreachable, requests.exceptions.ConnectionError, requests.exceptions.Timeout,
    urllib3.exceptions.HTTPError, ConnectionError, EOFError, TimeoutError,
)


class JobFailed(OpsError):
    """A job exited non-zero. ``message`` is the script's own ERROR line when it gave one."""

    def __init__(self, message: str, *, code: int, stderr: str) -> None:
        self.code = code
        self.stderr = stderr
        self.kind = "job_failed"
        super().__init__(message)


class HostLost(OpsError):
    """The host stayed out of reach for longer than the reconnect window."""

    kind = "host_unreachable"


def script_text(name: str) -> str:
    return resources.files("havsh_tui.ops.backup").joinpath("scripts", name).read_text()


def scripts_tar(extra: dict[str, bytes] | None = None) -> bytes:
    """A tar of /havsh: the scripts, plus ``extra`` files (name -> content)."""
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo("havsh")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.mtime = now
        tar.addfile(d)
        files = {n: script_text(n).encode() for n in SCRIPTS}
        files.update(extra or {})
        for n, data in sorted(files.items()):
            info = tarfile.TarInfo(f"havsh/{n}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def scripts_digest() -> str:
    h = hashlib.sha256()
    for n in SCRIPTS:
        h.update(script_text(n).encode())
    return h.hexdigest()[:16]


def postgres_image(client) -> str:
    """The image the host's havsh-postgres runs: its pg_dump and psql match the server."""
    try:
        return client.api.inspect_container(names.POSTGRES_CONTAINER)["Config"]["Image"]
    except docker.errors.NotFound:
        raise OpsError(f"{names.POSTGRES_CONTAINER} is not on this host: bootstrap it first "
                       "(creating a service does)") from None


def job_image(session, reporter: Reporter | None = None) -> str:
    """The image of a job that needs only shell tools (a destination's list, receive, send
    or delete): havsh-postgres's when the host has one, else the host's configured PostgreSQL
    image, pulled if missing. A host that only keeps backups needs no havsh-postgres."""
    client = session.docker()
    try:
        return client.api.inspect_container(names.POSTGRES_CONTAINER)["Config"]["Image"]
    except docker.errors.NotFound:
        pass
    image = session.host.postgres_image
    ensure_image(client, session.host.name, image, reporter)
    return image


def error_line(stderr: str) -> str:
    """The script's last ERROR message, else the last lines of its stderr."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("P ")]
    errors = [ln.split("ERROR:", 1)[1].strip() for ln in lines if "ERROR:" in ln]
    if errors:
        return errors[-1]
    return " ".join(lines[-3:])[-600:] or "no output"


def with_reconnect(session, reporter: Reporter, what: str, fn,
                   window: float = RECONNECT_WINDOW, *, job_id: str | None = None):
    """Run ``fn(docker_client)``; when the connection drops, reconnect and try again, for up
    to ``window`` seconds. Docker's own errors (not found, conflict...) are not retried."""
    lost_since: float | None = None
    while True:
        try:
            result = fn(session.docker())
            if lost_since is not None:
                reporter.log(f"reconnected to {session.host.name}")
            return result
        except docker.errors.APIError:
            raise
        except CONNECTION_ERRORS as exc:
            now = time.monotonic()
            if lost_since is None:
                lost_since = now
                reporter.warning(
                    f"the connection to {session.host.name} dropped during {what} ({exc}); "
                    "what runs on the host goes on; reconnecting")
            if now - lost_since > window:
                extra = (f"; the job container {job_id[:12]} may still be running there"
                         if job_id else "")
                raise HostLost(f"{session.host.name} stayed unreachable for {window:.0f} s "
                               f"during {what}{extra}") from exc
            time.sleep(2)


@dataclass
class HostJob:
    """One job container. ``run()`` for the usual case; the parts for streaming jobs."""

    session: object
    image: str
    script: str
    args: list[str]
    service: str
    purpose: str
    binds: dict[str, dict] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    network: str = "none"
    stdin: bool = False
    #: stdout is data for havsh (a zip): attached, and not kept in the container's log.
    stream: bool = False
    reporter: Reporter = field(default_factory=NullReporter)
    on_progress: Callable[[int], None] | None = None
    id: str | None = None
    name: str = ""
    sock: object = None
    stderr_buf: bytearray = field(default_factory=bytearray)

    # -- lifecycle -----------------------------------------------------------------------
    def _client(self):
        return self.session.docker()

    def start(self) -> HostJob:
        """Create the container (named, so that a create whose answer was lost to an SSH
        drop is found again, not made twice), give it the scripts, start it once."""
        labels = {names.LABEL_MANAGED: "1", names.LABEL_SERVICE: self.service,
                  names.LABEL_ROLE: f"backup-{self.purpose}"}
        log_config = ({"Type": "none", "Config": {}} if self.stream else
                      {"Type": "json-file", "Config": {"max-size": "20m"}})
        self.name = f"havsh-{self.service}-{self.purpose}-{secrets.token_hex(4)}"

        def create(client) -> str:
            try:
                return client.api.inspect_container(self.name)["Id"]
            except docker.errors.NotFound:
                pass
            host_config = client.api.create_host_config(
                binds=self.binds, network_mode=self.network, log_config=log_config)
            return client.api.create_container(
                self.image, command=["sh", f"{SCRIPTS_DIR}/{self.script}", *self.args],
                entrypoint=[], labels=labels, environment=self.env or None, name=self.name,
                stdin_open=self.stdin, user="0:0", host_config=host_config, working_dir="/",
            )["Id"]

        def start_once(client) -> None:
            state = client.api.inspect_container(self.id)["State"]
            if str(state.get("StartedAt", "")).startswith("0001-"):
                client.api.start(self.id)

        self.id = self._retrying(f"creating the {self.purpose} job", create)
        try:
            archive = scripts_tar()
            self._retrying(f"creating the {self.purpose} job",
                           lambda c: c.api.put_archive(self.id, "/", archive))
            if self.stream or self.stdin:
                # A stream depends on the connection: it fails when the connection does.
                self.sock = self._client().api.attach_socket(
                    self.id, params={"stdin": 1 if self.stdin else 0, "stdout": 1,
                                     "stderr": 1, "stream": 1})
            self._retrying(f"starting the {self.purpose} job", start_once)
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        if self.sock is not None:
            try:
                raw_socket(self.sock).close()
            except OSError:
                pass
            self.sock = None
        if self.id is None:
            return
        deadline = time.monotonic() + 30
        while True:
            try:
                self._client().api.remove_container(self.id, force=True)
                break
            except docker.errors.NotFound:
                break
            except (docker.errors.APIError, *CONNECTION_ERRORS):
                if time.monotonic() > deadline:
                    self.reporter.warning(f"could not remove the job container {self.id[:12]}; "
                                          "`havsh rescan` shows it, docker rm removes it")
                    break
                time.sleep(1)
        self.id = None

    # -- streaming -----------------------------------------------------------------------
    def write_all(self, data: bytes) -> None:
        raw_socket(self.sock).sendall(data)

    def close_stdin(self) -> None:
        shutdown_write(self.sock)

    def stdout_chunks(self) -> Iterator[bytes]:
        for stream, chunk in frames(self.sock):
            if stream == 2:
                self._stderr(chunk)
            else:
                yield chunk

    def _stderr(self, chunk: bytes) -> None:
        self.stderr_buf += chunk
        if self.on_progress is not None:
            for line in bytes(self.stderr_buf[-4096:]).splitlines()[-3:]:
                if line.startswith(b"P ") and line[2:].strip().isdigit():
                    self.on_progress(int(line[2:]))
                    break
        del self.stderr_buf[:-200_000]

    # -- waiting -------------------------------------------------------------------------
    def _retrying(self, what: str, fn, deadline_window: float = RECONNECT_WINDOW):
        return with_reconnect(self.session, self.reporter, what, fn, deadline_window,
                              job_id=self.id)

    def wait(self, timeout: float = 24 * 3600.0) -> int:
        """Wait for the job to exit, polling its state; progress comes from its log."""
        deadline = time.monotonic() + timeout
        last_log = 0.0
        while True:
            state = self._retrying("the job", lambda c: c.api.inspect_container(self.id)["State"])
            if not state.get("Running") and state.get("Status") in ("exited", "dead"):
                return int(state.get("ExitCode") or 0)
            now = time.monotonic()
            if self.on_progress is not None and not self.stream and now - last_log > 2.0:
                last_log = now
                try:
                    tail = self._client().api.logs(self.id, stdout=False, stderr=True, tail=4)
                    for line in reversed(tail.splitlines()):
                        if line.startswith(b"P ") and line[2:].strip().isdigit():
                            self.on_progress(int(line[2:]))
                            break
                except (docker.errors.APIError, *CONNECTION_ERRORS):
                    pass
            if self.reporter.cancelled():
                self._retrying("cancel", lambda c: c.api.kill(self.id))
            if now > deadline:
                raise OpsError(f"the {self.purpose} job did not finish within {timeout:.0f} s")
            time.sleep(0.3 if now - (deadline - timeout) < 5 else 1.0)

    def output(self) -> tuple[str, str]:
        """(stdout, stderr) from the container's log (jobs that do not stream)."""
        out = self._retrying("reading the job's output", lambda c: c.api.logs(
            self.id, stdout=True, stderr=False))
        err = self._retrying("reading the job's output", lambda c: c.api.logs(
            self.id, stdout=False, stderr=True))
        return out.decode(errors="replace"), err.decode(errors="replace")

    def run(self, timeout: float = 24 * 3600.0) -> tuple[str, str]:
        """Start, wait, read the output, remove; JobFailed on a non-zero exit."""
        self.start()
        try:
            code = self.wait(timeout)
            out, err = self.output()
        finally:
            self.remove()
        if code != 0:
            raise JobFailed(error_line(err), code=code, stderr=err[-8000:])
        return out, err


def result_json(text: str, prefix: str = "RESULT ") -> dict:
    """The JSON object on the last line that starts with ``prefix``."""
    for line in reversed(text.splitlines()):
        if line.startswith(prefix):
            try:
                return json.loads(line[len(prefix):])
            except ValueError as exc:
                raise OpsError(f"a job printed a bad result line: {line[:200]!r}") from exc
    raise OpsError(f"a job printed no result ({text[-300:]!r})")
