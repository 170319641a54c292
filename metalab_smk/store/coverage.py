"""What a summary covers, so that a summary missing a record never counts as current.

A collect notes, before listing the record directories, their mtimes, the run table's
mtime and how many record files each directory holds; after writing the parquet files
it saves that state in ``summary/coverage.json`` under a fresh ``summary_id`` that is
also written into both parquet files' metadata.
The summary is current only while all of it still matches: a record landing during or
after the collect, a removed or replaced record, a recompile, or a summary file
rewritten by anything else makes it stale. Checking needs no pandas or pyarrow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir

__all__ = ["coverage_snapshot", "stored_coverage", "summary_is_current", "write_coverage"]


def _listing(directory: Path) -> set[str]:
    try:
        return {n for n in os.listdir(directory) if n.endswith(".json") and n[0] != "."}
    except FileNotFoundError:
        return set()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _footer(path: Path) -> bytes | None:
    """The footer of a parquet file (where its key/value metadata lives), or None."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size < 12:
                return None
            handle.seek(size - 8)
            tail = handle.read(8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or length > size - 12:
                return None
            handle.seek(size - 8 - length)
            return handle.read(length)
    except OSError:
        return None


def _carries(path: Path, summary_id: str) -> bool:
    """Whether the parquet file at ``path`` was written with ``summary_id`` in its
    metadata (Snakemake may touch outputs, so file times cannot tell)."""
    footer = _footer(path)
    return footer is not None and summary_id.encode() in footer


def coverage_snapshot(layout: ExperimentDir) -> tuple[dict[str, Any], set[str], set[str]]:
    """(state, success record names, failed record names); the mtimes are read before
    listing, so a record landing after the listing changes them."""
    state: dict[str, Any] = {
        "runs_mtime_ns": _mtime(layout.runs_dir),
        "failed_mtime_ns": _mtime(layout.failed_dir),
        "table_mtime_ns": _mtime(layout.run_table),
        "derived_mtime_ns": _mtime(layout.derived_dir),
    }
    done, failed = _listing(layout.runs_dir), _listing(layout.failed_dir)
    state.update(
        n_runs_files=len(done),
        n_failed_files=len(failed),
        n_derived_files=len(_listing(layout.derived_dir)),
    )
    return state, done, failed


def write_coverage(layout: ExperimentDir, state: dict[str, Any]) -> None:
    """Save ``state``; it holds the ``summary_id`` written into both parquet files."""
    atomic_write_json(layout.coverage_file, state)


def stored_coverage(layout: ExperimentDir) -> dict[str, Any] | None:
    """The saved coverage, or None when it is missing, unreadable or describes other
    summary files than those on disk."""
    try:
        stored = read_json(layout.coverage_file)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or not isinstance(stored.get("summary_id"), str):
        return None
    summary_id = stored["summary_id"]
    if not (
        _carries(layout.summary_runs, summary_id) and _carries(layout.summary_steps, summary_id)
    ):
        return None
    return stored


def summary_is_current(layout: ExperimentDir) -> bool:
    """True when the summary covers exactly the records on disk now."""
    stored = stored_coverage(layout)
    if stored is None:
        return False
    state, _, _ = coverage_snapshot(layout)
    return all(stored.get(key) == value for key, value in state.items())
