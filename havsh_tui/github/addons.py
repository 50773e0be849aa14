"""From a GitHub tarball to the addons tree that goes into a service's addons volume.

GitHub's tarball of a commit is what ``git archive`` makes: one top folder
(``owner-repo-sha7/``), a pax global header whose comment is the commit SHA, then the tree.
:func:`rewrite_tarball` reads it as a stream and writes another one, also as a stream: the top
folder (and the connected subfolder) stripped, every path put under a staging folder, owners
and modes normalised, links and devices dropped. Odoo modules are the first-level folders that
hold a ``__manifest__.py``; the caller learns them from :class:`AddonsTree` once the stream is
consumed, and moves only those into place. Nothing is ever held whole in memory: one chunk of
input and one of output at a time.
"""

from __future__ import annotations

import io
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

MANIFESTS = ("__manifest__.py", "__openerp__.py")
#: Odoo module names are Python identifiers (it imports them as odoo.addons.<name>).
MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BLOCK = tarfile.BLOCKSIZE
READ_CHUNK = 64 * 1024
OUT_CHUNK = 256 * 1024


class AddonsError(ValueError):
    """The tarball or the subfolder is not usable; the message says why."""


def validate_subdir(subdir: str | None) -> str:
    """A relative folder inside the repository ('' for its root), normalised."""
    if not subdir:
        return ""
    parts = [p for p in subdir.strip().strip("/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or subdir.strip().startswith("/"):
        raise AddonsError(f"the subfolder {subdir!r} must be a path inside the repository")
    if any(not re.fullmatch(r"[A-Za-z0-9_.@+-]+", p) for p in parts):
        raise AddonsError(f"the subfolder {subdir!r} has characters a path here may not have")
    return "/".join(parts)


@dataclass
class AddonsTree:
    """What a rewritten tarball held; complete once its stream has been consumed."""

    modules: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    #: The commit SHA from the pax global header, when the archive has one.
    commit: str | None = None
    #: Entries left out (links, devices, unsafe paths), as "path (reason)".
    skipped: list[str] = field(default_factory=list)
    done: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (what tarfile's stream mode reads)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.count += n
        return n


def _relative(name: str, subdir: str) -> str | None:
    """The member's path below the top folder and ``subdir``; None when outside them."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) < 2:
        return None  # the top folder itself
    parts = parts[1:]
    if subdir:
        sub = subdir.split("/")
        if parts[: len(sub)] != sub:
            return None
        parts = parts[len(sub):]
    if not parts:
        return None
    return "/".join(parts)


def rewrite_tarball(chunks: Iterable[bytes], *, prefix: str, subdir: str = "",
                    tree: AddonsTree | None = None) -> Iterator[bytes]:
    """A gzip tar stream of the tarball's first-level folders (under ``subdir``), each put
    under ``prefix/``. Fills ``tree`` (modules, counts, commit) as it goes."""
    tree = tree if tree is not None else AddonsTree()
    subdir = validate_subdir(subdir)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix) or prefix in (".", ".."):
        raise AddonsError(f"bad staging folder name {prefix!r}")
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    out = bytearray()
    seen_dirs: set[str] = set()
    modules: dict[str, None] = {}

    def header(path: str, *, is_dir: bool, size: int = 0, mode: int = 0o644,
               mtime: float = 0) -> bytes:
        info = tarfile.TarInfo(f"{prefix}/{path}" if path else prefix)
        info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        info.mode = 0o755 if is_dir else mode
        info.size = 0 if is_dir else size
        info.mtime = int(mtime)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def emit(data: bytes) -> Iterator[bytes]:
        out.extend(comp.compress(data))
        if len(out) >= OUT_CHUNK:
            chunk = bytes(out)
            out.clear()
            yield chunk

    def ensure_dirs(path: str, mtime: float) -> Iterator[bytes]:
        parts = path.split("/")
        for i in range(len(parts)):
            d = "/".join(parts[: i + 1])
            if d not in seen_dirs:
                seen_dirs.add(d)
                yield from emit(header(d, is_dir=True, mtime=mtime))

    reader = _ChunkReader(chunks)
    try:
        src = tarfile.open(fileobj=io.BufferedReader(reader, READ_CHUNK), mode="r|gz")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise AddonsError(f"the download is not a gzip tar archive: {exc}") from None
    yield from emit(header("", is_dir=True))
    try:
        for member in src:
            rel = _relative(member.name, subdir)
            if rel is None:
                continue
            top = rel.split("/", 1)[0]
            if ".." in rel.split("/"):
                tree.skipped.append(f"{rel} (unsafe path)")
                continue
            if not MODULE_RE.fullmatch(top):
                if member.isdir() and "/" not in rel:
                    tree.skipped.append(f"{rel} (not a module folder name)")
                continue
            if "/" not in rel and not member.isdir():
                continue  # a file at the root of the addons folder (README.md, ...)
            if member.isdir():
                yield from ensure_dirs(rel, member.mtime)
                continue
            if not member.isreg():
                kind = "link" if member.issym() or member.islnk() else "special file"
                tree.skipped.append(f"{rel} ({kind})")
                continue
            yield from ensure_dirs(rel.rpartition("/")[0], member.mtime)
            if rel.count("/") == 1 and rel.rpartition("/")[2] in MANIFESTS:
                modules[top] = None
            mode = 0o755 if member.mode & 0o111 else 0o644
            yield from emit(header(rel, is_dir=False, size=member.size, mode=mode,
                                   mtime=member.mtime))
            fh = src.extractfile(member)
            remaining = member.size
            while remaining > 0 and fh is not None:
                data = fh.read(min(READ_CHUNK, remaining))
                if not data:
                    raise AddonsError(f"the archive ends inside {rel}")
                remaining -= len(data)
                yield from emit(data)
            pad = (-member.size) % BLOCK
            if pad:
                yield from emit(b"\0" * pad)
            tree.files += 1
            tree.bytes += member.size
        tree.commit = src.pax_headers.get("comment") or None
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise AddonsError(f"the tarball is damaged: {exc}") from None
    finally:
        src.close()
    yield from emit(b"\0" * (2 * BLOCK))
    out.extend(comp.flush())
    if out:
        yield bytes(out)
    tree.modules = sorted(modules)
    tree.done = True


def touched_modules(paths: Iterable[str], subdir: str = "") -> set[str]:
    """The first-level folders under ``subdir`` that the changed ``paths`` fall in."""
    subdir = validate_subdir(subdir)
    prefix = subdir + "/" if subdir else ""
    found = set()
    for path in paths:
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        top, sep, _ = rest.partition("/")
        if sep and MODULE_RE.fullmatch(top):
            found.add(top)
    return found
