"""Content hashes of files and directories, with a persistent stat-keyed cache.

A file is read at most once while its (path, size, mtime_ns, inode) stays the same; the
cache is a small SQLite database so that several processes can share it safely. Its
location is ``$METALAB_HASH_CACHE`` or ``~/.cache/metalab/file-hashes.sqlite``; a cache
that cannot be opened is skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

__all__ = ["HashCache", "default_cache", "dir_hash", "file_hash", "full_dir_hash", "full_file_hash"]

_CHUNK = 1 << 20


def _default_cache_path() -> Path:
    configured = os.environ.get("METALAB_HASH_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "metalab" / "file-hashes.sqlite"


def _stat_key(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


class HashCache:
    """sha256 of file contents keyed by (absolute path, size, mtime_ns, inode)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else _default_cache_path()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._disabled = False

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and not self._disabled:
            import sqlite3  # here, not at import: most jobs hash no file

            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER,"
                    " mtime_ns INTEGER, inode INTEGER, sha256 TEXT)"
                )
                self._conn = conn
            except (OSError, sqlite3.Error):
                self._disabled = True
        return self._conn

    def get(self, path: str, stat: os.stat_result) -> str | None:
        """Cached hash of ``path`` if its stat is unchanged."""
        with self._lock:
            conn = self._connection()
            if conn is None:
                return None
            import sqlite3

            try:
                row = conn.execute(
                    "SELECT size, mtime_ns, inode, sha256 FROM hashes WHERE path = ?", (path,)
                ).fetchone()
            except sqlite3.Error:
                return None
        if row is not None and tuple(row[:3]) == _stat_key(stat):
            return row[3]
        return None

    def put(self, path: str, stat: os.stat_result, digest: str) -> None:
        """Remember ``digest`` for ``path`` at this stat."""
        with self._lock:
            conn = self._connection()
            if conn is None:
                return
            import sqlite3

            try:
                with conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)",
                        (path, *_stat_key(stat), digest),
                    )
            except sqlite3.Error:
                pass

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


_default: HashCache | None = None


def default_cache() -> HashCache:
    """The process-wide cache (created on first use)."""
    global _default
    if _default is None or _default.path != _default_cache_path():
        _default = HashCache()
    return _default


def _read_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def full_file_hash(path: str | os.PathLike[str], cache: HashCache | None = None) -> str:
    """sha256 (64 hex) of a file's contents, read only when its stat changed since last time.

    Context fingerprints use this full hash."""
    absolute = os.path.abspath(os.fspath(path))
    cache = cache if cache is not None else default_cache()
    before = os.stat(absolute)
    cached = cache.get(absolute, before)
    if cached is not None:
        return cached
    digest = _read_sha256(absolute)
    if _stat_key(os.stat(absolute)) == _stat_key(before):  # not modified while reading
        cache.put(absolute, before, digest)
    return digest


def full_dir_hash(
    path: str | os.PathLike[str], pattern: str = "*", cache: HashCache | None = None
) -> str:
    """sha256 (64 hex) over the sorted relative paths and content hashes of matching files.

    ``pattern`` is matched at every depth (``Path.rglob``); the result does not depend on
    where the directory lives, so a copy keeps its hash. A missing directory raises
    FileNotFoundError.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"dir_hash: no directory {os.fspath(path)!r}")
    entries = sorted(
        (candidate.relative_to(root).as_posix(), full_file_hash(candidate, cache))
        for candidate in root.rglob(pattern)
        if candidate.is_file()
    )
    return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()


def file_hash(path: str | os.PathLike[str], cache: HashCache | None = None) -> str:
    """The first 16 hex digits of ``full_file_hash`` (upstream's length)."""
    return full_file_hash(path, cache)[:16]


def dir_hash(
    path: str | os.PathLike[str], pattern: str = "*", cache: HashCache | None = None
) -> str:
    """The first 16 hex digits of ``full_dir_hash`` (upstream's length)."""
    return full_dir_hash(path, pattern, cache)[:16]
