"""The head process of a submitted sweep: ``python -m metalab_smk.sweep.head DIR``.

``metalab submit`` (sweep/detached.py) starts it in the background or as a SLURM job; it
drives Snakemake for the compiled experiment until the sweep ends (docs/architecture.md).
It reports what happened in ``.metalab/head-state.json``: ``running`` once Snakemake
started jobs (``metalab submit`` waits for that), then ``finished``, ``failed`` (with the
error) or ``stopped``. SIGTERM (``metalab stop``, ``scancel``, a time limit) stops the
sweep: Snakemake and its jobs end, the directory stays resumable.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from metalab_smk.core.values import utc_now
from metalab_smk.errors import MetalabError
from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.executors import executor_from_dict
from metalab_smk.sweep.outcome import jobs_started
from metalab_smk.sweep.runner import start


def _report(
    layout: ExperimentDir,
    state: str,
    error: str | None = None,
    code: int | None = None,
    started: bool = True,
) -> None:
    """Write the head's state; ``started`` says whether its Snakemake got to run jobs (a
    head that fails before that failed *at start*, which ``metalab submit`` reports)."""
    atomic_write_json(
        layout.head_state,
        {"state": state, "error": error, "exit_code": code, "started": started, "at": utc_now()},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metalab_smk.sweep.head")
    parser.add_argument("directory")
    args = parser.parse_args(argv)

    layout = ExperimentDir.at(args.directory)
    stop = threading.Event()  # metalab stop, scancel, a time limit: SIGTERM
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        executor = executor_from_dict(read_json(layout.executor_file))
        # Snakemake ends with this process: a head killed outright leaves no orphan that
        # the next head would collide with.
        handle = start(layout, executor, progress=True, verbose=True, tie_to_parent="head")
        reported = False
        while not handle.wait(0.5):
            if stop.is_set():
                handle.cancel()  # Snakemake and its jobs; returns when they ended
            elif not reported and jobs_started(layout):
                _report(layout, "running")  # `metalab submit` returns now
                reported = True
    except Exception as exc:
        message = str(exc) if isinstance(exc, MetalabError) else f"{type(exc).__name__}: {exc}"
        print(f"metalab: error: {message}", flush=True)
        _report(layout, "failed", message, 2, started=False)
        return 2
    if stop.is_set():
        _report(layout, "stopped", "stopped by a signal (metalab stop, scancel)", 130)
        return 130
    print(handle.status.as_text(), flush=True)
    if handle.error:
        print(f"metalab: error: {handle.error}", flush=True)
        status = handle.status  # runs that ended in this invocation mean jobs ran
        ran = reported or jobs_started(layout) or bool(status.completed or status.failed)
        _report(layout, "failed", handle.error, 1, started=ran)
        return 1
    _report(layout, "finished", None, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
