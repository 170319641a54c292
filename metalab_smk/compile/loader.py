"""Import an experiment file without running a sweep, and find its Experiments.

While a file is loaded here ("definition mode"), ``metalab.run(exp)`` does not start
anything: it records ``exp`` and stops the import, so a script that calls ``metalab.run``
at top level without a ``__main__`` guard can still be compiled and run by jobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from metalab_smk.core.experiment import Experiment
from metalab_smk.errors import ExperimentError

__all__ = ["LoadedFile", "in_definition_mode", "load_experiment_file", "stop_definition"]

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


def load_experiment_file(
    path: str | Path, module_name: str | None = None, extra_sys_path: list[str] | None = None
) -> LoadedFile:
    """Import ``path`` as a module in definition mode and collect its Experiments."""
    path = Path(path).absolute()
    if not path.is_file():
        raise ExperimentError(f"experiment file {path} does not exist.")
    for entry in [str(path.parent), *(extra_sys_path or [])]:
        if entry not in sys.path:
            sys.path.insert(0, entry)
    name = module_name or _module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExperimentError(f"{path} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    start = len(_recorded)

    def execute() -> ModuleType:
        with contextlib.suppress(_StopDefinition):
            spec.loader.exec_module(module)
        return module

    _exec_in_definition_mode(execute)
    return _collect(module, start)


def import_module_in_definition_mode(module_name: str) -> LoadedFile:
    """Import a package module by name in definition mode and collect its Experiments."""
    start = len(_recorded)

    def execute() -> ModuleType:
        try:
            return importlib.import_module(module_name)
        except _StopDefinition:
            return sys.modules[module_name]

    return _collect(_exec_in_definition_mode(execute), start)
