"""Starting Snakemake and other host-side processes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def snakemake_env() -> dict[str, str]:
    """Environment for Snakemake processes: PYTHONSAFEPATH keeps ``python -m snakemake``
    from putting the experiment directory on sys.path, where Snakemake's plugin discovery
    would list every file of runs/ and logs/ (seconds at 100,000 runs)."""
    return {**os.environ, "PYTHONSAFEPATH": "1"}


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the parent dies (Linux only). SIGKILL,
    because Snakemake on SIGTERM waits for its running jobs; the jobs notice that their
    Snakemake is gone and cancel their runs themselves."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start_detached(
    command: list[str], cwd: Path, log: Path, die_with_parent: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (so it can be signalled as a group and, unless
    ``die_with_parent``, outlive its parent), appending its output to ``log``."""
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
            env=snakemake_env(),
            preexec_fn=_die_with_parent if die_with_parent else None,
        )


def signal_group(pid: int, signum: int) -> bool:
    """Send ``signum`` to the process group led by ``pid``; False if it is gone."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
