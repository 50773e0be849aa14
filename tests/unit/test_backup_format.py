"""The backup zip format, written and read by scripts/lib.sh, checked against Python's zipfile
(what Odoo's database manager uses), tarfile and GNU tar; the CRC arithmetic; cron; the
model. The scripts run here with this machine's sh and coreutils (as on the hosts)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import tarfile
import zipfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from havsh_tui.ops.backup import model
from havsh_tui.ops.backup.model import (
    BackupError,
    BackupPolicy,
    BackupRecord,
    DestinationConfig,
    DestinationSpec,
    cron_for,
    cron_matches,
    normalize_cron,
    parse_backup_id,
)

SCRIPTS = Path(model.__file__).parent / "scripts"
LIB = SCRIPTS / "lib.sh"
TOOLS = ("sh", "gzip", "tr", "cksum", "od", "dd", "head", "tail", "awk", "find", "sort", "tar")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs a POSIX sh with gzip, coreutils, findutils, awk and tar (as on the hosts)",
)

P = 0x04C11DB7
M32 = 0xFFFFFFFF
HAVE_PERL_ZLIB = shutil.which("perl") is not None and subprocess.run(
    ["perl", "-MCompress::Raw::Zlib", "-e", "1"], capture_output=True).returncode == 0


@pytest.fixture(autouse=True, params=["perl", "cksum"])
def crc_route(request, monkeypatch):
    """Every test both ways: CRCs from perl's zlib (Debian's postgres images have it) and
    from the cksum arithmetic (images without perl)."""
    if request.param == "perl" and not HAVE_PERL_ZLIB:
        pytest.skip("no perl with Compress::Raw::Zlib here")
    monkeypatch.setenv("HV_PERL", "1" if request.param == "perl" else "0")
    return request.param


def sh(script: str, *args: str, env: dict | None = None, cwd: Path | None = None) -> str:
    full = f'. "{LIB}"\n{script}'
    r = subprocess.run(["sh", "-c", full, "sh", *args], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


# -- the CRC arithmetic -----------------------------------------------------------------------
def _mulmod(a: int, b: int) -> int:
    r = 0
    for i in range(31, -1, -1):
        r = ((r << 1) & M32) ^ (P if r & 0x80000000 else 0)
        if (b >> i) & 1:
            r ^= a
    return r


def _xpow8(n: int) -> int:
    r, base = 1, 1 << 8
    while n:
        if n & 1:
            r = _mulmod(r, base)
        base = _mulmod(base, base)
        n >>= 1
    return r


def _bitrev(v: int, bits: int) -> int:
    return int(f"{v:0{bits}b}"[::-1], 2)


def _reg(data: bytes) -> int:
    r = 0
    for b in data:
        r ^= b << 24
        for _ in range(8):
            r = ((r << 1) & M32) ^ (P if r & 0x80000000 else 0)
    return r


def _crc_from_cksum(c: int, n: int) -> int:
    """The reference of hv_crc_from_cksum (checked against zlib below)."""
    length = []
    m = n
    while m:
        length.append(m & 0xFF)
        m >>= 8
    rd = _mulmod((c ^ M32) ^ _reg(bytes(length)), _xpow8(2**32 - 1 - len(length)))
    return _bitrev(_mulmod(M32, _xpow8(n)) ^ rd, 32) ^ M32


def _posix_cksum(data: bytes) -> int:
    length = []
    m = len(data)
    while m:
        length.append(m & 0xFF)
        m >>= 8
    return _reg(data + bytes(length)) ^ M32


def test_the_generated_constants_in_lib_sh():
    text = LIB.read_text()
    values = dict(re.findall(r"\b(HV_(?:INV\d|N\d_\d+))=(\d+)", text))
    for L in range(9):
        assert int(values[f"HV_INV{L}"]) == _xpow8(2**32 - 1 - L)
        assert _mulmod(int(values[f"HV_INV{L}"]), _xpow8(L)) == 1
    for j in range(8):
        for v in range(1, 16):
            assert int(values[f"HV_N{j}_{v}"]) == _xpow8(v * 16**j), (j, v)
    bitrev = re.search(r"HV_BITREV='([^']*)'", text).group(1)
    octets = [int(x, 8) for x in bitrev.split("\\")[1:]]
    assert octets == [_bitrev(b, 8) for b in range(256)]
    # The period that lets lib.sh reduce sizes modulo 2^32 - 1:
    assert _xpow8(2**32 - 1) == 1


def test_zip_crc_from_cksum_of_bit_reversed_bytes(tmp_path):
    rng = random.Random(7)
    sizes = [0, 1, 2, 3, 7, 255, 256, 257, 4095, 65536, 100_003, (1 << 20) + 17]
    for n in sizes:
        (tmp_path / f"f{n}").write_bytes(rng.randbytes(n))
    out = sh('for f in "$@"; do hv_crc_file "$f"; echo "$HV_CRC $HV_SIZE"; done',
             *[str(tmp_path / f"f{n}") for n in sizes])
    for n, line in zip(sizes, out.splitlines(), strict=True):
        crc, size = map(int, line.split())
        data = (tmp_path / f"f{n}").read_bytes()
        assert (crc, size) == (zlib.crc32(data), n), n
        assert _crc_from_cksum(_posix_cksum(data.translate(bytes(
            _bitrev(b, 8) for b in range(256)))), n) == zlib.crc32(data)


def test_the_crc_arithmetic_holds_for_sizes_beyond_4_gib():
    # cksum of so much data cannot run here: the sh arithmetic is compared with the
    # reference (itself checked against zlib above) for large sizes and random cksums.
    rng = random.Random(3)
    cases = [(rng.getrandbits(32), n) for n in
             (2**32 - 2, 2**32 - 1, 2**32, 2**32 + 5, 5 * 2**32 + 12345, 2**40 + 1, 2**47 - 3)]
    out = sh('while [ $# -gt 0 ]; do hv_crc_from_cksum "$1" "$2"; echo "$HV_CRC"; shift 2; done',
             *[str(x) for c in cases for x in c])
    assert [int(x) for x in out.split()] == [_crc_from_cksum(c, n) for c, n in cases]


# -- writing ----------------------------------------------------------------------------------
def _filestore(root: Path, sizes: list[int], seed: int = 1) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {}
    for i, n in enumerate(sizes):
        data = rng.randbytes(n)
        sha = hashlib.sha1(data + i.to_bytes(4, "big")).hexdigest()
        rel = f"{sha[:2]}/{sha}"
        (root / sha[:2]).mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        files[rel] = data
    return files


WRITE = '''
zip_begin "$1" "$2"
zip_add_stream dump.sql "$3" cat "$4"
zip_add_filestore "$5" "${6:-}"
cp "$2/crc.new" "$2/../crc.cache"
printf '{"odoo_dump": "1", "db_name": "d", "havsh": {"filestore_tar": %s}}' \\
  "{\\"offset\\": $HV_T0, \\"length\\": $HV_TLEN, \\"files\\": $HV_TFILES}" > "$2/manifest.json"
zip_add_file manifest.json "$2/manifest.json"
zip_finish
'''


LAST_STDERR: list[str] = []


def _write(tmp_path: Path, files_sizes: list[int], compression: str = "deflate",
           env: dict | None = None, seed: int = 1,
           cache: Path | None = None) -> tuple[Path, bytes, dict[str, bytes]]:
    fs = tmp_path / "fs"
    files = _filestore(fs, files_sizes, seed) if not fs.exists() else {
        str(p.relative_to(fs)): p.read_bytes() for p in fs.rglob("*") if p.is_file()}
    dump = "".join(f"INSERT INTO t VALUES ({i}, 'row {i}', {i * 7 % 13});\n"
                   for i in range(30_000)).encode()
    (tmp_path / "dump.sql").write_bytes(dump)
    work = tmp_path / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    out = tmp_path / "out.zip"
    r = subprocess.run(["sh", "-c", f'. "{LIB}"\n{WRITE}', "sh", str(out), str(work),
                        compression, str(tmp_path / "dump.sql"), str(fs),
                        str(cache) if cache else ""], check=True,
                       capture_output=True, text=True, env={**os.environ, **(env or {})},
                       timeout=300)
    LAST_STDERR[:] = [r.stderr]
    return out, dump, files


#: Sizes around the tar block boundaries, so that both placements of the ustar headers occur
#: (inside the padding, and after a size-0 pax header when the padding is too short).
SIZES = [0, 1, 100, 400, 430, 440, 450, 511, 512, 513, 1000, 1023, 1024, 4000, 70_000,
         300_000] + list(range(20, 9000, 613))


def _odoo_restore_members(z: zipfile.ZipFile) -> list[str]:
    """What odoo/service/db.py restore_db extracts: dump.sql and the filestore only."""
    return ["dump.sql"] + [m for m in z.namelist() if m.startswith("filestore/")]


@pytest.mark.parametrize("compression", ["deflate", "store"])
def test_the_zip_reads_like_odoos_own(tmp_path, compression):
    out, dump, files = _write(tmp_path, SIZES, compression)
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None
        names = z.namelist()
        # Odoo's layout and order: dump.sql, the filestore, manifest.json; no directories.
        assert names[0] == "dump.sql" and names[-1] == "manifest.json"
        assert sorted(names[1:-1]) == sorted(f"filestore/{r}" for r in files)
        assert not any(n.endswith("/") for n in names)
        info = z.getinfo("dump.sql")
        assert info.compress_type == (zipfile.ZIP_DEFLATED if compression == "deflate"
                                      else zipfile.ZIP_STORED)
        assert z.read("dump.sql") == dump
        for rel, data in files.items():
            i = z.getinfo(f"filestore/{rel}")
            assert i.compress_type == zipfile.ZIP_STORED and z.read(i) == data
            assert (i.external_attr >> 16) == 0o100644
        # Odoo's restore: extract the known members, psql -f dump.sql, move the filestore.
        target = tmp_path / "odoo"
        z.extractall(target, _odoo_restore_members(z))
    assert (target / "dump.sql").read_bytes() == dump
    got = {str(p.relative_to(target / "filestore")): p.read_bytes()
           for p in (target / "filestore").rglob("*") if p.is_file()}
    assert got == files


def test_max_compression_is_level_9_and_reads_the_same(tmp_path):
    sizes = {}
    for level in ("1", "9"):
        work = tmp_path / level
        work.mkdir()
        out, dump, _ = _write(work, SIZES[:3], env={"HV_LEVEL": level})
        with zipfile.ZipFile(out) as z:
            assert z.testzip() is None and z.read("dump.sql") == dump
            sizes[level] = z.getinfo("dump.sql").compress_size
    assert sizes["9"] < sizes["1"]


def _tar_region(out: Path) -> tuple[bytes, dict]:
    with zipfile.ZipFile(out) as z:
        meta = json.loads(z.read("manifest.json"))["havsh"]["filestore_tar"]
    data = out.read_bytes()[meta["offset"]: meta["offset"] + meta["length"]]
    return data + b"\0" * ((512 - len(data) % 512) % 512 + 1024), meta


def test_the_filestore_is_also_a_tar_stream(tmp_path):
    out, _, files = _write(tmp_path, SIZES)
    region, meta = _tar_region(out)
    assert meta["files"] == len(files)
    with tarfile.open(fileobj=io.BytesIO(region)) as t:
        members = t.getmembers()
        assert sorted(m.name for m in members) == sorted(files)
        assert all(m.isfile() and m.mode == 0o644 for m in members)
        for m in members:
            assert t.extractfile(m).read() == files[m.name]
    # Both placements of the headers were exercised: some size-0 pax headers exist.
    types = [region[i + 156: i + 157] for i in range(0, len(region) - 1024, 512)
             if region[i + 257: i + 262] == b"ustar"]
    assert b"x" in types and b"0" in types
    # GNU tar (what the hosts run) extracts the same files.
    dest = tmp_path / "untar"
    dest.mkdir()
    subprocess.run(["tar", "-x", "-C", str(dest), "--no-same-owner"], input=region, check=True)
    got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == files


def test_zip64_fields_where_sizes_need_them(tmp_path):
    # Lower the thresholds so that zip64 is used for ordinary sizes (the same code paths).
    out, dump, files = _write(tmp_path, [10, 2000, 5000, 700, 3], env={"HV_Z64": "1000",
                                                                        "HV_Z64N": "3"})
    raw = out.read_bytes()
    assert b"PK\x06\x06" in raw and b"PK\x06\x07" in raw  # zip64 end record and locator
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None
        assert z.read("dump.sql") == dump
        for rel, data in files.items():
            assert z.read(f"filestore/{rel}") == data
        assert z.getinfo("filestore/" + next(r for r, d in files.items() if len(d) == 5000)
                         ).file_size == 5000
    with zipfile.ZipFile(out) as z:
        assert "filestore_tar" in json.loads(z.read("manifest.json"))["havsh"]


def test_small_batches_and_no_tar_view_for_long_names(tmp_path):
    out, _, files = _write(tmp_path, SIZES[:12], env={"HV_BATCH": "3"})
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None
    long = tmp_path / "long"
    (long / "fs" / "deep" / ("x" * 60)).mkdir(parents=True)
    (long / "fs" / "deep" / ("x" * 60) / "f").write_bytes(b"data")
    (long / "work").mkdir()
    (long / "dump.sql").write_bytes(b"SELECT 1;\n")
    subprocess.run(["sh", "-c", f'. "{LIB}"\n{WRITE}', "sh", str(long / "o.zip"),
                    str(long / "work"), "deflate", str(long / "dump.sql"), str(long / "fs")],
                   check=True, capture_output=True)
    with zipfile.ZipFile(long / "o.zip") as z:
        assert z.read("filestore/deep/" + "x" * 60 + "/f") == b"data"
        assert json.loads(z.read("manifest.json"))["havsh"]["filestore_tar"]["offset"] == -1


def _shim(tmp_path: Path, action: str) -> dict:
    """A `cat` first on PATH that changes the filestore once, just before the batch copy."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real = shutil.which("cat")
    (bindir / "cat").write_text(f"""#!/bin/sh
for a in "$@"; do
  case $a in */fs/*)
    if [ ! -e "{tmp_path}/shim.done" ]; then
      : > "{tmp_path}/shim.done"
      {action}
    fi;;
  esac
done
exec {real} "$@"
""")
    (bindir / "cat").chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}


