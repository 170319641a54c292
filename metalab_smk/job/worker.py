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
import functools
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from metalab_smk.compile.reader import CompiledExperiment
from metalab_smk.core.experiment import Experiment
from metalab_smk.core.plan import Plan, PlannedRun
from metalab_smk.core.values import utc_now
from metalab_smk.errors import MetalabError
from metalab_smk.job.capture import RunCancelled, Runtime
from metalab_smk.job.driver import driver_gone, watch_driver
from metalab_smk.job.execute import (
    RecordWriter,
    execute_run,
    record_crash,
    sync_records,
    warm_up,
    write_record,
)
from metalab_smk.job.exits import OOM_KILLED, describe_exit, disk_full, oom_kills
from metalab_smk.job.gpus import show_devices, take_gpus
from metalab_smk.job.isolation import (
    Surroundings,
    become_batch_leader,
    end_leftovers,
    guard_group,
    release_guard,
)
from metalab_smk.job.requeue import requeue_interrupted, resumed_runs
from metalab_smk.job.runlog import discard_quiet_log
from metalab_smk.store.classes import ResourceClasses
from metalab_smk.store.jsonio import (
    atomic_write_text,
    fsync_enabled,
    fsync_path,
    publish,
    read_json,
    temp_path,
    to_strict_json,
)
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import Status
from metalab_smk.store.validate import process_alive, without_valid_record

USAGE = "usage: python -m metalab_smk.job.worker (run RUN_ID | batch NAME | task STAMP)"
WATCH_SECONDS = 0.5  # how often the worker checks that its Snakemake still lives
KILL_AFTER_SECONDS = 10.0  # a run that ignores cancellation this long is killed
POLL_SECONDS = 0.5  # how often a quiet batch child is checked (exit, timeout)
FLUSH_SECONDS = 0.02  # a record handed over waits at most this long to be put in place
FLUSH_RECORDS = 64  # ... or until this many are there, to be fsynced together
SYNC_THREADS = 8  # ... by this many threads
_child_pids: set[int] = set()  # the forked processes running runs (one per lane)
_guards: dict[int, int | None] = {}  # batch child -> the guard that ends it with the worker


class _Cancellation:
    """SIGTERM (cancel, SLURM time limit) stops the current run with a cancelled record."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGUSR1, self._warn)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        if _child_pids:  # the runs execute in forked children: cancel them there
            for pid in list(_child_pids):
                _signal_group(pid, signal.SIGTERM)
            return
        runtime = self.runtime
        if runtime is not None and runtime.in_operation:
            runtime.request_stop()
            runtime.cancel()  # writing the cancelled (or interrupted) record
            if runtime.checkpointing:  # it saves and returns at should_stop() (killed when
                return  # it takes longer than SLURM's KillWait or the runner's grace)
            runtime.in_operation = False  # raise once; later signals must not interrupt
            raise RunCancelled(
                "terminated by SIGTERM (the run was cancelled or hit its time limit)"
            )

    def _warn(self, signum: int, frame: object) -> None:
        """SIGUSR1 (SLURM's warning before the time limit): tell the run to stop soon and
        start no more runs here (they are run again by the next round)."""
        self.requested = True
        for pid in list(_child_pids):  # the child alone: what the run started keeps going
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        if self.runtime is not None:
            self.runtime.request_stop()

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
    error = record.error or {}
    print(
        f"metalab: run {run.run_id} {record.status}: {error.get('type')}: "
        f"{error.get('message')} (log: {layout.log(run.run_id)})",
        file=sys.stderr,
    )
    return False


@dataclass(frozen=True)
class _Crash:
    """A run whose process died without a record: the next child writes its record."""

    index: int
    message: str
    started_at: str
    seconds: float
    pid: int
    error_type: str = "Crashed"


def _load(compiled: CompiledExperiment, indices: list[int]) -> tuple[Experiment, Plan, list]:
    """Import the experiment file and plan the runs at ``indices`` (IDs checked)."""
    experiment = compiled.load_experiment()
    plan = Plan(experiment)
    return experiment, plan, _planned(compiled, plan, indices)


def _child(
    compiled: CompiledExperiment,
    pending: list[int],
    crash: _Crash | None,
    cancellation: _Cancellation,
    pipe: int,
) -> int:
    """A batch child's work: import the experiment file (here, after the fork, so that
    what its top level initialises, CUDA say, belongs to this process), write the record
    of the run that killed the previous child, then run ``pending``, reporting each run's
    start and end through ``pipe``. Its exit code: 0 done, 2 the experiment could not be
    loaded, 3 cancelled."""
    layout = compiled.layout
    try:
        experiment, plan, runs = _load(compiled, pending)
        if crash is not None:
            (crashed,) = _planned(compiled, plan, [crash.index])
            record_crash(
                layout,
                plan,
                crashed,
                compiled.description,
                crash.started_at,
                crash.seconds,
                crash.message,
                crash.pid,
                crash.error_type,
            )
    except MetalabError as exc:
        print(f"metalab worker: {exc}", file=sys.stderr)
        return 2
    writer = _hand_over(pipe, layout.child_scratch(os.getpid()))
    for position, run in enumerate(runs):
        if cancellation.requested:
            return 3
        os.write(pipe, b"s%d\n" % position)
        surroundings = Surroundings()
        ok = _run(layout, plan, experiment, run, compiled.description, cancellation, writer)
        surroundings.restore()  # a run's chdir or environment never reaches the next
        left = end_leftovers()
        if left:
            print(f"metalab: run {run.run_id} left {left} process(es) running; ended them")
        os.write(pipe, b"e%d\n" % int(ok))
    return 0


def _fork_child(
    compiled: CompiledExperiment,
    pending: list[int],
    crash: _Crash | None,
    cancellation: _Cancellation,
) -> tuple[int, int]:
    """Fork a batch child (``_child``); return its pid and the pipe's reading end. The
    child leaves without running this process's exit handlers."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    worker = os.getpid()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with contextlib.suppress(OSError):  # also done in the child: no race either way
            os.setpgid(pid, pid)
        _guards[pid] = guard_group(pid, worker)
        return pid, read_fd
    os.close(read_fd)
    _end_with_worker(worker, cancellation)
    become_batch_leader(worker)
    code = 1
    try:
        code = _child(compiled, pending, crash, cancellation, write_fd)
    except BaseException:
        traceback.print_exc()
    finally:
        discard_quiet_log()
        end_leftovers(grace=0.5)
        if os.getppid() != worker:  # the worker died: put the records it left in place
            _publish_orphaned()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@dataclass
