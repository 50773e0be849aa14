"""Backups and restores on the real testbed, with the stand-in Odoo image."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest

from havsh_tui.core.model import ServiceType
from havsh_tui.ops import backup as bk
from havsh_tui.ops import services as ops
from havsh_tui.ops.bootstrap import psql
from havsh_tui.ops.reporter import RecordingReporter

pytestmark = pytest.mark.usefixtures("clean_hosts")

IMAGE = "havsh-test/odoo:17.0"
#: Slugs carry a per-run suffix: two runs of this file at once (two engineers, a full-suite
#: run) must not clean up each other's services.
RUN = uuid.uuid4().hex[:4]


def N(base: str) -> str:
    """The service slug of this run for ``base``."""
    return f"{base}-{RUN}"


def D(base: str) -> str:
    """Its database name."""
    return N(base).replace("-", "_")


@pytest.fixture
def bk_dirs():
    """Directories the test's backups go to (on both hosts: they share this filesystem),
    removed afterwards."""
    made: list[Path] = []

    def new(tag: str = "d") -> str:
        p = Path(f"/tmp/havsh-bk-{tag}-{uuid.uuid4().hex[:8]}")
        made.append(p)
        return str(p)

    yield new
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


@pytest.fixture(autouse=True)
def _default_dirs(cleanup):
    """The default host directory of the test's services (slugs unique to this file), before
    and after the test: both test hosts see this machine's /var/lib/havsh/backups."""
    def wipe():
        for slug in cleanup.slugs:
            shutil.rmtree(Path(bk.DEFAULT_HOST_ROOT) / slug, ignore_errors=True)

    yield wipe
    wipe()


@pytest.fixture(autouse=True)
def _extra_databases(cleanup, testbed):
    """A restore makes <db>__restore and <db>__old; drop them too (before the role goes)."""
    yield
    import docker

    for h in testbed.hosts.values():
        client = docker.DockerClient(base_url=f"unix://{h.docker_socket}", version="1.41")
        try:
            pg = client.containers.get("havsh-postgres")
            for slug in cleanup.slugs:
                db = slug.replace("-", "_")
                sql = "".join(f'DROP DATABASE IF EXISTS "{db}__{s}" WITH (FORCE);\n'
                              for s in ("restore", "old"))
                pg.exec_run(["sh", "-c", 'printf "%s" "$1" | psql -X -q -U postgres', "sh", sql],
                            user="postgres")
        except docker.errors.NotFound:
            pass
        finally:
            client.close()


def _create(inventory, secret_store, pool, name, host="hosta", type_=ServiceType.TEST):
    return ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name=name, host=host, type=type_, odoo_version="17.0", image=IMAGE)).service


def _exec(pool, host, container, script, *args):
    client = pool.session(host).docker()
    ex = client.api.exec_create(container, ["sh", "-c", script, "sh", *args], user="0:0")
    out = client.api.exec_start(ex["Id"])
    assert client.api.exec_inspect(ex["Id"])["ExitCode"] == 0, out
    return out.decode()


def _add_data(pool, host, service, *, rows=2000, files=30, big_mb=0):
    """Rows in res_partner and attachments with real files in the filestore."""
    client = pool.session(host).docker()
    psql(client, f"""
INSERT INTO res_partner (name, complete_name, email, active, is_company)
SELECT 'Partner ' || g, 'Partner ' || g, 'p' || g || '@example.com', true, false
FROM generate_series(1, {rows}) g;
""", database=service.database)
    script = r'''set -e
d=/var/lib/odoo/filestore/$1
i=0
while [ $i -lt "$2" ]; do
  f=$(head -c 4096 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 40)
  mkdir -p "$d/$(echo "$f" | cut -c1-2)"
  head -c $(( (i * 7919) % 60000 + 1 )) /dev/urandom > "$d/$(echo "$f" | cut -c1-2)/$f"
  i=$((i + 1))
done
if [ "$3" -gt 0 ]; then mkdir -p "$d/zz"; head -c "$3"M /dev/urandom > "$d/zz/big"; fi
chown -R odoo "$d"
'''
    _exec(pool, host, f"havsh-{service.name}", script, service.database, str(files), str(big_mb))


