"""Merge runs into an experiment directory without ever overwriting a different record.

Used by ``metalab import`` for both archives and upstream stores. A run is written
whole (record, artifacts, data, derived metrics, log) or not at all:

* no record there yet: written;
* the same record there: kept; only missing output files are added;
* a success record there and a failed one coming: skipped (the success stays);
* a failed record there and a success coming: the success is added (it wins);
* a different record with the same status there: a conflict, reported, nothing written.

Every path comes from data (a record, a member name, a file of the source), so each is
checked by ``store/safepath.py``: a run ID that is not one, or a path that leads out of
the source or the destination, is refused with one line in ``MergeReport.refused``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalab_smk.errors import StorePathError
from metalab_smk.store.jsonio import atomic_write_bytes, atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.safepath import check_run_id, join_inside

__all__ = ["MergeReport", "copy_inside", "merge_run", "write_provisional_compiled"]


@dataclass
class MergeReport:
    """What an import did."""

    imported: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def refuse(self, entry: object, reason: object) -> None:
        """Note one entry left out, with why (one line each)."""
        self.refused.append(f"refused {entry}: {reason}")

    def as_text(self) -> str:
        text = (
            f"imported {self.imported} runs, {self.unchanged} already there"
            f" ({', '.join(self.experiments) or 'no experiments'})"
        )
        if self.refused:
            text += f"; {len(self.refused)} entries refused"
        if self.conflicts:
            text += f"; {len(self.conflicts)} conflicts (kept the existing records):\n  "
            text += "\n  ".join(self.conflicts)
        return text


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = {"_schema_version"}
    return {k: v for k, v in a.items() if k not in strip} == {
        k: v for k, v in b.items() if k not in strip
    }


def merge_run(
    layout: ExperimentDir,
    record: dict[str, Any],
    copy_outputs: Callable[[ExperimentDir], None],
    report: MergeReport,
) -> None:
    """Add one run (``record`` plus what ``copy_outputs`` writes) to ``layout``; a record
    whose ``run_id`` is not a run ID is refused."""
    try:
        run_id = check_run_id(record.get("run_id"))
    except StorePathError as exc:
        report.refuse(f"a record of {layout.root.name}", exc)
        return
    success = record.get("status") == "success"
    target = layout.record(run_id) if success else layout.failed_record(run_id)
    if layout.record(run_id).is_file() and not success:
        report.unchanged += 1  # a success is already there; it wins over a failure
        return
    if target.is_file():
        existing = read_json(target)
        if _same(existing, record):
            copy_outputs(layout)  # fills in files an earlier import left out (--no-artifacts)
            report.unchanged += 1
        else:
            report.conflicts.append(
                f"{layout.root.name}: run {run_id} differs from the record already at "
                f"{target.relative_to(layout.root)}"
            )
        return
    copy_outputs(layout)
    atomic_write_json(target, record)
    report.imported += 1


def copy_file(source: Path, target: Path, move: bool = False) -> None:
    """Copy (``move``: rename) unless a file is there (never replace a different one)."""
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        os.replace(source, target)
    else:
        shutil.copyfile(source, target)


def copy_inside(
    source_root: Path,
    relpath: str,
    target_root: Path,
    report: MergeReport,
    move: bool = False,
    target_relpath: str | None = None,
) -> None:
    """Copy ``source_root/relpath`` to ``target_root/(target_relpath or relpath)`` when it
    is a file and none is there; a path that leads out of either root is refused."""
    try:
        source = join_inside(source_root, relpath)
        target = join_inside(target_root, target_relpath or relpath)
    except StorePathError as exc:
        report.refuse(f"{source_root.name}/{relpath}", exc)
        return
    if source.is_file():
        copy_file(source, target, move)


def write_provisional_compiled(
    layout: ExperimentDir, experiment_id: str, run_ids: list[str], extra: dict[str, Any]
) -> None:
    """A minimal compiled description and run table so that the imported experiment
    loads before it is compiled; ``metalab run`` replaces both when it compiles."""
    if layout.compiled.is_file():
        return
    name, _, version = experiment_id.rpartition(":")
    description = {
        "experiment_id": experiment_id,
        "name": name,
        "version": version,
        "n_runs": len(run_ids),
        "imported": True,
        **extra,
    }
    atomic_write_bytes(layout.run_table, "".join(f"{rid}\n" for rid in run_ids).encode())
    atomic_write_json(layout.compiled, description, indent=None)
