"""Run the batches of a sweep as ONE SLURM job array, each task running the batch worker.

``python -m metalab_smk.slurm.array DIR STAMP N CONFIG_JSON`` submits
``python -m metalab_smk.worker task STAMP`` as ``sbatch --array=0-(N-1)%max_concurrent``
(task i runs the batch ``STAMP-<i, 6 digits>``), waits, and exits 0 when every run of every
task succeeded. It is what ``metalab.run(..., executor=SlurmExecutor(...))`` starts in
place of Snakemake: one submission, no Snakemake start inside each job.

The end of each task is seen from its ``.end`` marker (written by the worker whatever its
runs did), polled every 0.2 s, so the result follows the last task within a second.
Tasks that die without a marker (time limit, memory, node failure) are noticed by asking
``squeue``, at first every second, then less often the longer the sweep runs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterable, Sequence

from metalab_smk.errors import SchedulerError
from metalab_smk.slurm import bytecode, scheduler
from metalab_smk.slurm.config import SlurmConfig, memory_mb, minutes
from metalab_smk.store.layout import ExperimentDir

TIME_LIMIT_VARIABLE = "METALAB_TIME_LIMIT"  # a task's time limit in seconds
WARN_VARIABLE = "METALAB_WARN_BEFORE"  # seconds before it the runs are warned

__all__ = [
    "QueuePolling",
    "array_alive",
    "array_argv",
    "array_indices",
    "ended_markers",
    "job_argv",
    "main",
    "submit_array",
    "submit_summary",
    "tasks_ended",
]

MARKER_SECONDS = 0.2


def array_indices(tasks: int | Sequence[int]) -> str:
    """``--array`` indices: ``0-(tasks-1)`` for a count, else compact ranges (``0-3,7``)."""
    indices = sorted(set(range(tasks) if isinstance(tasks, int) else tasks))
    ranges: list[str] = []
    start = previous = indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ",".join(ranges)


def job_argv(
    command: str,
    config: SlurmConfig,
    *,
    job_name: str,
    output: str,
    chdir: str,
    array: str | None = None,
) -> list[str]:
    """``sbatch`` of ``command`` with the resources of ``config``; each job first runs the
    config's setup lines (modules, conda, ``setup``)."""
    if config.precommand():
        command = f"{config.precommand()} && {command}"
    return scheduler.sbatch_argv(
        command,
        job_name=job_name,
        output=output,
        chdir=chdir,
        time_minutes=minutes(config.time),
        memory_mb=memory_mb(config.memory),
        cpus=config.cpus,
        gpus=config.gpus,
        partition=config.partition,
        account=config.account,
        array=array,
        extra=[*shlex.split(config.extra or ""), *config.extra_sbatch_options()],
    )


def warning_seconds(config: SlurmConfig) -> int:
    """When a task is warned before its time limit: ``warn_before``, at most half of it."""
    return max(10, min(int(config.warn_before), minutes(config.time) * 30))


def task_command(stamp: str, config: SlurmConfig) -> str:
    """The shell command of an array task running the batch ``STAMP-<task>``. The task
    warns its runs itself before its time limit (SLURM's ``--signal`` comes up to a
    minute early): it reads the limit and the warning time from these variables."""
    limits = f"{TIME_LIMIT_VARIABLE}={minutes(config.time) * 60} {WARN_VARIABLE}="
    worker = shlex.join([sys.executable, "-m", "metalab_smk.worker", "task", stamp])
    return f"export {limits}{warning_seconds(config)} && exec {worker}"


def array_argv(
    layout: ExperimentDir, stamp: str, tasks: int | Sequence[int], config: SlurmConfig
) -> list[str]:
    """The ``sbatch --array`` of the batches ``STAMP-<task>`` (``tasks``: a count from 0,
    or the task numbers)."""
    n_tasks = tasks if isinstance(tasks, int) else len(tasks)
    # a `%` limit only when it limits anything
    throttle = f"%{config.max_concurrent}" if config.max_concurrent < n_tasks else ""
    return job_argv(
        task_command(stamp, config),
        config,
        job_name=f"metalab-{layout.root.name}",
        output=str(layout.slurm_log(f"{stamp}-%a")),
        chdir=str(layout.root),
        array=array_indices(tasks) + throttle,
    )


def submit_array(
    layout: ExperimentDir, stamp: str, tasks: int | Sequence[int], config: SlurmConfig
) -> str:
    """Submit the array of the batches ``STAMP-*``; its job ID (SchedulerError if refused)."""
    layout.slurm_logs_dir.mkdir(parents=True, exist_ok=True)
    bytecode.precompile()  # once here, not in every task (see slurm/bytecode.py)
    argv = array_argv(layout, stamp, tasks, config)
    return scheduler.parse_sbatch(scheduler.call(argv, timeout=120))


