"""Copy and clone (issue 5) on the real testbed, with the stand-in Odoo.

A Live service on host A is filled the way Odoo stores data (thousands of rows, a few hundred
filestore files of mixed sizes, one of 50 MB, attachments pointing at them), then copied to
A and to B while its /web/health is polled. Each copy must equal the source (row counts,
table checksums, the sha256 of every file, attachments that resolve) except for what a copy
must change (uuid, secret, base URL, and neutralization), must never send mail while its
source does, and the source must be byte-for-byte unchanged. Faults: the SSH connection to B
cut mid-copy (in each phase), a cancel, a failing pg_restore, a full target volume, too
little disk; each leaves nothing on the target and no session on the source, and a retry
under the same name works. The CLI copies across hosts with bounded memory.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import docker
import pytest

from havsh_tui.core.model import ServiceStatus, ServiceType
from havsh_tui.ops import copy as cp
from havsh_tui.ops import services as ops
from havsh_tui.ops.reporter import OperationCancelled, RecordingReporter
from havsh_tui.remote.http import http_request
from tests.integration import filldata as fd

pytestmark = pytest.mark.usefixtures("clean_hosts")

HELPER = "havsh-test/postgres:15"
ODOO = "havsh-test/odoo:17.0"
BIG_FILE = 50 * 1024 * 1024
NAMES = ("cp-src", "cp-same", "cp-far", "cp-again", "cp-cut", "cp-exact", "cp-full",
         "cp-bad", "cp-tiny", "cp-test", "cp-gz", "cp-gz-far")
#: Attachments made with no file behind them (as real filestores have).
DANGLING = 2
#: Tables the source's own running server writes (its mail cron): compared separately.
LIVE_TABLES = ("mail_mail_sent", "ir_cron")
#: Tables neutralization and the identity reset change in a copy.
NEUTRALIZED_TABLES = ("ir_mail_server", "ir_config_parameter", "fetchmail_server")


@pytest.fixture(autouse=True)
def _names(cleanup):
    cleanup.add(*NAMES)


@pytest.fixture
def fast_mail(monkeypatch):
    """Every server container this process creates runs the stand-in's mail cron every
    second (STANDIN_MAIL_INTERVAL, a knob of the stand-in image only)."""
    real = ops.service_env
    monkeypatch.setattr(ops, "service_env",
                        lambda service, pw: {**real(service, pw), "STANDIN_MAIL_INTERVAL": "1"})


# -- helpers ----------------------------------------------------------------------------------
@dataclass
class Source:
    name: str
    database: str
    files: list[fd.FileSpec]
    client: object
    container: str = ""

    @property
    def attachments_with_file(self) -> int:
        # make_files' rows: one per file, two for every fifth (see add_attachments)
        return sum(2 if i % 5 == 0 else 1 for i in range(len(self.files)))


def make_source(inventory, secret_store, pool, host, *, name="cp-src", files=300,
                big=BIG_FILE, partners=3000, big_table_mb=0, mail=True,
                type_=ServiceType.LIVE) -> Source:
    ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name=name, host=host.name, type=type_, odoo_version="17.0", image=ODOO))
    client = pool.session(host).docker()
    db = name.replace("-", "_")
    specs = fd.make_files(files, big=big)
    fd.put_files(client, f"havsh-{name}", db, specs)
    fd.fill_rows(client, db, partners=partners)
    fd.add_attachments(client, db, specs)
    if big_table_mb:
        fd.fill_big_table(client, db, big_table_mb)
    if mail:
        fd.ensure_mail_server(client, db)
    return Source(name, db, specs, client, f"havsh-{name}")


def fingerprint(client, database: str, slug: str) -> dict:
    """What must never change on a source: every table (those its own server writes, with
    only what that server may write left out), and every filestore file."""
    max_sent = fd.scalar(client, database, "SELECT coalesce(max(id), 0) FROM mail_mail_sent;")
    return {
        "tables": fd.table_checksums(client, database, exclude=LIVE_TABLES),
        "cron": fd.cron_checksum(client, database),
        "max_sent": max_sent,
        "sent_rows": sent_rows(client, database, int(max_sent)),
        "files": fd.filestore_sha256(client, HELPER, slug, database),
    }


def sent_rows(client, database: str, upto: int) -> str:
    return fd.scalar(client, database, "SELECT md5(string_agg(concat_ws('|', id, server_id, "
                     "server_name, smtp_host, smtp_port, sent_at), ',' ORDER BY id)) "
                     "FROM mail_mail_sent WHERE id <= :'n'::int;", {"n": str(upto)})


def assert_unchanged(before: dict, client, database: str, slug: str) -> None:
    assert fd.table_checksums(client, database, exclude=LIVE_TABLES) == before["tables"]
    assert fd.cron_checksum(client, database) == before["cron"]
    # mail_mail_sent only grows, by the source's own sends: the old rows are untouched
    assert sent_rows(client, database, int(before["max_sent"])) == before["sent_rows"]
    assert fd.filestore_sha256(client, HELPER, slug, database) == before["files"]


class HealthPoller(threading.Thread):
    """Polls a service's /web/health over SSH (the product's path) and its container state,
    from its own thread, for as long as a copy runs."""

    def __init__(self, pool, host, slug: str, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.session = pool.session(host)
        self.cname = f"havsh-{slug}"
        self.interval = interval
        self.ok = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.ip = ops.container_address(self.session.docker(), self.cname)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                res = http_request(self.session.ssh, self.ip, 8069, "GET", "/web/health",
                                   timeout=5)
                running = self.session.docker().api.inspect_container(
                    self.cname)["State"]["Running"]
                if res.status == 200 and res.json() == {"status": "pass"} and running:
                    self.ok += 1
                else:
                    self.failures.append(f"HTTP {res.status} running={running}")
            except Exception as exc:  # noqa: BLE001 - recorded, asserted on at the end
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(self.interval)

    def __enter__(self) -> HealthPoller:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(10)


def local(testbed, host) -> docker.DockerClient:
    return docker.DockerClient(base_url="unix://" + testbed.hosts[host.name].docker_socket,
                               version="1.41")


def leftovers(testbed, host, slug: str, sql) -> tuple[list, list, list, list]:
    """Containers, volumes, database and role of ``slug`` on a host (the engine's own socket
    for Docker, so a broken SSH connection cannot hide anything)."""
    c = local(testbed, host)
    try:
        containers = [x.name for x in c.containers.list(
            all=True, filters={"label": f"sh.hav.service={slug}"})]
        containers += [x.name for x in c.containers.list(all=True, filters={
            "name": f"^havsh-{slug}$"}) if x.name not in containers]
        volumes = [v.name for v in c.volumes.list() if v.name.startswith(f"havsh-{slug}-")]
    finally:
        c.close()
    db = slug.replace("-", "_")
    dbs = sql(host, f"SELECT datname FROM pg_database WHERE datname = '{db}';")
    roles = sql(host, f"SELECT rolname FROM pg_roles WHERE rolname = 'havsh_{db}';")
    return containers, volumes, dbs, roles


def copy_sessions(client, slug: str, wait: float = 5.0) -> list[list[str]]:
    """Sessions a copy named ``slug`` holds on a server (its application_name), after giving
    terminated backends a moment to go."""
    deadline = time.monotonic() + wait
    while True:
        out = fd.scalar(client, "postgres", "SELECT string_agg(pid || ' ' || application_name "
                        "|| ' ' || state, ';') FROM pg_stat_activity WHERE application_name "
                        "LIKE :'p';", {"p": f"havsh-copy-{slug}-%"})
        if not out or time.monotonic() > deadline:
            return [row.split() for row in out.split(";")] if out else []
        time.sleep(0.2)


def sends(client, database: str) -> int:
    return int(fd.scalar(client, database, "SELECT count(*) FROM mail_mail_sent;"))


def check_copy(client, copy_db: str, copy_slug: str, src: Source, *, neutralized: bool,
               url: str = "") -> dict[str, str]:
    """The copy equals its source, but for what a copy changes; returns its parameters."""
    src_fp = fd.table_checksums(src.client, src.database, exclude=LIVE_TABLES)
    copy_fp = fd.table_checksums(client, copy_db, exclude=LIVE_TABLES)
    changed = NEUTRALIZED_TABLES if neutralized else ("ir_config_parameter",)
    for table in changed:
        src_fp.pop(f"public.{table}"), copy_fp.pop(f"public.{table}")
    assert copy_fp == src_fp
    # Row counts of every table, those left out above included.
    counts_src, counts_copy = fd.row_counts(src.client, src.database), fd.row_counts(
        client, copy_db)
    assert set(counts_copy) == set(counts_src)
    for table, n in counts_copy.items():
        if table == "public.mail_mail_sent":
            assert n <= counts_src[table]  # the source went on sending after the snapshot
        elif table in ("public.ir_mail_server", "public.ir_config_parameter") and neutralized:
            assert n == counts_src[table] + 1  # the dummy server, database.is_neutralized
        else:
            assert n == counts_src[table], table
    copy_sent_max = int(fd.scalar(client, copy_db,
                                  "SELECT coalesce(max(id), 0) FROM mail_mail_sent;"))
    assert sent_rows(client, copy_db, copy_sent_max) == sent_rows(
        src.client, src.database, copy_sent_max)
    # Every file, byte for byte, and the attachments that resolve to one.
    src_files = fd.filestore_sha256(src.client, HELPER, src.name, src.database)
    copy_files = fd.filestore_sha256(client, HELPER, copy_slug, copy_db)
    assert copy_files == src_files
    ours = {f.store_fname: hashlib.sha256(f.data).hexdigest() for f in src.files if f.data
            or not f.size}
    assert {k: src_files.get(k) for k in ours} == ours  # plus base's own files
    resolving = fd.resolving_attachments(client, copy_db, copy_files)
    assert resolving == fd.resolving_attachments(src.client, src.database, src_files)
    assert resolving >= src.attachments_with_file
    stored = int(fd.scalar(client, copy_db, "SELECT count(*) FROM ir_attachment "
                           "WHERE store_fname IS NOT NULL;"))
    assert stored - resolving == DANGLING  # the rows whose file was missing in the source
    # Identity: new uuid and secret, the copy's own URL; the rest as in the source.
    p_src, p_copy = fd.config_parameters(src.client, src.database), fd.config_parameters(
        client, copy_db)
    assert p_copy["database.uuid"] != p_src["database.uuid"]
    assert p_copy["database.secret"] != p_src["database.secret"]
    assert p_copy["web.base.url"] == (url or f"http://havsh-{copy_slug}:8069")
    rest = {k: v for k, v in p_copy.items() if k not in (
        "database.uuid", "database.secret", "web.base.url", "database.is_neutralized")}
    assert rest == {k: v for k, v in p_src.items() if k not in (
        "database.uuid", "database.secret", "web.base.url")}
    if neutralized:
        assert_neutralized(client, copy_db)
    else:
        assert "database.is_neutralized" not in p_copy
    return p_copy


def assert_neutralized(client, database: str) -> None:
    """The flags of ODOO-CONTRACT.md, read directly."""
    assert fd.scalar(client, database, "SELECT lower(value) FROM ir_config_parameter "
                     "WHERE key = 'database.is_neutralized';") == "true"
    assert fd.scalar(client, database, "SELECT string_agg(name || ':' || smtp_host || ':' || "
                     "smtp_port, ',') FROM ir_mail_server WHERE active;") == (
        "neutralization - disable emails:invalid:1025")
    # every other server archived (the source's own, when it had one)
    assert fd.scalar(client, database, "SELECT count(*) FROM ir_mail_server WHERE active "
                     "OR smtp_host = 'invalid';") == "1"
    assert fd.scalar(client, database, "SELECT string_agg(d.module || '.' || d.name, ',') "
                     "FROM ir_cron c JOIN ir_model_data d ON d.model = 'ir.cron' "
                     "AND d.res_id = c.id WHERE c.active;") == "base.autovacuum_job"
    assert fd.scalar(client, database, "SELECT count(*) FROM ir_cron c LEFT JOIN "
                     "ir_model_data d ON d.model = 'ir.cron' AND d.res_id = c.id "
                     "WHERE c.active AND d.id IS NULL;") == "0"


def progress_of(rep: RecordingReporter, phase: str) -> list[tuple]:
    return [a for k, a in rep.events if k == "progress" and a[2].startswith(phase + ":")]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


# -- the copy itself --------------------------------------------------------------------------
@pytest.mark.slow
def test_copy_to_same_host_and_across_hosts(inventory, secret_store, pool, host_a, host_b,
                                            testbed, sql, fast_mail):
    src = make_source(inventory, secret_store, pool, host_a)
    wait_for(lambda: sends(src.client, src.database) >= 1, 30, "the source's first send")
    before = fingerprint(src.client, src.database, src.name)
    reps = {}
    with HealthPoller(pool, host_a, src.name) as poller:
        for name, host in (("cp-same", None), ("cp-far", "hostb")):
            reps[name] = RecordingReporter()
            copied = cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
                source_host="hosta", source=src.name, name=name, host=host), reps[name])
            assert copied.status is ServiceStatus.RUNNING
    # /web/health answered all along, from a Running container.
    assert poller.failures == [] and poller.ok >= 20, poller.failures[:5]
    assert inventory.get_service(src.name, host="hosta").status is ServiceStatus.RUNNING
    assert_unchanged(before, src.client, src.database, src.name)

    client_b = pool.session(host_b).docker()
    copies = {"cp-same": src.client, "cp-far": client_b}
    for name, client in copies.items():
        rep = reps[name]
        s = inventory.get_service(name, host="hosta" if name == "cp-same" else "hostb")
        params = check_copy(client, name.replace("-", "_"), name, src, neutralized=True,
                            url=s.url)
        steps = [s for s, state in rep.steps() if state == "done"]
        assert steps[-8:] == ["container", "copy database", "copy filestore", "verify",
                              "reset identity", "neutralize", "start", "health"]
        assert "snapshot" in steps and steps.index("snapshot") < steps.index("copy database")
        assert any(line.startswith("verification: ") and "rows match" in line
                   for line in rep.lines())
        # Progress with bytes, a total, a rate and an ETA, in both phases.
        for phase in ("database", "filestore"):
            events = progress_of(rep, phase)
            assert events, (name, phase)
            done, total, message = events[-1]
            assert total and done == total
            assert "/s" in message and "ETA" in message, message
        assert progress_of(rep, "filestore")[-1][1] >= BIG_FILE
        # Lineage, in the inventory and on the container's labels.
        assert (s.type, s.source, s.source_host) == (ServiceType.COPY, "cp-src", "hosta")
        assert s.snapshot_at is not None and s.steps[-1].name == "health"
        labels = client.api.inspect_container(f"havsh-{name}")["Config"]["Labels"]
        assert labels["sh.hav.source"] == "cp-src" and labels["sh.hav.type"] == "copy"
        assert labels["sh.hav.source-host"] == "hosta"
        assert labels["sh.hav.snapshot"] == s.snapshot_at.isoformat()
        assert params["database.uuid"] not in (None, "")

    # Neutralized copies never send, while their source goes on sending.
    copy_sent = {n: sends(c, n.replace("-", "_")) for n, c in copies.items()}
    src_sent = sends(src.client, src.database)
    wait_for(lambda: sends(src.client, src.database) >= src_sent + 3, 30, "three more sends")
    for name, client in copies.items():
        assert sends(client, name.replace("-", "_")) == copy_sent[name]
        logs = client.api.logs(f"havsh-{name}").decode()
        assert "Starting job" not in logs and "Mail delivery" not in logs
    assert "Mail delivery via SMTP host smtp.example.com:25" in src.client.api.logs(
        src.container).decode()

    # A copy of a copy is neutralized by default too (it may hold production data).
    rep = RecordingReporter()
    again = cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
        source_host="hosta", source="cp-same", name="cp-again"), rep)
    assert again.source == "cp-same"
    neutralize = [a for k, a in rep.events if k == "step" and a[0] == "neutralize"]
    assert neutralize and "Copy" in neutralize[0][2]
    # Already neutralized: the flag is checked first, so it is not neutralized twice.
    assert "already neutralized: nothing to do" in rep.lines()
    assert fd.scalar(src.client, "cp_again", "SELECT count(*) FROM ir_mail_server "
                     "WHERE smtp_host = 'invalid';") == "1"
    assert copy_sessions(src.client, "cp-again", wait=0) == []


def test_neutralize_defaults():
    assert cp.neutralize_default(ServiceType.LIVE)
    assert cp.neutralize_default(ServiceType.COPY)
    assert cp.neutralize_default(ServiceType.PREVIEW)
    assert not cp.neutralize_default(ServiceType.TEST)
    assert not cp.neutralize_default(ServiceType.DEMO)
    assert "Live" in cp.neutralize_reason(ServiceType.LIVE)
    assert "production data" in cp.neutralize_reason(ServiceType.PREVIEW)
    assert cp.neutralize_reason(ServiceType.TEST) == ""


def test_plan_copy(inventory, secret_store, pool, host_a, host_b):
    src = make_source(inventory, secret_store, pool, host_a, files=40, big=3 * 1024 * 1024,
                      partners=500)
    plan = cp.plan_copy(inventory, pool, cp.CopySpec("hosta", src.name, "cp-tiny",
                                                     host="hostb"))
    db_size = int(fd.scalar(src.client, "postgres", "SELECT pg_database_size('cp_src');"))
    assert abs(plan.database_bytes - db_size) < 1024 * 1024
    sizes = fd.filestore_sizes(src.client, HELPER, src.name, src.database)
    assert len(sizes) >= len(src.files)  # ours, and base's own
    assert plan.filestore_files == len(sizes)
    assert plan.filestore_bytes == sum(sizes.values())
    assert plan.target_disk_free and plan.target_disk_free > plan.disk_needed
    assert plan.enough_disk is True and plan.problems == []
    assert plan.neutralize is True and "Live" in plan.neutralize_reason
    assert (plan.source, plan.source_host, plan.target_host) == ("cp-src", "hosta", "hostb")
    assert not plan.same_host and plan.upgrade is None
    d = plan.to_dict()
    assert d["filestore_files"] == len(sizes) and d["same_host"] is False

    # An upgrade test, a name taken, an older image: all said at once, nothing raised.
    up = cp.plan_copy(inventory, pool, cp.CopySpec("hosta", src.name, "cp-tiny",
                                                   image="havsh-test/odoo:18.0"))
    assert up.upgrade == "upgrade test: 17.0 → 18.0" and up.same_host
    bad = cp.plan_copy(inventory, pool, cp.CopySpec("hosta", src.name, "cp-src",
                                                    image="havsh-test/odoo:16.0"))
    assert any("exists" in p for p in bad.problems)
    assert any("older" in p for p in bad.problems)
    off = cp.plan_copy(inventory, pool, cp.CopySpec("hosta", src.name, "cp-tiny",
                                                    neutralize=False))
    assert off.neutralize is False and off.neutralize_reason == ""
    with pytest.raises(ops.OpsError, match="older"):
        cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
            "hosta", src.name, "cp-tiny", image="havsh-test/odoo:16.0"))

    # A Test source: neutralize is offered, off by default.
    ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name="cp-test", host="hostb", type=ServiceType.TEST, image=ODOO))
    t = cp.plan_copy(inventory, pool, cp.CopySpec("hostb", "cp-test", "cp-tiny"))
    assert t.neutralize is False and t.filestore_files >= 1 and t.database_bytes > 0

    # Too little disk on the target: the plan says so, and the copy refuses before it
    # creates anything.
    real = cp.check_host

    def tight(session):
        h = real(session)
        h.disk_free = 10 * 1024 * 1024
        return h

    mp = pytest.MonkeyPatch()
    mp.setattr(cp, "check_host", tight)
    try:
        small = cp.plan_copy(inventory, pool, cp.CopySpec("hosta", src.name, "cp-tiny",
                                                          host="hostb"))
        assert small.enough_disk is False
        assert any("free; the copy needs" in p for p in small.problems)
        with pytest.raises(ops.StepFailed) as info:
            cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
                "hosta", src.name, "cp-tiny", host="hostb"))
        assert info.value.step == "check target" and "free" in str(info.value)
    finally:
        mp.undo()
    rec = inventory.get_service("cp-tiny", host="hostb")
    assert rec.status is ServiceStatus.FAILED and rec.failed_step == "check target"
    b = pool.session(host_b).docker()
    assert ops.target_leftovers(b, "cp-tiny") == []
    # The same name, retried with room enough: the failed record is replaced.
    done = cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
        "hosta", src.name, "cp-tiny", host="hostb"))
    assert done.status is ServiceStatus.RUNNING
    assert inventory.get_service("cp-tiny", host="hostb").failed_step is None


def test_copy_refuses_objects_it_did_not_make(inventory, secret_store, pool, host_a, host_b,
                                             sql, testbed):
    """A database or volume already named for the copy (another laptop's service, a
    leftover) is never overwritten, nor removed by the failed copy's cleanup."""
    src = make_source(inventory, secret_store, pool, host_a, files=5, big=0, partners=10,
                      mail=False)
    b = pool.session(host_b).docker()
    sql(host_b, "CREATE DATABASE cp_bad;")
    with pytest.raises(ops.StepFailed) as info:
        cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
            "hosta", src.name, "cp-bad", host="hostb"))
    assert info.value.step == "check target" and "database cp_bad" in str(info.value)
    assert sql(host_b, "SELECT datname FROM pg_database WHERE datname = 'cp_bad';") == [
        ["cp_bad"]]
    sql(host_b, "DROP DATABASE cp_bad;")
    b.api.create_volume("havsh-cp-bad-data")
    with pytest.raises(ops.StepFailed, match="volume havsh-cp-bad-data"):
        cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
            "hosta", src.name, "cp-bad", host="hostb"))
    assert leftovers(testbed, host_b, "cp-bad", sql) == ([], ["havsh-cp-bad-data"], [], [])
    b.api.remove_volume("havsh-cp-bad-data")
    # A live (not failed) service of the name is never replaced.
    with pytest.raises(ops.OpsError, match="exists"):
        cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
            "hosta", src.name, "cp-src"))


