"""The summary row of a run record, and the rows of records read while a sweep runs.

Kept apart from ``summary`` (no pandas or pyarrow): a sweep's follower reads records as
they land (``RecordRows``) before those libraries have loaded, so the summary at the
sweep's end reads only the records that changed since."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from metalab_smk.errors import RecordError
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir, json_names
from metalab_smk.store.validate import open_dir_inside, read_record_file

__all__ = [
    "RecordRows",
    "RowKey",
    "Rows",
    "record_path",
    "record_row",
    "row_key",
    "rows_of",
    "scalar_or_json",
]

Rows = tuple[dict[str, Any], list[dict[str, Any]]]  # a record's summary row and step rows
RowKey = tuple[bool, str, int, int, int]  # (success, name, inode, change time in ns, size)


def scalar_or_json(value: Any) -> Any:
    """Scalars as they are; lists, dicts and other values as their (sorted) JSON text."""
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
        row[f"param_{name}"] = scalar_or_json(value)
    for name, value in (record.get("metrics") or {}).items():
        column = f"metric_{name}" if name in row else name
        row[column] = scalar_or_json(value)
    return row


def steps_rows(layout: ExperimentDir, record: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Rows of the record's stepped metrics; a missing, unreadable or escaping file is
    skipped (with a warning unless it is just missing)."""
    for name in record.get("stepped_metrics") or []:
        try:
            path = layout.resolve_inside(f"results/{record['run_id']}/{name}.json")
            data = [(step, value) for step, value in read_json(path)["data"]]
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:  # incl. StorePathError
            print(
                f"metalab: warning: run {record['run_id']}: skipped stepped metric {name!r}: {exc}",
                file=sys.stderr,
            )
            continue
        for step, value in data:
            yield {"run_id": record["run_id"], "name": name, "step": step, "value": value}


def rows_of(layout: ExperimentDir, record: dict[str, Any]) -> Rows:
    """The summary row and the step rows of a valid record."""
    return record_row(record), list(steps_rows(layout, record))


def row_key(success: bool, name: str, info: os.stat_result) -> RowKey:
    """What identifies the file a row was read from: a file replaced by a rename has
    another inode, one rewritten in place another change time (or size)."""
    changed = max(info.st_mtime_ns, info.st_ctime_ns)
    return success, name, info.st_ino, changed, info.st_size


def record_path(layout: ExperimentDir, run_id: str, success: bool) -> Path:
    """The run's success record (``success``) or failed record."""
    return layout.record(run_id) if success else layout.failed_record(run_id)


class RecordRows:
    """The rows of records that landed while a sweep ran, read as they come (``read_new``)
    by whoever follows the sweep, so the summary at its end reads only the records that
    changed since. A row counts only for the file it was read from: same name, inode,
    change time and size. Records on disk before ``start`` are left to the summary, which reuses
    the rows of the last one. The rows of a run's failed attempt are dropped once its
    success record is read (the summary takes the success)."""

    def __init__(self) -> None:
        self.rows: dict[RowKey, Rows] = {}
        self._seen: dict[bool, set[str]] = {True: set(), False: set()}
        self._wanted: set[str] | None = None
        self._failed: dict[str, RowKey] = {}  # file name: the key of its failed rows

    def start(self, layout: ExperimentDir) -> None:
        """Take the records on disk now as seen (call it before the sweep starts)."""
        self._seen = {True: json_names(layout.runs_dir), False: json_names(layout.failed_dir)}

    def read_new(self, layout: ExperimentDir) -> int:
        """Read the valid records of the run table that appeared since the last call; how
        many appeared. A bad one is left to the summary, which quarantines it."""
        if self._wanted is None:
            self._wanted = {f"{run_id}.json" for run_id in layout.read_run_ids()}
        count = 0
        for success, directory in ((True, layout.runs_dir), (False, layout.failed_dir)):
            fd = open_dir_inside(layout, directory)
            if fd is None:
                continue
            try:
                count += self._read_dir(layout, success, fd, self._wanted)
            finally:
                os.close(fd)
        return count

    def _read_dir(self, layout: ExperimentDir, success: bool, fd: int, wanted: set[str]) -> int:
        seen = self._seen[success]
        new = [name for name in os.listdir(fd) if name in wanted and name not in seen]
        for name in new:
            seen.add(name)
            run_id = name[:-5]
            try:  # stat first: a file replaced meanwhile has another key at the end
                info = os.stat(name, dir_fd=fd)
                record = read_record_file(
                    layout, record_path(layout, run_id, success), run_id, dir_fd=fd
                )
            except (OSError, RecordError):
                continue
            key = row_key(success, name, info)
            self.rows[key] = rows_of(layout, record)
            if not success:
                self._failed[name] = key
            elif name in self._failed:
                self.rows.pop(self._failed.pop(name), None)
        return len(new)
