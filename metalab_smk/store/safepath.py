"""Paths built from data kept inside their root: the one place for these checks.

Records, archives, upstream stores, summaries and requests all name files: run IDs,
single names (a log, a data file), relative paths (artifact URIs, archive members).
Every such path is checked here before it is read or written: run IDs are exactly 16
lowercase hex digits, names are one path component, relative paths have no ``..``, and
the path, with every symbolic link resolved, lies inside its root. Anything else raises
``StorePathError`` naming the path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from metalab_smk.errors import StorePathError
from metalab_smk.store.jsonio import read_json

__all__ = [
    "RUN_ID",
    "check_name",
    "check_run_id",
    "escaping",
    "inside",
    "is_run_id",
    "join_inside",
    "read_json_inside",
    "relative_parts",
]

RUN_ID = re.compile(r"[0-9a-f]{16}")


def is_run_id(value: object) -> bool:
    """Whether ``value`` is a run ID: exactly 16 lowercase hex digits."""
    return isinstance(value, str) and RUN_ID.fullmatch(value) is not None


def check_run_id(value: object) -> str:
    """``value`` when it is a run ID, else StorePathError."""
    if not is_run_id(value):
        raise StorePathError(f"{value!r} is not a run ID (16 lowercase hex digits)")
    return value  # type: ignore[return-value]


def check_name(value: object, what: str = "name") -> str:
    """``value`` when it is one plain path component (a log, data or artifact name)."""
    if not isinstance(value, str) or value in ("", ".", "..") or "/" in value or "\0" in value:
        raise StorePathError(f"{value!r} is not a valid {what} (one file name, no '/')")
    return value


def relative_parts(text: object) -> tuple[str, ...]:
    """The parts of the relative path ``text``, ``..`` steps applied; StorePathError when
    it is absolute, empty, starts with ``~``, holds a NUL byte or steps out of its root."""
    if not isinstance(text, str) or "\0" in text or text.startswith("~"):
        raise StorePathError(f"{text!r} is not a relative path inside the store")
    if os.path.isabs(text):
        raise StorePathError(f"{text!r} is an absolute path; only paths inside the store count")
    parts: list[str] = []
    for part in text.split("/"):
        if part == "..":
            if not parts:
                raise StorePathError(f"{text!r} leads outside the store")
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    if not parts:
        raise StorePathError(f"{text!r} names no file inside the store")
    return tuple(parts)


def _real_root(root: str | os.PathLike[str]) -> str:
    return os.path.realpath(root).rstrip("/") + "/"


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` unchanged when, with every symbolic link resolved, it lies in ``root``
    (itself resolved), else StorePathError: a link never leads a reader or writer out."""
    if not (os.path.realpath(path) + "/").startswith(_real_root(root)):
        raise StorePathError(f"{path} leads outside {root} (through a symbolic link); refused")
    return Path(path)


def join_inside(root: str | os.PathLike[str], relpath: object) -> Path:
    """``root/relpath`` for a relative path read from data, resolved inside ``root``."""
    return inside(root, Path(root).joinpath(*relative_parts(relpath)))


def read_json_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Any:
    """The JSON file at ``path``, refused when a symbolic link leads it out of ``root``."""
    return read_json(inside(root, path))


def escaping(root: str | os.PathLike[str], paths: Iterable[Path]) -> list[Path]:
    """Those of ``paths`` that exist and lead outside ``root`` through a symbolic link."""
    found = []
    for path in paths:
        if os.path.lexists(path):
            try:
                inside(root, path)
            except StorePathError:
                found.append(path)
    return found