class _Followed:
    """What the worker saw of one batch child."""

    failures: int = 0
    in_flight: int | None = None  # the position of the run it was in, if any
    status: int = 0  # its wait status
    started_at: str = ""
    start: float = 0.0
    started_wall: float = 0.0
    timed_out: bool = False


def _on_line(seen: _Followed, line: bytes) -> None:
    if line.startswith(b"s"):
        seen.in_flight = int(line[1:])
        seen.started_at, seen.start = utc_now(), time.monotonic()
        seen.started_wall = time.time() - 1  # file times may be coarser
    elif line.startswith(b"e"):
        seen.failures += line.strip() == b"e0"
        seen.in_flight = None


def _put_in_place(seen: _Followed, handed: list[bytes]) -> None:
    """Put the records handed over (``c`` lines) in place: all fsynced first, at once,
    then renamed, so each is durable before its name appears and the filesystem commits
    its journal once for the group instead of once per record."""
    synced = len(handed) > 1 and fsync_enabled()
    if synced:  # a record that could not be synced here is synced again on its own
        synced = _fsync_together([json.loads(line[1:])[0] for line in handed])
    for line in handed:
        seen.failures += not _publish(line, synced)


def _fsync_together(paths: list[str]) -> bool:
    """fsync ``paths`` from up to 8 threads at once (the filesystem commits concurrent
    fsyncs together), each thread a share of them (one task each, not one per file), all
    done before this returns; False when any fsync failed."""
    shares = [paths[n::SYNC_THREADS] for n in range(min(SYNC_THREADS, len(paths)))]
    return all(_sync_threads().map(_fsynced, shares))


def _fsynced(paths: list[str]) -> bool:
    synced = True
    for path in paths:
        try:
            fsync_path(path)
        except OSError:
            synced = False
    return synced


@functools.cache
def _sync_threads() -> ThreadPoolExecutor:
    """The worker's fsync threads, started once (not once per group of records)."""
    return ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="metalab-fsync")