def _counts(pool, host, database) -> dict[str, int]:
    from havsh_tui.ops.copy import COUNT_SQL, _parse_counts

    counts = _parse_counts(psql(pool.session(host).docker(), COUNT_SQL, database=database))
    counts.pop("public.mail_mail_sent", None)  # the stand-in's mail log grows while it runs
    return counts


def _filestore(pool, host, service) -> dict[str, str]:
    out = _exec(pool, host, f"havsh-{service.name}",
                'cd "/var/lib/odoo/filestore/$1" 2>/dev/null || exit 0; '
                'find . -type f -exec sha256sum {} + | sort -k2', service.database)
    return {line.split()[1][2:]: line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.slow
def test_backup_to_host_then_restore_into_a_new_service(inventory, secret_store, pool, host_a,
                                                          cleanup, bk_dirs, sql):
    cleanup.add(N("bk-src"), N("bk-copy"))
    src = _create(inventory, secret_store, pool, N("bk-src"))
    _add_data(pool, host_a, src)
    rep = RecordingReporter()
    dest = "host:" + bk_dirs("h")
    record = bk.create_backup(inventory, secret_store, pool, src, dest=dest, reporter=rep)
    assert record.kind == "manual" and record.size > 0 and len(record.sha256) == 64
    zip_path = Path(record.path)
    assert zip_path.exists()
    assert hashlib.sha256(zip_path.read_bytes()).hexdigest() == record.sha256
    with zipfile.ZipFile(zip_path) as z:
        assert z.testzip() is None
        names = z.namelist()
        assert names[0] == "dump.sql" and names[-1] == "manifest.json"
        # The default: nothing deflated (as fast as pg_dump + tar).
        assert record.compression == "store"
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["db_name"] == D("bk-src") and manifest["version"] == "17.0"
    assert manifest["modules"]["base"].startswith("17.0.")

    listed = bk.list_backups(inventory, pool, service=src)
    assert record.id in [r.id for r in listed]

    result = bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
        backup_id=record.id, new=N("bk-copy"), host="hosta"), rep)
    assert result.outcome == "created"
    copy = inventory.get_service(N("bk-copy"), host="hosta")
    assert copy.type is ServiceType.COPY and copy.source == N("bk-src")
    assert _counts(pool, host_a, D("bk-copy")) == _counts(pool, host_a, D("bk-src"))
    assert _filestore(pool, host_a, copy) == _filestore(pool, host_a, src)
    assert len(_filestore(pool, host_a, src)) >= 30
    # A new identity, and neutralized? The source is a Test service: not by default.
    uuids = [sql(host_a, "SELECT value FROM ir_config_parameter WHERE key = 'database.uuid';", db)
             for db in (D("bk-src"), D("bk-copy"))]
    assert uuids[0] != uuids[1]


# -- restore into an existing service ---------------------------------------------------------
def _started_at(pool, host, slug) -> str:
    return pool.session(host).docker().api.inspect_container(f"havsh-{slug}")["State"]["StartedAt"]


def _databases(sql, host, slug) -> list[str]:
    db = slug.replace("-", "_")
    return sorted(r[0] for r in sql(host, f"SELECT datname FROM pg_database "
                                          f"WHERE datname LIKE '{db}%';"))


