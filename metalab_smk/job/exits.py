"""How a process ended, in words, and the kernel's out-of-memory kill count."""

from __future__ import annotations

import os
import signal
from pathlib import Path

__all__ = ["describe_exit", "oom_kills"]


def describe_exit(wait_status: int) -> str:
    """``"was killed by signal SIGSEGV"`` or ``"exited with code 3"`` for a wait status."""
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by signal {name}"
    return f"exited with code {os.waitstatus_to_exitcode(wait_status)}"


def oom_kills() -> int:
    """The ``oom_kill`` count of this process's cgroup (cgroup v2), 0 when unknown."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        relative = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
        events = Path("/sys/fs/cgroup", relative.lstrip("/"), "memory.events").read_text()
    except (OSError, StopIteration, IndexError):
        return 0
    for line in events.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0
