"""What a summary covers, so that a summary missing a record never counts as current.

A collect notes, before listing the record directories, their mtimes, the run table's
mtime and how many record files each directory holds; after writing the parquet files
it saves that state in ``summary/coverage.json`` under a fresh ``summary_id`` that is
also written into both parquet files' metadata.
The summary is current only while all of it still matches: a record landing during or
after the collect, a removed or replaced record, a recompile, or a summary file
rewritten by anything else makes it stale. Checking needs no pandas or pyarrow, and no
listing when the directories were settled (unchanged for 2 s) before the last listing
that saw them. The coverage also holds what ``metalab status`` counts, so a settled
store's status lists nothing.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir, json_names
from metalab_smk.store.validate import checked_names

__all__ = [
    "coverage_snapshot",
    "current_done_ids",
    "status_coverage",
    "stored_coverage",
    "validated_before",
    "summary_is_current",
    "write_coverage",
]


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


def _mtimes(layout: ExperimentDir) -> dict[str, Any]:
    return {
        "runs_mtime_ns": _mtime(layout.runs_dir),
        "failed_mtime_ns": _mtime(layout.failed_dir),
        "table_mtime_ns": _mtime(layout.run_table),
        "derived_mtime_ns": _mtime(layout.derived_dir),
    }


def coverage_snapshot(layout: ExperimentDir) -> tuple[dict[str, Any], set[str], set[str]]:
    """(state, success record names, failed record names); the mtimes are read before
    listing, so a record landing after the listing changes them."""
    state = _mtimes(layout)
    done, failed = json_names(layout.runs_dir), json_names(layout.failed_dir)
    state.update(
        n_runs_files=len(done),
        n_failed_files=len(failed),
        n_derived_files=len(json_names(layout.derived_dir)),
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


def validated_before(stored: dict[str, Any]) -> int | None:
    """When the records were last all validated: the summary's listing, or a later scan
    that read every record changed since (``validated_at_ns``)."""
    times = [stored.get(key) for key in ("listed_at_ns", "validated_at_ns")]
    valid = [value for value in times if isinstance(value, int)]
    return max(valid) if valid else None


def current_done_ids(layout: ExperimentDir) -> set[str] | None:
    """The run IDs with a valid success record when the summary covers exactly the
    records on disk, else None (rebuild the summary): the currency check and the
    missing-runs scan in one listing of each directory and one stat per success record.
    Records that are empty or changed since they were last validated are read (a bad
    one is quarantined, which makes the summary stale; more than ten thousand make it
    stale too); when all were good, the scan's time is noted so they are not read again.
    The directory times must not move during the listing."""
    stored = stored_coverage(layout)
    since = None if stored is None else validated_before(stored)
    if stored is None or since is None:
        return None
    before = _mtimes(layout)
    if any(stored.get(key) != value for key, value in before.items()):
        return None
    began = time.time_ns()
    checked = checked_names(layout, layout.runs_dir, since)
    if checked is None:
        return None
    done, reads = checked
    state = {
        **before,
        "n_runs_files": len(done),
        "n_failed_files": len(json_names(layout.failed_dir)),
        "n_derived_files": len(json_names(layout.derived_dir)),
    }
    if _mtimes(layout) != before:
        return None
    if not all(stored.get(key) == value for key, value in state.items()):
        return None
    if reads:
        _restamp(layout, stored, validated_at_ns=began)
    return done


QUIET_NS = 2_000_000_000  # a directory unchanged this long before a listing is settled


def _settled(mtimes: dict[str, Any], listed_at_ns: Any) -> bool:
    """Whether every time in ``mtimes`` lies well before the listing at ``listed_at_ns``:
    then any later change gives a later time (file times are coarse: a change in the
    same tick as the last one before the listing would keep the time)."""
    return isinstance(listed_at_ns, int) and all(
        value is None or value < listed_at_ns - QUIET_NS for value in mtimes.values()
    )


def _restamp(layout: ExperimentDir, stored: dict[str, Any], **stamps: int) -> None:
    """Note in the coverage that a listing at ``stamps`` found the same state (best
    effort: a read-only store keeps listing). A concurrent collect's newer coverage may
    be overwritten; its summary files then do not match, which only costs a rebuild."""
    stored.update(stamps)
    with contextlib.suppress(OSError):
        write_coverage(layout, stored)


def _is_current(layout: ExperimentDir, stored: dict[str, Any], note: bool) -> bool:
    mtimes = _mtimes(layout)
    if any(stored.get(key) != value for key, value in mtimes.items()):
        return False
    if _settled(mtimes, stored.get("checked_at_ns", stored.get("listed_at_ns"))):
        return True  # nothing changed since a listing that saw it all: no listing needed
    now = time.time_ns()
    state, _, _ = coverage_snapshot(layout)
    if not all(stored.get(key) == value for key, value in state.items()):
        return False
    if note and _settled(_mtimes_of(state), now):
        _restamp(layout, stored, checked_at_ns=now)
    return True


def _mtimes_of(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key.endswith("_mtime_ns")}


def summary_is_current(layout: ExperimentDir, note: bool = False) -> bool:
    """True when the summary covers exactly the records on disk now: the directory times
    and the number of record files match what the summary saw. When the directories
    have not changed since a listing that found them settled, the times alone tell;
    ``note``: a listing that finds them settled is noted in the coverage (a write: not
    for readers that must leave the store untouched, like the dashboard)."""
    stored = stored_coverage(layout)
    return stored is not None and _is_current(layout, stored, note)


STATUS_KEYS = ("n_done", "n_stale", "failed_positions", "partial_logs", "logs_mtime_ns")


def status_coverage(layout: ExperimentDir, note: bool = False) -> dict[str, Any] | None:
    """The stored coverage when ``metalab status`` can take its counts from it: the
    summary is current, it lists the failed runs and the partial logs, and ``logs/`` has
    not changed since (so no run started or ended); else None. ``note`` as in
    ``summary_is_current``."""
    stored = stored_coverage(layout)
    if stored is None or any(stored.get(key) is None for key in STATUS_KEYS):
        return None
    if not _is_current(layout, stored, note):
        return None
    logs = {"logs_mtime_ns": _mtime(layout.logs_dir)}
    if logs["logs_mtime_ns"] != stored["logs_mtime_ns"]:
        return None
    if _settled(logs, stored.get("logs_checked_at_ns", stored.get("logs_listed_at_ns"))):
        return stored
    now = time.time_ns()  # not settled yet: list the partial logs once to check
    if _mtime(layout.logs_dir) != stored["logs_mtime_ns"]:
        return None
    partials = _partial_names(layout.logs_dir)
    if partials != set(stored["partial_logs"]) or _mtime(layout.logs_dir) != logs["logs_mtime_ns"]:
        return None
    if note and _settled(logs, now):
        _restamp(layout, stored, logs_checked_at_ns=now)
    return stored


def _partial_names(directory: Path) -> set[str]:
    try:
        return {n for n in os.listdir(directory) if n.endswith(".partial")}
    except FileNotFoundError:
        return set()
