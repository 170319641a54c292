"""The SLURM jobs of one experiment directory: which were submitted, which still run,
cancelling them (``metalab stop``, Ctrl-C, a stopped head)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

from metalab_smk.slurm import scheduler
from metalab_smk.store.layout import ExperimentDir

__all__ = ["alive_slurm_jobs", "cancel_slurm_jobs", "slurm_job_ids"]

_SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)|submitted SLURM array job (\d+)")


def slurm_job_ids(layout: ExperimentDir) -> set[str]:
    """The SLURM jobs submitted for this directory: Snakemake's (it logs each one) and
    the job array of the latest ``metalab run`` (its log names it)."""
    found: set[str] = set()
    for log in (layout.snakemake_log, layout.array_log):
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        found.update(plugin or array for plugin, array in _SUBMITTED.findall(text))
    return found


def alive_slurm_jobs(layout: ExperimentDir) -> list[str]:
    """The SLURM jobs submitted here that are still queued or running."""
    states = scheduler.job_states(slurm_job_ids(layout))
    return sorted(j for j, state in states.items() if state in scheduler.ALIVE_STATES)


def cancel_slurm_jobs(layout: ExperimentDir, also: Iterable[str | None] = ()) -> list[str]:
    """``scancel`` ``also`` (a submitted sweep's own jobs) at once, then the SLURM jobs
    submitted for this directory that the queue still shows; returns them all."""
    own = sorted({str(j) for j in also if j}, key=int)
    _scancel(own)
    alive = [j for j in alive_slurm_jobs(layout) if j not in own]
    _scancel(alive)
    return sorted([*own, *alive], key=int)


def _scancel(jobs: list[str]) -> None:
    if jobs and scheduler.available("scancel"):
        with contextlib.suppress(scheduler.SchedulerError):  # some had ended: the rest go
            scheduler.call(scheduler.scancel_argv(jobs))
