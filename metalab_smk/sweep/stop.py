"""``metalab stop DIR``: stop a sweep wherever it runs (a foreground ``metalab run``, a
submitted head here or on SLURM) together with every job it started; the directory
stays resumable (finished runs are kept, running ones record themselves as cancelled)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from metalab_smk.errors import StoreError
from metalab_smk.slurm.jobs import slurm_job_ids  # re-exported: its former home
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.detached import is_head_process, read_head, recorded_executor
from metalab_smk.sweep.locks import live_snakemake_pids, live_worker_pids
from metalab_smk.sweep.status import pid_alive

__all__ = ["StopReport", "slurm_job_ids", "stop_sweep"]


def _signal(pid: int, signum: int, group: bool) -> None:
    try:
        if group:
            os.killpg(os.getpgid(pid), signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _local_head(layout: ExperimentDir, head: dict[str, Any]) -> int | None:
    """The pid of this sweep's head process, when ``head`` (``head.json``) names one that
    runs here and is the process recorded at submission (pid, start time, command line)."""
    return int(head["pid"]) if is_head_process(layout, head) else None


def _unproven_head(layout: ExperimentDir, head: dict[str, Any]) -> str | None:
    """One line when ``head.json`` names a live pid that is not the sweep's head."""
    if head.get("kind") != "local" or not pid_alive(head) or _local_head(layout, head) is not None:
        return None
    return (
        f"head.json names pid {head['pid']}, which is not this sweep's head (it ended); "
        "nothing to stop"
    )


@dataclass
class StopReport:
    """What ``metalab stop`` stopped (text per kind) and what it refused to signal."""

    stopped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def stop_sweep(layout: ExperimentDir, grace: float = 20.0) -> StopReport:
    """Stop everything of the sweep in ``layout``; returns what was stopped."""
    report = StopReport()
    layout.stop_request.touch()  # a runner in another terminal starts no further round
    try:
        head = read_head(layout)
    except StoreError as exc:  # still stop what runs here
        head = {}
        report.notes.append(str(exc))
    if head.get("kind") == "slurm":  # the head's job, its arrays, the jobs they logged
        own = {head["job_id"], *head.get("array_job_ids", [head.get("array_job_id")])}
        jobs = recorded_executor(layout, head["kind"]).cancel(layout, also=own)
        if jobs:
            report.stopped.append(f"SLURM jobs {', '.join(jobs)}")
    local_head = _local_head(layout, head)
    if local_head is not None:
        _signal(local_head, signal.SIGTERM, group=False)  # it stops its Snakemake
        report.stopped.append(f"head process {local_head}")
    elif (note := _unproven_head(layout, head)) is not None:
        report.notes.append(note)
    snakemakes = live_snakemake_pids(layout.root)
    for pid in snakemakes:
        _signal(pid, signal.SIGTERM, group=True)
    if snakemakes:
        report.stopped.append(f"snakemake {', '.join(map(str, snakemakes))}")
    for pid in live_worker_pids(layout.root):
        _signal(pid, signal.SIGTERM, group=False)
    deadline = time.monotonic() + grace

    def alive() -> list[int]:
        head_pid = _local_head(layout, head)
        return [
            *live_snakemake_pids(layout.root),
            *live_worker_pids(layout.root),
            *([head_pid] if head_pid else []),
        ]

    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = live_worker_pids(layout.root)
    for pid in alive():
        _signal(pid, signal.SIGKILL, group=pid not in workers)
    return report
