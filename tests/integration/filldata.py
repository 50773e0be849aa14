"""Fill a service with data the way Odoo stores it, and fingerprint it, for the copy tests.

Everything goes through the product's own path to the host (docker exec and the docker API
over SSH): rows with psql inside havsh-postgres, files with put_archive into the service's
container (small sets) or with a helper container on the service's volume (big sets, made on
the host with /dev/urandom, so gigabytes never cross the SSH connection).

Files follow Odoo's layout: ``/var/lib/odoo/filestore/<db>/<sha1[:2]>/<sha1>``, and each
``ir_attachment.store_fname`` is ``<sha1[:2]>/<sha1>``.
"""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from dataclasses import dataclass

from havsh_tui.core import names
from havsh_tui.ops.bootstrap import psql

DATA_DIR = "/var/lib/odoo"

#: Per-table row count and md5 of the rows' text, ordered by that text: one psql call.
CHECKSUM_SQL = """SELECT format('%I.%I', table_schema, table_name) || '=' || x.c || ' ' || x.h
FROM information_schema.tables,
LATERAL (SELECT
  (xpath('/row/c/text()', q))[1]::text AS c,
  coalesce((xpath('/row/h/text()', q))[1]::text, '-') AS h
  FROM query_to_xml(format(
    'SELECT count(*) AS c, md5(string_agg(t::text, E''\\n'' ORDER BY t::text)) AS h FROM %I.%I t',
    table_schema, table_name), false, true, '') AS q) AS x
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
  AND table_name <> ALL (string_to_array(:'exclude', ','))
ORDER BY 1;
"""

#: ir_cron without the columns the running server's own cron writes on every tick.
CRON_SQL = """SELECT md5(string_agg(concat_ws('|', id, cron_name, active, interval_number,
  interval_type, priority, user_id), E'\\n' ORDER BY id)) FROM ir_cron;"""


@dataclass
class FileSpec:
    sha1: str
    size: int
    data: bytes = b""

    @property
    def store_fname(self) -> str:
        return f"{self.sha1[:2]}/{self.sha1}"


def make_files(count: int, *, big: int = 0, seed: int = 5, max_size: int = 512 * 1024,
               ) -> list[FileSpec]:
    """``count`` files of mixed sizes (log-uniform, 1 byte to ``max_size``), plus one of
    ``big`` bytes when asked. Random bytes, so no two collide and none compresses."""
    rng = random.Random(seed)
    sizes = [int(2 ** rng.uniform(0, max_size.bit_length() - 1)) for _ in range(count)]
    if count >= 3:
        sizes[:3] = [0, 1, max_size]  # the edges: an empty file, one byte, the largest
    if big:
        sizes.append(big)
    out = []
    for size in sizes:
        data = rng.randbytes(size) if size else b""
        out.append(FileSpec(hashlib.sha1(data).hexdigest(), size, data))
    # Odoo deduplicates by checksum: one file per distinct content (the empty one appears once).
    seen: dict[str, FileSpec] = {}
    for f in out:
        seen.setdefault(f.sha1, f)
    return list(seen.values())


def volume_owner(client, container: str) -> tuple[int, int]:
    """uid and gid of /var/lib/odoo in the service's container (the image's odoo user)."""
    stream, _ = client.api.get_archive(container, DATA_DIR)
    head = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(head)) as tar:
        info = tar.next()
        assert info is not None
        return info.uid, info.gid


def put_files(client, container: str, database: str, files: list[FileSpec]) -> None:
    """Write the files into the container's filestore with the docker API's put_archive."""
    uid, gid = volume_owner(client, container)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = {"filestore", f"filestore/{database}"} | {
            f"filestore/{database}/{f.sha1[:2]}" for f in files}
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
            tar.addfile(info)
        for f in files:
            info = tarfile.TarInfo(f"filestore/{database}/{f.store_fname}")
            info.size, info.mode, info.uid, info.gid = f.size, 0o644, uid, gid
            tar.addfile(info, io.BytesIO(f.data))
    data = buf.getvalue()
    # In pieces: one big body through paramiko's Channel.sendall is quadratic in its size.
    pieces = (data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20))
    assert client.api.put_archive(container, DATA_DIR, pieces)


_GEN_SCRIPT = r"""set -e
d="/data/filestore/$1"; n="$2"; size="$3"
mkdir -p "$d/tmp"
i=0
while [ "$i" -lt "$n" ]; do
  head -c "$size" /dev/urandom > "$d/tmp/f"
  s=$(sha1sum "$d/tmp/f" | cut -c1-40)
  mkdir -p "$d/$(echo "$s" | cut -c1-2)"
  mv "$d/tmp/f" "$d/$(echo "$s" | cut -c1-2)/$s"
  echo "$s $size"
  i=$((i + 1))
done
rmdir "$d/tmp"
chown -R "$(stat -c %u:%g /data)" /data/filestore
"""