# -- faults -----------------------------------------------------------------------------------
class CutReporter(RecordingReporter):
    """Calls ``action`` once, in the middle of a phase: at its first progress event past
    ``after_bytes`` that is not its last (the database phase reports every second, the
    filestore every 2 MB)."""

    def __init__(self, *, phase: str, after_bytes: int = 0, action=None) -> None:
        super().__init__()
        self.phase = phase
        self.after_bytes = after_bytes
        self.action = action
        self.fired = threading.Event()

    def progress(self, done, total=None, message=""):
        super().progress(done, total, message)
        if (message.startswith(self.phase + ":") and done >= self.after_bytes
                and (total is None or done < total) and not self.fired.is_set()):
            self.fired.set()
            self.action()


@pytest.mark.slow
def test_cut_ssh_to_target_mid_copy_then_retry(inventory, secret_store, pool, host_a, host_b,
                                               testbed, sql):
    src = make_source(inventory, secret_store, pool, host_a, files=100, big_table_mb=80,
                      mail=False)
    before = fingerprint(src.client, src.database, src.name)
    session_b = pool.session(host_b)

    def cut():
        # The operator's connection to B dies: every channel of it at once.
        session_b.ssh.transport().close()

    spec = cp.CopySpec("hosta", src.name, "cp-cut", host="hostb")
    attempts = [
        ("database", CutReporter(phase="database", after_bytes=1, action=cut)),
        ("filestore", CutReporter(phase="filestore", after_bytes=8_000_000, action=cut)),
    ]
    for phase, rep in attempts:
        with pytest.raises(ops.StepFailed) as info:
            cp.copy_service(inventory, secret_store, pool, spec, rep)
        assert rep.fired.is_set()
        assert info.value.step == f"copy {phase}", info.value
        rec = inventory.get_service("cp-cut", host="hostb")
        assert rec.status is ServiceStatus.FAILED and rec.failed_step == f"copy {phase}"
        assert rec.last_error and any(s.name == "cleanup" and s.state == "done"
                                      for s in rec.steps)
        assert leftovers(testbed, host_b, "cp-cut", sql) == ([], [], [], [])
        assert copy_sessions(src.client, "cp-cut") == []
        assert [e for e in rep.events if e[0] == "warning"] == []
    # A cancel mid-filestore: the same clean end, as a cancel.
    rep = CutReporter(phase="filestore", after_bytes=8_000_000, action=lambda: None)
    rep.action = rep.cancel_event.set
    with pytest.raises(OperationCancelled):
        cp.copy_service(inventory, secret_store, pool, spec, rep)
    assert inventory.get_service("cp-cut", host="hostb").status is ServiceStatus.FAILED
    assert leftovers(testbed, host_b, "cp-cut", sql) == ([], [], [], [])
    assert copy_sessions(src.client, "cp-cut") == []

    # The source never noticed, and the same command again succeeds.
    assert_unchanged(before, src.client, src.database, src.name)
    done = cp.copy_service(inventory, secret_store, pool, spec, RecordingReporter())
    assert done.status is ServiceStatus.RUNNING
    check_copy(session_b.docker(), "cp_cut", "cp-cut", src, neutralized=True, url=done.url)
    assert copy_sessions(src.client, "cp-cut", wait=0) == []


