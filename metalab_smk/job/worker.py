"""What a Snakemake job executes: ``python -m metalab_smk.job.worker run <run_id>`` or
``... batch <name>`` (the run indices listed in ``.metalab/batches/<name>.txt``).

Runs whose success record already exists are skipped, so a batch that is started again
never recomputes a finished run. Exit status 1 when any run failed.

Crash isolation: the worker loads the experiment once, then forks a child that runs the
batch. When the child dies (segfault, ``os._exit``, abort, the OOM killer), the worker
records the run it was executing as failed with the cause and forks a new child for the
runs after it. The worker also watches the Snakemake process that started it and
cancels its runs when that process dies (killed with SIGKILL, or its own parent died).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from metalab_smk.compile.reader import RUN_TABLE_LINE, CompiledExperiment
from metalab_smk.core.plan import Plan, PlannedRun
from metalab_smk.errors import MetalabError
from metalab_smk.job.capture import RunCancelled, Runtime
from metalab_smk.job.execute import execute_run, record_crash
from metalab_smk.job.exits import describe_exit, disk_full, oom_kills
from metalab_smk.store.jsonio import atomic_write_text
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import Status

USAGE = "usage: python -m metalab_smk.job.worker (run RUN_ID | batch NAME)"
WATCH_SECONDS = 0.5  # how often the worker checks that its Snakemake still lives
KILL_AFTER_SECONDS = 10.0  # a run that ignores cancellation this long is killed


class _Cancellation:
    """SIGTERM (cancel, SLURM time limit) stops the current run with a cancelled record."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        runtime = self.runtime
        if runtime is not None and runtime.in_operation:
            runtime.in_operation = False  # raise once; later signals must not interrupt
            runtime.cancel()  # writing the cancelled record
            raise RunCancelled(
                "terminated by SIGTERM (the run was cancelled or hit its time limit)"
            )

    def attach(self, runtime: Runtime) -> None:
        self.runtime = runtime


def _planned_runs(
    compiled: CompiledExperiment, plan: Plan, command: str, key: str
) -> list[PlannedRun]:
    """The runs to execute; each run ID is recomputed and checked against the run table,
    so a job never runs code or params that changed since compiling."""
    if command == "run":
        indices = [compiled.index_of(key)]
    else:
        listing = compiled.layout.batch_listing(key)
        indices = [int(line) for line in listing.read_text().split()]
    table = compiled.layout.run_table.read_bytes()
    runs = []
    for index in indices:
        run = plan.run(index)
        expected = table[index * RUN_TABLE_LINE : index * RUN_TABLE_LINE + 16].decode()
        if run.run_id != expected:
            raise MetalabError(
                f"run {expected} (index {index}) no longer matches the experiment snapshot: "
                "its context files or code changed since compiling; run `metalab compile` "
                "again."
            )
        runs.append(run)
    return runs


def _run_batch(
    layout: ExperimentDir,
    compiled: CompiledExperiment,
    plan: Plan,
    experiment,
    runs: list[PlannedRun],
    announce: int | None,
) -> int:
    """Execute ``runs`` here; write each run's index to fd ``announce`` before it."""
    cancellation = _Cancellation()
    failures = 0
    for run in runs:
        if cancellation.requested:
            failures += 1
            break
        if layout.record(run.run_id).is_file():
            continue
        if announce is not None:
            os.write(announce, f"{run.index}\n".encode())
        record = execute_run(
            layout, plan, experiment, run, compiled.description, cancellation.attach
        )
        cancellation.runtime = None
        if record.status is not Status.SUCCESS:
            failures += 1
            print(
                f"metalab: run {run.run_id} {record.status}: {record.error['type']}: "
                f"{record.error['message']} (log: {layout.log(run.run_id)})",
                file=sys.stderr,
            )
    return failures