def _follow(pid: int, read_fd: int, timeout: float | None) -> _Followed:
    """Follow a batch child's reports until it exits; kill its process group when a run
    outlives ``timeout`` seconds. A descendant that keeps the pipe open (a daemon a run
    started) does not keep the worker waiting. Records handed over are put in place in
    groups: up to ``FLUSH_RECORDS``, none later than ``FLUSH_SECONDS`` after it came."""
    seen = _Followed(started_at=utc_now(), start=time.monotonic(), started_wall=time.time())
    buffer, status = b"", None
    handed: list[bytes] = []
    due = 0.0
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while status is None:
            wait = max(0.0, due - time.monotonic()) if handed else POLL_SECONDS
            if select.select([pipe], [], [], wait)[0]:
                chunk = pipe.read(1 << 16)
                if not chunk:
                    break
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if not line.startswith(b"c"):
                        _on_line(seen, line)
                    elif not handed:
                        handed, due = [line], time.monotonic() + FLUSH_SECONDS
                    else:
                        handed.append(line)
            elif not handed:
                done, status = os.waitpid(pid, os.WNOHANG)
                status = status if done else None
            if handed and (len(handed) >= FLUSH_RECORDS or time.monotonic() >= due):
                _put_in_place(seen, handed)
                handed = []
            late = seen.in_flight is not None and time.monotonic() - seen.start > (timeout or 0)
            if timeout and late and not seen.timed_out:
                seen.timed_out = True  # the run and what it started end at once; the next
                _signal_group(pid, signal.SIGKILL)  # child writes its record and goes on
        os.set_blocking(read_fd, False)
        rest = b""
        with contextlib.suppress(BlockingIOError):
            rest = pipe.read() or b""
        for line in (buffer + rest).split(b"\n"):
            if line.startswith(b"c"):
                handed.append(line)
            else:
                _on_line(seen, line)
        _put_in_place(seen, handed)
    seen.status = os.waitpid(pid, 0)[1] if status is None else status
    return seen


def _signal_group(pid: int, signum: int) -> None:
    """Signal a batch child's process group (the run and what it started)."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _end_with_worker(worker: int, cancellation: _Cancellation) -> None:
    """In a batch child: SIGTERM (which the kernel also sends when the worker dies)
    cancels the run as usual while the worker lives; once it is dead, nobody collects
    this child's work, so the records it handed over are put in place and the child's
    whole process group (the run and what it started) is killed."""

    def on_term(signum: int, frame: object) -> None:
        if os.getppid() != worker:
            _publish_orphaned()
            discard_quiet_log()  # no finished run keeps a partial log
            os.killpg(0, signal.SIGKILL)
        cancellation._handle(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def _run_in_children(
    compiled: CompiledExperiment,
    pending: list[tuple[int, str]],
    cancellation: _Cancellation,
) -> tuple[int, int]:
    """Run the ``(index, run_id)`` pairs of ``pending`` in forked children; return how
    many failed and the exit code of the batch (0, 1, or 2 when the experiment could not
    be loaded). This process never imports the experiment file: each child imports it
    itself (one child per batch, or per run with ``isolation="run"``). When a run kills
    its child (a signal, ``os._exit``, a native crash, its timeout), a new child writes
    that run's failed record and goes on with the runs after it."""
    layout = compiled.layout
    timeout = compiled.description.get("timeout")
    one_each = compiled.description.get("isolation") == "run"
    failures, crash = 0, None
    while pending or crash is not None:
        share = pending[:1] if one_each else pending
        pid, read_fd = _fork_child(compiled, [i for i, _ in share], crash, cancellation)
        _child_pids.add(pid)
        crash = None
        ooms = oom_kills()  # per child: an OOM kill ends the child, so this is its baseline
        try:
            seen = _follow(pid, read_fd, timeout)
        finally:
            _child_pids.discard(pid)
            release_guard(_guards.pop(pid, None))
        with contextlib.suppress(OSError):  # its records are in place: empty (else a
            os.rmdir(layout.child_scratch(pid))  # crash's leftover, for clean_leftovers)
        failures += seen.failures
        status = seen.status
        if seen.in_flight is None:
            # a clean end, else cancelled (3), not loaded (2) or an error outside any run
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 2:
                return failures + len(pending), 2
            clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            failures += not clean
            pending = pending[len(share) :]
            if not (clean and one_each and pending and not cancellation.requested):
                break
            continue
        index, run_id = pending[seen.in_flight]
        pending = pending[seen.in_flight + 1 :]
        failures += 1
        message = _crash_message(layout, run_id, status, (seen.started_wall, ooms))
        error_type = "Crashed"
        if seen.timed_out:
            message = f"timed out after {timeout:g} s (its processes were ended)"
            error_type = "TimeoutError"
        if message is None:  # its record was written after all
            failures -= layout.record(run_id).is_file()
        else:
            print(f"metalab: run {run_id} failed: {message}", file=sys.stderr)
            seconds = time.monotonic() - seen.start
            crash = _Crash(index, message, seen.started_at, seconds, pid, error_type)
        if cancellation.requested:
            pending = []  # only the crashed run's record is still written
    return failures, 1 if failures else 0