def test_a_file_that_grows_or_vanishes_while_read(tmp_path):
    """Between its CRC and its copy, a file grows (an upload being written) or goes (Odoo's
    garbage collector): the batch is written again, file by file, and the zip stays right."""
    for case, action in (("grow", "printf more >> \"$victim\""), ("gone", "rm -f \"$victim\"")):
        work = tmp_path / case
        work.mkdir()
        victim = f'victim=$(ls "{work}"/fs/*/* | head -n 1); '
        out, _, files = _write(work, SIZES[:10], env=_shim(work, victim + action))
        assert "writing this batch again" in LAST_STDERR[0]
        with zipfile.ZipFile(out) as z:
            assert z.testzip() is None
            stored = [n for n in z.namelist() if n.startswith("filestore/")]
        assert len(stored) == (len(files) if case == "grow" else len(files) - 1)
        region, meta = _tar_region(out)
        with tarfile.open(fileobj=io.BytesIO(region)) as t:
            assert sorted(f"filestore/{m.name}" for m in t.getmembers()) == sorted(stored)


def test_the_crc_cache_is_used_only_for_the_same_path_size_and_mtime(tmp_path):
    out, _, files = _write(tmp_path, SIZES[:12])
    cache = tmp_path / "crc.cache"
    lines = cache.read_text().splitlines()
    assert len(lines) == len(files)
    for line in lines:
        rel, size, mtime, crc = line.split()
        assert int(size) == len(files[rel]) and int(crc) == zlib.crc32(files[rel])
    # A cache that lies about one file (same path, size and mtime): the lie is used, which
    # shows the file was not read again; Python's zipfile then catches the bad CRC.
    rel, size, mtime, crc = lines[3].split()
    poisoned = tmp_path / "poisoned.cache"
    poisoned.write_text("\n".join(lines[:3] + [f"{rel} {size} {mtime} {int(crc) ^ 1}"]
                                  + lines[4:]) + "\n")
    out, _, _ = _write(tmp_path, [], cache=poisoned)
    with zipfile.ZipFile(out) as z:
        assert z.testzip() == f"filestore/{rel}"
    # Touched since (a new mtime): read again, right.
    os.utime(tmp_path / "fs" / rel)
    out, _, _ = _write(tmp_path, [], cache=poisoned)
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None and z.read(f"filestore/{rel}") == files[rel]


