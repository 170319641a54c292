"""``python -m metalab_smk.sweep.snakemake_main ARGS``: Snakemake's command line, which
ends as soon as Snakemake is done.

Snakemake (9.x) re-arms a non-daemon one-second ``threading.Timer`` while it waits for
jobs (its job-rate limiter, ``--max-jobs-per-timespan``); the interpreter joins such
timers at exit, so a ``python -m snakemake`` lingers up to a second after its last job.
Once Snakemake's ``main`` has returned, the timers have nothing left to wake: they are
cancelled, and the exit code and everything else stay Snakemake's.

A local sweep (``METALAB_SNAKEMAKE_LOCAL=1``, set by the runner) starts Snakemake without
the installed executor plugins, which only cluster sweeps use. The module name contains
"snakemake", as the process checks (``sweep/locks.py``) expect."""

from __future__ import annotations

import os
import pkgutil
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

SNAKEMAKE_MODULE = "metalab_smk.sweep.snakemake_main"  # for `python -m`
LOCAL_ONLY = "METALAB_SNAKEMAKE_LOCAL"  # "1": a local sweep, no cluster executor needed
_EXECUTOR_PLUGIN = "snakemake_executor_plugin_"


def cancel_timers() -> int:
    """Cancel every pending ``threading.Timer`` of this process; how many there were."""
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    for timer in timers:
        timer.cancel()
    return len(timers)


def hide_executor_plugins() -> None:
    """Keep Snakemake's plugin discovery from importing the installed executor plugins
    (its own local executor stays): a local sweep needs none, and the SLURM plugin's
    import costs a third of a second (it imports pandas) and runs ``scontrol show
    config``, which waits 10 s where a configured controller cannot be reached."""
    every_module = pkgutil.iter_modules

    def iter_modules(path: Iterable[str] | None = None, prefix: str = "") -> Iterator[Any]:
        for module in every_module(path, prefix):
            if path is None and module.name.startswith(_EXECUTOR_PLUGIN):
                continue
            yield module

    pkgutil.iter_modules = iter_modules  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> None:
    """Run Snakemake's command line with ``argv`` (default: this process's arguments);
    with ``METALAB_SNAKEMAKE_LOCAL=1`` (a local sweep) without cluster executor plugins."""
    if os.environ.get(LOCAL_ONLY) == "1":
        hide_executor_plugins()
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main(list(sys.argv[1:] if argv is None else argv))
    finally:
        cancel_timers()


if __name__ == "__main__":
    main()
