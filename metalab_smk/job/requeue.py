"""An array task whose runs were interrupted puts itself back in the SLURM queue.

Where no waiting process resubmits interrupted runs (the tasks of ``metalab submit``
and of the ``metalab-slurm`` executor get ``METALAB_REQUEUE=1``; ``metalab.run``
resubmits them itself, a new array within seconds), a task whose run stopped at the
warning before the time limit (or at a preemption's SIGTERM) and may be attempted again
(``Experiment(max_attempts=...)``) lists the runs to continue, after its job ID, in
``.metalab/batches/<batch>.requeue``, asks SLURM to requeue it (``scontrol requeue
<array>_<index>``: the same job ID, so whatever waits for the array, the summary job of
``metalab submit`` or Snakemake, waits for its next attempt too), sets its begin time
5 s ahead and exits at once (SLURM holds a job whose requeue completes with no begin
time ahead for its credential lifetime, two minutes here). It writes no end marker then;
its next attempt runs only the listed runs. A task cancelled by ``scancel`` or
``metalab stop`` (its job state is no longer RUNNING) is not requeued: it ends as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from metalab_smk.errors import SchedulerError
from metalab_smk.job.driver import driver_gone
from metalab_smk.slurm import scheduler
from metalab_smk.store.jsonio import atomic_write_text, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import Status

__all__ = ["requeue_interrupted", "resumed_runs"]


def _listing(layout: ExperimentDir, batch: str) -> Path:
    return layout.batches_dir / f"{batch}.requeue"


def resumed_runs(
    layout: ExperimentDir, batch: str, pending: list[tuple[int, str]]
) -> list[tuple[int, str]]:
    """In a requeued task: the runs of ``pending`` its last attempt listed (else all; a
    listing left by another job, e.g. a later Snakemake's batch of the same name, is
    ignored)."""
    try:
        job, *listed = _listing(layout, batch).read_text().split()
    except (OSError, ValueError):
        return pending
    if job != os.environ.get("SLURM_JOB_ID"):
        return pending
    return [(index, run_id) for index, run_id in pending if run_id in listed]


def _to_continue(
    layout: ExperimentDir, pending: Sequence[tuple[int, str]], max_attempts: int
) -> list[str]:
    """The runs of ``pending`` to run again: interrupted ones with attempts left, and
    those never started (the task stops starting runs at the warning); empty when none
    was interrupted."""
    again, interrupted = [], False
    for _, run_id in pending:
        if layout.record(run_id).is_file():
            continue
        try:
            record = read_json(layout.failed_record(run_id))
        except FileNotFoundError:
            again.append(run_id)  # not reached
            continue
        except (OSError, ValueError):
            continue
        attempts = ((record.get("provenance") or {}).get("extra") or {}).get("attempts") or []
        if record.get("status") == Status.INTERRUPTED and len(attempts) < max_attempts:
            again.append(run_id)
            interrupted = True
    return again if interrupted else []


def requeue_interrupted(
    layout: ExperimentDir, batch: str, pending: Sequence[tuple[int, str]], max_attempts: int
) -> bool:
    """Requeue this SLURM task when runs of ``pending`` were interrupted and may go on;
    True when SLURM took it back (the caller then writes no end marker)."""
    job_id = os.environ.get("SLURM_JOB_ID", "")
    listing = _listing(layout, batch)
    asked = job_id and os.environ.get("METALAB_REQUEUE") == "1"  # as slurm/array.py sets
    again = _to_continue(layout, pending, max_attempts) if asked else []
    task = _task_spec() or job_id
    if not again or layout.stop_request.exists() or driver_gone():
        listing.unlink(missing_ok=True)
        return False
    atomic_write_text(listing, "\n".join([job_id, *again]) + "\n")  # this job's only
    try:  # SLURM requeues a cancelled job too: only a running one asks for more time
        shown = scheduler.parse_scontrol_job(scheduler.call(scheduler.scontrol_job_argv(task)))
        if shown.get("JobState") != "RUNNING":
            raise SchedulerError(f"it is {shown.get('JobState', 'gone')} (cancelled or ending)")
        scheduler.call(scheduler.scontrol_requeue_argv(task))
    except SchedulerError as exc:  # cancelled meanwhile, or requeue not allowed here
        print(f"metalab worker: the task was not requeued: {exc}", flush=True)
        listing.unlink(missing_ok=True)
        return False
    _start_soon(task)
    print(f"metalab worker: {len(again)} interrupted run(s) continue: task requeued", flush=True)
    return True


def _task_spec() -> str | None:
    """This array task as ``<array job ID>_<index>``: the last task's own job ID is the
    array's, so ``scontrol requeue`` of it would requeue every task."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{index}" if array and index else None


def _start_soon(job_id: str, tries: int = 5) -> None:
    """Set the requeued job's begin time 5 s ahead (the requeue's SIGTERM may kill the
    first ``scontrol``: tried again); without it, the task waits for SLURM's hold."""
    for _ in range(tries):
        try:
            scheduler.call(scheduler.scontrol_start_soon_argv(job_id))
            return
        except SchedulerError as exc:
            error = exc
        time.sleep(0.2)
    print(f"metalab worker: the requeued task waits for SLURM's hold: {error}", flush=True)
