"""What a Snakemake job executes: ``python -m metalab_smk.job.worker run <run_id>`` or
``... batch <name>`` (the run indices listed in ``.metalab/batches/<name>.txt``).

Runs whose valid success record exists are skipped, so a batch that is started again
never recomputes a finished run. Exit status 1 when any run failed.

The worker registers itself in ``.metalab/workers/`` (so a new sweep on the directory
waits for it) and watches the Snakemake that started it: when that dies (SIGKILL, or its
own parent died), the worker cancels its runs and ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from metalab_smk.compile.reader import CompiledExperiment
from metalab_smk.core.experiment import Experiment
from metalab_smk.core.plan import Plan, PlannedRun
from metalab_smk.core.values import utc_now
from metalab_smk.errors import MetalabError
from metalab_smk.job.capture import RunCancelled, Runtime
from metalab_smk.job.execute import (
    RecordWriter,
    execute_run,
    record_crash,
    sync_records,
    warm_up,
    write_record,
)
from metalab_smk.job.exits import describe_exit, disk_full, oom_kills
from metalab_smk.store.jsonio import atomic_write_text, publish, temp_path, to_strict_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import Status
from metalab_smk.store.validate import valid_record_exists

USAGE = "usage: python -m metalab_smk.job.worker (run RUN_ID | batch NAME | task STAMP)"
WATCH_SECONDS = 0.5  # how often the worker checks that its Snakemake still lives
KILL_AFTER_SECONDS = 10.0  # a run that ignores cancellation this long is killed
_child: int | None = None  # the forked process running the current run


class _Cancellation:
    """SIGTERM (cancel, SLURM time limit) stops the current run with a cancelled record."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        if _child is not None:  # the run executes in a forked child: cancel it there
            with contextlib.suppress(ProcessLookupError):
                os.kill(_child, signal.SIGTERM)
            return
        runtime = self.runtime
        if runtime is not None and runtime.in_operation:
            runtime.in_operation = False  # raise once; later signals must not interrupt
            runtime.cancel()  # writing the cancelled record
            raise RunCancelled(
                "terminated by SIGTERM (the run was cancelled or hit its time limit)"
            )

    def attach(self, runtime: Runtime) -> None:
        self.runtime = runtime


def _indices(compiled: CompiledExperiment, command: str, key: str) -> list[int]:
    if command == "run":
        return [compiled.index_of(key)]
    return [int(line) for line in compiled.layout.batch_listing(key).read_text().split()]


def _planned(compiled: CompiledExperiment, plan: Plan, indices: list[int]) -> list[PlannedRun]:
    """The runs at ``indices``, after checking that their IDs, computed from the loaded
    experiment, are the compiled run table's (only these runs' IDs are computed)."""
    runs = [plan.run(index) for index in indices]
    for run, compiled_id in zip(runs, compiled.run_ids_at(indices), strict=True):
        if run.run_id != compiled_id:
            raise MetalabError(
                f"run {compiled_id} (index {run.index}) no longer matches the experiment "
                "snapshot: its context files or code changed since compiling; run "
                "`metalab compile` again."
            )
    return runs


def _task_batch(layout: ExperimentDir, stamp: str) -> str:
    """The batch of this SLURM array task: ``<stamp>-<SLURM_ARRAY_TASK_ID, 6 digits>``;
    its SLURM log is ``<stamp>-<task>.log`` (the array's ``--output``)."""
    task = os.environ.get("SLURM_ARRAY_TASK_ID", "")
    if not task.isdigit():
        raise MetalabError("`worker task` runs only inside a SLURM array task")
    os.environ["METALAB_SLURM_LOG"] = str(layout.slurm_log(f"{stamp}-{task}"))
    return f"{stamp}-{int(task):06d}"


def _run(
    layout: ExperimentDir,
    plan: Plan,
    experiment: Experiment,
    run: PlannedRun,
    description: dict,
    cancellation: _Cancellation,
    writer: RecordWriter = write_record,
) -> bool:
    """Run ``run`` in this process; report a failure on stderr; True on success."""
    record = execute_run(layout, plan, experiment, run, description, cancellation.attach, writer)
    cancellation.runtime = None
    if record.status is Status.SUCCESS:
        return True
    print(
        f"metalab: run {run.run_id} {record.status}: {record.error['type']}: "
        f"{record.error['message']} (log: {layout.log(run.run_id)})",
        file=sys.stderr,
    )
    return False


def _run_in_child(
    layout: ExperimentDir,
    plan: Plan,
    experiment: Experiment,
    runs: list[PlannedRun],
    description: dict,
    cancellation: _Cancellation,
) -> int:
    """Run ``runs`` in a forked child and return how many failed. The child reports each
    run's start and end through a pipe; when a run kills the child (a signal,
    ``os._exit``, a native crash), that run alone gets a failed record written here and a
    new child goes on with the runs after it. One fork per batch, not per run."""
    global _child
    failures = 0
    pending = list(runs)
    while pending:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: run, then leave without running the parent's exit handlers
            os.close(read_fd)
            code = 0
            try:
                writer = _hand_over(write_fd)
                for position, run in enumerate(pending):
                    if cancellation.requested:
                        code = 3
                        break
                    os.write(write_fd, b"s%d\n" % position)
                    ok = _run(layout, plan, experiment, run, description, cancellation, writer)
                    os.write(write_fd, b"e%d\n" % int(ok))
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_fd)
        _child = pid
        in_flight: int | None = None
        started_at, start, started_wall = utc_now(), time.monotonic(), time.time()
        ooms = oom_kills()  # per child: an OOM kill ends the child, so this is its baseline
        try:
            with os.fdopen(read_fd, "rb") as pipe:
                for line in pipe:
                    if line.startswith(b"s"):
                        in_flight = int(line[1:])
                        started_at, start = utc_now(), time.monotonic()
                        started_wall = time.time() - 1  # file times may be coarser
                    elif line.startswith(b"c"):
                        failures += not _publish(line)
                    else:
                        failures += line.strip() == b"e0"
                        in_flight = None
            _, status = os.waitpid(pid, 0)
        finally:
            _child = None
        if in_flight is None:
            # a clean end, else cancelled (3) or an error outside any run
            failures += not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
            break
        run = pending[in_flight]
        pending = pending[in_flight + 1 :]
        if not _crashed(
            layout, plan, run, description, status, (started_at, start, started_wall, ooms, pid)
        ):
            failures += 1
        if cancellation.requested:
            failures += 1
            break
    return failures


