"""Progress of a sweep read from the files alone: done / running / failed / pending.

A run is done when its success record exists, failed when only its failed record does,
running while its ``.partial`` log names a live process or SLURM job, and pending
otherwise. A partial log whose process died (SIGKILL, out of memory, a SLURM
time limit) makes the run count as failed, with the SLURM state when ``sacct`` knows it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from metalab_smk.job.exits import disk_full
from metalab_smk.job.runlog import read_header
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir

__all__ = [
    "ALIVE_STATES",
    "cancel_slurm_jobs",
    "FailedRun",
    "SweepStatus",
    "pid_alive",
    "slurm_job_ids",
    "slurm_states",
    "sweep_status",
]

ALIVE_STATES = {
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "COMPLETING",
    "CONFIGURING",
    "SUSPENDED",
    "RESIZING",
}


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    status: str
    error_type: str
    message: str
    log: str
    slurm_state: str | None = None
    slurm_log: str | None = None


@dataclass
class SweepStatus:
    """Counts over the current run table; ``stale`` are records of runs no longer in it."""

    experiment_id: str
    directory: str
    total: int
    done: int
    failed: int
    running: int
    pending: int
    stale: int
    failed_runs: list[FailedRun] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.running + self.pending

    @property
    def is_complete(self) -> bool:
        return self.done == self.total

    def as_text(self) -> str:
        lines = [
            f"{self.experiment_id}: {self.total} runs: {self.done} done, {self.running} "
            f"running, {self.failed} failed, {self.pending} pending"
            + (f" ({self.stale} stale records)" if self.stale else "")
        ]
        for run in self.failed_runs:
            state = f" (SLURM {run.slurm_state})" if run.slurm_state else ""
            lines.append(f"  {run.status}{state} {run.run_id}: {run.error_type}: {run.message}")
            lines.append(f"    log: {run.log}")
            if run.slurm_log:
                lines.append(f"    SLURM log: {run.slurm_log}")
        return "\n".join(lines)


def _names(directory) -> set[str]:
    if not directory.is_dir():
        return set()
    return {n[:-5] for n in os.listdir(directory) if n.endswith(".json")}


_SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")


def slurm_job_ids(layout: ExperimentDir) -> set[str]:
    """The SLURM jobs Snakemake submitted for this directory (it logs each one)."""
    try:
        text = layout.snakemake_log.read_text(errors="replace")
    except OSError:
        return set()
    return set(_SUBMITTED.findall(text))


def cancel_slurm_jobs(layout: ExperimentDir) -> list[str]:
    """``scancel`` the SLURM jobs of this directory that are still queued or running."""
    ids = slurm_job_ids(layout)
    alive = sorted(j for j, state in slurm_states(ids).items() if state in ALIVE_STATES)
    if alive and shutil.which("scancel"):
        subprocess.run(["scancel", *alive], capture_output=True, check=False)
    return alive


def slurm_states(job_ids: set[str]) -> dict[str, str]:
    """SLURM state (``TIMEOUT``, ``OUT_OF_MEMORY``, ...) of each job, from ``sacct``."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    try:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(sorted(job_ids))],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    states = {}
    for line in out.splitlines():
        job, _, state = line.partition("|")
        if state:
            states[job.strip()] = state.split()[0]
    return states


def pid_alive(marker: dict[str, Any]) -> bool:
    """Whether the process ``{"pid", "host"}`` names runs on this host."""
    if marker.get("host") != os.uname().nodename:
        return False
    try:
        os.kill(int(marker["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return False
    return True


def _read(path) -> dict[str, Any]:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return {}


def sweep_status(layout: ExperimentDir, with_errors: bool = True) -> SweepStatus:
    """Done / running / failed / pending over the run table of ``layout``."""
    run_ids = layout.read_run_ids()
    current = set(run_ids)
    done_ids = _names(layout.runs_dir)
    failed_ids = _names(layout.failed_dir) - done_ids
    partials = layout.partial_logs()
    in_progress = (partials.keys() & current) - done_ids
    markers = {rid: read_header(partials[rid]) for rid in in_progress}
    jobs = {m["slurm_job_id"] for m in markers.values() if m.get("slurm_job_id")}
    failed_records = (
        {rid: _read(layout.failed_record(rid)) for rid in failed_ids & current}
        if with_errors
        else {}
    )
    jobs |= {
        r.get("provenance", {}).get("extra", {}).get("slurm_job_id")
        for r in failed_records.values()
    } - {None}
    states = slurm_states(jobs) if (with_errors or markers) else {}

    running, dead = set(), {}
    for run_id, marker in markers.items():
        job = marker.get("slurm_job_id")
        alive = states.get(job) in ALIVE_STATES if job else pid_alive(marker)
        if job and job not in states:  # sacct does not know it (yet): trust the marker
            alive = True
        if alive:
            running.add(run_id)
        elif run_id not in failed_ids or _newer(layout, partials[run_id], run_id):
            dead[run_id] = marker
    failed_current = [
        rid for rid in run_ids if (rid in failed_ids and rid not in running) or rid in dead
    ]
    failed_runs = []
    if with_errors:
        for run_id in failed_current:
            failed_runs.append(
                _failed_run(
                    layout, run_id, dead.get(run_id), failed_records.get(run_id, {}), states
                )
            )
    return SweepStatus(
        experiment_id=read_json(layout.compiled)["experiment_id"]
        if layout.compiled.is_file()
        else layout.root.name,
        directory=os.path.relpath(layout.root),
        total=len(run_ids),
        done=len(done_ids & current),
        failed=len(failed_current),
        running=len(running),
        pending=len(run_ids) - len(done_ids & current) - len(failed_current) - len(running),
        stale=len((done_ids | failed_ids) - current),
        failed_runs=failed_runs,
    )


def _newer(layout: ExperimentDir, partial, run_id: str) -> bool:
    """The partial log is newer than the failed record (a later attempt died)."""
    try:
        return partial.stat().st_mtime_ns > layout.failed_record(run_id).stat().st_mtime_ns
    except OSError:
        return False


def _failed_run(
    layout: ExperimentDir,
    run_id: str,
    marker: dict[str, Any] | None,
    record: dict[str, Any],
    states: dict[str, str],
) -> FailedRun:
    if marker is not None:  # the process died without writing a record
        job = marker.get("slurm_job_id")
        state = states.get(job) if job else None
        return FailedRun(
            run_id,
            "killed",
            state or "Killed",
            "the run's process died without writing a record"
            + (f" (SLURM job {job} ended {state})" if state else "")
            + (" (no space left on device)" if disk_full(layout.root) else ""),
            str(layout.log(run_id)),
            state,
            marker.get("slurm_log"),
        )
    error = record.get("error") or {}
    extra = record.get("provenance", {}).get("extra", {})
    job = extra.get("slurm_job_id")
    return FailedRun(
        run_id,
        record.get("status", "failed"),
        error.get("type", "?"),
        error.get("message", ""),
        str(layout.log(run_id)),
        states.get(job) if job else None,
        extra.get("slurm_log"),
    )
