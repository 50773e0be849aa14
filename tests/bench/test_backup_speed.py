"""Backup and restore of a service with ~1 GB of database and ~1 GB of filestore, against the
raw tools on the same host in the same run: `pg_dump > file` + `tar -cf`, and `psql < file` +
`tar -xf`. Target (issue 8): at most 1.3x.

Sizes: HAVSH_BENCH_DB_MB and HAVSH_BENCH_FS_MB (default 1024 each); HAVSH_BENCH_ROUNDS
alternating rounds (default 2), medians compared. havsh's backup is timed three ways: the
first one to a destination (every filestore file's CRC computed), a later one (the CRCs of
files already seen are kept beside the backups), both with the default compression (the
dump stored), and a later one with the dump deflated (compression "deflate", zlib's fastest
level). The filestore is random
bytes (attachments are mostly compressed formats already); the database is Odoo-like rows
(names, emails, HTML bodies, amounts). Every timing is wall-clock from here, container start
included on both sides. Written to tests/bench/results/backup_speed.json and printed.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
import uuid
from pathlib import Path

import pytest

from havsh_tui.core.model import ServiceType
from havsh_tui.ops import backup as bk
from havsh_tui.ops import services as ops
from havsh_tui.ops.backup.jobs import postgres_image
from havsh_tui.ops.backup.ops import pg_env
from havsh_tui.ops.bootstrap import psql
from tests.integration.conftest import (  # noqa: F401 - fixtures
    cleanup,
    havsh_paths,
    host_a,
    host_b,
    inventory,
    pool,
    secret_store,
    ssh_opts,
)

pytestmark = [pytest.mark.bench, pytest.mark.slow, pytest.mark.integration]
RESULTS = Path(__file__).parent / "results"
DB_MB = int(os.environ.get("HAVSH_BENCH_DB_MB", "1024"))
FS_MB = int(os.environ.get("HAVSH_BENCH_FS_MB", "1024"))
TARGET = 1.3
ROUNDS = int(os.environ.get("HAVSH_BENCH_ROUNDS", "2"))
#: Per-run names: another run of this file (a full-suite run elsewhere) must not clean up ours.
RUN = uuid.uuid4().hex[:4]
SLUG, NEW, RAW_DB = f"bkb-bench-{RUN}", f"bkb-new-{RUN}", f"bkb_raw_{RUN}"

RAW_BACKUP = r'''set -e
pg_dump --no-owner "$1" > /out/raw.sql
tar -cf /out/raw.tar -C "/fs/filestore/$1" .
'''
RAW_RESTORE = r'''set -e
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $2"
psql -X -q -v ON_ERROR_STOP=1 -d "$2" -f /out/raw.sql > /dev/null
rm -rf "/fs/filestore/$2" && mkdir -p "/fs/filestore/$2"
tar -xf /out/raw.tar -C "/fs/filestore/$2"
'''
FILL_FILESTORE = r'''set -e
d=/var/lib/odoo/filestore/$1
want=$(( $2 * 1024 * 1024 )); done=0; i=0
while [ $done -lt $want ]; do
  n=$(( (i * 7919) % 1040000 + 8192 ))
  f=$(printf '%040x' $(( i * 2654435761 + 12345 )))
  mkdir -p "$d/$(echo "$f" | cut -c1-2)"
  head -c $n /dev/urandom > "$d/$(echo "$f" | cut -c1-2)/$f"
  done=$(( done + n )); i=$(( i + 1 ))
done
echo "$i files"
'''


def _raw_job(hosts, store, host, script: str, db: str, out_dir: str, volume: str) -> float:
    """Run a raw-tools script in a container of the host's postgres image; wall seconds."""
    client = hosts.session(host).docker()
    started = time.monotonic()
    cid = client.api.create_container(
        postgres_image(client), command=["sh", "-c", script, "sh", db, RAW_DB], entrypoint=[],
        environment=pg_env(store, host.name), user="0:0",
        labels={"sh.hav.managed": "1", "sh.hav.service": SLUG, "sh.hav.role": "bench"},
        host_config=client.api.create_host_config(
            binds={volume: {"bind": "/fs", "mode": "rw"}, out_dir: {"bind": "/out", "mode": "rw"}},
            network_mode="havsh"))["Id"]
    try:
        client.api.start(cid)
        code = client.api.wait(cid, timeout=7200)["StatusCode"]
        assert code == 0, client.api.logs(cid).decode()[-2000:]
        return time.monotonic() - started
    finally:
        client.api.remove_container(cid, force=True)