# -- reading ----------------------------------------------------------------------------------
class _Unseekable(io.RawIOBase):
    def __init__(self, fh):
        self.fh = fh

    def writable(self):
        return True

    def write(self, b):
        return self.fh.write(b)

    def seekable(self):
        return False


READ = '''
zip_index "$1" > "$2/index"
while read -r m f c cs us off name; do
  case $name in '?') echo "UNSAFE" >> "$2/unsafe"; continue;; esac
  mkdir -p "$2/out/$(dirname "$name")"
  zip_cat "$1" "$m" "$f" "$c" "$cs" "$us" "$off" > "$2/out/$name"
done < "$2/index"
'''


@pytest.mark.parametrize("how", ["deflated", "stored", "zip64", "streamed", "comment"])
def test_the_reader_on_zips_made_by_python(tmp_path, how):
    rng = random.Random(5)
    members = {"dump.sql": b"SELECT 1;\n" * 5000, "manifest.json": b"{}",
               **{f"filestore/{i:02x}/{i:040x}": rng.randbytes(rng.randrange(0, 30000))
                  for i in range(25)}}
    path = tmp_path / "py.zip"
    method = zipfile.ZIP_STORED if how == "stored" else zipfile.ZIP_DEFLATED
    with open(path, "wb") as fh:
        target = _Unseekable(fh) if how == "streamed" else fh
        with zipfile.ZipFile(target, "w", compression=method, allowZip64=True) as z:
            for name, data in members.items():
                with z.open(name, "w", force_zip64=(how == "zip64")) as w:
                    w.write(data)
            if how == "comment":
                z.comment = b"made elsewhere"
    work = tmp_path / "w"
    work.mkdir()
    subprocess.run(["sh", "-c", f'. "{LIB}"\n{READ}', "sh", str(path), str(work)], check=True,
                   capture_output=True)
    for name, data in members.items():
        assert (work / "out" / name).read_bytes() == data, name


