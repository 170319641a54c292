"""Reduce run records to ``summary/runs.parquet`` and ``summary/steps.parquet``.

One row per run of the current run table (success record first, else the failed one;
runs with neither are left out, stale records of older compiles are ignored).
``python -m metalab_smk.results.summary DIR`` is what the workflow's reduce rule runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from metalab_smk.errors import SummaryError
from metalab_smk.results.columns import (
    concat_typed,
    frame_of,
    read_frame,
    to_table,
    typed_frame,
)
from metalab_smk.results.rows import (
    RecordRows,
    RowKey,
    Rows,
    record_path,
    record_row,
    row_key,
    rows_of,
    scalar_or_json,
)
from metalab_smk.store.coverage import coverage_snapshot, summary_is_current, write_coverage
from metalab_smk.store.jsonio import atomic_write_via
from metalab_smk.store.layout import ExperimentDir, json_stems
from metalab_smk.store.safepath import read_json_inside
from metalab_smk.store.validate import clean_leftovers, open_dir_inside, read_valid_record

__all__ = [
    "RESERVED_COLUMNS",
    "collect",
    "ensure_summary",
    "record_row",
    "read_summary",
    "records_frame",
    "summary_is_current",
]

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


STEP_COLUMNS = ["run_id", "name", "step", "value"]
COVERAGE_KEY = b"metalab.coverage"
MAX_LISTED = 10_000  # the coverage lists failed runs and partial logs up to this many
REUSE_MARGIN_NS = 2_000_000_000  # records changed this close to the last listing are re-read


def is_exact_column(name: str) -> bool:
    """Params keep ints and floats apart; metrics mixing them become floats."""
    return name.startswith("param_")


def _stored_coverage(path: Path) -> dict[str, Any] | None:
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[COVERAGE_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def _previous(layout: ExperimentDir) -> tuple[pd.DataFrame, pd.DataFrame, int] | None:
    """The last summaries and when their records were listed, to reuse rows of records
    unchanged since (None when they are missing, unreadable or of an older format)."""
    stored = _stored_coverage(layout.summary_runs)
    if stored is None or "listed_at_ns" not in stored:
        return None
    try:
        return (
            read_frame(layout.summary_runs),
            pd.read_parquet(layout.summary_steps),
            int(stored["listed_at_ns"]),
        )
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None


def _build(
    layout: ExperimentDir,
    done: set[str],
    failed: set[str],
    previous: tuple[pd.DataFrame, pd.DataFrame, int] | None,
    cache: dict[RowKey, Rows | None],
    counts: dict[str, Any],
    move_bad: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(runs, steps, number of records quarantined) over the run table; ``counts``
    receives what ``metalab status`` counts, by file name as listed: ``n_done`` (runs of
    the table with a success record), ``failed_positions`` (run ID -> index of the runs
    with only a failed record) and ``n_stale`` (records of runs not in the table)."""
    position: dict[str, int] = {}
    old_status: list[Any] = []
    if previous is not None:
        old_runs, old_steps, listed_at = previous
        position = {rid: i for i, rid in enumerate(old_runs["run_id"].tolist())}
        old_status = old_runs["status"].tolist()
    kept: dict[str, int] = {}
    order: dict[str, int] = {}
    rows, steps, bad = [], [], 0
    fds = {
        True: open_dir_inside(layout, layout.runs_dir),
        False: open_dir_inside(layout, layout.failed_dir),
    }
    n_done = 0
    failed_positions: dict[str, int] = {}
    try:
        for index, run_id in enumerate(layout.read_run_ids()):
            name = f"{run_id}.json"
            if name in done:
                success = True
                n_done += 1
            elif name in failed:
                success = False
                failed_positions[run_id] = index
            else:
                continue
            fd = fds[success]
            try:  # relative to the directory's descriptor: about twice as fast
                where = name if fd is not None else record_path(layout, run_id, success)
                info = os.stat(where, dir_fd=fd)
            except FileNotFoundError:
                continue
            changed = max(info.st_mtime_ns, info.st_ctime_ns)
            row = position.get(run_id)
            if (
                row is not None
                and (old_status[row] == "success") == success
                and info.st_size > 0
                and changed < listed_at - REUSE_MARGIN_NS
            ):
                kept[run_id] = row
                order[run_id] = len(order)
                continue
            key = row_key(success, name, info)
            if key not in cache:
                path = record_path(layout, run_id, success)
                record = read_valid_record(layout, path, run_id, move_bad=move_bad, dir_fd=fd)
                if record is None:  # quarantined (or skipped): list again
                    bad += 1
                    cache[key] = None
                    continue
                cache[key] = rows_of(layout, record)
            cached = cache[key]
            if cached is None:
                continue
            row_data, step_rows = cached
            rows.append(row_data)
            steps.extend(step_rows)
            order[run_id] = len(order)
    finally:
        for fd in fds.values():
            if fd is not None:
                os.close(fd)
    counts["n_done"] = n_done
    counts["n_stale"] = len(done) - n_done + len(failed - done) - len(failed_positions)
    counts["failed_positions"] = failed_positions if len(failed_positions) <= MAX_LISTED else None
    fresh = typed_frame(
        pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame(columns=list(RESERVED_COLUMNS)),
        is_exact_column,
    )
    step_frame = pd.DataFrame(steps, columns=STEP_COLUMNS)
    runs = fresh
    if kept:
        reused = old_runs.iloc[sorted(kept.values())]
        runs = concat_typed([reused, fresh], is_exact_column)
        if len(old_steps):
            step_ids = old_steps["run_id"].to_numpy(dtype=object)
            keep_steps = [rid in kept for rid in step_ids]
            step_frame = pd.concat([old_steps[keep_steps], step_frame], ignore_index=True)
        ranks = [order[rid] for rid in runs["run_id"].tolist()]
        runs = runs.iloc[sorted(range(len(ranks)), key=ranks.__getitem__)].reset_index(drop=True)
    if not step_frame.empty:
        step_frame["value"] = pd.to_numeric(step_frame["value"], errors="coerce")
    return runs, step_frame, bad


