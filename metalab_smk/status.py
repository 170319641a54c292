"""Progress of a sweep read from the files alone (no Snakemake, no database)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from metalab_smk.store import ExperimentDir, read_json

__all__ = ["FailedRun", "SweepStatus", "sweep_status"]


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    status: str
    error_type: str
    message: str
    log: str


@dataclass
class SweepStatus:
    """Counts over the current run table; ``stale`` are records of runs no longer in it."""

    experiment_id: str
    directory: str
    total: int
    done: int
    failed: int
    missing: int
    stale: int
    failed_runs: list[FailedRun] = field(default_factory=list)

    @property
    def is_complete(self) -> bool:
        return self.done == self.total

    def as_text(self) -> str:
        lines = [
            f"{self.experiment_id}: {self.total} runs: {self.done} done, {self.failed} failed, "
            f"{self.missing} missing" + (f" ({self.stale} stale records)" if self.stale else "")
        ]
        for run in self.failed_runs:
            lines.append(f"  {run.status} {run.run_id}: {run.error_type}: {run.message}")
            lines.append(f"    log: {run.log}")
        return "\n".join(lines)


def _names(directory) -> set[str]:
    return (
        {n[:-5] for n in os.listdir(directory) if n.endswith(".json")}
        if directory.is_dir()
        else set()
    )


def sweep_status(layout: ExperimentDir, with_errors: bool = True) -> SweepStatus:
    """Done / failed / missing over the run table of ``layout``."""
    run_ids = layout.read_run_ids()
    current = set(run_ids)
    done_ids = _names(layout.runs_dir)
    failed_ids = _names(layout.failed_dir) - done_ids
    done = len(done_ids & current)
    failed_current = [rid for rid in run_ids if rid in failed_ids]
    failed_runs = []
    if with_errors:
        for run_id in failed_current:
            record = read_json(layout.failed_record(run_id))
            error = record.get("error") or {}
            failed_runs.append(
                FailedRun(
                    run_id,
                    record.get("status", "failed"),
                    error.get("type", "?"),
                    error.get("message", ""),
                    str(layout.log(run_id)),
                )
            )
    return SweepStatus(
        experiment_id=layout.root.name
        if not layout.compiled.is_file()
        else read_json(layout.compiled)["experiment_id"],
        directory=os.path.relpath(layout.root),
        total=len(run_ids),
        done=done,
        failed=len(failed_current),
        missing=len(run_ids) - done - len(failed_current),
        stale=len((done_ids | failed_ids) - current),
        failed_runs=failed_runs,
    )
