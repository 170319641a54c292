"""``RunHandle``: a sweep in progress or finished, as ``metalab.run``/``start``/``reconnect``
return it; it starts Snakemake (and the rounds after it: runs no job reached,
interrupted runs, runs the OOM killer ended), follows the record files, and ends the
sweep (``results/ending.py``; why it did not finish: ``sweep/outcome.py``)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalab_smk.errors import MetalabError, SweepError, SweepInterrupted
from metalab_smk.results.rows import RecordRows
from metalab_smk.slurm.array import QueuePolling
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.locate import shown
from metalab_smk.store.records import Status
from metalab_smk.sweep.detached import head_alive
from metalab_smk.sweep.events import Event, EventCallback, EventKind, EventWatcher, emit_event
from metalab_smk.sweep.executors import Executor, LocalExecutor
from metalab_smk.sweep.interrupt import quiet_interrupt_exit
from metalab_smk.sweep.local_retry import LocalEscalation
from metalab_smk.sweep.locks import RunnerLock, live_snakemake_pids
from metalab_smk.sweep.outcome import failed_runs_warning, failure_cause
from metalab_smk.sweep.processes import signal_group
from metalab_smk.sweep.progress import Progress
from metalab_smk.sweep.status import SweepStatus, sweep_status

if TYPE_CHECKING:
    from metalab_smk.results.results import Results

__all__ = ["RunHandle", "interrupted_indices", "max_attempts", "untouched_indices"]


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
        launch: Callable[..., subprocess.Popen[bytes]] | None = None,
        progress: Progress | None = None,
        follow_existing: bool = False,
        lock: RunnerLock | None = None,
        summary_checked: bool = False,
        complete: bool = False,
        on_event: EventCallback | None = None,
        derived_metrics: list[Any] | None = None,
        skipped: list[str] | None = None,
        missing: list[int] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.layout = layout
        self._executor = executor or LocalExecutor()  # whose jobs _terminate cancels
        local = isinstance(self._executor, LocalExecutor) and launch is not None
        self._escalation = LocalEscalation(layout, time.time()) if local else None
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
        self._rounds = max(2, max_attempts(layout) - 1)  # more rounds: missed, interrupted
        self._watcher: EventWatcher | None = None
        self._landed = RecordRows()  # rows of records read as they land, for the summary
        self._next_read = 0.0
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
        try:
            with contextlib.suppress(Exception):  # unreadable: the summary reads them all
                self._landed.start(self.layout)
            import metalab_smk.results.summary  # noqa: F401 - pandas/pyarrow while Snakemake works

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
                self._read_landed()
                self._pause(pause)
            self.returncode = self.process.returncode if self.process is not None else None
            untouched = untouched_indices(self.layout)
            interrupted = interrupted_indices(self.layout)
            killed = self.returncode is not None and self.returncode < 0
            self._stopping = self._stopping or self.layout.stop_request.exists()
            again = sorted(untouched + interrupted)
            if self._stopping or killed or self._launch is None:
                return
            # no job got anywhere: a second round would fail the same way
            hopeless = not interrupted and len(untouched) == len(missing) and self.returncode
            if again and rounds < self._rounds and not hopeless:
                rounds, missing = rounds + 1, again
                self.process = self._launch(again)
                continue
            retry = self._escalation.next_round() if self._escalation is not None else None
            if retry is None:  # locally, runs the OOM killer ended may ask for more memory
                return
            missing = retry.indices
            self.process = self._launch(retry.indices, retry)

    def _read_landed(self) -> None:
        """Read the records that landed since the last time (their rows spare the summary
        at the end that work), at most a fifth of the time."""
        began = time.monotonic()
        if began < self._next_read:
            return
        with contextlib.suppress(Exception):  # a mere head start: the summary says why
            self._landed.read_new(self.layout)
        self._next_read = began + 4 * (time.monotonic() - began)

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the Snakemake process ends sooner."""
        if self.process is None:
            time.sleep(seconds)
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=seconds)

    def _finish(self) -> None:
        from metalab_smk.results.ending import end_of_sweep

        try:
            if self._watcher is not None:
                self._watcher.poll()
            try:
                landed, self._landed = self._landed, RecordRows()  # not kept after
                computed = end_of_sweep(self.layout, self._derived, self._summary_checked, landed)
                if computed and self._progress is not None and self._progress.show:
                    print(f"metalab: derived metrics of {computed} runs stored", flush=True)
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
        quiet_interrupt_exit()
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
        self._executor.cancel(self.layout)  # any SLURM job Snakemake did not cancel itself

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


def untouched_indices(layout: ExperimentDir) -> list[int]:
    """Runs with neither a record nor a failed record nor a partial log: never started."""
    reached = layout.done_ids() | layout.failed_ids() | layout.partial_logs().keys()
    return [i for i, rid in enumerate(layout.read_run_ids()) if rid not in reached]


def max_attempts(layout: ExperimentDir) -> int:
    try:
        return int(read_json(layout.compiled).get("max_attempts", 3))
    except (OSError, ValueError, TypeError):
        return 3


def interrupted_indices(layout: ExperimentDir) -> list[int]:
    """Runs whose last attempt was interrupted (time limit, preemption) and that may be
    attempted again (``max_attempts``)."""
    limit = max_attempts(layout)
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