def _records(
    layout: ExperimentDir, incremental: bool, move_bad: bool = True, read: RecordRows | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(runs, steps, coverage) of the valid records on disk; bad ones are quarantined
    and the listing repeated, so the coverage describes the directories as left
    (``move_bad=False``: bad ones are only named, nothing is written). ``read``: rows
    of records read before (while the sweep ran), used where the file is unchanged."""
    previous = _previous(layout) if incremental else None
    cache: dict[RowKey, Rows | None] = dict(read.rows) if read is not None else {}
    counts: dict[str, Any] = {}
    for _ in range(10):
        listed_at = time.time_ns()
        state, done, failed = coverage_snapshot(layout)
        runs, steps, bad = _build(layout, done, failed, previous, cache, counts, move_bad)
        if not bad or not move_bad:
            break
    runs = _with_derived(layout, runs)
    state.update(counts)
    state["listed_at_ns"] = listed_at
    state["n_rows"] = len(runs)
    state["summary_id"] = uuid.uuid4().hex
    return runs, steps, state


def records_frame(
    layout: ExperimentDir, incremental: bool = True, move_bad: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, steps) DataFrames of the valid records on disk (bad ones are quarantined;
    with ``move_bad=False`` only named, so nothing is written).

    With ``incremental``, rows of the last summary are reused for records that have not
    changed since it listed them, so only new or rewritten records are read."""
    runs, steps, _ = _records(layout, incremental, move_bad)
    return runs, steps


def read_summary(layout: ExperimentDir, steps: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, steps) for a reader, which never writes into the store: the summary files
    when they cover every record on disk, else built in memory from the records (bad
    ones named and skipped). ``steps=False`` leaves the steps table empty when the
    summary is current (it can be large)."""
    if summary_is_current(layout):
        try:
            runs = read_frame(layout.summary_runs)
            if not steps:
                return runs, pd.DataFrame(columns=STEP_COLUMNS)
            return runs, pd.read_parquet(layout.summary_steps)
        except (OSError, ValueError, pa.ArrowException):
            pass  # replaced meanwhile: read the records
    runs, step_rows = records_frame(layout, move_bad=False)
    return frame_of(to_table(runs)), step_rows  # typed as read back from the parquet file


def _with_derived(layout: ExperimentDir, runs: pd.DataFrame) -> pd.DataFrame:
    """``derived_<name>`` columns from ``derived/<run_id>.json`` (read afresh each time)."""
    runs = runs.drop(columns=[c for c in runs.columns if str(c).startswith("derived_")])
    stored = json_stems(layout.derived_dir)
    if not stored or runs.empty:
        return runs
    rows = [
        {f"derived_{k}": scalar_or_json(v) for k, v in _derived(layout, rid).items()}
        if rid in stored
        else {}
        for rid in runs["run_id"].tolist()
    ]
    extra = typed_frame(pd.DataFrame(rows, index=runs.index, dtype=object), is_exact_column)
    return pd.concat([runs, extra], axis=1)


def _derived(layout: ExperimentDir, run_id: str) -> dict[str, Any]:
    """The stored derived metrics of one run ({} with a warning when the file is bad)."""
    try:
        values = read_json_inside(layout.root, layout.derived(run_id))
    except (OSError, ValueError) as exc:
        print(f"metalab: warning: skipped {layout.derived(run_id)}: {exc}", file=sys.stderr)
        return {}
    return values if isinstance(values, dict) else {}


def _write_parquet(table: pa.Table, path: Path) -> None:
    atomic_write_via(path, lambda tmp: pq.write_table(table, tmp))


def collect(
    directory: str | os.PathLike[str], incremental: bool = True, read: RecordRows | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write both summaries of the experiment directory and return them (``incremental``:
    reuse the rows of records unchanged since the last summary; ``read``: rows read while
    the sweep ran). Bad records are quarantined, stale temporary files and empty partial
    logs removed."""
    layout = ExperimentDir.at(directory)
    logs: dict[str, Any] = {}
    clean_leftovers(layout, logs)
    runs, steps, state = _records(layout, incremental, read=read)
    state["logs_mtime_ns"] = logs["mtime_ns"]
    state["logs_listed_at_ns"] = logs["listed_at_ns"]
    partials = logs["partials"]
    state["partial_logs"] = partials if len(partials) <= MAX_LISTED else None
    listed = ("failed_positions", "partial_logs")  # long lists: in coverage.json only
    brief = {key: value for key, value in state.items() if key not in listed}
    metadata = {COVERAGE_KEY: json.dumps(brief).encode()}
    _write_parquet(to_table(runs, metadata), layout.summary_runs)
    steps_table = pa.Table.from_pandas(steps, preserve_index=False)
    steps_table = steps_table.replace_schema_metadata(
        {**(steps_table.schema.metadata or {}), **metadata}
    )
    _write_parquet(steps_table, layout.summary_steps)
    write_coverage(layout, state)
    return runs, steps


def ensure_summary(
    layout: ExperimentDir, stale: bool = False, read: RecordRows | None = None
) -> bool:
    """Rebuild the summary unless it is current (``stale``: known not to be; ``read``:
    rows read while the sweep ran); True when it was rebuilt. Raises SummaryError saying
    why when no readable, complete summary can be left."""
    if not stale and summary_is_current(layout):
        return False
    try:
        collect(layout.root, read=read)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise SummaryError(
            f"could not write the summary of {layout.root}: {exc}; fix the cause and run "
            f"`metalab collect {layout.root}`."
        ) from exc
    try:
        read_frame(layout.summary_runs)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise SummaryError(f"the summary {layout.summary_runs} cannot be read back: {exc}") from exc
    return True


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
