"""``metalab.run``: compile, run Snakemake as a subprocess, return a handle.

Snakemake runs in its own process group with the experiment directory as working
directory; the handle follows progress from the record files. Snakemake dies with the
handle's thread (parent-death signal), Ctrl-C while waiting stops the sweep, and
``result()`` returns the Results, failed runs included, and raises SweepError only when
the sweep itself did not finish (docs/guide.md, "Stopping a sweep, exit codes, crashes").
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalab_smk.compile.compiler import compile_experiment, experiment_dir
from metalab_smk.compile.loader import in_definition_mode, stop_definition
from metalab_smk.compile.manifest import write_run_manifest
from metalab_smk.core.experiment import Experiment
from metalab_smk.errors import (
    MetalabError,
    SweepBusyError,
    SweepError,
    SweepInterrupted,
    UsageError,
)
from metalab_smk.job.gpus import gpus_per_run
from metalab_smk.results.derived import normalise_functions
from metalab_smk.slurm.array import (
    QueuePolling,
    array_spec,
    cluster_array_limit,
    sbatch_options,
    task_resources,
)
from metalab_smk.store.classes import ResourceClasses
from metalab_smk.store.coverage import current_done_ids, status_coverage
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.locate import shown
from metalab_smk.store.records import Status
from metalab_smk.sweep.batches import missing_indices, plan_batches
from metalab_smk.sweep.detached import array_in_flight, head_alive, submit
from metalab_smk.sweep.events import Event, EventCallback, EventKind, EventWatcher, emit_event
from metalab_smk.sweep.executors import (
    GpuPlan,
    LocalExecutor,
    ProfileExecutor,
    SlurmExecutor,
    array_config,
    as_executor,
)
from metalab_smk.sweep.locks import (
    RunnerLock,
    end_orphaned_snakemake,
    live_snakemake_pids,
    recover_stale_lock,
    running_sweep,
)
from metalab_smk.sweep.outcome import failed_runs_warning, failure_cause
from metalab_smk.sweep.processes import signal_group, start_detached
from metalab_smk.sweep.progress import Progress
from metalab_smk.sweep.status import SweepStatus, cancel_slurm_jobs, sweep_status

if TYPE_CHECKING:
    from metalab_smk.results.results import Results

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


class RunHandle:
    """A sweep in progress (or finished): ``status``, ``job_id``, ``store``,
    ``is_complete``, ``wait()``, ``result()``, ``cancel()``.

    Events (``on_event``) and the progress display are fed by a watcher thread that turns
    new record and partial-log files into events; derived metrics are computed when the
    sweep ends, before the parquet summary is written.

    The watch thread also starts Snakemake (``launch``): its parent-death signal is tied
    to the starting thread, which lives as long as the sweep. Ctrl-C while waiting (a
    KeyboardInterrupt in the waiting thread, e.g. a notebook's interrupt) stops a sweep
    this handle started: Snakemake and its jobs get SIGTERM (running runs record
    themselves as cancelled), a second Ctrl-C kills them at once; then SweepInterrupted
    is raised."""

    def __init__(
        self,
        layout: ExperimentDir,
        launch: Callable[[list[int]], subprocess.Popen[bytes]] | None = None,
        progress: Progress | None = None,
        follow_existing: bool = False,
        lock: RunnerLock | None = None,
        summary_checked: bool = False,
        complete: bool = False,
        on_event: EventCallback | None = None,
        derived_metrics: list[Any] | None = None,
        skipped: list[str] | None = None,
        missing: list[int] | None = None,
    ) -> None:
        self.layout = layout
        self.process: subprocess.Popen[bytes] | None = None
        self._launch = launch
        self._started = threading.Event()
        self._launch_error: BaseException | None = None
        self._stopping = False
        self.error: str | None = None  # one line: why the sweep did not finish
        self.runs_failed_only = False  # error is only failed runs: every run has a record
        self._warned = False
        self._lock = lock
        self._progress = progress
        self._on_event = on_event
        self._derived = list(derived_metrics or [])
        self._done = threading.Event()
        self.returncode: int | None = None
        self.summary_error: str | None = None  # set when no complete summary could be left
        self._summary_checked = summary_checked  # a no-op start has just ensured it
        self._complete = complete  # ... and found every run done by a current summary
        self._skipped = list(skipped or [])
        self._rounds = max(2, _max_attempts(layout) - 1)  # more rounds: missed, interrupted
        self._watcher: EventWatcher | None = None
        if progress is not None or on_event is not None:
            skipped_ids = set(self._skipped)
            running = [rid for rid in layout.read_run_ids() if rid not in skipped_ids]
            if progress is not None:
                progress.total = len(running) + len(self._skipped)
                if on_event is None:  # no per-run skip events needed: just the count
                    progress.skipped = len(self._skipped)
                progress.__enter__()
            self._watcher = EventWatcher(
                layout, running, self._skipped, self._emit, skip_events=on_event is not None
            )
        if launch is None and not follow_existing:
            self.returncode = 0
            self._finish()
            return
        threading.Thread(
            target=self._watch, args=(missing or [],), daemon=True, name="metalab-sweep"
        ).start()
        self._started.wait()
        if self._launch_error is not None:
            raise self._launch_error

    def _emit(self, event: Event) -> None:
        emit_event(self._progress, event)
        emit_event(self._on_event, event)

    @property
    def directory(self) -> Path:
        return self.layout.root

    @property
    def job_id(self) -> str:
        """The SLURM job ID of a submitted head, else ``local-<pid>`` of Snakemake's
        (or the detached head's) process."""
        head = self.layout.head_file
        if self.process is not None:
            return f"local-{self.process.pid}"
        if head.is_file():
            info = read_json(head)
            return str(info["job_id"]) if info.get("kind") == "slurm" else f"local-{info['pid']}"
        return f"local-{os.getpid()}"

    @property
    def store(self) -> Any:
        """A ``FileStore`` on the experiment directory (records, logs, derived metrics)."""
        from metalab_smk.store.filestore import FileStore

        return FileStore(self.layout.root)

    def _running(self, ask_scheduler: bool = True) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return head_alive(self.layout, ask_scheduler) or bool(live_snakemake_pids(self.layout.root))

    def _watch(self, missing: list[int]) -> None:
        """Start Snakemake, follow it, and start up to two more rounds for runs that no
        job reached (a batch cut short by a SLURM time limit)."""
        if self._launch is not None:
            try:
                self.process = self._launch(missing)
            except BaseException as exc:  # raised by the constructor
                self._launch_error = exc
                self._started.set()
                if self._lock is not None:
                    self._lock.release()
                if self._progress is not None:
                    self._progress.__exit__(None, None, None)
                return
        self._started.set()
        import metalab_smk.results.summary  # noqa: F401 - load pandas/pyarrow while Snakemake works

        try:
            self._follow(missing)
        except Exception as exc:  # never leave a waiter hanging
            self.error = f"following the sweep failed: {_reason(exc)}"
        finally:
            self._finish()

    def _follow(self, missing: list[int]) -> None:
        rounds = 0
        polling = QueuePolling()  # files every 0.1 s; the scheduler seldom, backing off
        while True:
            pause = 0.1
            while self._running(polling.due()):
                if self._watcher is not None:
                    began = time.perf_counter()
                    self._watcher.poll()
                    pause = min(2.0, max(0.1, 5 * (time.perf_counter() - began)))
                time.sleep(pause)
            self.returncode = self.process.returncode if self.process is not None else None
            untouched = _untouched_indices(self.layout)
            interrupted = _interrupted_indices(self.layout)
            killed = self.returncode is not None and self.returncode < 0
            self._stopping = self._stopping or self.layout.stop_request.exists()
            again = sorted(untouched + interrupted)
            if self._stopping or killed or self._launch is None or rounds >= self._rounds:
                return
            if not again:
                return
            if not interrupted and len(untouched) == len(missing) and self.returncode:
                return  # no job got anywhere: a second round would fail the same way
            rounds, missing = rounds + 1, again
            self.process = self._launch(again)

    def _finish(self) -> None:
        from metalab_smk.results.pgindex import upkeep
        from metalab_smk.results.summary import ensure_summary

        try:
            if self._watcher is not None:
                self._watcher.poll()
            try:
                if self._derived:
                    self._compute_derived()
                if not self._summary_checked:
                    ensure_summary(self.layout)  # also quarantines bad records that landed
                upkeep(self.layout)  # the PostgreSQL index, when one is configured
            except Exception as exc:
                self.error = f"the summary could not be written: {_reason(exc)}"
                self.summary_error = self.error
            if self.error is None and not self._complete:  # a no-op: nothing failed
                try:
                    status = sweep_status(self.layout)
                    self.error = failure_cause(self.layout, self.returncode, status)
                    self.runs_failed_only = bool(
                        self.error and status.failed and not status.missing
                    )
                except MetalabError as exc:  # e.g. .metalab/ deleted mid-sweep
                    self.error = str(exc)
            if self.error is not None and self._stopping:
                self.error = f"the sweep was stopped: {self.error}"
                self.runs_failed_only = False
        finally:
            self._close()

    def _close(self) -> None:
        try:
            if self._lock is not None:
                self._lock.release()
            status = None
            if self._watcher is not None:
                try:
                    status = sweep_status(self.layout, with_errors=False)
                except MetalabError as exc:  # the directory was damaged: no counts
                    self.error = self.error or str(exc)
            if status is not None:
                self._emit(
                    Event.make(
                        EventKind.FINISHED,
                        experiment_id=status.experiment_id,
                        total=status.total,
                        done=status.done,
                        failed=status.failed,
                        missing=status.missing,
                    )
                )
            if self._progress is not None:
                self._progress.__exit__(None, None, None)
        finally:
            self._done.set()

    def _compute_derived(self) -> None:
        from metalab_smk.results.results import Results

        computed = Results(self.layout).compute_derived(self._derived)
        if computed and self._progress is not None and self._progress.show:
            print(f"metalab: derived metrics of {len(computed)} runs stored", flush=True)

    @property
    def status(self) -> SweepStatus:
        """Counts over the run table: ``total``, ``done`` (all successful runs),
        ``completed`` (successful in this invocation), ``skipped`` (done before it),
        ``failed``, ``running``, ``pending``."""
        return replace(sweep_status(self.layout), skipped=len(self._skipped))

    @property
    def is_complete(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s; True once the sweep ended. Ctrl-C stops the sweep."""
        try:
            return self._done.wait(timeout)
        except KeyboardInterrupt:
            if self.process is None:  # following a sweep started elsewhere: stop waiting
                raise
            self._interrupted()
            raise AssertionError("unreachable") from None

    def _interrupted(self) -> None:
        print(
            "\nmetalab: stopping the sweep (Ctrl-C again to kill it at once)...",
            file=sys.stderr,
            flush=True,
        )
        try:
            self._terminate()
        except KeyboardInterrupt:
            self._terminate(grace=0)
        with contextlib.suppress(KeyboardInterrupt):
            self._done.wait(60)
        status = sweep_status(self.layout, with_errors=False)
        message = (
            f"metalab: interrupted: {status.done} of {status.total} runs finished and are "
            f"kept; run the same command again (or `snakemake` in {shown(self.layout.root)})"
            " to resume."
        )
        print(message, file=sys.stderr, flush=True)
        _quiet_interrupt_exit()
        raise SweepInterrupted(message) from None

    def _terminate(self, grace: float = 15.0) -> None:
        """SIGTERM to Snakemake's process group (its local jobs too), SIGKILL after
        ``grace`` seconds; returns when the group is gone."""
        self._stopping = True
        process = self.process
        if process is None:
            return
        signal_group(process.pid, signal.SIGKILL if grace <= 0 else signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process.poll() is None or signal_group(process.pid, 0):
            if time.monotonic() > deadline:
                signal_group(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(0.05)
        cancel_slurm_jobs(self.layout)  # any SLURM job Snakemake did not cancel itself

    def result(self, timeout: float | None = None, check: bool = False) -> Results:
        """Wait for the sweep (up to ``timeout`` s) and return its Results, failed runs
        included (one warning line names them, as upstream returns them too).

        Raises SweepError (with ``status`` and one line naming the cause) when the sweep
        itself did not finish: Snakemake failed, runs never ran, the summary could not be
        written, it was stopped; ``check=True`` also raises when a run failed."""
        from metalab_smk.results.results import Results

        if not self.wait(timeout):
            raise TimeoutError(f"the sweep in {self.layout.root} is still running")
        if self.error and (check or not self.runs_failed_only):
            raise SweepError(self.error, sweep_status(self.layout), self.returncode)
        if self.error and not self._warned:
            self._warned = True
            print(failed_runs_warning(self.layout, self.status), file=sys.stderr, flush=True)
        return Results(self.layout)

    def cancel(self) -> None:
        """Stop the sweep: Snakemake and its running jobs (they record themselves as
        cancelled), or a submitted sweep's head and jobs. Finished runs are kept."""
        if self.process is not None:
            self._terminate()
        else:
            from metalab_smk.sweep.stop import stop_sweep

            self._stopping = True
            stop_sweep(self.layout)
        self._done.wait()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on device"
    return f"{type(exc).__name__}: {exc}"


_interrupted_script = False


def _exit_130_if_interrupted() -> None:
    """At exit of a script ended by SweepInterrupted: exit status 130 (as for Ctrl-C)."""
    if _interrupted_script:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def _quiet_interrupt_exit() -> None:
    """In a script, let an uncaught SweepInterrupted end it without a traceback (the
    one-line message was printed) and with exit status 130."""
    if hasattr(sys, "ps1") or "IPython" in sys.modules:
        return
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        global _interrupted_script
        if issubclass(kind, SweepInterrupted):
            _interrupted_script = True
        else:
            previous(kind, value, traceback)

    sys.excepthook = hook


def _untouched_indices(layout: ExperimentDir) -> list[int]:
    """Runs with neither a record nor a failed record nor a partial log: never started."""
    reached = layout.done_ids() | layout.failed_ids() | layout.partial_logs().keys()
    return [i for i, rid in enumerate(layout.read_run_ids()) if rid not in reached]


def _max_attempts(layout: ExperimentDir) -> int:
    try:
        return int(read_json(layout.compiled).get("max_attempts", 3))
    except (OSError, ValueError, TypeError):
        return 3


def _interrupted_indices(layout: ExperimentDir) -> list[int]:
    """Runs whose last attempt was interrupted (time limit, preemption) and that may be
    attempted again (``max_attempts``)."""
    limit = _max_attempts(layout)
    failed = layout.failed_ids()
    if not failed:
        return []
    again = set()
    for run_id in failed:
        try:
            record = read_json(layout.failed_record(run_id))
        except (OSError, ValueError):
            continue
        if record.get("status") != Status.INTERRUPTED:
            continue
        attempts = record.get("provenance", {}).get("extra", {}).get("attempts", [])
        if len(attempts) < limit:
            again.add(run_id)
    return [i for i, rid in enumerate(layout.read_run_ids()) if rid in again]


def _done_ids(layout: ExperimentDir) -> list[str]:
    done = layout.done_ids()
    return [rid for rid in layout.read_run_ids() if rid in done]


def start(
    layout: ExperimentDir,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor | None = None,
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

    def launch(indices: list[int]) -> subprocess.Popen[bytes]:
        return _launch(layout, executor, indices, total, verbose, bool(tie_to_parent), death)

    return RunHandle(
        layout,
        launch,
        _tracker(progress, verbose, title),
        lock=lock,
        on_event=on_event,
        derived_metrics=derived_metrics,
        skipped=skipped,
        missing=missing or [],
    )


def _launch(
    layout: ExperimentDir,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor,
    missing: list[int],
    total: int,
    verbose: bool,
    tie_to_parent: bool = False,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Write the batches of ``missing`` runs and start Snakemake on them."""
    gpu = _gpu_plan(layout, executor)
    parallel = executor.total_cores()
    if gpu is not None and isinstance(executor, LocalExecutor):  # one job per slot group
        parallel = min(executor.total_cores(gpu), gpu.concurrent)
    slurm = array_config(executor)
    max_jobs = min(slurm.max_array_size, cluster_array_limit()) if slurm is not None else None
    groups, chunk = plan_batches(
        layout, missing, parallel, executor.chunk_size, executor.min_chunk, max_jobs
    )
    targets = [target for group in groups for target in group.targets]
    if slurm is not None:
        arrays = [(g.stamp, len(g.targets), task_resources(slurm, g.resources)) for g in groups]
        for _, _, resources in arrays:
            sbatch_options(resources)  # a resource the array cannot honour: refused here
        if verbose:
            what = "one SLURM array" if len(arrays) == 1 else f"{len(arrays)} SLURM arrays"
            print(
                f"metalab: running {len(missing)} of {total} runs in {shown(layout.root)}\n"
                f"  ({what} of {len(targets)} tasks of up to {chunk} runs)"
            )
        command = [sys.executable, "-m", "metalab_smk.slurm.array", str(layout.root)]
        command.append(array_spec(slurm, arrays))
        return start_detached(command, layout.root, layout.array_log, tie_to_parent=tie_to_parent)
    command = [
        sys.executable,
        "-m",
        "snakemake",
        *[str(t.relative_to(layout.root)) for t in targets],
        *(executor.snakemake_args(gpu) if gpu else executor.snakemake_args()),
        *_local_limits(layout, executor, gpu),
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
        env=gpu.job_env() if gpu else None,
    )


def _local_limits(
    layout: ExperimentDir,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor,
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
        limits.append(f"mem_mb={os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 10**6}")
    if not limits:
        return []
    if gpu is not None:  # one --resources option for all
        return limits
    return ["--resources", *limits]


def _gpu_plan(
    layout: ExperimentDir, executor: LocalExecutor | SlurmExecutor | ProfileExecutor
) -> GpuPlan | None:
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
) -> RunHandle:
    """Compile ``experiment`` and run its missing runs with Snakemake; returns a handle.

    ``derived_metrics``: functions ``fn(run) -> dict`` (or ``'module:fn'``) computed for
    every successful run when the sweep ends, stored in ``derived/<run_id>.json``.
    ``wait=False`` submits and returns at once: the Snakemake head process runs detached
    (as its own SLURM job with a SLURM executor, else in the background); follow it with
    the handle, ``metalab status DIR`` or ``metalab.reconnect(DIR)``. ``index``: a
    PostgreSQL URL the summary step keeps up to date (as ``METALAB_INDEX_URL`` does)."""
    if in_definition_mode():  # imported by `metalab compile` or a job: never a nested sweep
        stop_definition(experiment)
    functions = normalise_functions(derived_metrics)
    if not wait and not resume:
        raise UsageError("run(wait=False) resumes; use resume=False only with wait=True.")
    atexit.unregister(_exit_130_if_interrupted)
    atexit.register(_exit_130_if_interrupted)  # runs after atexit handlers registered later
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
        from metalab_smk.results.pgindex import remember_index

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
    directory: str | os.PathLike[str],
    progress: bool | Progress | None = None,
    on_event: EventCallback | None = None,
    _derived: list[Any] | None = None,
) -> RunHandle:
    """A handle on the experiment directory ``directory`` (a path or a ``FileStore``),
    following a sweep that is still running there (started by ``metalab run``,
    ``metalab submit`` or plain ``snakemake``); ``progress`` and ``on_event`` as in ``run``."""
    from metalab_smk.compile.reader import CompiledExperiment

    if not isinstance(directory, (str, os.PathLike)):  # a FileStore
        directory = directory.root
    layout = ExperimentDir.at(directory)
    CompiledExperiment.read(layout)  # clear error when it is not an experiment directory
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
