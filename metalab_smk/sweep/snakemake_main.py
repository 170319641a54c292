"""``python -m metalab_smk.sweep.snakemake_main ARGS``: Snakemake's command line, which
ends as soon as Snakemake is done.

Snakemake (9.x) re-arms a non-daemon one-second ``threading.Timer`` while it waits for
jobs (its job-rate limiter, ``--max-jobs-per-timespan``); the interpreter joins such
timers at exit, so a ``python -m snakemake`` lingers up to a second after its last job.
Once Snakemake's ``main`` has returned, the timers have nothing left to wake: they are
cancelled, and the exit code and everything else stay Snakemake's. Run as a program, the
process then ends at once (logs flushed, ``os._exit``): tearing down the interpreter that
Snakemake's imports filled took 0.15 s, after its work and its logs were done.

Snakemake's plugin registries (executors, storage, reports, loggers, schedulers) each
list every installed top-level module (``pkgutil.iter_modules()``, 20-100 ms apiece); the
list is made once and shared. A local sweep (``METALAB_SNAKEMAKE_LOCAL=1``, set by the
runner) starts Snakemake without the installed executor plugins, which only cluster
sweeps use. The module name contains "snakemake", as the process checks
(``sweep/locks.py``) expect."""

from __future__ import annotations

import contextlib
import logging
import os
import pkgutil
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

SNAKEMAKE_MODULE = "metalab_smk.sweep.snakemake_main"  # for `python -m`
LOCAL_ONLY = "METALAB_SNAKEMAKE_LOCAL"  # "1": a local sweep, no cluster executor needed
_EXECUTOR_PLUGIN = "snakemake_executor_plugin_"
_EVERY_MODULE = pkgutil.iter_modules  # the original, whatever was patched since


def cancel_timers() -> int:
    """Cancel every pending ``threading.Timer`` of this process; how many there were."""
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    for timer in timers:
        timer.cancel()
    return len(timers)


def list_modules_once(local: bool) -> None:
    """Make ``pkgutil.iter_modules()`` (no path: every installed top-level module) list
    them once per process, which Snakemake's plugin registries ask for a dozen times;
    ``local``: without the executor plugins, so Snakemake does not import them (a local
    sweep needs none; the SLURM plugin's import costs a third of a second, as it imports
    pandas, and runs ``scontrol show config``, which waits 10 s where a configured
    controller cannot be reached)."""
    listed: list[Any] = []

    def iter_modules(path: Iterable[str] | None = None, prefix: str = "") -> Iterator[Any]:
        if path is not None or prefix:
            yield from _EVERY_MODULE(path, prefix)
            return
        if not listed:
            listed.extend(
                m for m in _EVERY_MODULE() if not (local and m.name.startswith(_EXECUTOR_PLUGIN))
            )
        yield from listed

    pkgutil.iter_modules = iter_modules  # type: ignore[assignment]


def skip_html_reporter() -> None:
    """Leave Snakemake's built-in HTML report plugin unregistered: a sweep never asks for
    the report, and importing its reporter (jinja2, docutils, yte) costs Snakemake's
    start a tenth of a second. Installed report plugins are still registered."""
    try:
        from snakemake_interface_common.plugin_registry import PluginRegistryBase
        from snakemake_interface_report_plugins.registry import ReportPluginRegistry
    except ImportError:  # another Snakemake: its own way
        return
    ReportPluginRegistry.collect_plugins = PluginRegistryBase.collect_plugins  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> None:
    """Run Snakemake's command line with ``argv`` (default: this process's arguments);
    with ``METALAB_SNAKEMAKE_LOCAL=1`` (a local sweep) without cluster executor plugins
    and without the HTML report plugin."""
    local = os.environ.get(LOCAL_ONLY) == "1"
    list_modules_once(local=local)
    if local:
        skip_html_reporter()
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main(list(sys.argv[1:] if argv is None else argv))
    finally:
        cancel_timers()


def exit_at_once(code: object) -> None:
    """End the process as ``sys.exit(code)`` would, without the interpreter's teardown:
    logging's handlers and the standard streams are flushed first."""
    logging.shutdown()
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or its reader is gone
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as done:
        exit_at_once(done.code)
    exit_at_once(0)
