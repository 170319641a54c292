"""``metalab.run``: compile, run Snakemake as a subprocess, return a handle.

Snakemake runs in its own process group with the experiment directory as working
directory; the handle follows progress from the record files. Snakemake dies with the
handle's thread (parent-death signal), Ctrl-C while waiting stops the sweep, and
``result()`` returns the Results, failed runs included, and raises SweepError only when
the sweep itself did not finish (docs/guide.md, "Stopping a sweep, exit codes, crashes").
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from metalab_smk.compile.compiler import compile_experiment, experiment_dir
from metalab_smk.compile.loader import in_definition_mode, stop_definition
from metalab_smk.compile.manifest import write_run_manifest
from metalab_smk.core.experiment import Experiment
from metalab_smk.errors import (
    SweepBusyError,
    SweepError,
    SweepInterrupted,
    UsageError,
)
from metalab_smk.job.gpus import gpus_per_run
from metalab_smk.results.derived import normalise_functions
from metalab_smk.slurm.array import array_spec
from metalab_smk.store.classes import ResourceClasses
from metalab_smk.store.coverage import current_done_ids, status_coverage
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.locate import shown
from metalab_smk.sweep.arrays import plan_arrays
from metalab_smk.sweep.batches import missing_indices, plan_batches
from metalab_smk.sweep.detached import array_in_flight, submit
from metalab_smk.sweep.events import EventCallback
from metalab_smk.sweep.executors import Executor, GpuPlan, LocalExecutor, as_executor
from metalab_smk.sweep.handle import RunHandle
from metalab_smk.sweep.interrupt import exit_130_if_interrupted
from metalab_smk.sweep.local_retry import RetryRound, machine_memory_mb
from metalab_smk.sweep.locks import (
    RunnerLock,
    end_orphaned_snakemake,
    recover_stale_lock,
    running_sweep,
)
from metalab_smk.sweep.processes import start_detached
from metalab_smk.sweep.progress import Progress
from metalab_smk.sweep.snakemake_main import LOCAL_ONLY, SNAKEMAKE_MODULE

if TYPE_CHECKING:
    pass

__all__ = ["LocalExecutor", "RunHandle", "reconnect", "run", "start"]


def _forget(layout: ExperimentDir, run_ids: list[str]) -> None:
    """Delete the records and outputs of ``run_ids`` (``resume=False``)."""
    for run_id in run_ids:
        layout.record(run_id).unlink(missing_ok=True)
        layout.failed_record(run_id).unlink(missing_ok=True)
        for directory in (
            layout.artifacts(run_id),
            layout.results(run_id),
            layout.checkpoint(run_id),
        ):
            shutil.rmtree(directory, ignore_errors=True)
    forgotten = set(run_ids)  # partial logs of killed attempts count as attempts
    for run_id, path in layout.every_partial_log():
        if run_id in forgotten:
            path.unlink(missing_ok=True)


def _tracker(progress: bool | Progress | None, verbose: bool, title: str) -> Progress | None:
    if isinstance(progress, Progress):
        return progress
    show = verbose if progress is None else bool(progress)
    return Progress(title=title) if show else None


def _done_ids(layout: ExperimentDir) -> list[str]:
    done = layout.done_ids()
    return [rid for rid in layout.read_run_ids() if rid in done]


def start(
    layout: ExperimentDir,
    executor: Executor | None = None,
    resume: bool = True,
    progress: bool | Progress | None = None,
    on_event: EventCallback | None = None,
    verbose: bool = True,
    derived_metrics: list[Any] | None = None,
    tie_to_parent: bool | str = True,
    lock: RunnerLock | None = None,
) -> RunHandle:
    """Run what is missing in a compiled experiment directory (holding its runner lock).

    Snakemake ends when this process dies (``tie_to_parent``): SIGKILL in the foreground
    (its jobs notice and cancel their runs), SIGTERM for the head of a submitted sweep
    (``tie_to_parent="head"``: the SLURM plugin then cancels its jobs). Snakemake left
    running by a metalab process that was killed is ended first (SIGTERM, then SIGKILL
    after a minute)."""
    executor = as_executor(executor)
    lock = lock or RunnerLock(layout)
    missing: list[int] | None = None
    done: set[str] | None = None
    try:
        layout.stop_request.unlink(missing_ok=True)
        total = layout.count_runs()
        if resume:
            # when the summary is current, one stat pass checks it and finds the missing
            # runs; else the scan stats every record and validates those the summary has
            # not seen (bad ones are quarantined), and the summary is ensured here only
            # when nothing is left to run, else the sweep's own reduce writes it (and
            # pandas loads while Snakemake starts instead of before)
            done = current_done_ids(layout)
            if done is not None:
                missing = [i for i, rid in enumerate(layout.read_run_ids()) if rid not in done]
            else:
                missing = missing_indices(layout)
                if not missing:
                    from metalab_smk.results.summary import ensure_summary

                    ensure_summary(layout, stale=True)
        nothing_to_do = resume and not missing
    except BaseException:
        lock.release()
        raise
    title = layout.root.name
    if nothing_to_do:
        try:  # a store settled since its summary is noted: `metalab status` need not list it
            status_coverage(layout, note=True)
        finally:
            lock.release()
        if verbose:
            print(
                f"metalab: all {total} runs are done; nothing to run "
                f"(results: {shown(layout.root)})"
            )
        display = _tracker(progress, False, title) if isinstance(progress, Progress) else None
        return RunHandle(
            layout,
            None,
            display,
            on_event=on_event,
            derived_metrics=derived_metrics,
            skipped=layout.read_run_ids(),  # every run has a valid record
            summary_checked=True,
            complete=done is not None,
        )
    if array_in_flight(layout):
        lock.release()
        raise SweepBusyError(
            f"a submitted SLURM array still runs in {layout.root}; wait for it "
            f"(`metalab status {os.path.relpath(layout.root)}`) or stop it with "
            f"`metalab stop {os.path.relpath(layout.root)}`."
        )
    try:
        _gpu_plan(layout, as_executor(executor))  # too few GPUs: said before anything starts
        ended = end_orphaned_snakemake(layout.root)
        if ended and verbose:
            print(
                f"metalab: ended the Snakemake (pid {', '.join(map(str, ended))}) that a "
                "killed metalab run left in this directory."
            )
        if recover_stale_lock(layout) and verbose:
            print(
                f"metalab: removed the lock of an interrupted Snakemake run in {layout.root} "
                "(no snakemake is running there any more)."
            )
        if not resume:
            _forget(layout, layout.read_run_ids())
            missing = missing_indices(layout)
        skipped = _done_ids(layout)
    except BaseException:
        lock.release()
        raise
    death = signal.SIGTERM if tie_to_parent == "head" else signal.SIGKILL

    def launch(indices: list[int], retry: RetryRound | None = None) -> subprocess.Popen[bytes]:
        return _launch(layout, executor, indices, total, verbose, bool(tie_to_parent), death, retry)

    return RunHandle(
        layout,
        launch,
        _tracker(progress, verbose, title),
        lock=lock,
        on_event=on_event,
        derived_metrics=derived_metrics,
        skipped=skipped,
        missing=missing or [],
        executor=executor,
    )


def _launch(
    layout: ExperimentDir,
    executor: Executor,
    missing: list[int],
    total: int,
    verbose: bool,
    tie_to_parent: bool = False,
    death_signal: int = signal.SIGTERM,
    retry: RetryRound | None = None,
) -> subprocess.Popen[bytes]:
    """Write the batches of ``missing`` runs and start Snakemake on them (``retry``:
    runs the OOM killer ended, asking for more memory)."""
    gpu = _gpu_plan(layout, executor)
    parallel = executor.total_cores()
    if gpu is not None and isinstance(executor, LocalExecutor):  # one job per slot group
        parallel = min(executor.total_cores(gpu), gpu.concurrent)
    slurm = executor.array_config()
    if slurm is not None:
        arrays, chunk = plan_arrays(layout, slurm, missing, parallel, executor.min_chunk)
        if verbose:
            what = "one SLURM array" if len(arrays) == 1 else f"{len(arrays)} SLURM arrays"
            tasks = sum(a.tasks for a in arrays)
            print(
                f"metalab: running {len(missing)} of {total} runs in {shown(layout.root)}\n"
                f"  ({what} of {tasks} tasks of up to {chunk} runs)"
            )
        command = [sys.executable, "-m", "metalab_smk.slurm.array", str(layout.root)]
        command.append(array_spec(slurm, [(a.stamp, a.tasks, a.resources) for a in arrays]))
        return start_detached(command, layout.root, layout.array_log, tie_to_parent=tie_to_parent)
    local = isinstance(executor, LocalExecutor)
    groups, chunk = plan_batches(
        layout, missing, parallel, executor.chunk_size, executor.min_chunk, local=local
    )
    targets = [target for group in groups for target in group.targets]
    command = [
        sys.executable,
        "-m",
        SNAKEMAKE_MODULE,
        *[str(t.relative_to(layout.root)) for t in targets],
        *(executor.snakemake_args(gpu) if gpu else executor.snakemake_args()),  # type: ignore[call-arg]
        *_local_limits(layout, executor, gpu),
        *(retry.snakemake_args if retry else []),
        "--quiet",
        "progress",
        "rules",
        "host",
    ]
    if verbose:
        print(
            f"metalab: running {len(missing)} of {total} runs in {shown(layout.root)}\n"
            f"  ({len(targets)} Snakemake jobs of up to {chunk} runs, {parallel} at once)"
        )
    return start_detached(
        command,
        layout.root,
        layout.snakemake_log,
        tie_to_parent=tie_to_parent,
        death_signal=death_signal,
        env={
            LOCAL_ONLY: "1" if isinstance(executor, LocalExecutor) else "0",  # not inherited
            **(gpu.job_env() if gpu else {}),
            **(retry.env if retry else {}),
        },
    )


def _local_limits(
    layout: ExperimentDir,
    executor: Executor,
    gpu: GpuPlan | None,
) -> list[str]:
    """Locally, runs asking for CPUs or memory are counted against this machine's:
    Snakemake's ``--resources`` (a 4-CPU run never starts beside three others on 4 cores)."""
    if not isinstance(executor, LocalExecutor):
        return []
    asked = set(ResourceClasses.read(layout).names())
    limits = []
    if "cpus_per_task" in asked:
        limits.append(f"cpus_per_task={executor.total_cores(gpu)}")
    if "mem_mb" in asked:
        limits.append(f"mem_mb={machine_memory_mb()}")  # or its cgroup's limit
    if not limits:
        return []
    if gpu is not None:  # one --resources option for all
        return limits
    return ["--resources", *limits]


