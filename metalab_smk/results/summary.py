"""Reduce run records to ``summary/runs.parquet`` and ``summary/steps.parquet``.

One row per run of the current run table (success record first, else the failed one;
runs with neither are left out, stale records of older compiles are ignored).
``python -m metalab_smk.results.summary DIR`` is what the workflow's reduce rule runs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from metalab_smk.store.jsonio import atomic_write_via, read_json
from metalab_smk.store.layout import ExperimentDir

__all__ = ["RESERVED_COLUMNS", "collect", "record_row", "records_frame", "summary_is_current"]

RESERVED_COLUMNS = (
    "run_id",
    "experiment_id",
    "status",
    "run_index",
    "seed_root",
    "seed_replicate",
    "duration_ms",
    "started_at",
    "finished_at",
    "error_type",
    "error_message",
    "tags",
)


def _scalar_or_json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """The summary row of one record (params as ``param_<name>``, metrics by name)."""
    error = record.get("error") or {}
    seed = record.get("seed") or {}
    row: dict[str, Any] = {
        "run_id": record["run_id"],
        "experiment_id": record.get("experiment_id"),
        "status": record.get("status"),
        "run_index": record.get("run_index"),
        "seed_root": seed.get("root_seed"),
        "seed_replicate": seed.get("replicate_index"),
        "duration_ms": record.get("duration_ms"),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "error_type": error.get("type"),
        "error_message": error.get("message"),
        "tags": ",".join(record.get("tags") or []),
    }
    for name, value in (record.get("params_resolved") or {}).items():
        row[f"param_{name}"] = _scalar_or_json(value)
    for name, value in (record.get("metrics") or {}).items():
        column = f"metric_{name}" if name in row else name
        row[column] = _scalar_or_json(value)
    return row


def _record_paths(layout: ExperimentDir) -> list[tuple[str, str, str]]:
    """(run ID, record path, "success" | "failed") of every run in the run table that has
    a record, in run order; the success record wins over a failed one."""
    done, failed = layout.done_ids(), layout.failed_ids()
    found = []
    for run_id in layout.read_run_ids():
        if run_id in done:
            found.append((run_id, str(layout.record(run_id)), "success"))
        elif run_id in failed:
            found.append((run_id, str(layout.failed_record(run_id)), "failed"))
    return found


def _steps_rows(layout: ExperimentDir, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for name in record.get("stepped_metrics") or []:
        path = layout.results(record["run_id"]) / f"{name}.json"
        if path.is_file():
            for step, value in read_json(path)["data"]:
                yield {"run_id": record["run_id"], "name": name, "step": step, "value": value}


def _previous(layout: ExperimentDir) -> tuple[pd.DataFrame, pd.DataFrame, int] | None:
    """The last summaries and when they were written, to reuse rows of unchanged records."""
    runs_path = layout.summary_runs
    steps_path = layout.summary_steps
    if not (runs_path.is_file() and steps_path.is_file()):
        return None
    try:
        built = min(runs_path.stat().st_mtime_ns, steps_path.stat().st_mtime_ns)
        return pd.read_parquet(runs_path), pd.read_parquet(steps_path), built
    except (OSError, ValueError, pa.ArrowException):
        return None


def records_frame(
    layout: ExperimentDir, incremental: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, steps) DataFrames of the records on disk.

    With ``incremental``, rows of the last summary are reused for records that have not
    changed since it was written (same status, file older than the summary), so only new
    or rewritten records are read."""
    paths = _record_paths(layout)
    previous = _previous(layout) if incremental else None
    kept: dict[str, int] = {}  # run ID -> row in the previous summary
    if previous is not None:
        old_runs, old_steps, built = previous
        position = {rid: i for i, rid in enumerate(old_runs["run_id"].tolist())}
        old_status = old_runs["status"].tolist()
        for run_id, path, kind in paths:
            row = position.get(run_id)
            if (
                row is not None
                and (old_status[row] == "success") == (kind == "success")
                and os.stat(path).st_mtime_ns < built
            ):
                kept[run_id] = row
    rows, steps = [], []
    for run_id, path, _ in paths:
        if run_id not in kept:
            record = read_json(path)
            rows.append(record_row(record))
            steps.extend(_steps_rows(layout, record))
    runs = pd.DataFrame(rows, columns=None if rows else list(RESERVED_COLUMNS))
    step_frame = pd.DataFrame(steps, columns=["run_id", "name", "step", "value"])
    if kept:
        reused = old_runs.iloc[sorted(kept.values())]
        runs = pd.concat([reused, runs], ignore_index=True)
        if len(old_steps):
            step_ids = old_steps["run_id"].to_numpy(dtype=object)
            keep_steps = [rid in kept for rid in step_ids]
            step_frame = pd.concat([old_steps[keep_steps], step_frame], ignore_index=True)
        order = {run_id: i for i, (run_id, _, _) in enumerate(paths)}
        ranks = [order[rid] for rid in runs["run_id"].tolist()]
        runs = runs.iloc[sorted(range(len(ranks)), key=ranks.__getitem__)].reset_index(drop=True)
    if not step_frame.empty:
        step_frame["value"] = pd.to_numeric(step_frame["value"], errors="coerce")
    return _with_derived(layout, runs), step_frame


def _with_derived(layout: ExperimentDir, runs: pd.DataFrame) -> pd.DataFrame:
    """``derived_<name>`` columns from ``derived/<run_id>.json`` (read afresh each time)."""
    runs = runs.drop(columns=[c for c in runs.columns if str(c).startswith("derived_")])
    stored = _names_in(layout.derived_dir)
    if not stored or runs.empty:
        return runs
    rows = [
        {f"derived_{k}": _scalar_or_json(v) for k, v in read_json(layout.derived(rid)).items()}
        if rid in stored
        else {}
        for rid in runs["run_id"].tolist()
    ]
    return pd.concat([runs, pd.DataFrame(rows, index=runs.index)], axis=1)


def _names_in(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {n[:-5] for n in os.listdir(directory) if n.endswith(".json")}


def _to_table(frame: pd.DataFrame) -> pa.Table:
    """Arrow table; columns of mixed types are stored as strings rather than failing."""
    frame = frame.copy()
    for column in frame.columns:
        try:
            pa.array(frame[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return pa.Table.from_pandas(frame, preserve_index=False)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = _to_table(frame)
    atomic_write_via(path, lambda tmp: pq.write_table(table, tmp))


def summary_is_current(layout: ExperimentDir) -> bool:
    """True when the summary is newer than every record directory and the run table."""
    summary = layout.summary_runs
    if not summary.is_file():
        return False
    built = summary.stat().st_mtime_ns
    watched = [layout.runs_dir, layout.failed_dir, layout.run_table, layout.derived_dir]
    return all(not p.exists() or p.stat().st_mtime_ns <= built for p in watched)


def collect(
    directory: str | os.PathLike[str], incremental: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write both summaries of the experiment directory and return them (``incremental``:
    reuse the rows of records unchanged since the last summary)."""
    layout = ExperimentDir.at(directory)
    runs, steps = records_frame(layout, incremental)
    _write_parquet(runs, layout.summary_runs)
    _write_parquet(steps, layout.summary_steps)
    return runs, steps


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    quiet = "--quiet" in args
    paths = [a for a in args if a != "--quiet"] or ["."]
    runs, steps = collect(paths[0])
    if not quiet:
        counts = runs["status"].value_counts().to_dict() if len(runs) else {}
        print(f"metalab: summary of {len(runs)} runs {counts}, {len(steps)} step rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