def test_the_reader_refuses_damage_and_hides_unsafe_names(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("dump.sql", b"SELECT 1;\n" * 1000)
        z.writestr("../../etc/evil", b"x")
        z.writestr("filestore/ab/ok", b"fine")
    work = tmp_path / "w"
    work.mkdir()
    subprocess.run(["sh", "-c", f'. "{LIB}"\n{READ}', "sh", str(path), str(work)], check=True,
                   capture_output=True)
    assert (work / "unsafe").read_text().count("UNSAFE") == 1
    assert not (tmp_path / "etc").exists()
    # A flipped byte in the deflate data: gzip's CRC check fails the read.
    raw = bytearray(path.read_bytes())
    raw[60] ^= 0x55
    path.write_bytes(bytes(raw))
    r = subprocess.run(["sh", "-c", f'. "{LIB}"\n{READ}', "sh", str(path), str(work)],
                       capture_output=True, text=True)
    assert r.returncode != 0 or "crc" in r.stderr.lower() or "invalid" in r.stderr.lower()
    # Not a zip at all.
    (tmp_path / "no.zip").write_bytes(b"hello" * 10)
    r = subprocess.run(["sh", "-c", f'. "{LIB}"\nzip_index "$1"', "sh", str(tmp_path / "no.zip")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "not a zip file" in r.stderr


# -- store.sh and backup.sh without a database --------------------------------------------------
def test_store_receives_only_what_matches_its_sha256(tmp_path):
    data = random.Random(1).randbytes(50_000)
    sha = hashlib.sha256(data).hexdigest()
    sid = "erp_20261203T120000Z_manual_abc123"
    side = json.dumps({"havsh_backup": 1, "id": sid})

    def store(*args, stdin=b""):
        return subprocess.run(["sh", str(SCRIPTS / "store.sh"), *args], input=stdin,
                              capture_output=True, env={**os.environ, "HAVSH_SIDECAR": side})

    bad = store("receive", str(tmp_path), "erp", sid, "0" * 64, stdin=data)
    assert bad.returncode != 0 and b"arrived damaged" in bad.stderr
    assert not list(tmp_path.rglob("*.zip")) and not list(tmp_path.rglob("*.partial"))
    ok = store("receive", str(tmp_path), "erp", sid, sha, stdin=data)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "erp" / f"{sid}.zip").read_bytes() == data
    listing = store("list", str(tmp_path)).stdout.decode()
    assert listing.strip() == f"{side} @erp/{sid}.json"
    assert store("delete", str(tmp_path), "erp", sid).returncode == 0
    assert store("list", str(tmp_path)).stdout == b""
    assert store("cat", str(tmp_path), "../x", sid).returncode != 0


@pytest.mark.parametrize("bad", [
    ["dir", "/o", "Bad", "db", "17.0", "manual", "zip", "deflate", "/fs", "0", "h", "test"],
    ["dir", "/o", "erp", "db;x", "17.0", "manual", "zip", "deflate", "/fs", "0", "h", "test"],
    ["dir", "/o", "erp", "db", "17.0", "daily", "zip", "deflate", "/fs", "0", "h", "test"],
    ["dir", "/o", "erp", "db", "17.0", "manual", "tar", "deflate", "/fs", "0", "h", "test"],
    ["dir", "/o", "erp", "db", "17.0", "manual", "zip", "deflate", "/fs", "x", "h", "test"],
])
def test_backup_sh_checks_its_arguments_first(bad):
    r = subprocess.run(["sh", str(SCRIPTS / "backup.sh"), *bad], capture_output=True, text=True)
    assert r.returncode != 0 and "ERROR: bad" in r.stderr


@pytest.mark.parametrize("compression", ["store", "deflate", "max"])
def test_backup_sh_end_to_end_with_a_fake_postgres(tmp_path, compression):
    """backup.sh whole, with psql and pg_dump faked: the zip reads like Odoo's, and the
    sha256 taken on the way (filestore part during the dump, then the rest) is the file's."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "psql").write_text("""#!/bin/sh
in=$(cat)
case $in in *pg_database*) echo 1;;
  *) echo '{"odoo_dump" : "1", "db_name" : "d", "version" : "17.0", "pg_version" : "15.0"}';;
