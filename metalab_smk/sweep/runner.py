"""``metalab.run``: compile, run Snakemake as a subprocess, return a handle.

Snakemake runs in its own process group with the experiment directory as working
directory; the handle follows progress from the record files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalab_smk.compile.compiler import compile_experiment
from metalab_smk.compile.loader import in_definition_mode, stop_definition
from metalab_smk.core.experiment import Experiment
from metalab_smk.errors import SweepBusyError, UsageError
from metalab_smk.results.derived import normalise_functions
from metalab_smk.slurm.array import QueuePolling
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.locate import shown
from metalab_smk.sweep.batches import batch_stamp, missing_indices, plan_batches
from metalab_smk.sweep.detached import array_in_flight, head_alive, submit
from metalab_smk.sweep.events import Event, EventCallback, EventKind, EventWatcher, emit_event
from metalab_smk.sweep.executors import (
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
)
from metalab_smk.sweep.processes import start_detached
from metalab_smk.sweep.progress import Progress
from metalab_smk.sweep.status import SweepStatus, sweep_status

if TYPE_CHECKING:
    from metalab_smk.results.results import Results

__all__ = ["LocalExecutor", "RunHandle", "reconnect", "run", "start"]


def _forget(layout: ExperimentDir, run_ids: list[str]) -> None:
    """Delete the records and outputs of ``run_ids`` (``resume=False``)."""
    for run_id in run_ids:
        layout.record(run_id).unlink(missing_ok=True)
        layout.failed_record(run_id).unlink(missing_ok=True)
        for directory in (layout.artifacts(run_id), layout.results(run_id)):
            shutil.rmtree(directory, ignore_errors=True)


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
    sweep ends, before the parquet summary is written."""

    def __init__(
        self,
        layout: ExperimentDir,
        process: subprocess.Popen[bytes] | None = None,
        progress: Progress | None = None,
        follow_existing: bool = False,
        lock: RunnerLock | None = None,
        summary_checked: bool = False,
        on_event: EventCallback | None = None,
        derived_metrics: list[Any] | None = None,
        skipped: list[str] | None = None,
    ) -> None:
        self.layout = layout
        self.process = process
        self._lock = lock
        self._progress = progress
        self._on_event = on_event
        self._derived = list(derived_metrics or [])
        self._done = threading.Event()
        self.returncode: int | None = None
        self.summary_error: str | None = None  # set when no complete summary could be left
        self._summary_checked = summary_checked  # a no-op start has just ensured it
        self._skipped = list(skipped or [])
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
        if process is None and not follow_existing:
            self.returncode = 0
            self._finish()
        else:
            threading.Thread(target=self._watch, daemon=True).start()

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

    def _watch(self) -> None:
        import metalab_smk.results.summary  # noqa: F401 - load pandas/pyarrow while Snakemake works

        polling = QueuePolling()  # files every 0.1 s; the scheduler seldom, backing off
        pause = 0.1
        while self._running(polling.due()):
            if self._watcher is not None:
                began = time.perf_counter()
                self._watcher.poll()
                pause = min(2.0, max(0.1, 5 * (time.perf_counter() - began)))
            time.sleep(pause)
        self.returncode = self.process.returncode if self.process is not None else None
        self._finish()

    def _finish(self) -> None:
        from metalab_smk.errors import MetalabError
        from metalab_smk.results.pgindex import upkeep
        from metalab_smk.results.summary import ensure_summary

        try:
            if self._watcher is not None:
                self._watcher.poll()
            if self._derived:
                self._compute_derived()
            try:
                if not self._summary_checked:
                    ensure_summary(self.layout)  # also quarantines bad records that landed
            except MetalabError as exc:
                self.summary_error = str(exc)
                print(f"metalab: error: {exc}", file=sys.stderr)
            upkeep(self.layout)  # the PostgreSQL index, when one is configured
            self._report_snakemake_error()
        finally:
            if self._lock is not None:
                self._lock.release()
            if self._watcher is not None:
                status = sweep_status(self.layout, with_errors=False)
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
            self._done.set()

    def _compute_derived(self) -> None:
        from metalab_smk.results.results import Results

        computed = Results(self.layout).compute_derived(self._derived)
        if computed and self._progress is not None and self._progress.show:
            print(f"metalab: derived metrics of {len(computed)} runs stored", flush=True)

    def _report_snakemake_error(self) -> None:
        """Snakemake failed without any run failing (a workflow error): show its log."""
        if not self.returncode or sweep_status(self.layout, with_errors=False).failed:
            return
        logs = [p for p in (self.layout.snakemake_log, self.layout.array_log) if p.is_file()]
        log = max(logs, key=lambda p: p.stat().st_mtime, default=self.layout.snakemake_log)
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else []
        print(
            f"metalab: {log.stem} exited with status {self.returncode}; the end of {log}:\n"
            + "\n".join(tail),
            file=sys.stderr,
        )

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
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Results:
        """Wait for the sweep (up to ``timeout`` s) and return its Results."""
        from metalab_smk.results.results import Results

        if not self._done.wait(timeout):
            raise TimeoutError(f"the sweep in {self.layout.root} is still running")
        return Results(self.layout)

    def cancel(self) -> None:
        """Stop Snakemake and its running jobs (they record themselves as cancelled)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self._done.wait()


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
    tie_to_parent: bool = False,
) -> RunHandle:
    """Run what is missing in a compiled experiment directory.

    ``tie_to_parent`` makes Snakemake end when this process dies (the head of a
    submitted sweep). Snakemake left running by a metalab process that was killed is
    ended first (SIGTERM, then SIGKILL after a minute)."""
    from metalab_smk.results.summary import ensure_summary

    executor = as_executor(executor)
    total = layout.count_runs()
    title = layout.root.name
    missing: list[int] | None = None
    if resume:
        # a rebuild validates the records it has not seen and stats every one (bad ones
        # are quarantined); otherwise the missing-runs scan does that stat pass
        rebuilt = ensure_summary(layout)
        missing = missing_indices(layout, scan=not rebuilt)
    if resume and not missing:
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
            skipped=_done_ids(layout),
            summary_checked=True,
        )
    if array_in_flight(layout):
        raise SweepBusyError(
            f"a submitted SLURM array still runs in {layout.root}; wait for it "
            f"(`metalab status {os.path.relpath(layout.root)}`) or scancel it first."
        )
    lock = RunnerLock(layout)
    try:
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
        process = _launch(layout, executor, missing or [], total, verbose, tie_to_parent)
    except BaseException:
        lock.release()
        raise
    return RunHandle(
        layout,
        process,
        _tracker(progress, verbose, title),
        lock=lock,
        on_event=on_event,
        derived_metrics=derived_metrics,
        skipped=skipped,
    )


def _launch(
    layout: ExperimentDir,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor,
    missing: list[int],
    total: int,
    verbose: bool,
    tie_to_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Write the batches of ``missing`` runs and start Snakemake on them."""
    parallel = executor.total_cores()
    slurm = array_config(executor)
    max_jobs = slurm.max_array_size if slurm is not None else None
    targets, chunk = plan_batches(
        layout, missing, parallel, executor.chunk_size, executor.min_chunk, max_jobs
    )
    if slurm is not None:
        if verbose:
            print(
                f"metalab: running {len(missing)} of {total} runs in {shown(layout.root)}\n"
                f"  (one SLURM array of {len(targets)} tasks of up to {chunk} runs)"
            )
        command = [sys.executable, "-m", "metalab_smk.slurm.array", str(layout.root)]
        command += [batch_stamp(targets), str(len(targets)), json.dumps(asdict(slurm))]
        return start_detached(command, layout.root, layout.array_log, tie_to_parent=tie_to_parent)
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
        print(
            f"metalab: running {len(missing)} of {total} runs in {shown(layout.root)}\n"
            f"  ({len(targets)} Snakemake jobs of up to {chunk} runs, {parallel} at once)"
        )
    return start_detached(command, layout.root, layout.snakemake_log, tie_to_parent=tie_to_parent)


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
    layout = compile_experiment(experiment, store, verbose=verbose)
    if index is not None:  # the summary step then also updates this PostgreSQL index
        from metalab_smk.results.pgindex import remember_index

        remember_index(layout, index)
    if not wait:
        if not resume:
            raise UsageError("run(wait=False) resumes; use resume=False only with wait=True.")
        head = submit(layout, as_executor(executor))
        if verbose:
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
    return start(layout, executor, resume, progress, on_event, verbose, functions)


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