def test_failing_restore_is_a_clean_failure(inventory, secret_store, pool, host_a, host_b,
                                            testbed, sql, monkeypatch):
    src = make_source(inventory, secret_store, pool, host_a, files=20, big=0, partners=100,
                      mail=False)
    before = fingerprint(src.client, src.database, src.name)
    # pg_restore fails at once (a role that does not exist), on B and then on A.
    monkeypatch.setattr(cp, "_restore_argv", lambda s: [
        "-U", "postgres", "-d", s.database, "--no-owner", "--role=havsh_no_such_role",
        "--single-transaction"])
    monkeypatch.setattr(cp, "_LOCAL_DB_SCRIPT", cp._LOCAL_DB_SCRIPT.replace(
        '--role="$4"', "--role=havsh_no_such_role"))
    for host in ("hostb", None):
        with pytest.raises(ops.StepFailed) as info:
            cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
                "hosta", src.name, "cp-bad", host=host))
        assert info.value.step == "copy database"
        assert "pg_restore" in str(info.value)
        assert "havsh_no_such_role" in info.value.log
        target = host_b if host else host_a
        assert leftovers(testbed, target, "cp-bad", sql) == ([], [], [], [])
        assert copy_sessions(src.client, "cp-bad") == []
        inventory.remove_service(target.name, "cp-bad")
    assert_unchanged(before, src.client, src.database, src.name)


