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
from datetime import datetime
from typing import Any

from metalab_smk.job.runlog import read_header
from metalab_smk.store.layout import ExperimentDir

__all__ = ["earlier_attempts", "forget_partials"]

_partials: dict[str, list[str]] | None = None  # run ID -> its partial logs (one scan)


def _partial_logs(layout: ExperimentDir) -> dict[str, list[str]]:
    """``{run_id: [partial log paths]}``, from one scan of ``logs/`` per process."""
    global _partials
    if _partials is None:
        _partials = {}
        for run_id, path in layout.every_partial_log():
            _partials.setdefault(run_id, []).append(str(path))
    return _partials


def forget_partials() -> None:
    """Scan ``logs/`` again at the next call (a new batch child, a test)."""
    global _partials
    _partials = None


def _recorded(layout: ExperimentDir, run_id: str) -> tuple[list[dict[str, Any]], float]:
    """The attempts the run's failed record counts (itself included) and its mtime."""
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
        for path in _partial_logs(layout).get(run_id, [])
        if path != exclude
    ]
    attempts += sorted((k for k in killed if k is not None), key=lambda k: str(k.get("started_at")))
    return [{**a, "attempt": number} for number, a in enumerate(attempts, 1)]