@pytest.mark.slow
def test_restore_into_live_takes_a_safety_backup_first(inventory, secret_store, pool, host_a,
                                                        cleanup, bk_dirs, sql):
    cleanup.add(N("bk-live"))
    live = _create(inventory, secret_store, pool, N("bk-live"), type_=ServiceType.LIVE)
    _add_data(pool, host_a, live, rows=500, files=10)
    primary = "host:" + bk_dirs("p")
    bk.add_destination(inventory, live, primary, primary=True)
    record = bk.create_backup(inventory, secret_store, pool, live)
    assert record.destination == primary and record.kind == "manual"
    at_backup = (_counts(pool, host_a, D("bk-live")), _filestore(pool, host_a, live))
    _add_data(pool, host_a, live, rows=300, files=5)
    changed = (_counts(pool, host_a, D("bk-live")), _filestore(pool, host_a, live))
    assert changed != at_backup

    spec = bk.RestoreSpec(backup_id=record.id, service=N("bk-live"), service_host="hosta")
    with pytest.raises(ops.NeedsConfirmation):
        bk.restore_backup(inventory, secret_store, pool, spec)
    spec.confirm_name = N("bk-live")
    rep = RecordingReporter()
    result = bk.restore_backup(inventory, secret_store, pool, spec, rep)
    assert result.outcome == "restored"
    done = [s for s, st in rep.steps() if st == "done"]
    assert done.index("safety backup") < done.index("stop") < done.index("load") < done.index(
        "swap") < done.index("start")
    assert (_counts(pool, host_a, D("bk-live")), _filestore(pool, host_a, live)) == at_backup
    # The safety backup holds the data as it was just before, in the primary destination.
    safety = result.safety
    assert safety is not None and safety.kind == "safety" and safety.destination == primary
    assert safety.files == len(changed[1])
    listed = {r.id: r for r in bk.list_backups(inventory, pool, service=live)}
    assert listed[safety.id].kind == "safety" and record.id in listed
    # Nothing is left beside the service's own database; it is healthy again.
    assert _databases(sql, host_a, N("bk-live")) == [D("bk-live")]
    ops.wait_healthy(pool.session(host_a), inventory.get_service(N("bk-live"), host="hosta"),
                     RecordingReporter())
    assert inventory.get_service(N("bk-live"), host="hosta").status.value == "running"


@pytest.mark.slow
def test_bad_backups_are_refused_before_anything_is_stopped(inventory, secret_store, pool,
                                                            host_a, cleanup, bk_dirs, sql,
                                                            tmp_path):
    cleanup.add(N("bk-guard"))
    svc = _create(inventory, secret_store, pool, N("bk-guard"))
    _add_data(pool, host_a, svc, rows=50, files=3)
    record = bk.create_backup(inventory, secret_store, pool, svc, dest="host:" + bk_dirs("g"))
    started = _started_at(pool, host_a, N("bk-guard"))
    spec = bk.RestoreSpec(backup_id=record.id, service=N("bk-guard"))
    zip_path = Path(record.path)
    original = zip_path.read_bytes()

    # A wrong checksum in the record.
    side = zip_path.with_suffix(".json")
    good_side = side.read_text()
    side.write_text(good_side.replace(record.sha256, "0" * 64))
    with pytest.raises(bk.RestoreFailed) as info:
        bk.restore_backup(inventory, secret_store, pool, spec)
    assert info.value.outcome == "untouched" and "checksum mismatch" in str(info.value)
    side.write_text(good_side)

    # A zip damaged on disk (its record is right): the sha256 catches it.
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    zip_path.write_bytes(bytes(damaged))
    with pytest.raises(bk.RestoreFailed) as info:
        bk.restore_backup(inventory, secret_store, pool, spec)
    assert info.value.outcome == "untouched" and "damaged" in str(info.value)
    zip_path.write_bytes(original)

    # A truncated local zip, and one that is not a backup at all.
    cut = tmp_path / "cut.zip"
    cut.write_bytes(original[: len(original) // 2])
    for bad in (cut, tmp_path / "notes.zip"):
        if bad.name == "notes.zip":
            with zipfile.ZipFile(bad, "w") as z:
                z.writestr("notes.txt", "hello")
        with pytest.raises(bk.RestoreFailed) as info:
            bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
                from_file=str(bad), service=N("bk-guard")))
        assert info.value.outcome == "untouched"

    # A zip from a newer Odoo major: refused unless confirmed.
    newer = tmp_path / "newer.zip"
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(newer, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "manifest.json":
                m = json.loads(data)
                m.update(version="99.0", major_version="99.0", version_info=[99, 0, 0, "final", 0])
                m.pop("havsh")
                data = json.dumps(m).encode()
            z.writestr(item.filename, data)
    with pytest.raises(ops.NeedsConfirmation, match="newer"):
        bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
            from_file=str(newer), service=N("bk-guard")))

    # None of that stopped the service, took a safety backup or left anything behind.
    assert _started_at(pool, host_a, N("bk-guard")) == started
    assert [r.id for r in bk.list_backups(inventory, pool, service=svc)] == [record.id]
    assert _databases(sql, host_a, N("bk-guard")) == [D("bk-guard")]

    # A dump that does not load (valid zip, broken SQL): the service was stopped, and is
    # back on its previous data, and the error says so.
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(broken, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "dump.sql":
                data = data[: len(data) // 2] + b"\nTHIS IS NOT SQL;\n"
            z.writestr(item.filename, data)
    before = _counts(pool, host_a, D("bk-guard"))
    with pytest.raises(bk.RestoreFailed) as info:
        bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
            from_file=str(broken), service=N("bk-guard")))
    assert info.value.outcome == "rolled_back"
    assert "previous data" in str(info.value) and info.value.safety is not None
    assert _counts(pool, host_a, D("bk-guard")) == before
    assert _databases(sql, host_a, N("bk-guard")) == [D("bk-guard")]
    ops.wait_healthy(pool.session(host_a), svc, RecordingReporter())


