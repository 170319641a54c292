"""Starting Snakemake and other host-side processes."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

DRIVER_VARIABLE = "METALAB_DRIVER_PID"  # set in every Snakemake metalab starts
_PR_SET_PDEATHSIG = 1


def snakemake_env() -> dict[str, str]:
    """Environment for Snakemake processes: PYTHONSAFEPATH keeps ``python -m snakemake``
    from putting the experiment directory on sys.path, where Snakemake's plugin discovery
    would list every file of runs/ and logs/ (seconds at 100,000 runs)."""
    return {**os.environ, "PYTHONSAFEPATH": "1"}


def _die_with(parent: int, signum: int) -> None:
    """In the child before exec: ask the kernel for ``signum`` when the parent dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signum))
    except (OSError, AttributeError):  # not Linux: the jobs' own parent watch ends them
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)


def start_detached(
    command: list[str],
    cwd: Path,
    log: Path,
    tie_to_parent: bool = False,
    death_signal: int = signal.SIGTERM,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (so it can be signalled as a group), appending
    its output to ``log``. It outlives its parent unless ``tie_to_parent``: then it gets
    SIGTERM when the parent dies (a SLURM head job killed by scancel or its time limit,
    whose Snakemake would otherwise be reparented to PID 1 and escape the job).
    ``death_signal=SIGKILL`` for a foreground sweep: Snakemake on SIGTERM waits for its
    running jobs, while the jobs notice a killed Snakemake and cancel their runs.
    ``env``: variables added to its environment."""
    parent = os.getpid()
    with open(log, "ab") as handle:
        handle.write(f"\n$ {' '.join(command)}\n".encode())
        handle.flush()
        return subprocess.Popen(
            command,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**snakemake_env(), DRIVER_VARIABLE: str(parent), **(env or {})},
            preexec_fn=(lambda: _die_with(parent, death_signal)) if tie_to_parent else None,
        )


def signal_group(pid: int, signum: int) -> bool:
    """Send ``signum`` to the process group led by ``pid``; False if it is gone."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
