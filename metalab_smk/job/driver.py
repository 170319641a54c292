"""An array task ends when the Snakemake that submitted it is gone.

The ``metalab-slurm`` executor touches a heartbeat file per job array every 2 s while
its Snakemake lives (``metalab_smk/slurm/heartbeat.py``) and names it to the array's tasks in
``METALAB_HEARTBEAT``. A task whose heartbeat is older than ``METALAB_HEARTBEAT_STALE``
seconds (default 60; the clocks of login and compute nodes are assumed in step) starts no
run, and a running task cancels its runs, as a local job does when its Snakemake dies:
a Snakemake killed with SIGKILL leaves no task running on. Arrays of ``metalab.run`` and
``metalab submit`` have no heartbeat (their tasks end with their runs).
"""

from __future__ import annotations

import os
import signal
import threading
import time

__all__ = ["driver_gone", "watch_driver"]

HEARTBEAT_VARIABLE = "METALAB_HEARTBEAT"  # as in slurm/heartbeat.py (no import: job side)
STALE_VARIABLE = "METALAB_HEARTBEAT_STALE"
DEFAULT_STALE = 60.0


def stale_seconds() -> float:
    """After how many seconds without a beat the driver counts as gone."""
    try:
        return max(2.0, float(os.environ.get(STALE_VARIABLE, DEFAULT_STALE)))
    except ValueError:
        return DEFAULT_STALE


def driver_gone() -> bool:
    """Whether this task has a heartbeat and it stopped (or its file is gone)."""
    path = os.environ.get(HEARTBEAT_VARIABLE)
    if not path:
        return False
    try:
        return time.time() - os.stat(path).st_mtime > stale_seconds()
    except OSError:
        return True


def watch_driver() -> None:
    """Check the heartbeat in a daemon thread; when it stops, send this process SIGTERM
    (its runs record themselves as cancelled)."""
    if not os.environ.get(HEARTBEAT_VARIABLE):
        return
    every = min(5.0, stale_seconds() / 4)

    def watch() -> None:
        while not driver_gone():
            time.sleep(every)
        print("metalab worker: the Snakemake that submitted this task is gone; ending")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="metalab-driver-watch").start()