class _CutSSH(RecordingReporter):
    """Drops the TCP connection under havsh's SSH session, once: the way a network cut looks
    from here (sshd on the host sees the connection die).

    With ``job``, the cut comes right after the job container of that purpose (``load``)
    has started on the host, before havsh's first look at it: deterministic, however fast
    the job is (a timer into the step could fire after a short load had already finished,
    and the cut then hit no job at all). The host then stays out of reach for ``outage``
    seconds (reconnects fail, as during a real network cut; a bare socket close is undone
    by the next request's reconnect, silently), so havsh's wait for the job has to notice,
    say so and retry. Else ``delay`` seconds into the step ``step``."""

    def __init__(self, pool, host, step: str = "", delay: float = 0.5, *, job: str = "",
                 outage: float = 3.0, monkeypatch=None) -> None:
        super().__init__()
        self.pool, self.host, self.target, self.delay = pool, host, step, delay
        self.cut_done = False
        if job:
            from havsh_tui.ops.backup import jobs

            original = jobs.HostJob.start

            def start(this):
                started = original(this)
                if this.purpose == job and not self.cut_done:
                    self.cut_done = True
                    self._cut(outage)
                return started

            monkeypatch.setattr(jobs.HostJob, "start", start)

    def step(self, name, state, detail=""):
        super().step(name, state, detail)
        if self.target and name == self.target and state == "running" and not self.cut_done:
            self.cut_done = True
            import threading

            threading.Timer(self.delay, self._cut).start()

    def _cut(self, outage: float = 0.0):
        import socket
        import time

        from havsh_tui.remote.ssh import HostUnreachable

        conn = self.pool.session(self.host).ssh
        if outage > 0:
            until = time.monotonic() + outage
            real = conn._connect

            def refused(*a, **kw):
                if time.monotonic() < until:
                    raise HostUnreachable(f"{self.host.name}: network cut (test)")
                conn._connect = real
                return real(*a, **kw)

            conn._connect = refused
        sock = conn.transport().sock
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