def _gpu_plan(layout: ExperimentDir, executor: Executor) -> GpuPlan | None:
    """How a local sweep's runs get their GPUs (None: not local, or no GPUs asked)."""
    if not isinstance(executor, LocalExecutor):
        return None
    classes = ResourceClasses.read(layout).classes  # the class asking for the most
    return executor.gpu_plan(max(classes, key=gpus_per_run))


def run(
    experiment: Experiment,
    store: str | os.PathLike[str] | None = None,
    executor: Any = None,
    resume: bool = True,
    progress: bool | Progress | None = None,
    on_event: EventCallback | None = None,
    derived_metrics: list[Any] | None = None,
    verbose: bool = True,
    wait: bool = True,
    index: str | None = None,
    file_root: str | os.PathLike[str] | None = None,
) -> RunHandle:
    """Compile ``experiment`` and run its missing runs with Snakemake; returns a handle.

    ``derived_metrics``: functions ``fn(run) -> dict`` (or ``'module:fn'``) computed for
    every successful run when the sweep ends, stored in ``derived/<run_id>.json``.
    ``wait=False`` submits and returns at once: the Snakemake head process runs detached
    (as its own SLURM job with a SLURM executor, else in the background); follow it with
    the handle, ``metalab status DIR`` or ``metalab.reconnect(DIR)``. ``index``: a
    PostgreSQL URL the summary step keeps up to date (as ``METALAB_INDEX_URL`` does).
    Upstream's ``store="postgresql://...?file_root=DIR"`` (or ``file_root=DIR``) writes
    the runs under DIR and keeps that database as the index."""
    if in_definition_mode():  # imported by `metalab compile` or a job: never a nested sweep
        stop_definition(experiment)
    functions = normalise_functions(derived_metrics)
    if (
        file_root is not None
        or not isinstance(store, (str, os.PathLike, type(None)))
        or (isinstance(store, str) and "://" in store)
    ):
        from metalab_smk.store.postgres import run_target

        store, index = run_target(store, file_root, index)
    if not wait and not resume:
        raise UsageError("run(wait=False) resumes; use resume=False only with wait=True.")
    atexit.unregister(exit_130_if_interrupted)
    atexit.register(exit_130_if_interrupted)  # runs after atexit handlers registered later
    locks: list[RunnerLock] = []

    def take_lock(layout: ExperimentDir) -> None:
        """Before writing anything: no recompile under a live sweep of any engine."""
        locks.append(RunnerLock(layout, busy=running_sweep))

    try:
        layout = compile_experiment(experiment, store, verbose=verbose, before_writing=take_lock)
    except BaseException as exc:
        for lock in locks:
            lock.release()
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            where = shown(exc.filename or experiment_dir(experiment, store).root)
            raise SweepError(f"no space left on device (writing {where})") from exc
        raise
    lock = locks[0]
    write_run_manifest(layout, experiment)
    if index is not None:  # the summary step then also updates this PostgreSQL index
        from metalab_smk.results.index.upkeep import remember_index

        remember_index(layout, index)
    if not wait:
        lock.release()  # the head takes it
        head = submit(layout, as_executor(executor))
        if head is None:
            if verbose:
                print(f"metalab: all {layout.count_runs()} runs are done; nothing to submit")
        elif verbose:
            where = (
                f"SLURM job {head['job_id']}"
                if head["kind"] == "slurm"
                else f"background process {head['pid']}"
            )
            print(
                f"metalab: submitted {layout.root} ({where}); follow it with "
                f"`metalab status {os.path.relpath(layout.root)}`"
            )
        return reconnect(layout.root, progress=progress, on_event=on_event, _derived=functions)
    handle = start(layout, executor, resume, progress, on_event, verbose, functions, lock=lock)
    # A script may end without .result(): finish the sweep at exit. By then threading
    # refuses new thread-atexit hooks, which importing concurrent.futures registers
    # (pandas does, in the sweep's thread), so it is imported now.
    import concurrent.futures.thread  # noqa: F401

    atexit.register(_finish_before_exit, handle)
    return handle


