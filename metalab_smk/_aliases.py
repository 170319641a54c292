"""Upstream metalab's module paths (``metalab.types``, ``metalab.result``, ...) as aliases.

``import metalab`` *is* ``metalab_smk``. A meta-path finder answers every ``metalab.<x>``
import with the module object that already implements it (``metalab.types`` is
``metalab_smk.store.records``; unmapped names map to ``metalab_smk.<x>``), so an alias is
never a second copy. The package's module class refuses to let the import system replace
a public function (``metalab.seeds``, ``metalab.operation``) with a submodule of the same
name.
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib.machinery import ModuleSpec
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

__all__ = ["UPSTREAM_MODULES", "install"]

#: Upstream module path -> the module implementing it here.
UPSTREAM_MODULES = {
    "metalab.types": "metalab_smk.store.records",
    "metalab.result": "metalab_smk.results.results",
    "metalab.derived": "metalab_smk.results.derived",
    "metalab.events": "metalab_smk.sweep.events",
    "metalab.progress": "metalab_smk.sweep.progress",
    "metalab.runner": "metalab_smk.sweep.runner",
    "metalab.executor": "metalab_smk.sweep.executors",
    "metalab.seeds": "metalab_smk.core.seeds",
    "metalab.operation": "metalab_smk.core.operation",
    "metalab.experiment": "metalab_smk.core.experiment",
    "metalab.context": "metalab_smk.core.context",
    "metalab.params": "metalab_smk.core.params",
    "metalab.capture": "metalab_smk.job.capture",
    "metalab.runtime": "metalab_smk.job.capture",
    "metalab.store.file": "metalab_smk.store.filestore",
    "metalab.manifest": "metalab_smk.compile.manifest",
    "metalab.params.random": "metalab_smk.core.params.random_source",
    "metalab.store.records": "metalab_smk.store.records",
    # upstream submodules whose contents live in one module here
    "metalab.seeds.bundle": "metalab_smk.core.seeds",
    "metalab.seeds.plan": "metalab_smk.core.seeds",
    "metalab.context.spec": "metalab_smk.core.context",
    "metalab.capture.capture": "metalab_smk.job.capture",
    "metalab.progress.base": "metalab_smk.sweep.progress",
    "metalab.progress.display": "metalab_smk.results.display",
    "metalab.executor.thread": "metalab_smk.sweep.executors",
    "metalab.executor.process": "metalab_smk.sweep.executors",
    "metalab.executor.slurm": "metalab_smk.sweep.executors",
    "metalab.executor.handle": "metalab_smk.sweep.handle",
}

_PREFIX = "metalab."


def target_of(fullname: str) -> str:
    """The real module behind ``metalab.<x>``: the mapping of its longest mapped prefix
    (``metalab.params.grid`` -> ``metalab_smk.core.params.grid``), else ``metalab_smk.<x>``."""
    head, tail = fullname, ""
    while head != "metalab":
        if head in UPSTREAM_MODULES:
            return UPSTREAM_MODULES[head] + tail
        head, _, last = head.rpartition(".")
        tail = f".{last}{tail}"
    return "metalab_smk" + tail


class _AliasLoader:
    """Hands the import system an already-imported module: nothing is executed twice.
    (A loader by its two methods: importlib.abc costs a job's worker 10 ms to import.)"""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _AliasFinder:
    """Meta-path finder for ``metalab.<x>``: the same module object as its target."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        target = target_of(fullname)
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as error:
            if error.name and target.startswith(error.name):
                return None  # no such module: the ordinary "No module named ..." error
            raise
        if not hasattr(module, "__path__"):  # a plain module standing for an upstream package
            for child, child_target in UPSTREAM_MODULES.items():
                if child.rpartition(".")[0] == fullname and child not in sys.modules:
                    sys.modules[child] = importlib.import_module(child_target)
        return ModuleSpec(fullname, cast("Loader", _AliasLoader(module)))


class _Package(types.ModuleType):
    """The package's module type: a submodule import never replaces a public function."""

    def __setattr__(self, name: str, value: Any) -> None:
        current = self.__dict__.get(name)
        if (
            isinstance(value, types.ModuleType)
            and current is not None
            and not isinstance(current, types.ModuleType)
        ):
            return  # e.g. `from metalab.seeds import SeedBundle` binding metalab.seeds
        super().__setattr__(name, value)


def install(package: types.ModuleType) -> None:
    """Install the finder once and protect ``package``'s public names."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
    package.__class__ = _Package
