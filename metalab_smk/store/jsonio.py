"""Strict JSON (NaN/inf and non-string keys encoded) and atomic file writes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metalab_smk.core.values import is_numpy, numpy_to_python


def temp_path(target: str, directory: str | None = None) -> str:
    """The temporary name a writer of ``target`` uses: ``.{name}.{pid}.{thread}.tmp`` beside
    it (or in ``directory``, on the same filesystem), so concurrent writers never share one
    and a dead writer's leftover names its pid (a long name is shortened, so the temporary
    name fits where ``target`` fits)."""
    beside, name = os.path.split(target)
    where = beside if directory is None else directory
    return os.path.join(where, f".{name[:120]}.{os.getpid()}.{threading.get_ident()}.tmp")


def fsync_enabled() -> bool:
    """Durable writes are the default; ``METALAB_FSYNC=0`` turns fsync off (for scratch
    filesystems where losing files on a crash does not matter)."""
    return os.environ.get("METALAB_FSYNC", "1") != "0"


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file, or a directory so that a rename inside it is durable (no-op where
    the filesystem refuses or ``METALAB_FSYNC=0``)."""
    if fsync_enabled():
        _fsync_path(path)


def _fsync_path(path: str | os.PathLike[str]) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write_via(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Let ``write`` fill a temporary file beside ``path``, then rename it into place
    (fsyncing the file before and the directory after, unless ``METALAB_FSYNC=0``)."""
    target = Path(path)
    tmp = Path(temp_path(os.fspath(target)))
    target.parent.mkdir(parents=True, exist_ok=True)
    durable = fsync_enabled()
    try:
        write(tmp)
        if durable:
            _fsync_path(tmp)
        os.replace(tmp, target)
        if durable:
            _fsync_path(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish(
    tmp: str | os.PathLike[str], target: str | os.PathLike[str], synced: bool = False
) -> None:
    """Rename the complete, closed file ``tmp`` to ``target`` (fsyncing it first unless
    ``METALAB_FSYNC=0`` or ``synced``: the caller fsynced it): the second half of a write
    that another process began."""
    if fsync_enabled() and not synced:
        _fsync_path(tmp)
    os.replace(tmp, target)


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes,
    durable: bool | None = None,
    sync_directory: bool = True,
) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (same directory).

    The last rename wins with a complete file; a reader never sees a half-written one.
    With ``durable`` (default: ``fsync_enabled()``) the file is fsynced before the rename
    and the directory after it, so a crash or power loss never leaves an empty or
    truncated file. A writer of many files in one directory may pass
    ``sync_directory=False`` and ``fsync_path`` the directory once after the last one
    (until then a power loss can undo renames, never leave a partial file)."""
    if durable is None:
        durable = fsync_enabled()
    target = os.fspath(path)
    directory = os.path.dirname(target)
    tmp = temp_path(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(directory or ".", exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
        if durable and sync_directory:
            _fsync_path(directory or ".")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    durable: bool | None = None,
    sync_directory: bool = True,
) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable, sync_directory)


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(float(value))}  # 'nan', 'inf', '-inf'
    if isinstance(value, dict):
        encoded = {str(k): _strict(v) for k, v in value.items()}
        if len(encoded) == 1 and set(encoded) & _MARKERS:  # escape: a list of key/value pairs
            return {"$dict": [[k, v] for k, v in encoded.items()]}
        return encoded
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if is_numpy(value):
        return _strict(numpy_to_python(value))
    if isinstance(value, (set, frozenset)):
        return _strict(sorted(value, key=repr))
    if isinstance(value, bytes):
        return {"__bytes__": value.hex()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _strict({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return value


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_MARKERS = {"$float", "$dict"}


def _unstrict(value: dict[str, Any]) -> Any:
    if len(value) == 1:
        if "$float" in value:
            return float(value["$float"])
        if "$dict" in value:  # a user dict whose only key looked like a marker
            return dict(value["$dict"])
    return value


def to_strict_json(obj: Any, indent: int | None = None) -> str:
    """JSON without bare NaN/Infinity tokens: non-finite floats become ``{"$float": "nan"}``."""
    try:  # the common case needs no conversion at all
        text = json.dumps(obj, indent=indent, allow_nan=False)
        if '"$' not in text:  # nothing that could be mistaken for a marker
            return text
    except (TypeError, ValueError):
        pass
    return json.dumps(_strict(obj), indent=indent, allow_nan=False, default=_refuse)


def from_strict_json(text: str | bytes) -> Any:
    marker: Any = b'"$' if isinstance(text, bytes) else '"$'  # the same type as ``text``
    if marker not in text:  # no marker anywhere: plain JSON (the common case, much faster)
        return json.loads(text)
    return json.loads(text, object_hook=_unstrict)


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    indent: int | None = 1,
    durable: bool | None = None,
    sync_directory: bool = True,
) -> None:
    atomic_write_text(path, to_strict_json(obj, indent=indent), durable, sync_directory)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, "rb") as handle:
        return from_strict_json(handle.read())
