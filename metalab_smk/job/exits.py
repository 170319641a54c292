"""How a process ended, in words, and the kernel's out-of-memory kill count."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

__all__ = ["OOM_KILLED", "describe_exit", "disk_full", "memory_cgroup_files", "oom_kills"]

# how a crash record names a run the OOM killer ended (local retries look for it)
OOM_KILLED = "was killed: out of memory (SIGKILL)"


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


def memory_cgroup_files(v2_name: str, v1_name: str) -> list[Path]:
    """The file ``v2_name`` (cgroup v2) or ``v1_name`` (v1's memory controller) of this
    process's memory cgroup, wherever it may be mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        _, controllers, relative = line.split(":", 2)
        relative = relative.lstrip("/")
        if controllers == "":
            files += [
                Path("/sys/fs/cgroup", relative, v2_name),
                Path("/sys/fs/cgroup/unified", relative, v2_name),
            ]
        elif "memory" in controllers.split(","):
            files.append(Path("/sys/fs/cgroup/memory", relative, v1_name))
    return files


def _oom_files() -> list[Path]:
    """Where the kernel counts OOM kills of this process's memory cgroup (v2 or v1)."""
    return memory_cgroup_files("memory.events", "memory.oom_control")


def oom_kills() -> int:
    """How many processes the OOM killer ended in this process's memory cgroup (0 when
    unknown); a child killed by SIGKILL while this count grew ran out of memory."""
    total = 0
    for path in _oom_files():
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                total += int(value)
    return total


def disk_full(path: str | os.PathLike[str], margin: int = 1 << 20) -> bool:
    """Whether the file system holding ``path`` has less than ``margin`` bytes free."""
    try:
        return shutil.disk_usage(path).free < margin
    except OSError:
        return False
