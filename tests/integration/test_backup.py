"""Backups and restores on the real testbed, with the stand-in Odoo image."""

from __future__ import annotations

import hashlib
import io
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


@pytest.fixture
def bk_dirs(cleanup):
    """Directories the test's backups go to (on both hosts: they share this filesystem),
    removed afterwards, with the default host directory of the test's services."""
    made: list[Path] = []
    slugs: list[str] = []

    def new(tag: str = "d") -> str:
        p = Path(f"/tmp/havsh-bk-{tag}-{uuid.uuid4().hex[:8]}")
        made.append(p)
        return str(p)

    new.slugs = slugs  # type: ignore[attr-defined]
    yield new
    for p in made:
        shutil.rmtree(p, ignore_errors=True)
    for slug in cleanup.slugs:
        shutil.rmtree(Path(bk.DEFAULT_HOST_ROOT) / slug, ignore_errors=True)


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
    cleanup.add("bk-src", "bk-copy")
    src = _create(inventory, secret_store, pool, "bk-src")
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
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["db_name"] == "bk_src" and manifest["version"] == "17.0"
    assert manifest["modules"]["base"].startswith("17.0.")

    listed = bk.list_backups(inventory, pool, service=src)
    assert record.id in [r.id for r in listed]

    result = bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
        backup_id=record.id, new="bk-copy", host="hosta"), rep)
    assert result.outcome == "created"
    copy = inventory.get_service("bk-copy", host="hosta")
    assert copy.type is ServiceType.COPY and copy.source == "bk-src"
    assert _counts(pool, host_a, "bk_copy") == _counts(pool, host_a, "bk_src")
    assert _filestore(pool, host_a, copy) == _filestore(pool, host_a, src)
    assert len(_filestore(pool, host_a, src)) >= 30
    # A new identity, and neutralized? The source is a Test service: not by default.
    uuids = [sql(host_a, "SELECT value FROM ir_config_parameter WHERE key = 'database.uuid';", db)
             for db in ("bk_src", "bk_copy")]
    assert uuids[0] != uuids[1]