def generate_files(client, image: str, slug: str, database: str, count: int, size: int,
                   ) -> list[FileSpec]:
    """Make ``count`` random files of ``size`` bytes on the host, in a helper container on
    the service's volume; returns their specs (without data)."""
    cid = client.api.create_container(
        image, command=["sh", "-c", _GEN_SCRIPT, "sh", database, str(count), str(size)],
        entrypoint=[], user="0:0",
        labels={names.LABEL_MANAGED: "1", names.LABEL_SERVICE: slug,
                names.LABEL_ROLE: "test-fill"},
        host_config=client.api.create_host_config(
            binds={names.volume_name(slug): {"bind": "/data", "mode": "rw"}},
            network_mode="none"),
    )["Id"]
    try:
        client.api.start(cid)
        code = client.api.wait(cid, timeout=3600)["StatusCode"]
        out = client.api.logs(cid, stdout=True, stderr=True).decode()
        assert code == 0, out
    finally:
        client.api.remove_container(cid, force=True)
    specs = []
    for line in out.splitlines():
        sha1, n = line.split()
        specs.append(FileSpec(sha1, int(n)))
    return specs


def fill_rows(client, database: str, *, partners: int = 3000) -> None:
    """Partners with realistic columns (companies, contacts under them)."""
    psql(client, """
INSERT INTO res_partner (name, complete_name, email, phone, street, city, zip, is_company,
                         active, type, lang, create_uid, create_date, write_uid, write_date)
SELECT 'Partner ' || g, 'Partner ' || g, 'p' || g || '@example.com', '+32 2 ' || g,
       g || ' Rue de la Loi', 'Brussels', lpad((1000 + g % 8999)::text, 4, '0'), g % 10 = 0,
       g % 97 <> 0, 'contact', 'en_US', 2, now() at time zone 'UTC', 2,
       now() at time zone 'UTC'
FROM generate_series(1, :'n'::int) AS g;
UPDATE res_partner c SET parent_id = p.id FROM res_partner p
 WHERE c.name LIKE 'Partner %'
   AND p.name = 'Partner ' || ((split_part(c.name, ' ', 2)::int / 10) * 10)
   AND NOT c.is_company AND p.is_company;
""", database=database, variables={"n": str(partners)})


def add_attachments(client, database: str, files: list[FileSpec], *, dangling: int = 2,
                    url_rows: int = 20) -> None:
    """One ir_attachment row per file (two for every fifth: Odoo shares a file between rows
    with the same content), ``dangling`` rows whose file is missing, and url attachments."""
    rows = []
    for i, f in enumerate(files):
        for k in range(2 if i % 5 == 0 else 1):
            rows.append(f"{f.sha1} {f.size} doc-{i}-{k}.bin")
    for i in range(dangling):
        sha1 = hashlib.sha1(f"missing-{i}".encode()).hexdigest()
        rows.append(f"{sha1} 10 missing-{i}.bin")
    data = ";".join(rows)  # psql's \set is line-based: no newline in a variable
    psql(client, """
CREATE TEMP TABLE _att (line text);
INSERT INTO _att SELECT unnest(string_to_array(:'rows', ';'));
INSERT INTO ir_attachment (name, res_model, res_id, type, store_fname, file_size, checksum,
                           mimetype, create_uid, create_date, write_uid, write_date)
SELECT split_part(line, ' ', 3), 'res.partner', 3, 'binary',
       substr(split_part(line, ' ', 1), 1, 2) || '/' || split_part(line, ' ', 1),
       split_part(line, ' ', 2)::int, split_part(line, ' ', 1), 'application/octet-stream',
       2, now() at time zone 'UTC', 2, now() at time zone 'UTC'
FROM _att;
INSERT INTO ir_attachment (name, res_model, res_id, type, url, create_uid, create_date)
SELECT 'link ' || g, 'res.partner', 3, 'url', 'https://example.com/' || g, 2,
       now() at time zone 'UTC' FROM generate_series(1, :'urls'::int) AS g;
""", database=database, variables={"rows": data, "urls": str(url_rows)})


def ensure_mail_server(client, database: str) -> None:
    """An active, real (not the neutralization dummy) mail server, so the cron sends."""
    psql(client, """
INSERT INTO ir_mail_server (name, smtp_host, smtp_port, active, sequence)
SELECT 'Outgoing', 'smtp.example.com', 25, true, 10
WHERE NOT EXISTS (SELECT 1 FROM ir_mail_server WHERE active AND smtp_host <> 'invalid');
""", database=database)


