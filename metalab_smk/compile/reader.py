"""Read a compiled experiment back: the snapshot module, the Experiment, run indices."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from metalab_smk.compile.loader import (
    import_module_in_definition_mode,
    load_experiment_file,
    put_first,
)
from metalab_smk.core.experiment import Experiment
from metalab_smk.errors import ExperimentError
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.safepath import read_json_inside

__all__ = ["PARAMS_STUB", "CompiledExperiment", "RUN_TABLE_LINE", "read_compiled"]

RUN_TABLE_LINE = 17  # 16 hex digits and a newline
PARAMS_STUB = ".metalab/params.json"  # compiled.json's "params" points there: {"file": ...}


def read_compiled(layout: ExperimentDir) -> dict[str, Any]:
    """The full compiled description (``{}`` when there is none), with the param manifest
    that ``compiled.json`` keeps in ``.metalab/params.json`` joined back in."""
    if not layout.compiled.is_file():
        return {}
    try:
        description = read_json_inside(layout.root, layout.compiled)
    except ValueError as exc:  # garbage: as if never compiled (compiling rewrites it)
        print(f"metalab: warning: {layout.compiled} is damaged ({exc}).", file=sys.stderr)
        return {}
    if not isinstance(description, dict):
        return {}
    if description.get("params") == {"file": PARAMS_STUB}:
        try:
            description["params"] = read_json_inside(layout.root, layout.params_manifest)
        except (OSError, ValueError):
            description["params"] = None
    return description


@dataclass
class CompiledExperiment:
    """The compiled description of an experiment directory, and lookups on its run table."""

    layout: ExperimentDir
    description: dict[str, Any]

    @classmethod
    def read(cls, layout: ExperimentDir) -> CompiledExperiment:
        if not layout.compiled.is_file():
            raise ExperimentError(
                f"{layout.root} is not a compiled experiment directory (no "
                ".metalab/compiled.json); run `metalab compile exp.py` first."
            )
        return cls(layout, read_json(layout.compiled))

    @property
    def experiment_id(self) -> str:
        return self.description["experiment_id"]

    @property
    def n_runs(self) -> int:
        return int(self.description["n_runs"])

    def load_experiment(self) -> Experiment:
        """Import the snapshot (in definition mode, from the compile-time working
        directory, so relative paths mean what they meant) under the original file's
        path, so ``__file__`` and ``sys.path[0]`` are those of running the file, and
        return the Experiment."""
        source = self.description["source"]
        cwd = self.description.get("cwd")
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)
        sys_path = source.get("sys_path", [])
        for entry in reversed(sys_path):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        if sys_path:
            put_first(sys_path[0])  # the compiling process's sys.path[0]
        if "argv" in self.description:  # the file may read sys.argv at import
            sys.argv = list(self.description["argv"])
        if "pickle" in source:
            return self._unpickle(self.layout.root / source["pickle"])
        if "module" in source:
            loaded = import_module_in_definition_mode(source["module"])
        else:
            snapshot = self.layout.root / source["snapshot"]
            name = "metalab_snapshot_" + snapshot.stem.replace("-", "_")
            loaded = load_experiment_file(
                snapshot, name, shown_as=source["source_file"], package=source.get("package")
            )
        return loaded.select(self.experiment_id, source["source_file"])

    def _unpickle(self, path) -> Experiment:
        import pickle

        try:
            with open(path, "rb") as handle:
                experiment = pickle.load(handle)
        except Exception as exc:
            raise ExperimentError(
                f"cannot load the experiment shipped by value ({path}): "
                f"{type(exc).__name__}: {exc}; run `metalab compile` again."
            ) from exc
        if not isinstance(experiment, Experiment) or experiment.experiment_id != self.experiment_id:
            raise ExperimentError(f"{path} does not hold experiment {self.experiment_id!r}.")
        return experiment

    def run_ids_at(self, indices: list[int]) -> list[str]:
        """The run table's IDs at ``indices`` (one seek each: a task of a large sweep
        reads only its own lines)."""
        ids = []
        with open(self.layout.run_table, "rb") as table:
            for index in indices:
                table.seek(index * RUN_TABLE_LINE)
                ids.append(table.read(RUN_TABLE_LINE - 1).decode("ascii", "replace"))
        return ids

    def index_of(self, run_id: str) -> int:
        """Global run index of ``run_id`` in the run table."""
        data = self.layout.run_table.read_bytes()
        position = data.find(f"{run_id}\n".encode())
        while position >= 0 and position % RUN_TABLE_LINE:
            position = data.find(f"{run_id}\n".encode(), position + 1)
        if position < 0:
            raise ExperimentError(
                f"run {run_id} is not in the run table of {self.experiment_id!r}; the "
                "experiment changed since this workflow was started: run `metalab compile` "
                "again (finished runs are kept)."
            )
        return position // RUN_TABLE_LINE
