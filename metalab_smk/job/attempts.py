"""How many times a run was attempted before, whatever ended each attempt.

An attempt leaves one of two traces: its failed record (failed, cancelled, interrupted,
crashed; it lists the attempts before it in ``provenance.extra.attempts``), or, when its
process was killed before any record could be written (SIGKILL, a SLURM time limit, a
node failure), its ``.partial`` log. The earlier attempts of a run are those of its
failed record plus the partial logs newer than that record, so ``capture.attempt`` and
the record's ``attempts`` count every kind of restart.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from metalab_smk.job.runlog import read_header
from metalab_smk.store.layout import ExperimentDir

__all__ = [
    "earlier_attempts",
    "forget_traces",
    "had_checkpoint",
    "had_failed_record",
    "had_log",
]


@dataclass(frozen=True)
class _Traces:
    """What earlier attempts left, scanned once per process (a batch child): partial
    logs by run ID, and the run IDs with a failed record, a checkpoint directory or a
    run log. A run that has none of these costs its batch no file system call for
    them."""

    partials: dict[str, list[str]]
    failed: set[str]
    checkpoints: set[str]
    logged: set[str]  # with the run log of an earlier attempt


_traces: _Traces | None = None


def _scan(layout: ExperimentDir) -> _Traces:
    global _traces
    if _traces is None:
        partials: dict[str, list[str]] = {}
        listed, logged = layout.run_logs()
        for run_id, path in listed:
            partials.setdefault(run_id, []).append(str(path))
        try:
            checkpoints = set(os.listdir(layout.checkpoints_dir))
        except OSError:
            checkpoints = set()
        _traces = _Traces(partials, layout.failed_ids(), checkpoints, logged)
    return _traces


def forget_traces() -> None:
    """Scan again at the next call (a test)."""
    global _traces
    _traces = None


def had_failed_record(layout: ExperimentDir, run_id: str) -> bool:
    """Whether the run had a failed record when this process first looked."""
    return run_id in _scan(layout).failed


def had_log(layout: ExperimentDir, run_id: str) -> bool:
    """Whether the run had a finished run log when this process first looked."""
    return run_id in _scan(layout).logged


def had_checkpoint(layout: ExperimentDir, run_id: str) -> bool:
    """Whether the run had a checkpoint directory when this process first looked."""
    return run_id in _scan(layout).checkpoints


def _recorded(layout: ExperimentDir, run_id: str) -> tuple[list[dict[str, Any]], float]:
    """The attempts the run's failed record counts (itself included) and its mtime."""
    if not had_failed_record(layout, run_id):
        return [], 0.0
    path = layout.failed_record(run_id)
    try:
        mtime = path.stat().st_mtime
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return [], 0.0
    if not isinstance(record, dict):
        return [], 0.0
    listed = ((record.get("provenance") or {}).get("extra") or {}).get("attempts")
    if isinstance(listed, list) and listed:
        return list(listed), mtime
    duration = record.get("duration_ms")
    this = {"started_at": record.get("started_at"), "status": record.get("status")}
    if isinstance(duration, int | float):
        this["seconds"] = round(duration / 1000, 3)
    return [this], mtime


def _killed(path: str, after: float) -> dict[str, Any] | None:
    """The attempt a partial log newer than ``after`` stands for: killed unrecorded."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    if mtime <= after:
        return None
    started = read_header(path).get("started_at")  # type: ignore[arg-type]
    this: dict[str, Any] = {"started_at": started, "status": "killed"}
    with contextlib.suppress(ValueError):
        this["seconds"] = round(mtime - datetime.fromisoformat(str(started)).timestamp(), 3)
    return this


def earlier_attempts(
    layout: ExperimentDir, run_id: str, exclude: str | None = None
) -> list[dict[str, Any]]:
    """The run's attempts before this one, numbered from 1, oldest first; ``exclude`` is
    a partial log that belongs to the attempt being recorded."""
    attempts, recorded_at = _recorded(layout, run_id)
    killed = [
        _killed(path, recorded_at)
        for path in _scan(layout).partials.get(run_id, [])
        if path != exclude
    ]
    attempts += sorted((k for k in killed if k is not None), key=lambda k: str(k.get("started_at")))
    return [{**a, "attempt": number} for number, a in enumerate(attempts, 1)]
