"""Store configurations: a file store is a collection root holding one directory per
experiment (upstream's ``StoreConfig`` / ``FileStoreConfig``; ``create_store`` is in locator)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Self

from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir, safe_experiment_id
from metalab_smk.store.registry import ConfigRegistry
from metalab_smk.store.uri import file_path

__all__ = ["DEFAULT_STORE", "ConfigRegistry", "FileStoreConfig", "StoreConfig"]

DEFAULT_STORE = "./runs"  # the store every command and metalab.run use by default


class StoreConfig:
    """Upstream's base of store configurations: data only, ``connect()`` gives a store,
    ``scoped(experiment_id)`` one experiment of it. Here the one backend is files."""

    scheme: ClassVar[str] = ""
    experiment_id: str | None

    def connect(self) -> Any:
        raise NotImplementedError

    def scoped(self, experiment_id: str) -> Self:
        """This config for one experiment (ValueError when scoped to another)."""
        if self.experiment_id == experiment_id:
            return self
        if self.experiment_id is not None:
            raise ValueError(
                f"config already scoped to {self.experiment_id}, cannot re-scope to {experiment_id}"
            )
        return replace(self, experiment_id=experiment_id)  # type: ignore[type-var]

    for_experiment = scoped

    @property
    def is_scoped(self) -> bool:
        return self.experiment_id is not None

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values plus ``_type`` (the scheme)."""
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]
        return {**data, "_type": self.scheme}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> StoreConfig:
        """The config ``to_dict()`` wrote (its ``_type`` names the scheme)."""
        if "_type" not in data:
            raise ValueError("Missing _type in store config dict: pass what to_dict() returned.")
        config_class = ConfigRegistry.get(data["_type"])
        if config_class is None:
            known = ", ".join(ConfigRegistry.schemes())
            raise ValueError(f"Unknown config type {data['_type']!r}; known: {known}.")
        return config_class(**{k: v for k, v in data.items() if k != "_type"})


@ConfigRegistry.register
@dataclass(frozen=True)
class FileStoreConfig(StoreConfig):
    """A collection root holding one directory per experiment (``experiment_id``: the
    one this config is scoped to)."""

    scheme: ClassVar[str] = "file"
    root: str  # absolute, as upstream's
    experiment_id: str | None = None

    def __init__(
        self, root: str | os.PathLike[str] | FileStoreConfig, experiment_id: str | None = None
    ) -> None:
        if experiment_id is None:
            experiment_id = getattr(root, "experiment_id", None)
        object.__setattr__(self, "root", str(file_path(root).absolute()))
        object.__setattr__(self, "experiment_id", experiment_id)

    @classmethod
    def from_locator(cls, info: Any, experiment_id: str | None = None) -> FileStoreConfig:
        """The config of a parsed ``file`` locator (``LocatorInfo``)."""
        return cls(info.path, experiment_id or info.params.get("experiment_id"))

    def connect(self) -> Any:
        """A ``FileStore`` on this root (on the scoped experiment's directory)."""
        from metalab_smk.store.filestore import FileStore

        return FileStore(self)

    def experiment_dir(self, experiment_id: str) -> ExperimentDir:
        return ExperimentDir(Path(self.root) / safe_experiment_id(experiment_id))

    def list_experiments(self) -> list[str]:
        """Experiment IDs of the compiled experiments under this root, sorted."""
        if self.is_scoped:
            raise ValueError(
                f"Cannot list experiments on a scoped config ({self.experiment_id}); "
                "use the unscoped root."
            )
        root = Path(self.root)
        if not root.is_dir():
            return []
        found = []
        for child in sorted(root.iterdir()):
            compiled = ExperimentDir(child).compiled
            if compiled.is_file():
                found.append(read_json(compiled)["experiment_id"])
        return found