class _Supervisor:
    """Runs a batch in forked children; a child that dies fails only its current run."""

    def __init__(self, layout, compiled, plan, experiment) -> None:
        self.layout, self.compiled, self.plan, self.experiment = layout, compiled, plan, experiment
        self.child: int | None = None
        self.stopping = False
        signal.signal(signal.SIGTERM, self._forward)

    def _forward(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGTERM)

    def run(self, runs: list[PlannedRun]) -> int:
        failures = 0
        while runs and not self.stopping:
            code, current, started, pid, ooms = self._fork(runs)
            if code is None:  # the child finished its runs normally
                return failures + current
            if current is None:  # died before its first run
                print(f"metalab: the batch process {code}", file=sys.stderr)
                return failures + 1
            run = runs[current]
            runs = runs[current + 1 :]
            if self.layout.record(run.run_id).is_file():
                continue  # died after writing the record
            if code.startswith("was killed by signal SIGKILL") and oom_kills() > ooms:
                code = "was killed: out of memory (SIGKILL)"
            if disk_full(self.layout.root):
                code += " (no space left on device)"
            failures += 1
            try:
                record_crash(
                    self.layout, self.plan, run, self.compiled.description, code, pid, started
                )
            except OSError as exc:
                print(f"metalab worker: cannot write the failed record: {exc}", file=sys.stderr)
            print(
                f"metalab: run {run.run_id} failed: its process {code} "
                f"(log: {self.layout.log(run.run_id)})",
                file=sys.stderr,
            )
        return failures + (1 if self.stopping and runs else 0)

    def _fork(self, runs: list[PlannedRun]):
        """Run ``runs`` in a child; (None, failures, ...) if it ended normally, else
        (how it died, position of the run it was executing or None, start, pid, ooms)."""
        ooms = oom_kills()
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: run the batch, report each run, then "end <failures>"
            os.close(read_end)
            code = 2
            try:
                failures = _run_batch(
                    self.layout, self.compiled, self.plan, self.experiment, runs, write_end
                )
                os.write(write_end, f"end {failures}\n".encode())
                code = 0
            except OSError as exc:
                reason = "no space left on device" if exc.errno == errno.ENOSPC else str(exc)
                print(f"metalab worker: {reason} ({exc.filename})", file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.child = pid
        os.close(write_end)
        started = time.perf_counter()
        received = b""
        with os.fdopen(read_end, "rb") as pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                received += chunk
        _, status = os.waitpid(pid, 0)
        self.child = None
        lines = received.decode().split()
        if "end" in lines:
            return None, int(lines[lines.index("end") + 1]), started, pid, ooms
        position = None
        if lines:
            last = int(lines[-1])
            position = next(i for i, run in enumerate(runs) if run.index == last)
        return describe_exit(status), position, started, pid, ooms


def _snakemake_ancestor() -> int:
    """The nearest ancestor process running snakemake (the job's shell sits between), or
    the parent when there is none (a worker started by hand)."""
    pid = os.getppid()
    for _ in range(4):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        if b"snakemake" in cmdline:
            return pid
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            break
    return os.getppid()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def _watch_parent(supervisor: _Supervisor) -> None:
    """End the batch when the Snakemake that started it dies: SIGTERM to ourselves (the
    running run records itself as cancelled), SIGKILL to the child a while later."""
    watched = _snakemake_ancestor()
    parent = os.getppid()

    def watch() -> None:
        while _alive(watched) and os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(KILL_AFTER_SECONDS)
        child = supervisor.child
        if child is not None:
            os.kill(child, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="metalab-parent-watch").start()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("run", "batch"):
        print(USAGE, file=sys.stderr)
        return 2
    command, key = args
    layout = ExperimentDir.at(os.getcwd())
    registration = layout.worker_file(os.getpid(), os.uname().nodename)
    registration.parent.mkdir(parents=True, exist_ok=True)
    registration.touch()
    try:
        try:
            compiled = CompiledExperiment.read(layout)
            experiment = compiled.load_experiment()
            plan = Plan(experiment)
            runs = _planned_runs(compiled, plan, command, key)
        except MetalabError as exc:
            print(f"metalab worker: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # the experiment file itself failed to import
            traceback.print_exc()
            print(
                f"metalab worker: loading the experiment failed: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return 2
        if hasattr(os, "fork"):
            supervisor = _Supervisor(layout, compiled, plan, experiment)
            _watch_parent(supervisor)
            failures = supervisor.run(runs)
        else:
            failures = _run_batch(layout, compiled, plan, experiment, runs, None)
    finally:
        registration.unlink(missing_ok=True)
    if command == "batch" and not failures:
        atomic_write_text(layout.batch_done(key), f"{len(runs)}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