def _hand_over(pipe: int) -> RecordWriter:
    """The forked child's record writer: write the record to a temporary file and hand
    it to the parent (``_publish``), which fsyncs and renames it while the child goes on
    with the next run, so the disk's latency is off the runs' path."""

    made: set[Path] = set()  # record folders made by this child (one mkdir each)

    def write(path: Path, record: dict) -> None:
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        tmp = temp_path(os.fspath(path))
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(to_strict_json(record))
        os.write(pipe, b"c" + json.dumps([tmp, os.fspath(path)]).encode() + b"\n")

    return write


def _publish(line: bytes) -> bool:
    """Put a record the child handed over (``c["tmp", "target"]``) in place."""
    tmp, target = json.loads(line[1:])
    try:
        publish(tmp, target)
    except OSError as exc:
        print(f"metalab worker: cannot write the record {target}: {exc}", file=sys.stderr)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def _crashed(
    layout: ExperimentDir,
    plan: Plan,
    run: PlannedRun,
    description: dict,
    status: int,
    attempt: tuple[str, float, float, int, int],
) -> bool:
    """After the child died in ``run``: True if its record was written anyway, else write
    the failed record that says how the process ended."""
    started_at, start, started_wall, ooms, pid = attempt
    if layout.record(run.run_id).is_file():
        return True
    failed = layout.failed_record(run.run_id)
    if os.WIFEXITED(status) and failed.is_file() and failed.stat().st_mtime >= started_wall:
        return False  # the child wrote the failed record and reported it
    how = describe_exit(status)
    if how.endswith("signal SIGKILL") and oom_kills() > ooms:
        how = "was killed: out of memory (SIGKILL)"
    if disk_full(layout.root):
        how += " (no space left on device)"
    message = f"the run's process {how} without writing a record"
    try:
        record_crash(
            layout, plan, run, description, started_at, time.monotonic() - start, message, pid
        )
    except OSError as exc:
        print(f"metalab worker: cannot write the failed record: {exc}", file=sys.stderr)
    print(f"metalab: run {run.run_id} failed: {message}", file=sys.stderr)
    return False


def _snakemake_ancestor() -> int:
    """The nearest ancestor process running snakemake (a shell may sit between), or the
    parent when there is none (a worker started by hand or by a SLURM array task)."""
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


def _watch_parent() -> None:
    """End the batch when the Snakemake that started it dies: SIGTERM to ourselves (the
    running run records itself as cancelled), SIGKILL to the run a while later."""
    watched, parent = _snakemake_ancestor(), os.getppid()

    def watch() -> None:
        while _alive(watched) and os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(KILL_AFTER_SECONDS)
        if _child is not None:
            os.kill(_child, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="metalab-parent-watch").start()


def main(argv: Sequence[str] | None = None) -> int:
    layout = ExperimentDir.at(os.getcwd())
    registration = layout.worker_file(os.getpid(), os.uname().nodename)
    try:
        registration.parent.mkdir(parents=True, exist_ok=True)
        registration.touch()
    except OSError:
        pass
    try:
        return _main(argv)
    finally:
        registration.unlink(missing_ok=True)


def _main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("run", "batch", "task"):
        print(USAGE, file=sys.stderr)
        return 2
    command, key = args
    layout = ExperimentDir.at(os.getcwd())
    indices: list[int] = []
    try:
        if command == "task":
            command, key = "batch", _task_batch(layout, key)
        compiled = CompiledExperiment.read(layout)
        indices = _indices(compiled, command, key)
        experiment = compiled.load_experiment()
        plan = Plan(experiment)
        runs = _planned(compiled, plan, indices)
    except MetalabError as exc:
        print(f"metalab worker: {exc}", file=sys.stderr)
        if command == "batch" and indices:  # the head sees the end now, as a failure
            atomic_write_text(layout.batch_end(key), f"{len(indices)}\n")
        return 2
    cancellation = _Cancellation()
    if "SLURM_ARRAY_TASK_ID" not in os.environ:
        _watch_parent()
    isolate = hasattr(os, "fork")
    if isolate:
        warm_up()  # once here, not in every forked run
    failures = 0
    # a bad record is quarantined here, and its run runs again
    runs = [run for run in runs if not valid_record_exists(layout, run.run_id)]
    if isolate:
        failures = _run_in_child(layout, plan, experiment, runs, compiled.description, cancellation)
    else:
        for run in runs:
            if cancellation.requested:
                failures += 1
                break
            ok = _run(layout, plan, experiment, run, compiled.description, cancellation)
            failures += not ok
    sync_records(layout)
    if command == "batch":
        if not failures:
            atomic_write_text(layout.batch_done(key), f"{len(indices)}\n")
        atomic_write_text(layout.batch_end(key), f"{failures}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
