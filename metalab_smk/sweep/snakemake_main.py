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
sweeps use, nor its database persistence backend: Snakemake imports that backend's
SQLModel and SQLAlchemy at start (0.17 s of its 0.55 s) though a sweep keeps its metadata
in files, so a local sweep's Snakemake declares its metadata record with stand-ins for
them (``file_persistence_only``; Snakemake 9, undone when anything does not fit). The
module name contains "snakemake", as the process checks (``sweep/locks.py``) expect."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pkgutil
import re
import sys
import threading
import types
import warnings
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


class _NoDbPersistence:
    """Stands for Snakemake's database persistence backend in a local sweep's Snakemake."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "metalab's local sweeps keep Snakemake's metadata in files; its database "
            "persistence (--persistence-backend db) is not available in them"
        )


def _sql_stand_ins() -> dict[str, types.ModuleType]:
    """``sqlmodel`` and ``sqlalchemy`` as far as ``snakemake.persistence`` uses them to
    declare its metadata record: a pydantic model (what the file backend reads and
    writes), its SQL column types ignored."""
    import pydantic

    class SQLModel(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(from_attributes=True)  # as SQLModel's

        def __init_subclass__(cls, **kwargs: Any) -> None:  # table=...: SQL only
            super().__init_subclass__()

    def field(*args: Any, sa_column: Any = None, **kwargs: Any) -> Any:
        return pydantic.Field(*args, **kwargs)

    sqlmodel = types.ModuleType("sqlmodel")
    sqlmodel.SQLModel, sqlmodel.Field = SQLModel, field  # type: ignore[attr-defined]
    sqlalchemy = types.ModuleType("sqlalchemy")
    sqlalchemy.Column, sqlalchemy.JSON = (lambda *a, **k: None), None  # type: ignore[attr-defined]
    database = types.ModuleType("snakemake.persistence.db")
    database.DbPersistence = _NoDbPersistence  # type: ignore[attr-defined]
    return {"sqlmodel": sqlmodel, "sqlalchemy": sqlalchemy, "snakemake.persistence.db": database}


def _asks_for_persistence(argv: Sequence[str]) -> bool:
    """Whether a profile or the command line may choose Snakemake's persistence backend
    (then Snakemake is imported as usual): a profile named on the command line or by
    ``SNAKEMAKE_PROFILE``, or the workflow's default profile mentioning persistence."""
    named = ("--persistence-backend", "--profile", "--workflow-profile")
    if os.environ.get("SNAKEMAKE_PROFILE") or any(arg.startswith(named) for arg in argv):
        return True
    for path in glob.glob(os.path.join("profiles", "default", "*.yaml")):
        try:
            with open(path, encoding="utf-8") as handle:
                if "persistence" in handle.read():
                    return True
        except OSError:
            return True
    return False


def file_persistence_only() -> bool:
    """Import Snakemake's persistence package without its database backend, which a
    local sweep never uses: Snakemake imports that backend's SQLModel and SQLAlchemy at
    start (0.17 s of its 0.55 s). Only for Snakemake 9, whose persistence package this
    was written against; anything unexpected (an error or a warning) undoes it, and
    Snakemake imports as usual. True when done."""
    taken = ("sqlmodel", "sqlalchemy", "snakemake.persistence", "snakemake.persistence.db")
    if not _SQL_FREE_VERSIONS.match(_snakemake_version()) or any(
        name in sys.modules for name in taken
    ):
        return False
    stand_ins = _sql_stand_ins()
    sys.modules.update(stand_ins)
    try:
        with warnings.catch_warnings():  # e.g. a keyword pydantic does not know: undo
            warnings.simplefilter("error")
            import snakemake.persistence

            record = snakemake.persistence.MetadataRecord
            record.model_validate(dict(record(rule="r").items()))
        snakemake.persistence.db = stand_ins["snakemake.persistence.db"]  # type: ignore[attr-defined]
        return True
    except Exception:
        for name in [n for n in sys.modules if n.startswith("snakemake.persistence")]:
            del sys.modules[name]
        with contextlib.suppress(AttributeError):
            delattr(sys.modules["snakemake"], "persistence")
        return False
    finally:
        for name in ("sqlmodel", "sqlalchemy"):  # later imports get the real ones
            if sys.modules.get(name) is stand_ins.get(name):
                del sys.modules[name]


_SQL_FREE_VERSIONS = re.compile(r"9\.\d+\.")  # snakemake.persistence as of 9.x


def _snakemake_version() -> str:
    import snakemake  # its package alone: no persistence yet

    return str(getattr(snakemake, "__version__", ""))


def main(argv: Sequence[str] | None = None) -> None:
    """Run Snakemake's command line with ``argv`` (default: this process's arguments);
    with ``METALAB_SNAKEMAKE_LOCAL=1`` (a local sweep) without cluster executor plugins,
    the HTML report plugin and the database persistence backend."""
    args = list(sys.argv[1:] if argv is None else argv)
    local = os.environ.get(LOCAL_ONLY) == "1"
    list_modules_once(local=local)
    if local:
        skip_html_reporter()
        if not _asks_for_persistence(args):
            file_persistence_only()
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main(args)
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
