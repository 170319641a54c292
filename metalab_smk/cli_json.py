"""``--json`` of ``metalab status``, ``plan`` and ``results``: one JSON object on stdout.

The fields are documented in docs/cli-json.md and stable: a change that removes or
renames a field, or changes its meaning, raises ``schema``; new fields may appear
without. Values are plain JSON: NaN and infinities become ``null``, times ISO 8601.
"""

from __future__ import annotations

import json
import math
import os
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from metalab_smk.results.results import ExperimentInfo

if TYPE_CHECKING:
    from metalab_smk.compile.dryrun import DryRun
    from metalab_smk.results.results import Results
    from metalab_smk.sweep.status import SweepStatus

__all__ = ["SCHEMA", "dumps", "plan_json", "results_json", "status_json"]

SCHEMA = 1


def dumps(document: dict[str, Any]) -> str:
    """``document`` as strict JSON (no NaN), keys in the documented order."""
    return json.dumps(_plain(document), indent=2, allow_nan=False)


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars, timestamps and non-finite floats made plain JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def status_json(status: SweepStatus, head: dict[str, Any] | None) -> dict[str, Any]:
    """``metalab status --json``: the counts, every failed run, the submitted head."""
    return {
        "schema": SCHEMA,
        "experiment_id": status.experiment_id,
        "directory": os.path.abspath(status.directory),
        "total": status.total,
        "done": status.done,
        "failed": status.failed,
        "running": status.running,
        "pending": status.pending,
        "stale": status.stale,
        "complete": status.is_complete,
        "failed_runs": [
            {
                "run_id": run.run_id,
                "status": run.status,
                "error_type": run.error_type,
                "message": run.message,
                "params": run.params,
                "log": run.log,
                "slurm_state": run.slurm_state,
                "slurm_log": run.slurm_log,
            }
            for run in status.failed_runs
        ],
        "head": head,
    }


def plan_json(plan: DryRun) -> dict[str, Any]:
    """``metalab plan --json``: what a run would do, and what changed since the last compile."""
    return {
        "schema": SCHEMA,
        "experiment_id": plan.experiment_id,
        "directory": os.path.abspath(plan.directory),
        "total": plan.total,
        "new": plan.new,
        "failed": plan.failed,
        "done": plan.done,
        "stale": plan.stale,
        "compiled_before": plan.compiled_before,
        "other_versions": plan.other_versions,
        "changes": [{"part": part, "diff": diff} for part, diff in plan.changes],
        "warning": plan.warning,
        "learned_resources": plan.learned,
    }


def results_json(results: Results) -> dict[str, Any]:
    """``metalab results --json``: one object per run, params and metrics by name."""
    layout = results.layout
    frame = results.to_dataframe()
    frame = frame.astype(object).where(frame.notna(), None)  # NaN, NaT and NA: null
    params, metrics = results.param_names(), results.metric_names()
    compiled = layout.compiled.is_file()
    return {
        "schema": SCHEMA,
        "experiment_id": ExperimentInfo.of(layout).experiment_id if compiled else layout.root.name,
        "directory": os.path.abspath(layout.root),
        "params": params,
        "metrics": metrics,
        "runs": [
            {
                "run_id": row["run_id"],
                "status": row["status"],
                "duration_ms": row["duration_ms"],
                "started_at": row["started_at"],
                "finished_at": row["finished_at"],
                "params": {name: row[f"param_{name}"] for name in params},
                "metrics": {name: row[name] for name in metrics},
            }
            for row in frame.to_dict("records")
        ],
    }
