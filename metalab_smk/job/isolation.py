"""What keeps the runs of one job apart: each batch child leads its own process group,
adopts the processes its runs leave behind (a child subreaper) and ends them after each
run, dies with its worker, and restores the working directory and environment a run
changed. Linux facilities; elsewhere these are no-ops."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

__all__ = ["Surroundings", "become_batch_leader", "end_leftovers", "set_parent_death_signal"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
LEFTOVER_GRACE_SECONDS = 2.0


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def set_parent_death_signal(parent: int, signum: int) -> None:
    """Ask the kernel for ``signum`` when the parent dies (and send it now if it already
    did before the request took effect)."""
    if _prctl(_PR_SET_PDEATHSIG, int(signum)) and os.getppid() != parent:
        os.kill(os.getpid(), signum)


def become_batch_leader(worker: int) -> None:
    """In a batch child: lead a new process group (so the worker can end the run's whole
    tree), adopt orphaned descendants, and get SIGTERM when the worker dies."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    set_parent_death_signal(worker, signal.SIGTERM)


def _children() -> list[int]:
    """This process's children, the adopted ones included (``/proc/.../children``)."""
    pid = os.getpid()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        try:
            handle = os.open(f"/proc/{pid}/task/{task}/children", os.O_RDONLY)
        except OSError:
            continue
        try:
            found += [int(child) for child in os.read(handle, 1 << 16).split()]
        finally:
            os.close(handle)
    return found


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def end_leftovers(grace: float = LEFTOVER_GRACE_SECONDS) -> int:
    """End the processes a finished run left behind (background jobs, daemons, pools):
    SIGTERM, then SIGKILL after ``grace`` seconds; their descendants, adopted in turn,
    too. Returns how many there were."""
    children = _children()
    if not children:
        return 0
    ended: set[int] = set()
    deadline = time.monotonic() + grace
    while children:
        hard = time.monotonic() > deadline
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL if hard else signal.SIGTERM)
            ended.add(child)
        time.sleep(0.02)
        _reap()
        children = _children()
    return len(ended)


class Surroundings:
    """The working directory and environment before a run, restored after it (compared
    as the raw mapping CPython keeps: a few microseconds per run)."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = dict(_raw_environ())

    def restore(self) -> None:
        with contextlib.suppress(OSError):  # a run may delete the directory it left
            if os.getcwd() != self.cwd:
                os.chdir(self.cwd)
        if _raw_environ() == self.environ:
            return
        environ = os.environb if os.supports_bytes_environ else os.environ
        for key in [key for key in _raw_environ() if key not in self.environ]:
            del environ[key]  # through the mapping, so that unsetenv runs too
        for key, value in self.environ.items():
            if _raw_environ().get(key) != value:
                environ[key] = value


def _raw_environ() -> dict:
    """The environment as ``os.environ`` keeps it (bytes on POSIX), without decoding."""
    raw = getattr(os.environ, "_data", None)
    return raw if isinstance(raw, dict) else dict(os.environ)
