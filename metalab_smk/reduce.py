"""Reduce run records to ``summary/runs.parquet`` and ``summary/steps.parquet``.

One row per run of the current run table (success record first, else the failed one;
runs with neither are left out, stale records of older compiles are ignored).
``python -m metalab_smk.reduce DIR`` is what the workflow's reduce rule runs.
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

from metalab_smk.store import ExperimentDir, read_json

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


def _record_paths(layout: ExperimentDir) -> Iterable[Path]:
    """Path of the record of every run in the run table that has one, in run order."""
    done = set(os.listdir(layout.runs_dir)) if layout.runs_dir.is_dir() else set()
    failed = set(os.listdir(layout.failed_dir)) if layout.failed_dir.is_dir() else set()
    for run_id in layout.read_run_ids():
        name = f"{run_id}.json"
        if name in done:
            yield layout.runs_dir / name
        elif name in failed:
            yield layout.failed_dir / name


def _steps_rows(layout: ExperimentDir, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for name in record.get("stepped_metrics") or []:
        path = layout.results(record["run_id"]) / f"{name}.json"
        if path.is_file():
            for step, value in read_json(path)["data"]:
                yield {"run_id": record["run_id"], "name": name, "step": step, "value": value}


def records_frame(layout: ExperimentDir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, steps) DataFrames built from the records on disk."""
    rows, steps = [], []
    for path in _record_paths(layout):
        record = read_json(path)
        rows.append(record_row(record))
        steps.extend(_steps_rows(layout, record))
    runs = pd.DataFrame(rows, columns=None if rows else list(RESERVED_COLUMNS))
    step_frame = pd.DataFrame(steps, columns=["run_id", "name", "step", "value"])
    if not step_frame.empty:
        step_frame["value"] = pd.to_numeric(step_frame["value"], errors="coerce")
    return runs, step_frame


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(_to_table(frame), tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def summary_is_current(layout: ExperimentDir) -> bool:
    """True when the summary is newer than every record directory and the run table."""
    summary = layout.summary_dir / "runs.parquet"
    if not summary.is_file():
        return False
    built = summary.stat().st_mtime_ns
    watched = [layout.runs_dir, layout.failed_dir, layout.run_table]
    return all(not p.exists() or p.stat().st_mtime_ns <= built for p in watched)


def collect(directory: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write both summaries of the experiment directory and return them."""
    layout = ExperimentDir.at(directory)
    runs, steps = records_frame(layout)
    _write_parquet(runs, layout.summary_dir / "runs.parquet")
    _write_parquet(steps, layout.summary_dir / "steps.parquet")
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