esac
""")
    (bindir / "pg_dump").write_text("#!/bin/sh\nawk 'BEGIN { for (i = 0; i < 50000; i++) "
                                    "printf \"INSERT %d row %d;\\n\", i, i * 7 }'\n")
    for f in bindir.iterdir():
        f.chmod(0o755)
    files = _filestore(tmp_path / "fs", SIZES[:8])
    out = tmp_path / "out"
    r = subprocess.run(["sh", str(SCRIPTS / "backup.sh"), "dir", str(out), "erp", "d", "17.0",
                        "manual", "zip", compression, str(tmp_path / "fs"), "0", "h", "test"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    assert "reading the zip again" not in r.stderr
    result = json.loads(r.stdout.splitlines()[-1].removeprefix("RESULT "))
    path = out / "erp" / result["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == result["sha256"]
    assert result["compression"] == compression
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert z.getinfo("dump.sql").compress_type == (
            zipfile.ZIP_STORED if compression == "store" else zipfile.ZIP_DEFLATED)
        assert z.read("dump.sql").count(b"\n") == 50000
        assert {n for n in z.namelist() if n.startswith("filestore/")} == {
            f"filestore/{rel}" for rel in files}


# -- cron ---------------------------------------------------------------------------------------
def test_the_schedulers_awk_and_python_agree():
    rng = random.Random(11)
    exprs = ["* * * * *", "*/15 * * * *", "0 2 * * *", "5 3 * * 0", "5 3 * * 7", "0 4 1 * *",
             "30 */6 1-15 * 1-5", "0 0 13 * 5", "1,2,3 4-6/2 * 2,8 *", "10-50/20 1 * * *",
             "0 12 * jan,jul mon", "@hourly", "@weekly", "7/10 * * * *"]
    exprs = [normalize_cron(e) for e in exprs]
    start = datetime(2026, 12, 3, tzinfo=UTC)
    times = [start + timedelta(minutes=rng.randrange(0, 60 * 24 * 400)) for _ in range(400)]
    schedule = "\n".join(f"{e} job{i}" for i, e in enumerate(exprs)) + "\n"
    script = 'printf "%s" "$1" > /tmp/.havsh-cron-$$; shift\n' \
             'while [ $# -gt 0 ]; do echo "T $1 $2 $3 $4 $5"\n' \
             '  awk -v mi="$1" -v ho="$2" -v dm="$3" -v mo="$4" -v dw="$5" "$HV_CRON_AWK" ' \
             '/tmp/.havsh-cron-$$; shift 5; done; rm -f /tmp/.havsh-cron-$$'
    args = [schedule]
    for t in times:
        args += [str(t.minute), str(t.hour), str(t.day), str(t.month), str((t.weekday() + 1) % 7)]
    out = sh(script, *args)
    got: dict[int, set[str]] = {}
    block = -1
    for line in out.splitlines():
        if line.startswith("T "):
            block += 1
            got[block] = set()
        else:
            got[block].add(line.strip())
    for i, t in enumerate(times):
        want = {f"job{j}" for j, e in enumerate(exprs) if cron_matches(e, t)}
        assert got[i] == want, (t, got[i], want)


def test_cron_expressions_are_checked_and_normalized():
    assert normalize_cron("@daily") == "0 0 * * *"
    assert normalize_cron(" 0 12 * JAN,Jul Mon-Fri ") == "0 12 * 1,7 1-5"
    for bad, what in [("* * * *", "5 fields"), ("61 * * * *", "minute 61"),
                      ("* 24 * * *", "hour 24"), ("* * 0 * *", "day of month 0"),
                      ("* * * 13 *", "month 13"), ("* * * * 8", "day of week 8"),
                      ("5-2 * * * *", "reversed"), ("*/0 * * * *", "step"),
                      ("x * * * *", "bad minute")]:
        with pytest.raises(BackupError, match=what):
            normalize_cron(bad)
    assert cron_for("daily", "erp").split()[1:] == ["2", "*", "*", "*"]
    assert cron_for("hourly", "erp").split()[1:] == ["*", "*", "*", "*"]
    assert cron_for("weekly", "erp").endswith(" 3 * * 0")
    assert cron_for("monthly", "erp").endswith(" 4 1 * *")
    assert cron_for("none", "erp") is None
    # The minute comes from the name: stable for one service, spread over many.
    assert cron_for("daily", "erp") == cron_for("daily", "erp")
    assert len({cron_for("daily", f"svc-{i}").split()[0] for i in range(40)}) > 10
    with pytest.raises(BackupError):
        cron_for("yearly", "erp")


# -- the model ----------------------------------------------------------------------------------
def test_destination_specs():
    assert DestinationSpec.parse("host") == DestinationSpec("host", model.DEFAULT_HOST_ROOT)
    assert str(DestinationSpec.parse("host")) == "host"
    assert DestinationSpec.parse("host:/srv/backups/") == DestinationSpec("host", "/srv/backups")
    local = DestinationSpec.parse("local:rel/dir")
    assert local.kind == "local" and local.path == os.path.abspath("rel/dir")
    other = DestinationSpec.parse("hostb:/mnt/b")
    assert (other.kind, other.host, other.path) == ("remote", "hostb", "/mnt/b")
    assert other.on_host("hosta") == "hostb" and local.on_host("hosta") is None
    assert DestinationSpec.parse("host:/x").on_host("hosta") == "hosta"
    for bad in ["", "nowhere", "host:", "host:relative", "host:/", "host:/a/../b", "host:/a b",
                "Bad_Host:/x", "s3://bucket/x", "host:/x;rm"]:
        with pytest.raises(BackupError):
            DestinationSpec.parse(bad)


def test_policies_have_one_primary():
    empty = BackupPolicy()
    assert empty.primary.spec == "host" and empty.primary.primary
    assert [d.spec for d in empty.effective()] == ["host"]
    p = BackupPolicy([DestinationConfig("a", "host"), DestinationConfig("b", "local:/x",
                                                                       primary=True)])
    assert p.primary.name == "b" and p.get("local:/x").name == "b" and p.get("zz") is None
    assert BackupPolicy.from_dict(p.to_dict()) == p
    assert BackupPolicy([DestinationConfig("a", "host")]).primary.name == "a"
    assert DestinationConfig("a", "host", frequency="daily").scheduled
    assert DestinationConfig("a", "host", cron="* * * * *").scheduled
    assert not DestinationConfig("a", "host").scheduled


def test_backup_ids_and_sidecars():
    sid = "erp-prod_20261203T120000Z_scheduled_0a1b2c"
    assert parse_backup_id(sid) == {"service": "erp-prod", "stamp": "20261203T120000Z",
                                    "kind": "scheduled", "rand": "0a1b2c"}
    for bad in ["erp_20261203T120000Z_daily_0a1b2c", "erp_2026_manual_0a1b2c", "Erp_x", ""]:
        assert parse_backup_id(bad) is None
    side = {"havsh_backup": 1, "id": sid, "service": "erp-prod", "host": "hosta",
            "kind": "scheduled", "format": "zip", "compression": "deflate",
            "created_at": "2026-12-03T12:00:00Z", "size": 123, "sha256": "ab" * 32,
            "database": "erp_prod", "odoo_version": "17.0", "pg_version": "15.0",
            "service_type": "live", "files": 2, "filestore_bytes": 10, "dump_bytes": 100}
    rec = BackupRecord.from_sidecar(side, destination="host", destination_kind="host",
                                    location_host="hosta", path="/x/erp-prod/" + sid + ".zip")
    assert rec.created_at == datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert rec.where == f"hosta:/x/erp-prod/{sid}.zip" and rec.format_label == "odoo-zip"
    assert {k: v for k, v in rec.sidecar().items() if k != "file"} == side
    with pytest.raises(ValueError):
        BackupRecord.from_sidecar({**side, "havsh_backup": 2}, destination="", destination_kind="",
                                  location_host=None, path="")


# -- policies in a real inventory (no host needed) ---------------------------------------------
@pytest.fixture
def inv(tmp_path):
    from havsh_tui.core.inventory import Inventory
    from havsh_tui.core.model import Host

    inventory = Inventory(tmp_path / "inventory.json")
    inventory.add_host(Host(name="hosta", address="127.0.0.1"))
    inventory.add_host(Host(name="hostb", address="127.0.0.2"))
    return inventory


def _svc(name="erp", type_="live"):
    from havsh_tui.core.model import Service, ServiceType

    return Service(name=name, host="hosta", type=ServiceType(type_), odoo_version="17.0",
                   image="odoo:17.0", database=name.replace("-", "_"))


def test_destinations_of_a_service(inv):
    from havsh_tui.ops.backup import schedule as sch
    from havsh_tui.ops.backup.ops import resolve_destination

    svc = _svc()
    assert [d.spec for d in sch.get_policy(inv, svc).effective()] == ["host"]
    # The first added destination keeps the implicit host beside it, as primary.
    sch.add_destination(inv, svc, "local:/tmp/x")
    policy = sch.get_policy(inv, svc)
    assert [(d.name, d.primary) for d in policy.destinations] == [("host", True),
                                                                 ("local:/tmp/x", False)]
    d = sch.add_destination(inv, svc, "hostb:/srv/b", name="offsite", primary=True)
    assert d.primary and sch.get_policy(inv, svc).primary.name == "offsite"
    # HOST:PATH on the service's own host is host:PATH; duplicates and unknown hosts refused.
    assert sch.add_destination(inv, svc, "hosta:/srv/a").spec == "host:/srv/a"
    with pytest.raises(BackupError, match="already"):
        sch.add_destination(inv, svc, "local:/tmp/x")
    from havsh_tui.core.inventory import NotFound

    with pytest.raises(NotFound):
        sch.add_destination(inv, svc, "nowhere:/x")
    assert sch.set_primary(inv, svc, "host").primary.name == "host"
    with pytest.raises(BackupError):
        sch.set_primary(inv, svc, "zz")
    # A spec not configured is remembered when a backup goes there.
    assert resolve_destination(inv, svc, None).name == "host"
    assert resolve_destination(inv, svc, "offsite").spec == "hostb:/srv/b"
    assert resolve_destination(inv, svc, "local:/tmp/y").name == "local:/tmp/y"
    assert sch.get_policy(inv, svc).get("local:/tmp/y") is None
    resolve_destination(inv, svc, "local:/tmp/y", remember=True)
    assert sch.get_policy(inv, svc).get("local:/tmp/y") is not None
    # Removing: the primary moves on; the only host destination stays.
    policy = sch.remove_destination(inv, None, None, svc, "host")
    assert policy.primary.name != "host" and sum(d.primary for d in policy.destinations) == 1
    alone = _svc("crm")
    sch.add_destination(inv, alone, "host")
    with pytest.raises(BackupError, match="only destination"):
        sch.remove_destination(inv, None, None, alone, "host")


def test_schedules_only_on_the_services_own_host(inv):
    from havsh_tui.ops.backup import schedule as sch

    svc = _svc()
    for dest in ("local:/tmp/x", "hostb:/srv/b"):
        with pytest.raises(BackupError, match="can only write to a directory there"):
            sch.set_schedule(inv, None, None, svc, dest, "daily", 3)
    with pytest.raises(BackupError, match="frequency"):
        sch.set_schedule(inv, None, None, svc, "host", "yearly", 3)
    with pytest.raises(BackupError, match="keep"):
        sch.set_schedule(inv, None, None, svc, "host", "daily", 0)
    with pytest.raises(BackupError, match="5 fields"):
        sch.set_schedule(inv, None, None, svc, "host", "none", 3, cron="* * *")
    # Only Live services get the default schedule.
    assert sch.enable_default_backups(inv, None, None, _svc("t1", "test")) is None
