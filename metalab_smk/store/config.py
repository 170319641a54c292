"""A file store: a collection root holding one directory per experiment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir, safe_experiment_id
from metalab_smk.store.uri import file_path

DEFAULT_STORE = "./runs"  # the store every command and metalab.run use by default


@dataclass(frozen=True)
class FileStoreConfig:
    """A collection root holding one directory per experiment."""

    root: Path

    def __init__(self, root: str | os.PathLike[str] | FileStoreConfig) -> None:
        object.__setattr__(self, "root", file_path(root).absolute())

    def experiment_dir(self, experiment_id: str) -> ExperimentDir:
        return ExperimentDir(self.root / safe_experiment_id(experiment_id))

    def list_experiments(self) -> list[str]:
        """Experiment IDs of the compiled experiments under this root, sorted."""
        if not self.root.is_dir():
            return []
        found = []
        for child in sorted(self.root.iterdir()):
            compiled = ExperimentDir(child).compiled
            if compiled.is_file():
                found.append(read_json(compiled)["experiment_id"])
        return found
