"""The peak memory of one run: the peak resident set of the process that runs it plus
that of the largest child process it waited for (Linux: ``VmHWM``, reset before each run through
``/proc/self/clear_refs``; ``getrusage`` for children). Standard library only."""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

__all__ = ["PeakMemory"]

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


class _StatusFile:
    """``/proc/self/status``, opened once per process and read with ``pread`` (a run
    reads it once; opening it every time costs more than reading it)."""

    fd: int | None = None
    pid = 0  # the process that opened ``fd``: a forked child opens its own

    @classmethod
    def read(cls) -> bytes:
        if cls.fd is None or cls.pid != os.getpid():
            cls.fd, cls.pid = os.open(_STATUS, os.O_RDONLY | os.O_CLOEXEC), os.getpid()
        return os.pread(cls.fd, 1 << 14, 0)


def _high_water_kib() -> int | None:
    """This process's peak resident set since the last reset, in KiB (None: unknown)."""
    try:
        text = _StatusFile.read()
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
            with open(_CLEAR_REFS, "w", encoding="ascii") as clear:
                clear.write("5")  # peak RSS := current RSS (Linux >= 4.0)
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