def _finish_before_exit(handle: RunHandle) -> None:
    """At interpreter exit: let a sweep the script started and never waited for finish
    (as upstream does); Ctrl-C stops it as usual, exit status 130."""
    if handle.is_complete:
        return
    print(
        f"metalab: waiting for the sweep in {shown(handle.layout.root)} to finish before "
        "exiting (Ctrl-C stops it; run(..., wait=False) detaches it instead)",
        file=sys.stderr,
        flush=True,
    )
    try:
        handle.wait()
    except (KeyboardInterrupt, SweepInterrupted):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def reconnect(
    directory: str | os.PathLike[str] | Any = None,
    progress: bool | Progress | None = None,
    on_event: EventCallback | None = None,
    _derived: list[Any] | None = None,
    *,
    store: str | os.PathLike[str] | Any = None,
    verbose: bool = False,
) -> RunHandle:
    """A handle on the experiment directory ``directory`` (a path or a ``FileStore``;
    ``store=`` is upstream's name for it), following a sweep that is still running there
    (started by ``metalab run``, ``metalab submit`` or plain ``snakemake``); ``progress``
    and ``on_event`` as in ``run``; ``verbose`` prints where it stands."""
    from metalab_smk.compile.reader import CompiledExperiment

    if (directory is None) == (store is None):
        raise UsageError("reconnect() takes exactly one of directory or store=.")
    directory = directory if directory is not None else store
    if not isinstance(directory, (str, os.PathLike)):  # a FileStore
        directory = directory.root
    layout = ExperimentDir.at(directory)
    CompiledExperiment.read(layout)  # clear error when it is not an experiment directory
    if verbose:
        print(
            f"metalab: reconnected to {shown(layout.root)}: {len(_done_ids(layout))} of "
            f"{layout.count_runs()} runs done"
        )
    display = _tracker(progress, False, layout.root.name)
    return RunHandle(
        layout,
        None,
        display,
        follow_existing=True,
        on_event=on_event,
        derived_metrics=_derived,
        skipped=_done_ids(layout),
    )
