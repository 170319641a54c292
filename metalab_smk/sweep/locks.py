"""One sweep per directory: the runner lock, finding the processes of a sweep, and
recovering from a Snakemake that was killed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metalab_smk.errors import SweepBusyError
from metalab_smk.slurm.jobs import alive_slurm_jobs
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.locate import shown
from metalab_smk.store.validate import process_alive
from metalab_smk.sweep.detached import head_alive
from metalab_smk.sweep.processes import (
    DRIVER_VARIABLE,
    is_recorded_process,
    process_identity,
    snakemake_env,
    started_at,
)
from metalab_smk.sweep.snakemake_main import SNAKEMAKE_MODULE

__all__ = [
    "RunnerLock",
    "end_orphaned_snakemake",
    "live_snakemake_pids",
    "live_worker_pids",
    "recover_stale_lock",
    "running_sweep",
]

WORKER_MODULES = (b"metalab_smk.worker", b"metalab_smk.job.worker")


def _busy_message(layout: ExperimentDir, pid: str) -> str:
    where = shown(layout.root)
    return (
        f"another metalab run is active in {where} (pid {pid or '?'}); stop it with "
        f"`metalab stop {where}` or follow it with `metalab status {where}`."
    )


class RunnerLock:
    """An exclusive lock on ``.metalab/runner.lock`` (holding the owner's pid), held while
    metalab compiles and drives Snakemake in a directory, so a second ``metalab run``
    there refuses before writing anything.

    ``busy(layout)`` names a sweep that runs without holding the lock (a submitted job
    array, Snakemake started by hand); it is asked once the lock is held, and a reason
    refuses the lock without changing a file (``running_sweep`` for every new sweep)."""

    def __init__(
        self,
        layout: ExperimentDir,
        busy: Callable[[ExperimentDir], str | None] | None = None,
    ) -> None:
        layout.meta_dir.mkdir(parents=True, exist_ok=True)
        created = not layout.runner_lock.exists()
        self._handle = open(layout.runner_lock, "a+")  # noqa: SIM115 - held open
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            owner = self._handle.read().strip()
            self._handle.close()
            raise SweepBusyError(_busy_message(layout, owner)) from None
        reason = busy(layout) if busy is not None else None
        if reason is not None:
            if created:
                layout.runner_lock.unlink(missing_ok=True)
            self.release()
            raise SweepBusyError(reason)
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"{os.getpid()}\n")
        self._handle.flush()

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def running_sweep(layout: ExperimentDir) -> str | None:
    """Why a sweep already runs in ``layout`` without holding its runner lock (a submitted
    job array or head job, Snakemake started by hand), or None."""
    where = shown(layout.root)
    if head_alive(layout):
        return (
            f"a submitted sweep is still running in {where}; follow it with `metalab status "
            f"{where}` or stop it with `metalab stop {where}`."
        )
    by_hand = [pid for pid in live_snakemake_pids(layout.root) if _driver_alive(pid) is not False]
    if by_hand:
        return (
            f"snakemake is running in {where} (pid {', '.join(map(str, by_hand))}); wait for "
            f"it or stop it with `metalab stop {where}`."
        )
    return None


def _processes_in(directory: Path):
    """(pid, cmdline parts) of the processes whose working directory is ``directory``."""
    target = os.path.realpath(directory)
    proc = Path("/proc")
    if not proc.is_dir():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.path.realpath(entry / "cwd") != target:
                continue
            yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue


def live_snakemake_pids(directory: Path) -> list[int]:
    """PIDs of snakemake processes whose working directory is ``directory`` (Linux /proc)."""
    return [
        pid
        for pid, cmdline in _processes_in(directory)
        if any(b"snakemake" in part for part in cmdline[:4])
        and b"slurm-jobstep" not in b" ".join(cmdline)
    ]


def live_worker_pids(directory: Path) -> list[int]:
    """PIDs of metalab job workers of ``directory`` alive on this host: each registers
    itself in ``.metalab/workers/``; a registered pid counts only while it names a worker
    module working in ``directory`` that started before it registered (not a reused pid)."""
    layout = ExperimentDir.at(directory)
    if not layout.workers_dir.is_dir():
        return []
    host, found = os.uname().nodename, []
    for entry in layout.workers_dir.iterdir():
        pid, _, where = entry.name.partition("@")
        if where != host or not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            entry.unlink(missing_ok=True)  # a worker killed by SIGKILL
            continue
        if any(part in WORKER_MODULES for part in cmdline[:4]) and _worker_of(
            int(pid), directory, entry
        ):
            found.append(int(pid))
    return found


def _worker_of(pid: int, directory: Path, registration: Path) -> bool:
    """Whether ``pid`` works in ``directory`` and started before ``registration``."""
    try:
        here = os.path.realpath(f"/proc/{pid}/cwd") == os.path.realpath(directory)
        registered = registration.stat().st_mtime
    except OSError:
        return False
    began = started_at(pid)
    return here and began is not None and began <= registered + 2.0  # btime: whole seconds


def _driver_alive(pid: int) -> bool | None:
    """Whether the metalab process that started snakemake ``pid`` (named with its start
    time in its environment) still runs; None when snakemake was not started by metalab."""
    environ = _read_environ(pid)
    prefix = f"{DRIVER_VARIABLE}=".encode()
    value = next((e[len(prefix) :] for e in environ if e.startswith(prefix)), None)
    if not value:
        return None
    driver, _, ticks = value.decode(errors="replace").partition(":")
    if not driver.isdigit():
        return None
    if not ticks.isdigit():  # started by an older metalab: the pid alone
        return process_alive(int(driver))
    return is_recorded_process({"pid": driver, "start_ticks": int(ticks)}, ("start_ticks",))


def _read_environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def end_orphaned_snakemake(directory: Path, grace: float = 60.0) -> list[int]:
    """End snakemake processes in ``directory`` that a metalab driver started and that
    outlived it (the driver was killed): SIGTERM to their group, SIGKILL after ``grace``
    seconds, each only while its pid still names the same process. Snakemake started by
    hand, or by a live driver, is left alone."""
    orphans = [
        identity
        for pid in live_snakemake_pids(directory)
        if _driver_alive(pid) is False and (identity := process_identity(pid)) is not None
    ]
    _signal_groups(orphans, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(map(is_recorded_process, orphans)) and time.monotonic() < deadline:
        time.sleep(0.5)
    _signal_groups(orphans, signal.SIGKILL)
    return [identity["pid"] for identity in orphans]


def _signal_groups(identities: list[dict[str, Any]], signum: int) -> None:
    """``signum`` to the process group of each recorded process that still runs."""
    for identity in identities:
        if is_recorded_process(identity):
            with contextlib.suppress(OSError):
                os.killpg(identity["pid"], signum)


def recover_stale_lock(layout: ExperimentDir, worker_grace: float = 15.0) -> bool:
    """Remove Snakemake's lock when neither snakemake nor a job worker runs here (a killed
    sweep); True if removed. Workers whose Snakemake died end by themselves within
    seconds, so they are waited for up to ``worker_grace`` seconds.

    Raises SweepBusyError when a snakemake process or worker is still running here.
    """
    directory = layout.root
    locks = layout.snakemake_locks_dir
    if not locks.is_dir() or not any(locks.iterdir()):
        return False
    pids = live_snakemake_pids(directory)
    deadline = time.monotonic() + worker_grace
    while not pids and live_worker_pids(directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = pids or live_worker_pids(directory)
    jobs = alive_slurm_jobs(layout)
    if jobs:
        where = shown(directory)
        raise SweepBusyError(
            f"SLURM jobs {', '.join(jobs)} of an interrupted sweep still run in {where}; "
            f"stop them with `metalab stop {where}`."
        )
    if pids:
        where = shown(directory)
        raise SweepBusyError(
            f"snakemake or its jobs are still running in {where} (pid "
            f"{', '.join(map(str, pids))}); stop them with `metalab stop {where}`."
        )
    subprocess.run(
        [sys.executable, "-m", SNAKEMAKE_MODULE, "--unlock", "--cores", "1", "--quiet", "all"],
        cwd=directory,
        capture_output=True,
        check=False,
        env=snakemake_env(),
    )
    return True