def fill_big_table(client, database: str, megabytes: int) -> None:
    """A table of about ``megabytes`` MB of text rows (1 kB each: eight random md5s, each
    four times, so pg_dump's zlib shrinks it about 5:1 as it does real rows), in batches of
    64 MB so that no statement runs for minutes."""
    psql(client, """
CREATE TABLE IF NOT EXISTS bench_payload (id bigserial PRIMARY KEY, ref integer, body text);
""", database=database)
    rows_per_mb = 900  # a row is about 1.1 kB on disk, with its header and index entry
    left = megabytes
    while left > 0:
        n = min(left, 64)
        psql(client, """
INSERT INTO bench_payload (ref, body)
SELECT g % 1000, (SELECT string_agg(repeat(md5(random()::text || g || k), 4), '')
                  FROM generate_series(1, 8) k)
FROM generate_series(1, :'rows'::int) AS g;
""", database=database, variables={"rows": str(n * rows_per_mb)})
        left -= n
    psql(client, "ANALYZE bench_payload;\n", database=database)


# -- fingerprints ------------------------------------------------------------------------------
def table_checksums(client, database: str, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """``schema.table`` → ``"<rows> <md5>"`` for every base table but the excluded ones."""
    out = psql(client, CHECKSUM_SQL, database=database,
               variables={"exclude": ",".join(exclude)})
    result = {}
    for line in out.splitlines():
        if "=" in line:
            k, _, v = line.rpartition("=")
            result[k] = v
    return result


def row_counts(client, database: str) -> dict[str, int]:
    return {k: int(v.split()[0]) for k, v in table_checksums(client, database).items()}


def cron_checksum(client, database: str) -> str:
    return psql(client, CRON_SQL, database=database).strip()


def scalar(client, database: str, query: str, variables: dict[str, str] | None = None) -> str:
    return psql(client, query, database=database, variables=variables).strip()


def config_parameters(client, database: str) -> dict[str, str]:
    out = psql(client, "SELECT key || '=' || coalesce(value, '') FROM ir_config_parameter;\n",
               database=database)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


_SHA_SCRIPT = r"""set -e
d="/data/filestore/$1"
[ -d "$d" ] || exit 0
cd "$d"
find . -type f -print0 | xargs -0 -r sha256sum
"""
_SIZE_SCRIPT = r"""set -e
d="/data/filestore/$1"
[ -d "$d" ] || exit 0
cd "$d"
find . -type f -printf '%s  %p\n'
"""


def _read_volume(client, image: str, slug: str, script: str, database: str) -> str:
    """Run a script in a read-only helper container on a service's volume (the service's
    own container may be stopped); returns its stdout."""
    cid = client.api.create_container(
        image, command=["sh", "-c", script, "sh", database], entrypoint=[], user="0:0",
        labels={names.LABEL_MANAGED: "1", names.LABEL_SERVICE: slug,
                names.LABEL_ROLE: "test-read"},
        host_config=client.api.create_host_config(
            binds={names.volume_name(slug): {"bind": "/data", "mode": "ro"}},
            network_mode="none"),
    )["Id"]
    try:
        client.api.start(cid)
        code = client.api.wait(cid, timeout=600)["StatusCode"]
        out = client.api.logs(cid, stdout=True, stderr=False).decode()
        err = client.api.logs(cid, stdout=False, stderr=True).decode()
        assert code == 0, err
    finally:
        client.api.remove_container(cid, force=True)
    return out


def _pairs(out: str) -> dict[str, str]:
    result = {}
    for line in out.splitlines():
        value, _, path = line.partition("  ")
        result[path.removeprefix("./")] = value
    return result


def filestore_sha256(client, image: str, slug: str, database: str) -> dict[str, str]:
    """``store_fname`` → sha256 of every file in a service's filestore."""
    return _pairs(_read_volume(client, image, slug, _SHA_SCRIPT, database))


def filestore_sizes(client, image: str, slug: str, database: str) -> dict[str, int]:
    """``store_fname`` → size of every file in a service's filestore."""
    return {k: int(v) for k, v in _pairs(
        _read_volume(client, image, slug, _SIZE_SCRIPT, database)).items()}


def resolving_attachments(client, database: str, files: dict[str, str]) -> int:
    """How many ir_attachment rows point at a file that exists in the filestore."""
    out = psql(client, "SELECT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL;\n",
               database=database)
    return sum(1 for line in out.splitlines() if line.strip() in files)