@pytest.mark.slow
def test_ssh_cut_mid_restore_finishes_or_rolls_back_and_says_which(inventory, secret_store, pool,
                                                                   host_a, cleanup, bk_dirs,
                                                                   sql, monkeypatch):
    cleanup.add(N("bk-cut"))
    svc = _create(inventory, secret_store, pool, N("bk-cut"))
    _add_data(pool, host_a, svc, rows=20000, files=60)
    record = bk.create_backup(inventory, secret_store, pool, svc, dest="host:" + bk_dirs("c"))
    at_backup = (_counts(pool, host_a, D("bk-cut")), _filestore(pool, host_a, svc))
    _add_data(pool, host_a, svc, rows=10, files=1)
    first_connect = pool.session(host_a).ssh.connected_at

    rep = _CutSSH(pool, host_a, job="load", monkeypatch=monkeypatch)
    result = bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
        backup_id=record.id, service=N("bk-cut")), rep)
    assert rep.cut_done, "the load job never started"
    assert pool.session(host_a).ssh.connected_at != first_connect, "the connection was not cut"
    assert any("dropped" in a[0] for k, a in rep.events if k == "warning")
    # The load went on on the host; havsh reconnected and finished: fully restored.
    assert result.outcome == "restored" and "runs on" in result.detail
    assert (_counts(pool, host_a, D("bk-cut")), _filestore(pool, host_a, svc)) == at_backup
    assert _databases(sql, host_a, N("bk-cut")) == [D("bk-cut")]

    # A cut while the restored service starts: the health check carries on after reconnecting.
    rep = _CutSSH(pool, host_a, "start", delay=0.2)
    result = bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
        backup_id=record.id, service=N("bk-cut")), rep)
    assert rep.cut_done and result.outcome == "restored"
    assert (_counts(pool, host_a, D("bk-cut")), _filestore(pool, host_a, svc)) == at_backup


