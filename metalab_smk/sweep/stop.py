"""``metalab stop DIR``: stop a sweep wherever it runs (a foreground ``metalab run``, a
submitted head here or on SLURM) together with every job it started; the directory
stays resumable (finished runs are kept, running ones record themselves as cancelled)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.locks import live_snakemake_pids, live_worker_pids
from metalab_smk.sweep.status import pid_alive, slurm_job_ids

__all__ = ["slurm_job_ids", "stop_sweep"]


def _signal(pid: int, signum: int, group: bool) -> None:
    try:
        if group:
            os.killpg(os.getpgid(pid), signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _local_head(layout: ExperimentDir) -> int | None:
    if not layout.head_file.is_file():
        return None
    head = read_json(layout.head_file)
    if head.get("kind") == "local" and pid_alive(head):
        return int(head["pid"])
    return None


def stop_sweep(layout: ExperimentDir, grace: float = 20.0) -> list[str]:
    """Stop everything of the sweep in ``layout``; returns what was stopped (text)."""
    stopped: list[str] = []
    layout.stop_request.touch()  # a runner in another terminal starts no further round
    head = read_json(layout.head_file) if layout.head_file.is_file() else {}
    if head.get("kind") == "slurm" and shutil.which("scancel"):
        recorded = {head["job_id"], head.get("array_job_id"), *slurm_job_ids(layout)}
        jobs = sorted((str(j) for j in recorded if j), key=int)
        subprocess.run(["scancel", *jobs], capture_output=True, check=False)
        stopped.append(f"SLURM jobs {', '.join(jobs)}")
    local_head = _local_head(layout)
    if local_head is not None:
        _signal(local_head, signal.SIGTERM, group=False)  # it stops its Snakemake
        stopped.append(f"head process {local_head}")
    snakemakes = live_snakemake_pids(layout.root)
    for pid in snakemakes:
        _signal(pid, signal.SIGTERM, group=True)
    if snakemakes:
        stopped.append(f"snakemake {', '.join(map(str, snakemakes))}")
    workers = live_worker_pids(layout.root)
    for pid in workers:
        _signal(pid, signal.SIGTERM, group=False)
    deadline = time.monotonic() + grace

    def alive() -> list[int]:
        head_pid = _local_head(layout)
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
    return stopped
