"""The run table as fixed-width bytes with fast lookups, for sweeps of millions of runs.

``.metalab/run_ids.txt`` holds one 16-hex-digit run ID per 17-byte line. Reading it as a
numpy byte array (no Python string per run) and looking run IDs up through a sorted
64-bit key (checked against the exact bytes) keeps ``metalab status`` on 10^6 runs
well under a second of work.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from metalab_smk.store.layout import run_table_missing
from metalab_smk.store.safepath import is_run_id

__all__ = ["RunTable"]

LINE = 17
_HALVES = np.dtype([("a", ">u8"), ("b", ">u8"), ("nl", "S1")])


def _keys(raw: np.ndarray) -> np.ndarray:
    halves = np.frombuffer(raw.tobytes(), dtype=_HALVES)
    return halves["a"] * np.uint64(0x9E3779B97F4A7C15) + halves["b"]


FEW = 32  # up to this many run IDs are looked up by a search, without building the index


class RunTable:
    """Run IDs in run order; ``positions`` maps run IDs to their global run index."""

    def __init__(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise run_table_missing(path) from None
        self._data = data[: len(data) - len(data) % LINE]
        self.raw = np.frombuffer(self._data, dtype=f"S{LINE}")
        self._index: tuple[np.ndarray, np.ndarray] | None = None

    def _find(self, run_id: str) -> int | None:
        """The index of ``run_id`` by a search of the table's bytes (a line start only)."""
        needle = f"{run_id}\n".encode()
        start = self._data.find(needle)
        while start >= 0 and start % LINE:
            start = self._data.find(needle, start + 1)
        return None if start < 0 else start // LINE

    def __len__(self) -> int:
        return len(self.raw)

    def run_id(self, position: int) -> str:
        return self.raw[position][:16].decode()

    def positions(self, run_ids: Iterable[str]) -> dict[str, int]:
        """``{run_id: index}`` for those of ``run_ids`` that are in the table."""
        names = [n for n in run_ids if is_run_id(n)]
        if not names or not len(self.raw):
            return {}
        if len(names) <= FEW and self._index is None:
            return {n: i for n in names if (i := self._find(n)) is not None}
        wanted = np.array([f"{n}\n".encode() for n in names], dtype=f"S{LINE}")
        rows, hit = self._lookup(wanted)
        return {names[i]: int(rows[i]) for i in np.flatnonzero(hit)}

    def count(self, run_ids: Iterable[str]) -> int:
        """How many of the distinct ``run_ids`` are in the table (vectorised: no Python
        object per run when all are 16 characters long, as run IDs are)."""
        names = run_ids if isinstance(run_ids, (set, frozenset)) else set(run_ids)
        if not names or not len(self.raw):
            return 0
        if (len(names) <= FEW and self._index is None) or set(map(len, names)) != {16}:
            return len(self.positions(names))
        try:
            data = ("\n".join(names) + "\n").encode("ascii")
        except UnicodeEncodeError:
            return len(self.positions(names))
        _, hit = self._lookup(np.frombuffer(data, dtype=f"S{LINE}"))
        return int(np.count_nonzero(hit))

    def _lookup(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of each of the ``wanted`` lines, whether it is there)."""
        if self._index is None:
            keys = _keys(self.raw)
            order = np.argsort(keys, kind="stable")
            self._index = (keys[order], order)
        sorted_keys, order = self._index
        keys = _keys(wanted)
        slots = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        rows = order[slots]
        return rows, (sorted_keys[slots] == keys) & (self.raw[rows] == wanted)