# -- faults: full destinations ----------------------------------------------------------------
def _mount(kind: str, path: str, tmp_path) -> None:
    import subprocess

    Path(path).mkdir(parents=True)
    if kind == "loop":
        img = tmp_path / "dest.img"
        subprocess.run(["truncate", "-s", "20M", str(img)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True)
        subprocess.run(["mount", "-o", "loop", str(img), path], check=True)
    else:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", path], check=True)


def _umount(path: str) -> None:
    import subprocess

    subprocess.run(["umount", "-l", path], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["host", "local"])
def test_a_full_destination_leaves_no_partial_file_and_keeps_older_backups(
        where, inventory, secret_store, pool, host_a, cleanup, bk_dirs, tmp_path):
    slug = N(f"bk-full-{where}")
    cleanup.add(slug)
    svc = _create(inventory, secret_store, pool, slug)
    mnt = bk_dirs("full")
    # A 20 MB loop-mounted filesystem on host A (this machine), or a 20 MB tmpfs here.
    _mount("loop" if where == "host" else "tmpfs", mnt, tmp_path)
    try:
        dest = f"{where}:{mnt}"
        first = bk.create_backup(inventory, secret_store, pool, svc, dest=dest)
        first_bytes = Path(first.path).read_bytes()
        _add_data(pool, host_a, svc, files=1, big_mb=30)
        with pytest.raises(bk.DestinationFull) as info:
            bk.create_backup(inventory, secret_store, pool, svc, dest=dest)
        msg = str(info.value)
        assert "full" in msg and "partial" in msg and "no older backup was touched" in msg
        # The backup and its sidecar (and on a host, the CRC cache of the filestore); nothing
        # partial.
        left = sorted(p.name for p in Path(mnt).rglob("*")
                      if p.is_file() and p.name != ".havsh-crc-cache")
        assert left == sorted([Path(first.path).name, Path(first.path).with_suffix(".json").name])
        assert Path(first.path).read_bytes() == first_bytes
        assert hashlib.sha256(first_bytes).hexdigest() == first.sha256
        assert [r.id for r in bk.list_backups(inventory, pool, service=svc)] == [first.id]
    finally:
        _umount(mnt)


# -- other destinations, other formats, Odoo's own zips ----------------------------------------
@pytest.mark.slow
def test_local_and_other_host_destinations_and_restores_across_hosts(
        inventory, secret_store, pool, host_a, host_b, cleanup, bk_dirs, testbed):
    cleanup.add(N("bk-far"), N("bk-far-b1"), N("bk-far-b2"))
    svc = _create(inventory, secret_store, pool, N("bk-far"))
    _add_data(pool, host_a, svc, rows=300, files=12)
    local_root = bk_dirs("local")
    # Max compression (the dump deflated at level 9), streamed here; restored on B below.
    on_local = bk.create_backup(inventory, secret_store, pool, svc, dest=f"local:{local_root}",
                                compression="max")
    assert on_local.location_host is None and on_local.compression == "max"
    path = Path(local_root) / "hosta" / N("bk-far") / f"{on_local.id}.zip"
    assert on_local.path == str(path)
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("dump.sql").compress_type == zipfile.ZIP_DEFLATED
        assert z.testzip() is None
    assert hashlib.sha256(path.read_bytes()).hexdigest() == on_local.sha256
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == on_local.sha256

    b_root = bk_dirs("b")
    on_b = bk.create_backup(inventory, secret_store, pool, svc, dest=f"hostb:{b_root}",
                            format="custom")
    assert on_b.location_host == "hostb" and on_b.format == "custom"
    with zipfile.ZipFile(on_b.path) as z:
        assert "dump.dump" in z.namelist() and "dump.sql" not in z.namelist()
        assert json.loads(z.read("manifest.json"))["havsh"]["format"] == "custom"
    ids = {r.id for r in bk.list_backups(inventory, pool, service=svc)}
    assert {on_local.id, on_b.id} <= ids
    # Download (from host B to here), checked against its sha256; delete.
    listed_b = bk.find_backup(inventory, pool, on_b.id)
    got = bk.download_backup(inventory, pool, listed_b, bk_dirs("dl"))
    assert hashlib.sha256(Path(got.path).read_bytes()).hexdigest() == on_b.sha256
    extra = bk.create_backup(inventory, secret_store, pool, svc, dest=f"local:{local_root}")
    bk.delete_backup(inventory, pool, bk.find_backup(inventory, pool, extra.id))
    assert not Path(extra.path).exists() and not Path(extra.path).with_suffix(".json").exists()
    assert extra.id not in {r.id for r in bk.list_backups(inventory, pool, service=svc)}
    want = (_counts(pool, host_a, D("bk-far")), _filestore(pool, host_a, svc))

    # From host B's directory into a new service on host B (a custom dump: pg_restore).
    bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
        backup_id=on_b.id, new=N("bk-far-b1"), host="hostb"))
    # From this machine into a new service on host B (uploaded, checked, then restored).
    bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
        backup_id=on_local.id, new=N("bk-far-b2"), host="hostb"))
    for slug in (N("bk-far-b1"), N("bk-far-b2")):
        copy = inventory.get_service(slug, host="hostb")
        db = slug.replace("-", "_")
        assert (_counts(pool, host_b, db), _filestore(pool, host_b, copy)) == want, slug
    # The uploaded copy did not stay in host B's spool.
    listed = bk.HostDirectory(pool, inventory, "hostb", "havsh-spool", name="s", kind="spool")
    assert listed.list_backups() == []


