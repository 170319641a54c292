"""On-disk layout of an experiment directory, atomic writes and strict JSON.

``{root}/{safe_experiment_id}/`` holds everything of one experiment (DESIGN section 5).
Every file is written to a temporary name in the same directory and renamed into place,
so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "ExperimentDir",
    "FileStoreConfig",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "from_strict_json",
    "read_json",
    "safe_experiment_id",
    "to_strict_json",
]

_SAFE = "-._"  # besides letters and digits; everything else is %-escaped


def safe_experiment_id(experiment_id: str) -> str:
    """Directory name for ``name:version``: both parts %-escaped, joined by ``+``."""
    name, _, version = experiment_id.rpartition(":")
    return f"{quote(name, safe=_SAFE)}+{quote(version, safe=_SAFE)}"


def experiment_id_from_dir(dirname: str) -> str:
    name, _, version = dirname.rpartition("+")
    return f"{unquote(name)}:{unquote(version)}"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (same directory).

    The temporary name carries the process and thread, so concurrent writers of the
    same file never share one; the last rename wins with a complete file."""
    target = os.fspath(path)
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(directory or ".", exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(float(value))}  # 'nan', 'inf', '-inf'
    if isinstance(value, dict):
        encoded = {str(k): _strict(v) for k, v in value.items()}
        if len(encoded) == 1 and set(encoded) & _MARKERS:  # escape: a list of key/value pairs
            return {"$dict": [[k, v] for k, v in encoded.items()]}
        return encoded
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _strict(value.tolist())
    if isinstance(value, (set, frozenset)):
        return _strict(sorted(value, key=repr))
    if isinstance(value, bytes):
        return {"__bytes__": value.hex()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _strict({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return value


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_MARKERS = {"$float", "$dict"}


def _unstrict(value: dict[str, Any]) -> Any:
    if len(value) == 1:
        if "$float" in value:
            return float(value["$float"])
        if "$dict" in value:  # a user dict whose only key looked like a marker
            return dict(value["$dict"])
    return value


def to_strict_json(obj: Any, indent: int | None = None) -> str:
    """JSON without bare NaN/Infinity tokens: non-finite floats become ``{"$float": "nan"}``."""
    try:  # the common case needs no conversion at all
        text = json.dumps(obj, indent=indent, allow_nan=False)
        if '"$' not in text:  # nothing that could be mistaken for a marker
            return text
    except (TypeError, ValueError):
        pass
    return json.dumps(_strict(obj), indent=indent, allow_nan=False, default=_refuse)


def from_strict_json(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_unstrict)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, to_strict_json(obj, indent=indent))


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, "rb") as handle:
        return from_strict_json(handle.read())


@dataclass(frozen=True)
class ExperimentDir:
    """Paths inside one experiment directory."""

    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> ExperimentDir:
        return cls(Path(path).absolute())

    @property
    def snakefile(self) -> Path:
        return self.root / "Snakefile"

    @property
    def meta_dir(self) -> Path:
        return self.root / ".metalab"

    @property
    def compiled(self) -> Path:
        return self.meta_dir / "compiled.json"

    @property
    def run_table(self) -> Path:
        """One run ID per line; line i is global run index i (fixed width, 17 bytes)."""
        return self.meta_dir / "run_ids.txt"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def failed_dir(self) -> Path:
        return self.root / "failed"

    @property
    def summary_dir(self) -> Path:
        return self.root / "summary"

    def record(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def failed_record(self, run_id: str) -> Path:
        return self.failed_dir / f"{run_id}.json"

    def artifacts(self, run_id: str) -> Path:
        return self.root / "artifacts" / run_id

    def log(self, run_id: str) -> Path:
        return self.logs_dir / f"{run_id}_run.log"

    def results(self, run_id: str) -> Path:
        return self.root / "results" / run_id

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def partial_log(self, run_id: str) -> Path:
        """The log of a run in progress (left behind when its process is killed)."""
        return self.logs_dir / f"{run_id}_run.log.partial"

    def derived(self, run_id: str) -> Path:
        return self.root / "derived" / f"{run_id}.json"

    def read_run_ids(self) -> list[str]:
        return self.run_table.read_text().split()

    def exists(self) -> bool:
        return self.compiled.is_file()


@dataclass(frozen=True)
class FileStoreConfig:
    """A collection root holding one directory per experiment."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root).absolute())

    def experiment_dir(self, experiment_id: str) -> ExperimentDir:
        return ExperimentDir(self.root / safe_experiment_id(experiment_id))

    def list_experiments(self) -> list[str]:
        """Experiment IDs of the compiled experiments under this root, sorted."""
        if not self.root.is_dir():
            return []
        found = []
        for child in sorted(self.root.iterdir()):
            if (child / ".metalab" / "compiled.json").is_file():
                found.append(read_json(child / ".metalab" / "compiled.json")["experiment_id"])
        return found
