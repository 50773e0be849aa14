"""Dataclasses to JSON-ready dicts and back, and crash-safe writes of whole files.

Encoding rules: datetimes become ISO 8601 strings, enums their values, nested dataclasses
dicts. Decoding is forgiving in the ways forward compatibility needs (keys this version does
not know are ignored, missing optional fields take their defaults, an unknown status value
falls back to the enum's ``UNKNOWN`` member) and strict where a guess would be wrong.
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import json
import os
import tempfile
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

T = TypeVar("T")

#: Files holding hosts, secrets or history are readable by their owner only.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


class DecodeError(ValueError):
    """A document that cannot be turned into its dataclass; the message names the field."""


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_value(value: Any) -> Any:
    """Turn ``value`` into something ``json.dumps`` accepts, recursively."""
    # Enums first: a StrEnum is also a str, and must be stored as its plain value.
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in JSON: {value!r}")


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance as a JSON-ready dict (fields in declaration order)."""
    return {f.name: encode_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


# ---------------------------------------------------------------------------------------------
# Decoding: one converter per field, built once per class, because the dashboard decodes a
# thousand services per paint and resolving type hints each time would dominate.

_Converter = Callable[[Any], Any]


_Decoder = Callable[[Any], Any]
_DECODERS: dict[tuple[type, bool], _Decoder] = {}


def _parse_datetime(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        return raw
    if not isinstance(raw, str):
        raise DecodeError(f"expected an ISO 8601 time, got {raw!r}")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise DecodeError(f"expected an ISO 8601 time, got {raw!r}") from None
    # Everything we write is aware; a naive time can only come from a hand edit, so read it
    # the way we would have written it.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _enum_converter(cls: type[enum.Enum], strict: bool) -> _Converter:
    # Lenient reads let a value from a newer havsh (a new status) show as UNKNOWN; strict
    # conversion (values from code) refuses it.
    fallback = None if strict else getattr(cls, "UNKNOWN", None)
    # A dict lookup: calling the Enum class costs several times more, a thousand times a paint.
    members = {m.value: m for m in cls}

    def convert(raw: Any) -> Any:
        try:
            return members[raw]
        except (KeyError, TypeError):
            if fallback is not None:
                return fallback
            choices = ", ".join(repr(m.value) for m in cls)
            raise DecodeError(f"{raw!r} is not one of {choices}") from None

    return convert


def _scalar_converter(cls: type) -> _Converter:
    def convert(raw: Any) -> Any:
        if cls is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, bool) and cls is not bool:
            raise DecodeError(f"expected {cls.__name__}, got {raw!r}")
        if not isinstance(raw, cls):
            raise DecodeError(f"expected {cls.__name__}, got {raw!r}")
        return raw

    return convert


def _converter_for(tp: Any, strict: bool) -> _Converter:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return lambda raw: raw
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        nullable = len(inner) < len(args)
        if len(inner) != 1:
            # A real union: keep the raw value rather than guess which arm it is.
            return lambda raw: raw
        convert_inner = _converter_for(inner[0], strict)

        def convert_optional(raw: Any) -> Any:
            if raw is None:
                if nullable:
                    return None
                raise DecodeError("must not be null")
            return convert_inner(raw)

        return convert_optional
    if origin is list:
        (item_tp,) = args or (Any,)
        convert_item = _converter_for(item_tp, strict)

        def convert_list(raw: Any) -> Any:
            if not isinstance(raw, list):
                raise DecodeError(f"expected a list, got {raw!r}")
            return [convert_item(v) for v in raw]

        return convert_list
    if origin is dict:
        _, value_tp = args or (str, Any)
        convert_value = _converter_for(value_tp, strict)

        def convert_dict(raw: Any) -> Any:
            if not isinstance(raw, dict):
                raise DecodeError(f"expected an object, got {raw!r}")
            return {str(k): convert_value(v) for k, v in raw.items()}

        return convert_dict
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return _enum_converter(tp, strict)
        if issubclass(tp, datetime):
            return _parse_datetime
        if dataclasses.is_dataclass(tp):
            return lambda raw: from_dict(tp, raw, strict=strict)
        if tp in (str, int, float, bool):
            return _scalar_converter(tp)
    return lambda raw: raw


def _exact_classes(tp: Any) -> frozenset[type]:
    """The stored classes a value of type ``tp`` can be used as without conversion."""
    if tp in (str, int, bool):
        return frozenset({tp})
    if tp is float:
        return frozenset({float})
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        inner_exact = _exact_classes(inner[0]) if len(inner) == 1 else frozenset()
        if inner_exact:
            # Only when the inner type has an exact form: for ``datetime | None`` the
            # result must be empty, or every stored time would miss the fast path.
            nullable = {type(None)} if len(inner) < len(args) else set()
            return frozenset(inner_exact | nullable)
    return frozenset()


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` gives ``(X, True)``; anything else ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and len(inner) < len(args):
            return inner[0], True
    return tp, False


def _fast_paths(
    i: int, name: str, tp: Any, strict: bool, ns: dict[str, Any]
) -> list[tuple[str, list[str]]]:
    """``(condition, body)`` branches that decode ``v<i>`` cheaply when it is well-formed.

    The caller chains them with ``if``/``elif`` and adds a final ``else`` that calls the full
    converter (which coerces what it can and raises DecodeError naming the field). Bodies
    that can still meet a malformed value fall back to that converter too.
    """
    v = f"v{i}"
    slow = f"{v} = _field({name!r}, _c{i}, {v})"
    exact = _exact_classes(tp)
    if exact:
        ns[f"_x{i}"] = exact
        return [(f"{v}.__class__ in _x{i}", ["pass"])]
    inner, nullable = _unwrap_optional(tp)
    branches = [(f"{v} is None", ["pass"])] if nullable else []
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        ns[f"_e{i}"] = {m.value: m for m in inner}
        ns[f"_ek{i}"] = frozenset(type(m.value) for m in inner)
        branches.append((f"{v}.__class__ in _ek{i} and {v} in _e{i}", [f"{v} = _e{i}[{v}]"]))
    elif isinstance(inner, type) and issubclass(inner, datetime):
        body = [
            "try:",
            f"    {v} = _iso({v})",
            "except ValueError:",
            f"    {slow}",
            f"if {v}.tzinfo is None:",
            f"    {v} = {v}.replace(tzinfo=_UTC)",
        ]
        branches.append((f"{v}.__class__ is str", body))
    elif typing.get_origin(inner) is dict:
        value_exact = _exact_classes((typing.get_args(inner) or (str, Any))[1])
        if value_exact:
            ns[f"_xv{i}"] = value_exact
            cond = f"{v}.__class__ is dict and _xv{i}.issuperset(map(type, {v}.values()))"
            branches.append((cond, [f"{v} = dict({v})"]))
    elif typing.get_origin(inner) is list:
        (item_tp,) = typing.get_args(inner) or (Any,)
        if dataclasses.is_dataclass(item_tp):
            ns[f"_sub{i}"] = _decoder(cast(type, item_tp), strict)
            body = [
                "try:",
                f"    {v} = [_sub{i}(x) for x in {v}]",
                "except Exception:",
                "    # Redo it slowly for an error message that names the field.",
                f"    {slow}",
            ]
            branches.append((f"{v}.__class__ is list", body))
    return branches


def _compile_decoder(cls: type, strict: bool) -> _Decoder:
    """Generate a straight-line decoder for dataclass ``cls``.

    A generic loop over fields, a converter call each, cost about 15 us a service on the
    (slow, shared) test machine; this about a third, which is what keeps a 1,000-service
    paint well under 50 ms. Each field has fast paths for well-formed stored values (the
    right class, a known enum value, an ISO time...) and otherwise goes through its
    converter, which coerces what it can or raises DecodeError naming the field.
    """
    hints = typing.get_type_hints(cls)
    qualname = cls.__name__

    def convert_field_value(name: str, convert: _Converter, raw: Any) -> Any:
        try:
            return convert(raw)
        except DecodeError as exc:
            raise DecodeError(f"{qualname}.{name}: {exc}") from None

    ns: dict[str, Any] = {
        "_cls": cls,
        "_field": convert_field_value,
        "_iso": datetime.fromisoformat,
        "_UTC": UTC,
        "DecodeError": DecodeError,
    }
    lines = ["def decode(doc):"]
    args = []
    for i, f in enumerate(dataclasses.fields(cls)):
        if not f.init:
            continue
        tp = hints[f.name]
        ns[f"_c{i}"] = _converter_for(tp, strict)
        if f.default is not dataclasses.MISSING:
            # dataclasses refuse mutable defaults, so sharing the default object is safe.
            ns[f"_d{i}"] = f.default
            when_missing = f"v{i} = _d{i}"
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"_f{i}"] = f.default_factory
            when_missing = f"v{i} = _f{i}()"
        else:
            message = f"{qualname}: required field {f.name!r} is missing"
            when_missing = f"raise DecodeError({message!r}) from None"
        # doc[key] in a try is cheaper than doc.get(key, sentinel) while keys are present.
        lines += [
            "    try:",
            f"        v{i} = doc[{f.name!r}]",
            "    except KeyError:",
            f"        {when_missing}",
            "    else:",
        ]
        keyword = "if"
        for cond, body in _fast_paths(i, f.name, tp, strict, ns):
            lines.append(f"        {keyword} {cond}:")
            lines += [f"            {line}" for line in body]
            keyword = "elif"
        slow = f"v{i} = _field({f.name!r}, _c{i}, v{i})"
        if keyword == "if":
            lines.append(f"        {slow}")
        else:
            lines += ["        else:", f"            {slow}"]
        args.append(f"{f.name}=v{i}")
    lines.append(f"    return _cls({', '.join(args)})")
    exec(compile("\n".join(lines), f"<decoder {qualname}>", "exec"), ns)  # noqa: S102
    return cast(_Decoder, ns["decode"])


def _decoder(cls: type, strict: bool) -> _Decoder:
    decoder = _DECODERS.get((cls, strict))
    if decoder is None:
        decoder = _DECODERS[(cls, strict)] = _compile_decoder(cls, strict)
    return decoder


def decoder(cls: type[T], *, strict: bool = False) -> Callable[[dict[str, Any]], T]:
    """The compiled decoder of ``cls``: like :func:`from_dict` without the type check of
    ``doc``, for loops over many documents that are known to be dicts."""
    return cast(Callable[[dict[str, Any]], T], _decoder(cls, strict))


def from_dict(cls: type[T], doc: Any, *, strict: bool = False) -> T:
    """Build a ``cls`` dataclass from a stored document.

    Keys the dataclass does not know are ignored (a newer havsh may have written them);
    missing fields with defaults take them; a missing required field or a value of the wrong
    type raises :class:`DecodeError` naming the field. ``strict`` turns off the fallback
    of unknown enum values to ``UNKNOWN``.
    """
    if not isinstance(doc, dict):
        raise DecodeError(f"{cls.__name__}: expected an object, got {type(doc).__name__}")
    return cast(T, _decoder(cls, strict)(doc))


def convert_field(cls: type, name: str, raw: Any, *, strict: bool = False) -> Any:
    """Decode one stored value of field ``name`` of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    if name not in hints:
        raise DecodeError(f"{cls.__name__} has no field {name!r}")
    if raw.__class__ in _exact_classes(hints[name]):
        return raw
    try:
        return _converter_for(hints[name], strict)(raw)
    except DecodeError as exc:
        raise DecodeError(f"{cls.__name__}.{name}: {exc}") from None


def field_names(cls: type) -> frozenset[str]:
    """The init field names of a dataclass, for validating keyword changes."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while loading a big, acyclic document.

    Parsing and decoding a 1,000-service inventory allocates some 50,000 objects, which sets
    off dozens of collections that find nothing (JSON and our dataclasses hold no cycles);
    on a slow machine they were a third of the load time. Reference counting still frees
    everything; collection resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# Files


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so that a crash at any moment leaves the old or new file.

    The data goes to a temp file in the same directory (so the rename cannot cross file
    systems), is flushed and fsynced, then renamed over ``path``, then the directory is
    fsynced so the rename itself survives a power cut. The mode is set with fchmod, so the
    umask cannot widen or narrow it.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def dumps_json(data: Any, *, indent: int | None = None) -> bytes:
    """JSON bytes for a file: UTF-8, stable key order left as given, trailing newline."""
    text = json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False)
    return (text + "\n").encode()


def atomic_write_json(
    path: Path, data: Any, *, mode: int = PRIVATE_FILE_MODE, indent: int | None = None
) -> None:
    """:func:`atomic_write_bytes` of ``data`` as JSON."""
    atomic_write_bytes(path, dumps_json(data, indent=indent), mode=mode)


def remove_stale_temp_files(path: Path) -> int:
    """Delete temp files a killed writer of ``path`` left behind; returns how many.

    Call it only while holding the lock that writers of ``path`` take, or a live writer's
    temp file could go.
    """
    path = Path(path)
    removed = 0
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            leftover.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def tighten_mode(path: Path, mode: int = PRIVATE_FILE_MODE) -> None:
    """chmod ``path`` to ``mode`` if it grants more than that (a file copied in by hand)."""
    try:
        current = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return
    if current & ~mode:
        os.chmod(path, mode)
