"""Starting Snakemake and other host-side processes, and proving that a recorded pid
still names the process that was recorded (pid + start time + command line)."""

from __future__ import annotations

import ctypes  # noqa: F401 - loaded here: a preexec_fn must not import (set_parent_death_signal)
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metalab_smk.job.isolation import set_parent_death_signal

DRIVER_VARIABLE = "METALAB_DRIVER_PID"  # set in every Snakemake metalab starts: "pid:start"
IDENTITY_FIELDS = ("boot_id", "start_ticks", "cmdline")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (/proc/PID/stat field 22)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # the name in parentheses may hold spaces
    return int(fields[19]) if len(fields) > 19 else None


def started_at(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (to about a second)."""
    ticks, stat = start_ticks(pid), _read("/proc/stat") or b""
    boot = next((line.split()[1] for line in stat.splitlines() if line.startswith(b"btime")), None)
    if ticks is None or boot is None:
        return None
    return int(boot) + ticks / os.sysconf("SC_CLK_TCK")


def process_identity(pid: int) -> dict[str, Any] | None:
    """``{"pid", "boot_id", "start_ticks", "cmdline"}`` of live process ``pid``, or None."""
    ticks, cmdline = start_ticks(pid), _read(f"/proc/{pid}/cmdline")
    boot_id = _read("/proc/sys/kernel/random/boot_id")
    if ticks is None or cmdline is None or boot_id is None:
        return None
    args = [part.decode(errors="replace") for part in cmdline.split(b"\0")[:-1]]
    return {"pid": pid, "boot_id": boot_id.decode().strip(), "start_ticks": ticks, "cmdline": args}


def is_recorded_process(
    recorded: Mapping[str, Any], fields: tuple[str, ...] = IDENTITY_FIELDS
) -> bool:
    """Whether ``recorded`` (from process_identity) still names a live process: same pid
    and the same ``fields``; a record lacking one of them proves nothing (False)."""
    try:
        now = process_identity(int(recorded["pid"]))
    except (KeyError, TypeError, ValueError):
        return False
    return now is not None and all(
        recorded.get(f) is not None and recorded.get(f) == now[f] for f in fields
    )


def snakemake_env() -> dict[str, str]:
    """Environment for Snakemake processes: PYTHONSAFEPATH keeps ``python -m snakemake``
    from putting the experiment directory on sys.path, where Snakemake's plugin discovery
    would list every file of runs/ and logs/ (seconds at 100,000 runs)."""
    return {**os.environ, "PYTHONSAFEPATH": "1"}


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
            env={
                **snakemake_env(),
                DRIVER_VARIABLE: f"{parent}:{start_ticks(parent)}",
                **(env or {}),
            },
            preexec_fn=(lambda: set_parent_death_signal(parent, death_signal))
            if tie_to_parent
            else None,
        )


def signal_group(pid: int, signum: int) -> bool:
    """Send ``signum`` to the process group led by ``pid``; False if it is gone."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