@pytest.mark.slow
def test_restore_a_zip_made_by_odoos_database_manager(inventory, secret_store, pool, host_a,
                                                      cleanup, bk_dirs, tmp_path, sql):
    cleanup.add(N("bk-odoo"), N("bk-odoo-new"))
    svc = _create(inventory, secret_store, pool, N("bk-odoo"))
    _add_data(pool, host_a, svc, rows=200, files=8)
    record = bk.create_backup(inventory, secret_store, pool, svc, dest="host:" + bk_dirs("o"))
    want = (_counts(pool, host_a, D("bk-odoo")), _filestore(pool, host_a, svc))
    # What odoo/service/db.py dump_db writes: zip_dir(ZIP_DEFLATED, allowZip64), dump.sql
    # first, the filestore, Odoo's manifest (no havsh key).
    odoo_zip = tmp_path / "from-odoo.zip"
    with zipfile.ZipFile(record.path) as src, zipfile.ZipFile(
            odoo_zip, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as z:
        for name in src.namelist():
            data = src.read(name)
            if name == "manifest.json":
                m = json.loads(data)
                m.pop("havsh")
                data = json.dumps(m, indent=4).encode()
            z.writestr(name, data)
    result = bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
        from_file=str(odoo_zip), new=N("bk-odoo-new"), host="hosta"))
    copy = result.service
    assert copy.odoo_version == "17.0" and copy.type is ServiceType.COPY
    got = _counts(pool, host_a, D("bk-odoo-new"))
    # Neutralizing adds its dummy mail server and the is_neutralized parameter.
    for table in ("public.ir_mail_server", "public.ir_config_parameter"):
        assert got.pop(table) == want[0][table] + 1
    assert got == {k: v for k, v in want[0].items()
                   if k not in ("public.ir_mail_server", "public.ir_config_parameter")}
    assert _filestore(pool, host_a, copy) == want[1]
    # Of unknown origin: neutralized by default.
    assert sql(host_a, "SELECT lower(value) FROM ir_config_parameter "
               "WHERE key = 'database.is_neutralized';", D("bk-odoo-new")) == [["true"]]


# -- schedules --------------------------------------------------------------------------------
def _local_docker(testbed, host):
    import docker

    return docker.DockerClient(base_url="unix://" + testbed.hosts[host].docker_socket,
                               version="1.41")


@pytest.mark.slow
def test_a_one_minute_schedule_runs_without_havsh_and_keeps_exactly_n(
        inventory, secret_store, pool, host_a, cleanup, bk_dirs, testbed, havsh_paths):
    import time

    cleanup.add(N("bk-cron"))
    svc = _create(inventory, secret_store, pool, N("bk-cron"))
    _add_data(pool, host_a, svc, rows=20, files=2)
    root = bk_dirs("cron")
    manual = bk.create_backup(inventory, secret_store, pool, svc, dest=f"host:{root}")
    local = _local_docker(testbed, "hosta")
    try:
        target = bk.set_schedule(inventory, secret_store, pool, svc, f"host:{root}", "none", 2,
                                 cron="* * * * *")
        assert target.keep == 2 and target.cron == "* * * * *"
        sched = local.containers.get(bk.SCHEDULER_CONTAINER)
        assert sched.labels["sh.hav.managed"] == "1"
        assert sched.labels["sh.hav.role"] == "backup-scheduler"
        # havsh goes away: every SSH connection closed, nothing of havsh runs.
        pool.close()
        d = Path(root) / N("bk-cron")
        deadline = time.monotonic() + 330
        while time.monotonic() < deadline:
            runs = sched.logs().decode().count(N("bk-cron") + " -> ")
            if runs >= 3:
                break
            time.sleep(5)
        log = sched.logs().decode()
        assert log.count(": ok ") >= 3, log
        scheduled = sorted(p.name for p in d.glob("*_scheduled_*.zip"))
        assert len(scheduled) == 2, (scheduled, log)
        assert "rotated" in log
        for z in scheduled:
            with zipfile.ZipFile(d / z) as zf:
                assert zf.testzip() is None
                assert json.loads(zf.read("manifest.json"))["havsh"]["kind"] == "scheduled"
        # The manual backup is never rotated.
        assert Path(manual.path).exists()
        # Frequency none: the scheduler goes (no other schedule on the host).
        bk.set_schedule(inventory, secret_store, pool, svc, f"host:{root}", "none", None)
        assert not local.containers.list(all=True, filters={"name": bk.SCHEDULER_CONTAINER})
    finally:
        for c in local.containers.list(all=True, filters={"label": "sh.hav.role=backup-scheduler"}):
            c.remove(force=True)
        local.close()


