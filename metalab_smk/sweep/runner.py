"""``metalab.run``: compile, run Snakemake as a subprocess, return a handle.

Snakemake runs in its own process group with the experiment directory as working
directory; the handle follows progress from the record files.
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
from pathlib import Path
from typing import Any

from metalab_smk.compile.compiler import compile_experiment, experiment_dir
from metalab_smk.compile.loader import in_definition_mode, stop_definition
from metalab_smk.core.experiment import Experiment
from metalab_smk.errors import SweepBusyError, SweepError, SweepInterrupted
from metalab_smk.store.layout import ExperimentDir, shown
from metalab_smk.sweep.batches import (
    choose_chunk_size,
    clear_batches,
    median_run_seconds,
    write_batches,
)
from metalab_smk.sweep.detached import head_alive, submit
from metalab_smk.sweep.executors import LocalExecutor, ProfileExecutor, SlurmExecutor
from metalab_smk.sweep.locks import RunnerLock, live_snakemake_pids, recover_stale_lock
from metalab_smk.sweep.outcome import failure_cause
from metalab_smk.sweep.processes import signal_group, start_detached
from metalab_smk.sweep.progress import Progress
from metalab_smk.sweep.status import SweepStatus, cancel_slurm_jobs, sweep_status

__all__ = ["LocalExecutor", "RunHandle", "reconnect", "run", "start"]


def _forget(layout: ExperimentDir, run_ids: list[str]) -> None:
    """Delete the records and outputs of ``run_ids`` (``resume=False``)."""
    for run_id in run_ids:
        layout.record(run_id).unlink(missing_ok=True)
        layout.failed_record(run_id).unlink(missing_ok=True)
        for directory in (layout.artifacts(run_id), layout.results(run_id)):
            shutil.rmtree(directory, ignore_errors=True)


def _missing_indices(layout: ExperimentDir) -> list[int]:
    done = set(os.listdir(layout.runs_dir)) if layout.runs_dir.is_dir() else set()
    return [i for i, rid in enumerate(layout.read_run_ids()) if f"{rid}.json" not in done]


class RunHandle:
    """A sweep in progress (or finished): ``status``, ``is_complete``, ``wait()``,
    ``result()``, ``cancel()``.

    Ctrl-C while waiting (a KeyboardInterrupt in the waiting thread, e.g. a notebook's
    interrupt) stops the sweep this handle started: Snakemake and its jobs get SIGTERM
    (the running runs record themselves as cancelled), a second Ctrl-C kills them at
    once; then SweepInterrupted is raised. Snakemake is started by the handle's watch
    thread and dies with it (parent-death signal), so nothing outlives the caller."""

    def __init__(
        self,
        layout: ExperimentDir,
        launch: Callable[[list[int]], subprocess.Popen[bytes]] | None = None,
        progress: Progress | None = None,
        follow_existing: bool = False,
        lock: RunnerLock | None = None,
        missing: list[int] | None = None,
    ) -> None:
        self.layout = layout
        self.process: subprocess.Popen[bytes] | None = None
        self._launch = launch
        self._lock = lock
        self._progress = progress
        self._done = threading.Event()
        self._started = threading.Event()
        self._launch_error: BaseException | None = None
        self._stopping = False
        self.returncode: int | None = None
        self.error: str | None = None  # one line: why the sweep did not finish
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

    @property
    def directory(self) -> Path:
        return self.layout.root

    def _running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return head_alive(self.layout) or bool(live_snakemake_pids(self.layout.root))

    def _watch(self, missing: list[int]) -> None:
        """Start Snakemake (in this thread, which lives as long as it does: its
        parent-death signal is tied to the starting thread), follow it, and start one
        more round for runs no job reached (a batch cut short by a time limit)."""
        if self._launch is not None:
            try:
                self.process = self._launch(missing)
            except BaseException as exc:  # reported by the constructor
                self._launch_error = exc
                self._started.set()
                if self._lock is not None:
                    self._lock.release()
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
        while True:
            while self._running():
                if self._progress is not None:
                    self._progress.update(sweep_status(self.layout, with_errors=False))
                time.sleep(0.1)
            self.returncode = self.process.returncode if self.process is not None else None
            untouched = _untouched_indices(self.layout)
            killed = self.returncode is not None and self.returncode < 0
            self._stopping = self._stopping or self.layout.stop_request.exists()
            if self._stopping or killed or self._launch is None or rounds >= 2 or not untouched:
                return
            if len(untouched) == len(missing) and self.returncode:
                return  # no job got anywhere: a second round would fail the same way
            rounds, missing = rounds + 1, untouched
            self.process = self._launch(untouched)

    def _finish(self) -> None:
        from metalab_smk.results.summary import collect, summary_is_current

        try:
            try:
                if not summary_is_current(self.layout):
                    collect(self.layout.root)
            except Exception as exc:
                self.error = f"the summary could not be written: {_reason(exc)}"
            if self.error is None:
                self.error = failure_cause(self.layout, self.returncode)
            if self.error is not None and self._stopping:
                self.error = f"the sweep was stopped: {self.error}"
        finally:
            try:
                if self._lock is not None:
                    self._lock.release()
                if self._progress is not None:
                    self._progress.close(sweep_status(self.layout))
            finally:
                self._done.set()

    @property
    def status(self) -> SweepStatus:
        return sweep_status(self.layout)

    @property
    def is_complete(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s; True once the sweep ended. Ctrl-C stops the sweep."""
        try:
            return self._done.wait(timeout)
        except KeyboardInterrupt:
            if self.process is None:  # following a sweep started elsewhere: just stop waiting
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
        where = shown(self.layout.root)
        message = (
            f"metalab: interrupted: {status.done} of {status.total} runs finished and are "
            f"kept; run the same command again (or `snakemake` in {where}) to resume."
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

    def result(self, timeout: float | None = None, check: bool = True) -> Any:
        """Wait for the sweep (up to ``timeout`` s) and return its Results.

        Raises SweepError (with ``status`` and one line naming the cause) when Snakemake
        failed, a run failed or is missing, or the summary could not be written; pass
        ``check=False`` to get the Results of the finished runs anyway."""
        from metalab_smk.results.results import Results

        if not self.wait(timeout):
            raise TimeoutError(f"the sweep in {self.layout.root} is still running")
        if check and self.error:
            raise SweepError(self.error, sweep_status(self.layout), self.returncode)
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
    names = [
        set(os.listdir(d)) if d.is_dir() else set() for d in (layout.runs_dir, layout.failed_dir)
    ]
    started = layout.partial_logs().keys()
    return [
        i
        for i, rid in enumerate(layout.read_run_ids())
        if f"{rid}.json" not in names[0] and f"{rid}.json" not in names[1] and rid not in started
    ]


def start(
    layout: ExperimentDir,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    verbose: bool = True,
    lock: RunnerLock | None = None,
) -> RunHandle:
    """Run what is missing in a compiled experiment directory (holding its runner lock)."""
    executor = executor or LocalExecutor()
    lock = lock or RunnerLock(layout)
    try:
        layout.stop_request.unlink(missing_ok=True)
        total = len(layout.read_run_ids())
        if resume and not _missing_indices(layout):
            lock.release()
            if verbose:
                print(f"metalab: all {total} runs of {layout.root.name} are done; nothing to run.")
            return RunHandle(layout, None, None)
        if recover_stale_lock(layout.root) and verbose:
            print(
                f"metalab: removed the lock of an interrupted Snakemake run in {layout.root} "
                "(no snakemake is running there any more)."
            )
        if not resume:
            _forget(layout, layout.read_run_ids())
        missing = _missing_indices(layout)
    except BaseException:
        lock.release()
        raise
    display = Progress.create(progress, verbose, on_event, total=total)

    def launch(indices: list[int]) -> subprocess.Popen[bytes]:
        return _launch(layout, executor, indices, total, verbose)

    return RunHandle(layout, launch, display, lock=lock, missing=missing)


def _launch(
    layout: ExperimentDir,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor,
    missing: list[int],
    total: int,
    verbose: bool,
) -> subprocess.Popen[bytes]:
    """Write the batches of ``missing`` runs and start Snakemake on them."""
    clear_batches(layout)
    parallel = executor.total_cores()
    chunk = choose_chunk_size(
        len(missing), parallel, executor.chunk_size, executor.min_chunk, median_run_seconds(layout)
    )
    targets = write_batches(layout, missing, chunk)
    command = [
        sys.executable,
        "-m",
        "snakemake",
        *[str(t.relative_to(layout.root)) for t in targets],
        *executor.snakemake_args(),
        "--quiet",
        "progress",
        "rules",
        "host",
    ]
    if verbose:
        where = f"up to {parallel} at once"
        print(
            f"metalab: running {len(missing)} of {total} runs ({len(targets)} Snakemake "
            f"jobs of up to {chunk} runs, {where}) in {layout.root}"
        )
    return start_detached(command, layout.root, layout.snakemake_log, die_with_parent=True)


def run(
    experiment: Experiment,
    store: str | os.PathLike[str] | None = None,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    derived_metrics: Any = None,
    verbose: bool = True,
    wait: bool = True,
) -> RunHandle:
    """Compile ``experiment`` and run its missing runs with Snakemake; returns a handle.

    ``wait=False`` submits and returns at once: the Snakemake head process runs detached
    (as its own SLURM job with a SLURM executor, else in the background); follow it with
    the handle, ``metalab status DIR`` or ``metalab.reconnect(DIR)``."""
    if in_definition_mode():  # imported by `metalab compile` or a job: never a nested sweep
        stop_definition(experiment)
    atexit.unregister(_exit_130_if_interrupted)
    atexit.register(_exit_130_if_interrupted)  # runs after atexit handlers registered later
    if not wait and not resume:
        raise ValueError("run(wait=False) resumes; use resume=False only with wait=True.")
    locks: list[RunnerLock] = []

    def take_lock(layout: ExperimentDir) -> None:
        """Before writing anything: no recompile under a live sweep."""
        locks.append(RunnerLock(layout))
        if not wait and head_alive(layout):
            raise SweepBusyError(
                f"a submitted sweep is still running in {shown(layout.root)}; stop "
                f"it with `metalab stop {shown(layout.root)}`."
            )

    try:
        layout = compile_experiment(experiment, store, before_writing=take_lock)
    except BaseException as exc:
        for lock in locks:
            lock.release()
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            where = shown(exc.filename or experiment_dir(experiment, store).root)
            raise SweepError(f"no space left on device (writing {where})") from exc
        raise
    lock = locks[0]
    if not wait:
        lock.release()  # the head takes it
        head = submit(layout, executor or LocalExecutor())
        if verbose:
            where = (
                f"SLURM job {head['job_id']}"
                if head["kind"] == "slurm"
                else f"background process {head['pid']}"
            )
            print(
                f"metalab: submitted {layout.root} ({where}); follow it with "
                f"`metalab status {shown(layout.root)}`"
            )
        return reconnect(layout.root)
    return start(layout, executor, resume, progress, on_event, verbose, lock=lock)


def reconnect(directory: str | os.PathLike[str]) -> RunHandle:
    """A handle on the experiment directory ``directory``, following a sweep that is
    still running there (started by ``metalab run`` or plain ``snakemake``)."""
    from metalab_smk.compile.reader import CompiledExperiment

    layout = ExperimentDir.at(directory)
    CompiledExperiment.read(layout)  # clear error when it is not an experiment directory
    return RunHandle(layout, None, None, follow_existing=True)