def test_target_volume_full_is_a_clean_failure(inventory, secret_store, pool, host_a, host_b,
                                               testbed, sql, monkeypatch):
    """The target's disk fills during the filestore: a 16 MB tmpfs volume stands in for a
    full disk (named volumes cannot be made small otherwise)."""
    src = make_source(inventory, secret_store, pool, host_a, files=60, big=30 * 1024 * 1024,
                      partners=100, mail=False)
    real = docker.api.client.APIClient.create_volume

    def small_volume(self, name=None, driver=None, driver_opts=None, labels=None):
        if name == "havsh-cp-full-data":
            driver_opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=16m"}
        return real(self, name, driver, driver_opts, labels)

    monkeypatch.setattr(docker.api.client.APIClient, "create_volume", small_volume)
    for host, target in (("hostb", host_b), (None, host_a)):
        with pytest.raises(ops.StepFailed) as info:
            cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
                "hosta", src.name, "cp-full", host=host))
        assert info.value.step == "copy filestore", info.value
        assert "the target ran out of disk space" in str(info.value), info.value.log
        assert leftovers(testbed, target, "cp-full", sql) == ([], [], [], [])
        inventory.remove_service(target.name, "cp-full")


def test_compressible_filestore_is_gzipped_across_hosts(inventory, secret_store, pool,
                                                        host_a, host_b, sql):
    """Text-like files cross gzipped (and arrive intact); random ones cross as they are."""
    src = make_source(inventory, secret_store, pool, host_a, files=0, big=0, partners=10,
                      mail=False)
    src.client.api.stop(src.container)  # its files are only the ones below and base's
    text = [fd.FileSpec("", 0, (f"line {i} of a very repetitive invoice\n" * 4000).encode())
            for i in range(30)]
    for f in text:
        f.sha1, f.size = hashlib.sha1(f.data).hexdigest(), len(f.data)
    fd.put_files(src.client, src.container, src.database, text)
    rep = RecordingReporter()
    cp.copy_service(inventory, secret_store, pool, cp.CopySpec(
        "hosta", src.name, "cp-gz-far", host="hostb"), rep)
    assert any(line.startswith("filestore: gzip -1 on the way") for line in rep.lines())
    b = pool.session(host_b).docker()
    files = fd.filestore_sha256(b, HELPER, "cp-gz-far", "cp_gz_far")
    assert len(files) >= len(text)
    assert files == fd.filestore_sha256(src.client, HELPER, src.name, src.database)
    # About 4.6 MB of text (plus the stand-in's own two files) crossed as some kB.
    last = progress_of(rep, "filestore")[-1][2]
    assert re.search(r", [\d.,]+ kB sent$", last), last


