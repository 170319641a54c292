"""Byte-compile metalab's own modules once at submission, not once per array task.

A Python that finds no up-to-date ``__pycache__/*.pyc`` next to a module compiles its
source at every import, and writes no cache when ``PYTHONDONTWRITEBYTECODE`` is set or
the folder is read-only: then every task of a job array would recompile the job side
(30-60 ms of CPU per task measured here, more than ten trivial runs cost). A
wheel install writes these caches at install time; an editable install or a checkout on
``PYTHONPATH`` may not have them. :func:`precompile` writes them for this package only
(never for the user's modules), skips the up-to-date ones, and ignores folders it cannot
write.
"""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

__all__ = ["precompile", "stale_modules"]

# what `python -m metalab_smk.worker` imports; the rest of the package stays untouched
JOB_SIDE = ("", "core", "core/params", "store", "compile", "job", "slurm")


def _sources() -> list[Path]:
    root = Path(__file__).parent.parent  # the package folder, as imports see it
    return [path for folder in JOB_SIDE for path in sorted((root / folder).glob("*.py"))]


def _fresh(source: Path, cache: Path) -> bool:
    """Whether ``cache`` is this Python's pyc of ``source`` as it is now (a hash-based
    pyc, as some installers write, counts as fresh: Python checks it itself)."""
    try:
        with open(cache, "rb") as handle:
            header = handle.read(16)
        stat = source.stat()
    except OSError:
        return False
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(header[4:8], "little"):  # flags: hash-based
        return True
    return (
        int.from_bytes(header[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
        and int.from_bytes(header[12:16], "little") == stat.st_size & 0xFFFFFFFF
    )


def stale_modules() -> list[Path]:
    """The job side's source files without an up-to-date bytecode cache."""
    return [s for s in _sources() if not _fresh(s, Path(importlib.util.cache_from_source(s)))]


def precompile() -> int:
    """Write the missing bytecode caches of the job side; return how many were written."""
    written = 0
    for source in stale_modules():
        try:  # a read-only install raises here: its tasks compile as before
            py_compile.compile(
                str(source),
                cfile=importlib.util.cache_from_source(source),
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
            )
        except (OSError, py_compile.PyCompileError):
            continue
        written += 1
    return written
