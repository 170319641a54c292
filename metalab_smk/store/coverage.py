"""What a summary covers, so that a summary missing a record never counts as current.

A collect notes, before listing the record directories, their mtimes, the run table's
mtime and how many record files each directory holds; after writing the parquet files
it saves that state with the files' own size and mtime in ``summary/coverage.json``.
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


def _file_state(path: Path) -> list[int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return [info.st_size, info.st_mtime_ns]


def coverage_snapshot(layout: ExperimentDir) -> tuple[dict[str, Any], set[str], set[str]]:
    """(state, success record names, failed record names); the mtimes are read before
    listing, so a record landing after the listing changes them."""
    state: dict[str, Any] = {
        "runs_mtime_ns": _mtime(layout.runs_dir),
        "failed_mtime_ns": _mtime(layout.failed_dir),
        "table_mtime_ns": _mtime(layout.run_table),
    }
    done, failed = _listing(layout.runs_dir), _listing(layout.failed_dir)
    state.update(n_runs_files=len(done), n_failed_files=len(failed))
    return state, done, failed


def write_coverage(layout: ExperimentDir, state: dict[str, Any]) -> None:
    """Save ``state`` with the current size and mtime of both summary files."""
    files = {"runs": _file_state(layout.summary), "steps": _file_state(layout.steps_summary)}
    atomic_write_json(layout.coverage_file, {**state, "files": files})


def stored_coverage(layout: ExperimentDir) -> dict[str, Any] | None:
    """The saved coverage, or None when it is missing, unreadable or describes other
    summary files than those on disk."""
    try:
        stored = read_json(layout.coverage_file)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict):
        return None
    files = stored.get("files") or {}
    if files.get("runs") != _file_state(layout.summary) or files.get("steps") != _file_state(
        layout.steps_summary
    ):
        return None
    return stored


def summary_is_current(layout: ExperimentDir) -> bool:
    """True when the summary covers exactly the records on disk now."""
    stored = stored_coverage(layout)
    if stored is None or stored["files"]["runs"] is None:
        return False
    state, _, _ = coverage_snapshot(layout)
    return all(stored.get(key) == value for key, value in state.items())
