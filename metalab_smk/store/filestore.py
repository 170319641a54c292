"""``FileStore``: upstream's store interface over experiment directories (read side).

``FileStore(path)`` accepts an experiment directory, or a collection root (with
``experiment_id=`` to pick one experiment, else all of them). Records are written by the
jobs, never through this class; it reads records, logs, artifact descriptors and derived
metrics, and writes derived metrics.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from metalab_smk.core.lazy import lazy_getattr
from metalab_smk.errors import MetalabError
from metalab_smk.store.jsonio import atomic_write_json
from metalab_smk.store.layout import ExperimentDir, safe_experiment_id
from metalab_smk.store.records import ArtifactDescriptor, RunRecord
from metalab_smk.store.safepath import (
    check_name,
    check_run_id,
    inside,
    is_run_id,
    read_json_inside,
)
from metalab_smk.store.validate import read_valid_record

__all__ = ["FileStore", "export_store"]

# upstream's `from metalab.store.file import FileStoreConfig` (config imports this module)
__getattr__ = lazy_getattr(__name__, {"FileStoreConfig": "metalab_smk.store.config"}, globals())


class FileStore:
    """Read access to the experiment directories under ``root``."""

    def __init__(
        self,
        root: str | os.PathLike[str] | Any,  # or a FileStoreConfig
        experiment_id: str | None = None,
    ) -> None:
        experiment_id = experiment_id or getattr(root, "experiment_id", None)
        base = Path(root if isinstance(root, (str, os.PathLike)) else root.root).absolute()
        config_class = sys.modules[__name__].FileStoreConfig  # lazy: config imports this module
        self.config = (
            root
            if isinstance(root, config_class) and root.experiment_id == experiment_id
            else config_class(base, experiment_id)
        )
        if experiment_id is not None and not ExperimentDir.at(base).exists():
            base = base / safe_experiment_id(experiment_id)
        self._root = base

    @property
    def is_scoped(self) -> bool:
        """True when this store is one experiment of a collection root (upstream's)."""
        return self.config.is_scoped

    def scoped(self, experiment_id: str) -> FileStore:
        """The store of one experiment under this collection root."""
        return self.config.scoped(experiment_id).connect()

    @property
    def root(self) -> Path:
        return self._root

    def get_working_directory(self) -> Path:
        return self._root

    def experiment_dirs(self) -> list[ExperimentDir]:
        """The experiment directories this store covers."""
        here = ExperimentDir.at(self._root)
        if here.exists():
            return [here]
        if not self._root.is_dir():
            return []
        children = (ExperimentDir(child) for child in sorted(self._root.iterdir()))
        return [layout for layout in children if layout.compiled.is_file()]

    def _layout_of(self, run_id: str) -> ExperimentDir:
        check_run_id(run_id)
        for layout in self.experiment_dirs():
            if layout.record(run_id).is_file() or layout.failed_record(run_id).is_file():
                return layout
        raise KeyError(f"no run {run_id!r} under {self._root}")

    def run_exists(self, run_id: str) -> bool:
        try:
            self._layout_of(run_id)
        except KeyError:
            return False
        return True

    def get_run_record(self, run_id: str) -> RunRecord | None:
        try:
            layout = self._layout_of(run_id)
        except KeyError:
            return None
        path = layout.record(run_id)
        path = path if path.is_file() else layout.failed_record(run_id)
        return RunRecord.from_dict(read_json_inside(layout.root, path))

    def list_run_records(self, experiment_id: str | None = None) -> list[RunRecord]:
        """Records of the current run table (success first, else failed), in run order;
        a bad record is named on stderr and skipped."""
        found = []
        for layout in self.experiment_dirs():
            for run_id in filter(is_run_id, layout.read_run_ids()):
                for path in (layout.record(run_id), layout.failed_record(run_id)):
                    data = read_valid_record(layout, path, run_id, move_bad=False)
                    if data is not None:
                        record = RunRecord.from_dict(data)
                        if experiment_id in (None, record.experiment_id):
                            found.append(record)
                        break
        return found

    def list_artifacts(self, run_id: str) -> list[ArtifactDescriptor]:
        record = self.get_run_record(run_id)
        return [ArtifactDescriptor.from_dict(a) for a in record.artifacts] if record else []

    def get_log(self, run_id: str, name: str = "run") -> str | None:
        """The text of a run's log ``name`` (``run``; a killed run's partial log too);
        refused when a symbolic link leads it out of the store."""
        check_name(name, "log name")
        try:
            layout = self._layout_of(run_id)
        except KeyError:
            layout = next(iter(self.experiment_dirs()), ExperimentDir.at(self._root))
        candidates = [layout.log(run_id, name)]
        partial = layout.current_partial_log(run_id) if name == "run" else None
        if partial is not None:
            candidates.append(partial)
        for path in candidates:
            if path.is_file():
                return inside(layout.root, path).read_text(errors="replace")
        return None

    def get_derived(self, run_id: str) -> dict[str, Any] | None:
        try:
            layout = self._layout_of(run_id)
        except KeyError:
            return None
        path = layout.derived(run_id)
        return read_json_inside(layout.root, path) if path.is_file() else None

    def derived_exists(self, run_id: str) -> bool:
        return self.get_derived(run_id) is not None

    def put_derived(self, run_id: str, values: dict[str, Any]) -> None:
        atomic_write_json(self._layout_of(run_id).derived(run_id), values)

    def __repr__(self) -> str:
        return f"FileStore(root={str(self._root)!r})"


def export_store(*args: Any, **kwargs: Any) -> Any:
    """Upstream's store-to-store export (not provided: see docs/differences.md)."""
    raise MetalabError(
        "export_store is not provided by metalab-smk: copy the experiment directory "
        "(rsync -a) or use `metalab results DIR --parquet FILE`."
    )
