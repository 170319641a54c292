"""What keeps the runs of one job apart: each batch child leads its own process group,
adopts the processes its runs leave behind (a child subreaper) and ends them after each
run, dies with its worker, and restores the working directory and environment a run
changed. Linux facilities; elsewhere these are no-ops."""

from __future__ import annotations

import contextlib
import os
import signal
import time

__all__ = [
    "Surroundings",
    "become_batch_leader",
    "end_leftovers",
    "guard_group",
    "release_guard",
    "set_parent_death_signal",
]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
LEFTOVER_GRACE_SECONDS = 2.0


def _prctl(option: int, value: int) -> bool:
    import ctypes  # in the batch child, not in every job's start-up

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


GUARD_SECONDS = 0.5  # how often a guard checks that the worker lives


def guard_group(group: int, worker: int) -> int | None:
    """Fork a guard into the batch child's process group ``group``: when the worker dies
    (killed with the job, ``kill -9``), it warns the group (SIGTERM: the child puts the
    records it handed over in place), then kills it, the guard too, so no run or what it
    started outlives its job, even a run blocked in ``os.system`` or native code. The
    worker ends the guard with ``release_guard`` once the child has exited."""
    try:
        guard = os.fork()
    except OSError:
        return None
    if guard:
        with contextlib.suppress(OSError):
            os.setpgid(guard, group)
        return guard
    try:  # the guard: nothing but waiting; the worker's handlers are not its own
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            os.setpgid(0, group)
        while os.getppid() == worker:
            time.sleep(GUARD_SECONDS)
        os.killpg(group, signal.SIGTERM)
        time.sleep(LEFTOVER_GRACE_SECONDS)
        os.killpg(group, signal.SIGKILL)
    finally:
        os._exit(0)


def release_guard(guard: int | None) -> None:
    """End and reap a batch child's guard."""
    if guard is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(guard, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(guard, 0)


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


def _has_children() -> bool:
    """Whether this process has any child (running or not yet reaped): one system call,
    where listing them reads ``/proc`` (a batch child adopts orphaned descendants, so
    with none, nothing a run started is left)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def end_leftovers(grace: float = LEFTOVER_GRACE_SECONDS) -> int:
    """End the processes a finished run left behind (background jobs, daemons, pools):
    SIGTERM, then SIGKILL after ``grace`` seconds; their descendants, adopted in turn,
    too. Returns how many there were."""
    if not _has_children():
        return 0
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
