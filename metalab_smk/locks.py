"""Is Snakemake running in a directory, and recovering from one that was killed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["live_snakemake_pids", "recover_stale_lock"]


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


def recover_stale_lock(directory: Path) -> bool:
    """Remove Snakemake's lock when no snakemake runs here (it was killed); True if removed.

    Raises RuntimeError when a snakemake process is still running in ``directory``.
    """
    locks = directory / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return False
    pids = live_snakemake_pids(directory)
    if pids:
        raise RuntimeError(
            f"snakemake is already running in {directory} (pid {', '.join(map(str, pids))}); "
            "wait for it to finish (`metalab status` shows progress) or stop it first."
        )
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--unlock", "--cores", "1", "--quiet", "all"],
        cwd=directory,
        capture_output=True,
        check=False,
    )
    return True