def _settle() -> None:
    """Before each timed run (not timed): write back what the previous one left dirty. Each
    run writes ~2 GB; unflushed, they pile up past the kernel's dirty limit and the third
    run in a row gets throttled for the first two (whichever tool it is)."""
    os.sync()


def _fill(hosts, host, service) -> dict:
    client = hosts.session(host).docker()
    # Odoo-like rows: about 420 bytes each with the index, in batches.
    psql(client, """
CREATE TABLE bench_payload (id serial PRIMARY KEY, name text, email text, body text,
                            amount numeric(12, 2), created timestamp);
""", database=service.database)
    while True:
        size = int(psql(client, "SELECT pg_database_size(current_database());",
                        database=service.database).strip())
        if size >= DB_MB * 1024 * 1024:
            break
        rows = max(10_000, min(400_000, (DB_MB * 1024 * 1024 - size) // 420))
        psql(client, f"""
INSERT INTO bench_payload (name, email, body, amount, created)
SELECT 'Partner ' || md5(g::text), 'p' || (g % 100000) || '@example.com',
       '<p>Dear ' || md5((g * 7)::text) || ',</p><p>' ||
       repeat('Thank you for your order. ', (g % 5) + 1) || md5((g * 13)::text) ||
       '</p><p>Amount due: ' || (g % 977) || '.00 EUR</p>',
       (g % 100000) / 100.0, now() - (g % 1000) * interval '1 hour'
FROM generate_series(1, {rows}) g;
""", database=service.database)
    ex = client.api.exec_create(f"havsh-{service.name}",
                                ["sh", "-c", FILL_FILESTORE, "sh", service.database, str(FS_MB)])
    out = client.api.exec_start(ex["Id"]).decode()
    assert client.api.exec_inspect(ex["Id"])["ExitCode"] == 0, out
    return {"db_bytes": size, "files": int(out.split()[0])}


def test_backup_and_restore_vs_pg_dump_tar_psql(inventory, secret_store, pool, host_a,  # noqa: F811
                                               cleanup):  # noqa: F811
    cleanup.add(SLUG, *(f"{NEW}{i}" for i in range(ROUNDS)))
    out_dir = f"/tmp/havsh-bench-{uuid.uuid4().hex[:8]}"
    svc = ops.create_service(inventory, secret_store, pool, ops.CreateSpec(
        name=SLUG, host="hosta", type=ServiceType.TEST, odoo_version="17.0",
        image="havsh-test/odoo:17.0")).service
    volume = f"havsh-{svc.name}-data"
    client = pool.session(host_a).docker()
    samples: dict[str, list[float]] = {k: [] for k in (
        "raw_backup_s", "havsh_backup_s", "havsh_backup_warm_s", "havsh_backup_deflate_s",
        "raw_restore_s", "havsh_restore_new_s")}
    try:
        sizes = _fill(pool, host_a, svc)
        results: dict = {"db_mb": DB_MB, "fs_mb": FS_MB, **sizes, "target": TARGET,
                         "rounds": ROUNDS}
        record = deflated = None
        # Alternate raw and havsh, ROUNDS times, and compare medians: the machine is shared.
        for i in range(ROUNDS):
            shutil.rmtree(out_dir, ignore_errors=True)
            Path(out_dir).mkdir(parents=True)
            _settle()
            samples["raw_backup_s"].append(_raw_job(pool, secret_store, host_a, RAW_BACKUP,
                                                    svc.database, out_dir, volume))
            results["raw_bytes"] = sum(p.stat().st_size for p in Path(out_dir).iterdir()
                                       if p.is_file())
            dest = f"host:{out_dir}/havsh"
            # Cold: the first backup to this destination (every file's CRC is computed).
            _settle()
            t0 = time.monotonic()
            record = bk.create_backup(inventory, secret_store, pool, svc, dest=dest)
            samples["havsh_backup_s"].append(time.monotonic() - t0)
            # Warm: the next one, as every scheduled backup after the first (the CRCs of the
            # filestore files it saw are kept beside the backups).
            _settle()
            t0 = time.monotonic()
            bk.create_backup(inventory, secret_store, pool, svc, dest=dest)
            samples["havsh_backup_warm_s"].append(time.monotonic() - t0)
            _settle()
            t0 = time.monotonic()
            deflated = bk.create_backup(inventory, secret_store, pool, svc, dest=dest,
                                        compression="deflate")
            samples["havsh_backup_deflate_s"].append(time.monotonic() - t0)
            _settle()
            samples["raw_restore_s"].append(_raw_job(pool, secret_store, host_a, RAW_RESTORE,
                                                     svc.database, out_dir, volume))
            psql(client, f"DROP DATABASE IF EXISTS {RAW_DB} WITH (FORCE);\n")
            _settle()
            t0 = time.monotonic()
            bk.restore_backup(inventory, secret_store, pool, bk.RestoreSpec(
                backup_id=record.id, new=f"{NEW}{i}", host="hosta", neutralize=False))
            samples["havsh_restore_new_s"].append(time.monotonic() - t0)
            new = inventory.get_service(f"{NEW}{i}", host="hosta")
            ops.delete_service(inventory, secret_store, pool, new)
        results["default_compression"] = record.compression
        results["zip_bytes"] = record.size
        results["zip_deflate_bytes"] = deflated.size
    finally:
        psql(client, f"DROP DATABASE IF EXISTS {RAW_DB} WITH (FORCE);\n")
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.rmtree(Path(bk.DEFAULT_HOST_ROOT) / SLUG, ignore_errors=True)
    for k, v in samples.items():
        results[k] = round(statistics.median(v), 2)
    results["samples"] = {k: [round(x, 2) for x in v] for k, v in samples.items()}
    raw = results["raw_backup_s"]
    results["backup_ratio"] = round(results["havsh_backup_s"] / raw, 2)
    results["backup_warm_ratio"] = round(results["havsh_backup_warm_s"] / raw, 2)
    results["backup_deflate_ratio"] = round(results["havsh_backup_deflate_s"] / raw, 2)
    results["restore_ratio"] = round(results["havsh_restore_new_s"] / results["raw_restore_s"], 2)
    results["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backup_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nbackup/restore of {DB_MB} MB db + {FS_MB} MB filestore ({sizes['files']} files), "
          f"medians of {ROUNDS} alternating rounds:\n"
          f"  backup : raw pg_dump+tar {raw:.1f} s; havsh {results['havsh_backup_s']:.1f} s "
          f"(x{results['backup_ratio']}, first backup), {results['havsh_backup_warm_s']:.1f} s "
          f"(x{results['backup_warm_ratio']}, later ones), dump {results['default_compression']}; "
          f"dump deflated {results['havsh_backup_deflate_s']:.1f} s "
          f"(x{results['backup_deflate_ratio']})\n"
          f"  size   : zip {results['zip_bytes'] / 1e6:.0f} MB, dump deflated "
          f"{results['zip_deflate_bytes'] / 1e6:.0f} MB, raw {results['raw_bytes'] / 1e6:.0f} MB\n"
          f"  restore: raw psql+tar {results['raw_restore_s']:.1f} s, havsh into a new service "
          f"{results['havsh_restore_new_s']:.1f} s (x{results['restore_ratio']})\n"
          f"  target x{TARGET}; load average {results['loadavg']}")