@pytest.mark.slow
def test_a_new_live_service_gets_daily_backups_on_its_host(inventory, secret_store, pool,
                                                           host_b, cleanup, testbed):
    cleanup.add(N("bk-daily"))
    live = _create(inventory, secret_store, pool, N("bk-daily"), host="hostb",
                   type_=ServiceType.LIVE)
    local = _local_docker(testbed, "hostb")
    try:
        policy = bk.enable_default_backups(inventory, secret_store, pool, live)
        assert policy is not None
        (dest,) = policy.destinations
        assert (dest.spec, dest.frequency, dest.keep, dest.primary) == ("host", "daily", 7, True)
        status = bk.scheduler_status(pool, host_b)
        assert status["running"]
        (line,) = status["schedules"]
        f = line.split()
        assert f[1] == "2" and f[2:5] == ["*", "*", "*"] and f[5] == N("bk-daily")
        assert f[8] == "/backups/0" and f[9] == "7"
        # Other types get nothing by default (checked on the record, without a second service).
        for other in (ServiceType.TEST, ServiceType.DEMO, ServiceType.COPY, ServiceType.PREVIEW):
            as_other = inventory.get_service(N("bk-daily"), host="hostb")
            as_other.type = other
            assert bk.enable_default_backups(inventory, secret_store, pool, as_other) is None
        # Forgetting the service's backups (after a delete) takes it out of the scheduler.
        bk.forget_backups(inventory, secret_store, pool, live)
        assert not local.containers.list(all=True, filters={"name": bk.SCHEDULER_CONTAINER})
    finally:
        for c in local.containers.list(all=True, filters={"label": "sh.hav.role=backup-scheduler"}):
            c.remove(force=True)
        local.close()


@pytest.mark.slow
def test_delete_with_the_backup_offered_keeps_a_safety_backup(inventory, secret_store, pool,
                                                              host_a, cleanup, sql,
                                                              _default_dirs):
    cleanup.add(N("bk-gone"))
    _default_dirs()
    svc = _create(inventory, secret_store, pool, N("bk-gone"))
    _add_data(pool, host_a, svc, rows=10, files=2)
    files = len(_filestore(pool, host_a, svc))
    offer = bk.backup_offer(inventory, secret_store, pool)
    ops.delete_service(inventory, secret_store, pool, svc, backup_offer=offer)
    assert _databases(sql, host_a, N("bk-gone")) == []
    # The service is gone; its backup is still listed (from the host's default directory).
    (record,) = bk.list_backups(inventory, pool, host="hosta", service_name=N("bk-gone"))
    assert record.kind == "safety" and record.files == files
    assert record.path.startswith(f"{bk.DEFAULT_HOST_ROOT}/{N('bk-gone')}/")


@pytest.mark.slow
def test_cli_backup_create_ls_and_dest(inventory, secret_store, pool, host_a, cleanup, bk_dirs,
                                      havsh_paths):
    from click.testing import CliRunner

    from havsh_tui.cli import cli

    cleanup.add(N("bk-cli"))
    _create(inventory, secret_store, pool, N("bk-cli"))
    root = bk_dirs("cli")
    runner = CliRunner()
    r = runner.invoke(cli, ["backup", "dest", "add", N("bk-cli"), f"host:{root}", "--primary",
                            "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["backup", "create", N("bk-cli"), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output.strip().splitlines()[-1])["backup"]
    assert result["where"].startswith(f"hosta:{root}/{N('bk-cli')}/")
    r = runner.invoke(cli, ["backup", "ls", N("bk-cli"), "--json"])
    listed = json.loads(r.output)
    assert [b["id"] for b in listed] == [result["id"]]
    assert set(listed[0]) >= {"created_at", "size", "destination", "kind", "sha256"}
    r = runner.invoke(cli, ["backup", "dest", "ls", N("bk-cli"), "--json"])
    rows = json.loads(r.output)
    assert [(x["name"], x["primary"]) for x in rows] == [("host", False), (f"host:{root}", True)]
    r = runner.invoke(cli, ["backup", "restore", result["id"], "--json"])
    assert r.exit_code == 2 and "usage" in r.output
    r = runner.invoke(cli, ["backup", "schedule", N("bk-cli"), "--dest", "local:/tmp/x",
                            "--frequency", "daily", "--json"])
    assert r.exit_code == 1 and "can only write to a directory there" in r.output
