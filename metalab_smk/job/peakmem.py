"""The peak memory of one run: the peak resident set of the process that runs it plus
that of the largest child process it waited for (Linux: ``VmHWM``, reset before each run through
``/proc/self/clear_refs``; ``getrusage`` for children). Standard library only."""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["PeakMemory"]

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


class _ProcFiles:
    """This process's ``/proc/self`` files, opened once per process (a run uses each
    once; opening costs more than the use). A forked child opens its own: an inherited
    descriptor still names the parent."""

    fds: ClassVar[dict[str, int]] = {}
    pid = 0

    @classmethod
    def fd(cls, path: str, flags: int) -> int:
        if cls.pid != os.getpid():  # inherited ones are left alone (close-on-exec)
            cls.fds, cls.pid = {}, os.getpid()
        if path not in cls.fds:
            cls.fds[path] = os.open(path, flags | os.O_CLOEXEC)
        return cls.fds[path]


def _high_water_kib() -> int | None:
    """This process's peak resident set since the last reset, in KiB (None: unknown)."""
    try:
        text = os.pread(_ProcFiles.fd(_STATUS, os.O_RDONLY), 1 << 14, 0)
        start = text.index(b"VmHWM:")
        return int(text[start + 6 : text.index(b"\n", start)].split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _children_kib() -> int:
    """The largest peak resident set of the children waited for so far, in KiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


@dataclass
class PeakMemory:
    """``start()`` before a run, ``mb()`` after it: its peak memory in MB (10^6 bytes,
    Snakemake's unit), None where this system cannot tell."""

    _reset: bool = False
    _children_before: int = 0

    def start(self) -> None:
        try:
            os.write(_ProcFiles.fd(_CLEAR_REFS, os.O_WRONLY), b"5")  # peak := current
            self._reset = True
        except OSError:
            self._reset = False
        self._children_before = _children_kib()

    def mb(self) -> int | None:
        own = _high_water_kib() if self._reset else None
        if own is None:
            return None
        children = _children_kib()
        grown = children if children > self._children_before else 0  # a child of this run
        return math.ceil((own + grown) * 1024 / 10**6)
