"""Import an experiment file without running a sweep, and find its Experiments.

While a file is loaded here ("definition mode"), ``metalab.run(exp)`` does not start
anything: it records ``exp`` and stops the import, so a script that calls ``metalab.run``
at top level without a ``__main__`` guard can still be compiled and run by jobs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import linecache
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from metalab_smk.core.experiment import Experiment
from metalab_smk.errors import ExperimentError, ExperimentFileError, MetalabError
from metalab_smk.store.locate import shown

__all__ = [
    "LoadedFile",
    "in_definition_mode",
    "load_experiment_file",
    "put_first",
    "stop_definition",
]

_definition_depth = 0
_recorded: list[Experiment] = []


class _StopDefinition(BaseException):
    """Raised by ``metalab.run`` in definition mode to end the import early."""


def in_definition_mode() -> bool:
    return _definition_depth > 0


def stop_definition(experiment: Experiment) -> None:
    """Called by ``metalab.run`` in definition mode: remember ``experiment`` and stop."""
    _recorded.append(experiment)
    raise _StopDefinition


@dataclass
class LoadedFile:
    """A loaded experiment file and the Experiments it defines, by experiment ID."""

    module: ModuleType
    experiments: dict[str, Experiment]

    def select(self, experiment_id: str | None, path: str | Path) -> Experiment:
        if experiment_id is None:
            if len(self.experiments) == 1:
                return next(iter(self.experiments.values()))
            if not self.experiments:
                raise ExperimentError(
                    f"{path} defines no metalab.Experiment at module level; define one there "
                    "(for example `experiment = metalab.Experiment(...)`)."
                )
            raise ExperimentError(
                f"{path} defines several experiments ({', '.join(sorted(self.experiments))});"
                " choose one with --experiment NAME (or name:version)."
            )
        for candidate in (
            experiment_id,
            *[k for k in self.experiments if k.split(":")[0] == experiment_id],
        ):
            if candidate in self.experiments:
                return self.experiments[candidate]
        raise ExperimentError(
            f"{path} has no experiment {experiment_id!r}; it defines: "
            f"{', '.join(sorted(self.experiments)) or 'none'}."
        )


def _module_name_for(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return f"metalab_experiment_{path.stem.replace('-', '_')}_{digest}"


def _collect(module: ModuleType, start: int) -> LoadedFile:
    """Experiments at module level plus those passed to ``metalab.run`` since ``start``."""
    found = [v for v in vars(module).values() if isinstance(v, Experiment)]
    found.extend(_recorded[start:])
    del _recorded[start:]
    experiments: dict[str, Experiment] = {}
    for experiment in found:
        experiments.setdefault(experiment.experiment_id, experiment)
    return LoadedFile(module, experiments)


def _exec_in_definition_mode(loader_fn) -> ModuleType:
    global _definition_depth
    _definition_depth += 1
    try:
        return loader_fn()
    finally:
        _definition_depth -= 1


def describe_import_error(exc: BaseException, path: Path) -> str:
    """One line naming the user's file, line and message of an error raised while
    importing the experiment file ``path`` (no metalab or importlib frames)."""
    if isinstance(exc, SyntaxError) and not isinstance(exc, ImportError):
        where = f"{shown(exc.filename or path)}, line {exc.lineno}"
        text = f": `{exc.text.strip()}`" if exc.text and exc.text.strip() else ""
        return f"{where}: {type(exc).__name__}: {exc.msg}{text}"
    folder = str(path.parent) + os.sep
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(folder)]
    message = f"{type(exc).__name__}: {exc}"
    if not frames:
        return f"{shown(path)}: {message}"
    deepest = frames[-1]
    where = f"{shown(deepest.filename)}, line {deepest.lineno}"
    if deepest.filename != str(path):
        top = next((f for f in frames if f.filename == str(path)), None)
        if top is not None:
            where += f" (imported from {shown(path)}, line {top.lineno})"
    return f"{where}: {message}"


def load_experiment_file(
    path: str | Path,
    module_name: str | None = None,
    shown_as: str | None = None,
    package: str | None = None,
) -> LoadedFile:
    """Import ``path`` as a module in definition mode and collect its Experiments.

    ``shown_as`` imports the file under another path (a snapshot under the user's
    original file): the code is ``path``'s, but ``__file__``, ``sys.path[0]``, tracebacks
    and error messages are those of running ``shown_as`` itself. ``package`` is the
    ``__package__`` the file had when it was run (``python -m pkg.exp``), so its relative
    imports resolve as they did then.
    """
    path = Path(path).absolute()
    if not path.is_file():
        raise ExperimentError(f"experiment file {shown(path)} does not exist.")
    as_file = shown_as or str(path)
    if package is None:  # `python FILE` puts the file's folder first (`-m`: the cwd)
        put_first(os.path.dirname(os.path.realpath(as_file)))
    name = module_name or _module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, as_file)
    if spec is None or spec.loader is None:
        raise ExperimentError(f"{shown(path)} cannot be imported as a Python module.")
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    if package:
        module.__package__ = package
    sys.modules[name] = module
    start = len(_recorded)

    def execute() -> ModuleType:
        try:
            if shown_as is None:
                loader.exec_module(module)
            else:
                _exec_as(module, path, shown_as)
        except _StopDefinition:
            pass
        except MetalabError:
            raise
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ExperimentFileError(
                "the experiment file failed to import: " + describe_import_error(exc, Path(as_file))
            ) from exc
        return module

    _exec_in_definition_mode(execute)
    return _collect(module, start)


def put_first(entry: str) -> None:
    """Make ``entry`` ``sys.path[0]``."""
    if not sys.path or sys.path[0] != entry:
        sys.path.insert(0, entry)


def _exec_as(module: ModuleType, path: Path, shown_as: str) -> None:
    """Execute the source of ``path`` in ``module`` as if it were the file ``shown_as``.

    The source is registered in ``linecache`` under ``shown_as`` (without an mtime, so it
    is never re-read from disk): tracebacks quote the lines that ran, and
    ``inspect.getsource`` (the code fingerprint) sees the snapshot even when the
    original file has since changed or gone."""
    source = path.read_text(encoding="utf-8")
    linecache.cache[shown_as] = (len(source), None, source.splitlines(True), shown_as)
    exec(compile(source, shown_as, "exec"), module.__dict__)


def import_module_in_definition_mode(module_name: str) -> LoadedFile:
    """Import a package module by name in definition mode and collect its Experiments."""
    start = len(_recorded)

    def execute() -> ModuleType:
        try:
            return importlib.import_module(module_name)
        except _StopDefinition:
            return sys.modules[module_name]

    return _collect(_exec_in_definition_mode(execute), start)