# -- the CLI, and memory -------------------------------------------------------------------------
def _run_measured(argv: list[str], tmp_path, name: str) -> tuple[int, int, str, str]:
    """Run a command, return (exit code, peak RSS in bytes, stdout, stderr).

    The peak is the kernel's high-water mark of the process's own memory (VmHWM, which exec
    resets), read every 20 ms while it runs. getrusage's ru_maxrss would not do: it keeps the
    RSS the forked child had before exec, that is, pytest's own.
    """
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    peak = 0
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.Popen(argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.02)
    return p.returncode, peak, out.read_text(), err.read_text()


@pytest.mark.slow
def test_cli_exact_copy_across_hosts_with_bounded_memory(inventory, secret_store, pool, host_a,
                                                         host_b, tmp_path, havsh_paths):
    src = make_source(inventory, secret_store, pool, host_a, mail=False)
    havsh = [sys.executable, "-m", "havsh_tui"]
    # What the same CLI takes when it only talks to both hosts.
    code, idle_rss, _, err = _run_measured(havsh + ["host", "check", "--json"], tmp_path,
                                           "check")
    assert code == 0, err
    code, plan_rss, out, err = _run_measured(
        havsh + ["service", "copy", "cp-src", "cp-exact", "--host", "hostb", "--plan",
                 "--json"], tmp_path, "plan")
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert plan["filestore_files"] >= len(src.files) and plan["enough_disk"] is True
    code, copy_rss, out, err = _run_measured(
        havsh + ["service", "copy", "cp-src", "cp-exact", "--host", "hostb",
                 "--no-neutralize", "--json"], tmp_path, "copy")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert events[-1]["event"] == "result"
    assert events[-1]["service"]["source"] == "cp-src"
    steps = [e["step"] for e in events if e["event"] == "step" and e["state"] == "done"]
    assert "neutralize" not in steps and steps[-1] == "health"
    progress = [e for e in events if e["event"] == "progress"]
    assert any(e["message"].startswith("filestore:") and "/s" in e["message"]
               for e in progress)
    moved = sum(f.size for f in src.files)
    growth = copy_rss - idle_rss
    print(f"\npeak RSS: host check {idle_rss / 1e6:.1f} MB, copy {copy_rss / 1e6:.1f} MB "
          f"(+{growth / 1e6:.1f} MB) for {moved / 1e6:.1f} MB of files across hosts")
    # It streams: the copy's process grows by a small fraction of what it moves.
    assert growth < moved / 4, (idle_rss, copy_rss, moved)

    # Exact: only uuid, secret and base URL differ.
    b = pool.session(host_b).docker()
    check_copy(b, "cp_exact", "cp-exact", src, neutralized=False,
               url=events[-1]["service"]["url"] or "")
    p_src = fd.config_parameters(src.client, src.database)
    p_copy = fd.config_parameters(b, "cp_exact")
    assert {k for k in p_src if p_src[k] != p_copy.get(k)} == {
        "database.uuid", "database.secret", "web.base.url"}
    assert set(p_copy) == set(p_src)
    assert fd.table_checksums(b, "cp_exact", exclude=LIVE_TABLES + ("ir_config_parameter",)) \
        == fd.table_checksums(src.client, src.database,
                              exclude=LIVE_TABLES + ("ir_config_parameter",))
    assert fd.cron_checksum(b, "cp_exact") == fd.cron_checksum(src.client, src.database)

    # A failed copy through the CLI: exit 1, a JSON error naming the step.
    code, _, out, err = _run_measured(
        havsh + ["service", "copy", "cp-src", "cp-exact", "--host", "hostb", "--json"],
        tmp_path, "dup")
    assert code == 1 and json.loads(err.strip().splitlines()[-1])["error"]["message"]
