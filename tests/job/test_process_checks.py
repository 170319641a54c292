"""The per-run process checks a batch child makes: whether anything a run started is
left (one system call when nothing is), and the run's peak memory, read in the process
that ran it also after a fork."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from metalab_smk.job.peakmem import PeakMemory

# In a fresh process: ending leftovers in the test process would end its other children.
CHILDREN = textwrap.dedent(
    """
    import subprocess, sys
    from metalab_smk.job.isolation import _has_children, end_leftovers

    seen = [_has_children()]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    seen.append(_has_children())
    ended = end_leftovers(grace=0.5)
    seen.append(_has_children())
    print(seen, ended, child.poll() is not None)
    """
)


def test_has_children_follows_started_and_reaped_children() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILDREN], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[False,", "True,", "False]", "1", "True"]


def test_peak_memory_in_a_forked_child_is_the_childs() -> None:
    parent = PeakMemory()
    parent.start()  # opens this process's /proc files before the fork
    assert parent.mb() is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child grows by 200 MB after its reset
        os.close(read)
        peak = PeakMemory()
        peak.start()
        block = bytearray(200 * 10**6)
        block[::4096] = b"x" * len(block[::4096])
        os.write(write, str(peak.mb()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_mb = int(pipe.read())
    os.waitpid(pid, 0)
    assert child_mb >= 200
    again = PeakMemory()
    again.start()
    assert again.mb() is not None and again.mb() < child_mb  # the parent's own reset
