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
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from metalab_smk.compile.compiler import compile_experiment
from metalab_smk.compile.loader import in_definition_mode, stop_definition
from metalab_smk.core.experiment import Experiment
from metalab_smk.errors import MetalabError
from metalab_smk.slurm.array import QueuePolling
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.batches import batch_stamp, missing_indices, plan_batches
from metalab_smk.sweep.detached import array_in_flight, head_alive, submit
from metalab_smk.sweep.executors import (
    LocalExecutor,
    ProfileExecutor,
    SlurmExecutor,
    array_config,
)
from metalab_smk.sweep.locks import RunnerLock, live_snakemake_pids, recover_stale_lock
from metalab_smk.sweep.processes import start_detached
from metalab_smk.sweep.progress import Progress
from metalab_smk.sweep.status import SweepStatus, sweep_status

__all__ = ["LocalExecutor", "RunHandle", "reconnect", "run", "start"]


def _forget(layout: ExperimentDir, run_ids: list[str]) -> None:
    """Delete the records and outputs of ``run_ids`` (``resume=False``)."""
    for run_id in run_ids:
        layout.record(run_id).unlink(missing_ok=True)
        layout.failed_record(run_id).unlink(missing_ok=True)
        for directory in (layout.artifacts(run_id), layout.results(run_id)):
            shutil.rmtree(directory, ignore_errors=True)


class RunHandle:
    """A sweep in progress (or finished): ``status``, ``is_complete``, ``result()``,
    ``cancel()``."""

    def __init__(
        self,
        layout: ExperimentDir,
        process: subprocess.Popen[bytes] | None = None,
        progress: Progress | None = None,
        follow_existing: bool = False,
        lock: RunnerLock | None = None,
    ) -> None:
        self.layout = layout
        self.process = process
        self._lock = lock
        self._progress = progress
        self._done = threading.Event()
        self.returncode: int | None = None
        if process is None and not follow_existing:
            self.returncode = 0
            self._finish()
        else:
            threading.Thread(target=self._watch, daemon=True).start()

    @property
    def directory(self) -> Path:
        return self.layout.root

    def _running(self, ask_scheduler: bool = True) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return head_alive(self.layout, ask_scheduler) or bool(live_snakemake_pids(self.layout.root))

    def _watch(self) -> None:
        import metalab_smk.results.summary  # noqa: F401 - load pandas/pyarrow while Snakemake works

        polling = QueuePolling()  # files every 0.1 s; the scheduler seldom, backing off
        while self._running(polling.due()):
            if self._progress is not None:
                self._progress.update(sweep_status(self.layout, with_errors=False))
            time.sleep(0.1)
        self.returncode = self.process.returncode if self.process is not None else None
        self._finish()

    def _finish(self) -> None:
        from metalab_smk.results.summary import collect, summary_is_current

        try:
            if not summary_is_current(self.layout):
                collect(self.layout.root)
            self._report_snakemake_error()
        finally:
            if self._lock is not None:
                self._lock.release()
            if self._progress is not None:
                self._progress.close(sweep_status(self.layout))
            self._done.set()

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
        return sweep_status(self.layout)

    @property
    def is_complete(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
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


def start(
    layout: ExperimentDir,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor | None = None,
    resume: bool = True,
    progress: bool | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    verbose: bool = True,
) -> RunHandle:
    """Run what is missing in a compiled experiment directory."""
    executor = executor or LocalExecutor()
    total = len(layout.read_run_ids())
    if resume and not missing_indices(layout):
        if verbose:
            print(f"metalab: all {total} runs of {layout.root.name} are done; nothing to run.")
        return RunHandle(layout, None, None)
    if array_in_flight(layout):
        raise MetalabError(
            f"a submitted SLURM array still runs in {layout.root}; wait for it "
            f"(`metalab status {os.path.relpath(layout.root)}`) or scancel it first."
        )
    lock = RunnerLock(layout.meta_dir)
    try:
        if recover_stale_lock(layout.root) and verbose:
            print(
                f"metalab: removed the lock of an interrupted Snakemake run in {layout.root} "
                "(no snakemake is running there any more)."
            )
        if not resume:
            _forget(layout, layout.read_run_ids())
        process = _launch(layout, executor, missing_indices(layout), total, verbose)
    except BaseException:
        lock.release()
        raise
    display = Progress.create(progress, verbose, on_event, total=total)
    return RunHandle(layout, process, display, lock=lock)


def _launch(
    layout: ExperimentDir,
    executor: LocalExecutor | SlurmExecutor | ProfileExecutor,
    missing: list[int],
    total: int,
    verbose: bool,
) -> subprocess.Popen[bytes]:
    """Write the batches of ``missing`` runs and start Snakemake on them."""
    parallel = executor.total_cores()
    targets, chunk = plan_batches(
        layout, missing, parallel, executor.chunk_size, executor.min_chunk
    )
    slurm = array_config(executor)
    if slurm is not None:
        if verbose:
            print(
                f"metalab: running {len(missing)} of {total} runs (one SLURM array of "
                f"{len(targets)} tasks of up to {chunk} runs) in {layout.root}"
            )
        command = [sys.executable, "-m", "metalab_smk.slurm.array", str(layout.root)]
        command += [batch_stamp(targets), str(len(targets)), json.dumps(asdict(slurm))]
        return start_detached(command, layout.root, layout.array_log)
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
    return start_detached(command, layout.root, layout.snakemake_log)


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
    layout = compile_experiment(experiment, store)
    if not wait:
        if not resume:
            raise ValueError("run(wait=False) resumes; use resume=False only with wait=True.")
        head = submit(layout, executor or LocalExecutor())
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
        return reconnect(layout.root)
    return start(layout, executor, resume, progress, on_event, verbose)


def reconnect(directory: str | os.PathLike[str]) -> RunHandle:
    """A handle on the experiment directory ``directory``, following a sweep that is
    still running there (started by ``metalab run`` or plain ``snakemake``)."""
    from metalab_smk.compile.reader import CompiledExperiment

    layout = ExperimentDir.at(directory)
    CompiledExperiment.read(layout)  # clear error when it is not an experiment directory
    return RunHandle(layout, None, None, follow_existing=True)