def _run_in_lanes(
    compiled: CompiledExperiment,
    pending: list[tuple[int, str]],
    cancellation: _Cancellation,
    groups: list[list[str]],
) -> tuple[int, int]:
    """A job holding several runs' worth of GPUs (a SLURM task): one lane process per
    device group, each running its share of ``pending`` on its devices
    (``_run_in_children``); how many failed and the batch's exit code."""
    started: list[tuple[int, int, int]] = []
    for number, devices in enumerate(groups):
        share = pending[number :: len(groups)]
        if not share:
            continue
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child_pids.clear()  # the sibling lanes are not this lane's to cancel
            failures = len(share)
            try:
                show_devices(devices)
                failures, _ = _run_in_children(compiled, share, cancellation)
            finally:
                os.write(write_fd, b"%d\n" % failures)
                os._exit(0)
        os.close(write_fd)
        _child_pids.add(pid)
        started.append((pid, read_fd, len(share)))
    failures = 0
    for pid, read_fd, size in started:
        with os.fdopen(read_fd, "rb") as pipe:
            reported = pipe.read().strip()
        os.waitpid(pid, 0)
        _child_pids.discard(pid)
        failures += int(reported) if reported.isdigit() else size
    return failures, 1 if failures else 0


def _hand_over(pipe: int, scratch: Path) -> RecordWriter:
    """The forked child's record writer: write the record to a temporary file in
    ``scratch`` (this child's own folder; beside the record when it cannot be made) and
    hand it to the parent (``_publish``), which fsyncs and renames it while the child goes
    on with the next run, so the disk's latency is off the runs' path."""

    made: dict[Path, str | None] = {}  # record folder -> where its temporary files go
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        own: str | None = os.fspath(scratch)
    except OSError:
        own = None

    def write(path: Path, record: dict) -> None:
        if path.parent not in made:  # one mkdir per folder; beside the record when
            path.parent.mkdir(parents=True, exist_ok=True)  # it is on another device
            same = own is not None and os.stat(own).st_dev == os.stat(path.parent).st_dev
            made[path.parent] = own if same else None
        tmp = temp_path(os.fspath(path), made[path.parent])
        data = to_strict_json(record).encode()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileNotFoundError:  # the folder was removed meanwhile (a cleaner's mistake)
            os.makedirs(os.path.dirname(tmp), exist_ok=True)
            fd = os.open(tmp, flags, 0o666)
        try:
            view = memoryview(data)
            while view:  # a short write: the rest (a full disk raises OSError)
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        _handed.append((tmp, os.fspath(path)))
        try:
            os.write(pipe, b"c" + json.dumps([tmp, os.fspath(path)]).encode() + b"\n")
        except OSError:  # the worker is gone: this child puts it in place itself
            publish(tmp, os.fspath(path))

    return write


_handed: list[tuple[str, str]] = []  # records a batch child handed to its worker


def _publish_orphaned() -> None:
    """In a batch child whose worker died: put in place the records the worker had not
    renamed yet, so a finished run is never run again."""
    for tmp, target in _handed:
        if os.path.exists(tmp):
            with contextlib.suppress(OSError):
                publish(tmp, target)


def _publish(line: bytes, synced: bool = False) -> bool:
    """Put a record the child handed over (``c["tmp", "target"]``) in place (``synced``:
    its temporary file was fsynced already)."""
    tmp, target = json.loads(line[1:])
    try:
        publish(tmp, target, synced)
    except OSError as exc:
        print(f"metalab worker: cannot write the record {target}: {exc}", file=sys.stderr)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def _crash_message(
    layout: ExperimentDir, run_id: str, status: int, attempt: tuple[float, int]
) -> str | None:
    """After the child died in run ``run_id``: None when the run's record was written
    anyway, else how the process ended, in words."""
    started_wall, ooms = attempt
    if layout.record(run_id).is_file():
        return None
    failed = layout.failed_record(run_id)
    if os.WIFEXITED(status) and failed.is_file() and failed.stat().st_mtime >= started_wall:
        return None  # the child wrote the failed record and reported it
    how = describe_exit(status)
    if how.endswith("signal SIGKILL") and oom_kills() > ooms:
        how = OOM_KILLED
    if disk_full(layout.root):
        how += " (no space left on device)"
    return f"the run's process {how} without writing a record"


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