def submit_summary(layout: ExperimentDir, config: SlurmConfig, after: str) -> tuple[str, str]:
    """Submit the summary (``python -m metalab_smk.reduce .``) as a job that starts when
    every task of the array ``after`` has ended; its job ID and log path."""
    log = str(layout.slurm_log("summary-%j"))
    argv = scheduler.sbatch_argv(
        [sys.executable, "-m", "metalab_smk.reduce", "."],
        job_name=f"metalab-summary-{layout.root.name}",
        output=log,
        chdir=str(layout.root),
        time_minutes=max(10, minutes(config.time)),
        memory_mb=max(2000, memory_mb(config.memory)),
        cpus=1,
        partition=config.partition,
        account=config.account,
        extra=[f"--dependency=afterany:{after}", *shlex.split(config.extra or "")],
    )
    job_id = scheduler.parse_sbatch(scheduler.call(argv, timeout=120))
    return job_id, log.replace("%j", job_id)


class QueuePolling:
    """When to ask squeue next: every ``first`` s at first, growing by ``factor`` per
    check up to ``longest`` s (a long sweep is asked rarely)."""

    def __init__(self, first: float = 1.0, factor: float = 1.3, longest: float = 30.0) -> None:
        self.interval, self.factor, self.longest = first, factor, longest
        self.next_at = time.monotonic() + first

    def due(self) -> bool:
        if time.monotonic() < self.next_at:
            return False
        self.interval = min(self.longest, self.interval * self.factor)
        self.next_at = time.monotonic() + self.interval
        return True


def tasks_ended(layout: ExperimentDir, stamp: str, n_tasks: int) -> bool:
    """Whether every task of the array of ``stamp`` wrote its end marker."""
    try:
        names = os.listdir(layout.batches_dir)
    except OSError:
        return False
    prefix = f"{stamp}-"
    return sum(1 for n in names if n.startswith(prefix) and n.endswith(".end")) >= n_tasks


def array_alive(job_id: str) -> bool | None:
    """Whether a task of the array ``job_id`` is pending or running, from ``squeue`` (the
    controller's live view: sacct lags behind and shows a split array's tasks late);
    None when squeue is missing or fails."""
    if not scheduler.available("squeue"):
        return None
    try:
        out = scheduler.call(scheduler.squeue_argv([job_id]))
    except SchedulerError as exc:
        return False if "Invalid job id" in str(exc) else None
    return any(state in scheduler.ALIVE_STATES for state in scheduler.parse_squeue(out).values())


def ended_markers(layout: ExperimentDir, names: Iterable[str]) -> dict[str, str]:
    """``{name: marker text}`` of the batches whose task has ended."""
    try:
        present = set(os.listdir(layout.batches_dir))
    except OSError:
        return {}
    ended = {}
    for name in names:
        if f"{name}.end" in present:
            try:
                ended[name] = layout.batch_end(name).read_text().strip()
            except OSError:
                continue
    return ended


def wait_for(layout: ExperimentDir, job_id: str, names: set[str]) -> int:
    """Wait until every task ended; return the number of tasks with failures or no marker."""
    waiting, failed = set(names), 0
    polling = QueuePolling()
    while waiting:
        ended = ended_markers(layout, waiting)
        waiting -= set(ended)
        failed += sum(1 for text in ended.values() if text != "0")
        if not waiting:
            break
        if polling.due() and array_alive(job_id) is False:
            time.sleep(MARKER_SECONDS)  # a marker written just before the task ended
            ended = ended_markers(layout, waiting)
            failed += sum(1 for t in ended.values() if t != "0") + len(waiting - set(ended))
            print(
                f"metalab: {len(waiting - set(ended))} array task(s) of SLURM job {job_id} "
                "ended without finishing (see `metalab status`)",
                flush=True,
            )
            break
        time.sleep(MARKER_SECONDS)
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 4:
        print("usage: python -m metalab_smk.slurm.array DIR STAMP N CONFIG_JSON", file=sys.stderr)
        return 2
    directory, stamp, count, config_json = args
    layout = ExperimentDir.at(directory)
    config = SlurmConfig(**json.loads(config_json))
    n_tasks = int(count)
    try:
        job_id = submit_array(layout, stamp, n_tasks, config)
    except SchedulerError as exc:
        print(f"metalab: the SLURM array was not submitted: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"metalab: submitted SLURM array job {job_id} ({n_tasks} tasks)", flush=True)

    def cancel(signum: int, frame: object) -> None:
        try:  # the tasks get SIGTERM: their running runs record themselves as cancelled
            scheduler.call(scheduler.scancel_argv([job_id]))
        except SchedulerError as exc:
            print(f"metalab: {exc}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and array_alive(job_id) is not False:
            time.sleep(0.5)
        sys.exit(1)

    signal.signal(signal.SIGTERM, cancel)
    signal.signal(signal.SIGINT, cancel)
    names = {f"{stamp}-{i:06d}" for i in range(n_tasks)}
    return 1 if wait_for(layout, job_id, names) else 0


if __name__ == "__main__":
    sys.exit(main())
