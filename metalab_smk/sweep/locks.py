"""Is Snakemake running in a directory, and recovering from one that was killed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from metalab_smk.errors import SweepBusyError
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.processes import DRIVER_VARIABLE, snakemake_env

__all__ = ["RunnerLock", "end_orphaned_snakemake", "live_snakemake_pids", "recover_stale_lock"]


class RunnerLock:
    """An exclusive lock on ``.metalab/runner.lock`` held while metalab drives Snakemake
    in a directory, so a second ``metalab run`` there refuses instead of interfering."""

    def __init__(self, layout: ExperimentDir) -> None:
        layout.meta_dir.mkdir(parents=True, exist_ok=True)
        self._handle = open(layout.runner_lock, "a+")  # noqa: SIM115 - held open
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise SweepBusyError(
                f"another metalab run is active in {layout.root}; wait for it to finish "
                "(`metalab status` shows progress) or cancel it first."
            ) from None

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def live_snakemake_pids(directory: Path) -> list[int]:
    """PIDs of snakemake processes whose working directory is ``directory`` (Linux /proc)."""
    found = []
    target = os.path.realpath(directory)
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.path.realpath(entry / "cwd") != target:
                continue
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"snakemake" in part for part in cmdline[:4]) and b"slurm-jobstep" not in b" ".join(
            cmdline
        ):
            found.append(int(entry.name))
    return found


def _driver_of(pid: int) -> int | None:
    """The metalab process that started snakemake ``pid`` (from its environment)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    prefix = f"{DRIVER_VARIABLE}=".encode()
    for entry in environ:
        if entry.startswith(prefix):
            return int(entry[len(prefix) :] or 0) or None
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_orphaned_snakemake(directory: Path, grace: float = 60.0) -> list[int]:
    """End snakemake processes in ``directory`` that a metalab driver started and that
    outlived it (the driver was killed): SIGTERM to their group, SIGKILL after ``grace``
    seconds. Snakemake started by hand, or by a live driver, is left alone."""
    orphans = [
        pid
        for pid in live_snakemake_pids(directory)
        if (driver := _driver_of(pid)) is not None and not _alive(driver)
    ]
    for pid in orphans:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in orphans) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in orphans:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    return orphans


def recover_stale_lock(layout: ExperimentDir) -> bool:
    """Remove Snakemake's lock when no snakemake runs here (it was killed); True if removed.

    Raises SweepBusyError when a snakemake process is still running in ``directory``.
    """
    directory = layout.root
    locks = layout.snakemake_locks_dir
    if not locks.is_dir() or not any(locks.iterdir()):
        return False
    pids = live_snakemake_pids(directory)
    if pids:
        raise SweepBusyError(
            f"snakemake is already running in {directory} (pid {', '.join(map(str, pids))}); "
            "wait for it to finish (`metalab status` shows progress) or stop it first."
        )
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--unlock", "--cores", "1", "--quiet", "all"],
        cwd=directory,
        capture_output=True,
        check=False,
        env=snakemake_env(),
    )
    return True