def _warn_before_time_limit() -> None:
    """In a task that knows its time limit (``METALAB_TIME_LIMIT`` seconds, set by the
    array submission): tell the runs when it ends (``capture.time_left()``) and send this
    process SIGUSR1 ``METALAB_WARN_BEFORE`` seconds before (``capture.should_stop()``)."""
    limit, warn = (
        os.environ.get("METALAB_TIME_LIMIT", ""),
        os.environ.get("METALAB_WARN_BEFORE", "0"),
    )
    if not limit.isdigit():
        return
    deadline = time.time() + int(limit)
    os.environ["METALAB_DEADLINE"] = f"{deadline:.0f}"
    delay = max(0.0, int(limit) - (int(warn) if warn.isdigit() else 0))
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.daemon = True
    timer.start()


def _watch_parent() -> None:
    """End the batch when the Snakemake that started it dies: SIGTERM to ourselves (the
    running run records itself as cancelled), SIGKILL to the run a while later."""
    watched, parent = _snakemake_ancestor(), os.getppid()

    def watch() -> None:
        while process_alive(watched) and os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(KILL_AFTER_SECONDS)
        for pid in list(_child_pids):
            _signal_group(pid, signal.SIGKILL)

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
    in_array = command == "task"
    try:
        if in_array:
            command, key = "batch", _task_batch(layout, key)
        compiled = CompiledExperiment.read(layout)
        indices = _indices(compiled, command, key)
        run_ids = compiled.run_ids_at(indices)
    except MetalabError as exc:
        return _not_started(layout, command, key, indices, exc)
    if in_array and driver_gone():
        gone = MetalabError("the Snakemake that submitted this task is gone; no run started")
        return _not_started(layout, command, key, indices, gone)
    cancellation = _Cancellation()
    if "SLURM_ARRAY_TASK_ID" not in os.environ:
        _watch_parent()
    else:
        watch_driver()  # the metalab-slurm executor's Snakemake, when it submitted this
    _warn_before_time_limit()
    # a bad record is quarantined here, and its run runs again
    due = without_valid_record(layout, run_ids)
    pending = [(index, run_ids[n]) for n, index in enumerate(indices) if due[n]]
    if in_array:  # a requeued task continues only what its last attempt listed
        pending = resumed_runs(layout, key, pending)
    try:  # before any child imports the experiment file: its CUDA sees only these
        lease = take_gpus(_job_resources(layout, command, key, indices)) if pending else None
    except MetalabError as exc:
        return _not_started(layout, command, key, indices, exc)
    if hasattr(os, "fork"):
        warm_up()  # once here, not in every child
        groups = lease.groups() if lease is not None else []
        if len(groups) > 1 and len(pending) > 1:
            failures, code = _run_in_lanes(compiled, pending, cancellation, groups)
        else:
            failures, code = _run_in_children(compiled, pending, cancellation)
    else:
        try:
            failures = _run_here(compiled, [index for index, _ in pending], cancellation)
        except MetalabError as exc:
            return _not_started(layout, command, key, indices, exc)
        code = 1 if failures else 0
    if lease is not None:
        lease.release()
    sync_records(layout)
    limit = int(compiled.description.get("max_attempts", 3))
    if in_array and requeue_interrupted(layout, key, pending if failures else [], limit):
        return code  # no end marker: this task runs again under the same job ID
    if command == "batch":
        if not failures:
            atomic_write_text(layout.batch_done(key), f"{len(indices)}\n")
        atomic_write_text(layout.batch_end(key), f"{failures}\n")
    return code


def _job_resources(layout: ExperimentDir, command: str, key: str, indices: list[int]) -> dict:
    """The resources this job's runs asked for: its batch's class, or the run's."""
    if command == "batch" and layout.batch_resources(key).is_file():
        return read_json(layout.batch_resources(key))
    table = ResourceClasses.read(layout)
    return table.classes[table.of_run(indices[0])] if indices else table.common


def _not_started(
    layout: ExperimentDir, command: str, key: str, indices: list[int], exc: MetalabError
) -> int:
    """Report a batch that could not start; the head sees its end now, as a failure."""
    print(f"metalab worker: {exc}", file=sys.stderr)
    if command == "batch" and indices:
        atomic_write_text(layout.batch_end(key), f"{len(indices)}\n")
    return 2


def _run_here(compiled: CompiledExperiment, indices: list[int], cancellation: _Cancellation) -> int:
    """Run the runs at ``indices`` in this process (no ``fork``); how many failed."""
    experiment, plan, runs = _load(compiled, indices)
    failures = 0
    try:
        for run in runs:
            if cancellation.requested:
                return failures + 1
            failures += not _run(
                compiled.layout, plan, experiment, run, compiled.description, cancellation
            )
    finally:
        discard_quiet_log()
    return failures


if __name__ == "__main__":
    sys.exit(main())
