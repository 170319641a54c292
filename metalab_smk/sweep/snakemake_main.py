"""``python -m metalab_smk.sweep.snakemake_main ARGS``: Snakemake's command line, which
ends as soon as Snakemake is done.

Snakemake (9.x) re-arms a non-daemon one-second ``threading.Timer`` while it waits for
jobs (its job-rate limiter, ``--max-jobs-per-timespan``); the interpreter joins such
timers at exit, so a ``python -m snakemake`` lingers up to a second after its last job.
Once Snakemake's ``main`` has returned, the timers have nothing left to wake: they are
cancelled, and the exit code and everything else stay Snakemake's. The module name
contains "snakemake", as the process checks (``sweep/locks.py``) expect."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

SNAKEMAKE_MODULE = "metalab_smk.sweep.snakemake_main"  # for `python -m`


def cancel_timers() -> int:
    """Cancel every pending ``threading.Timer`` of this process; how many there were."""
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    for timer in timers:
        timer.cancel()
    return len(timers)


def main(argv: Sequence[str] | None = None) -> None:
    """Run Snakemake's command line with ``argv`` (default: this process's arguments)."""
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main(list(sys.argv[1:] if argv is None else argv))
    finally:
        cancel_timers()


if __name__ == "__main__":
    main()
