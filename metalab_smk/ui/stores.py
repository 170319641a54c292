"""Several stores served by one dashboard: ``metalab ui STORE_A STORE_B`` or a directory
with stores somewhere below it (``metalab ui ~/projects``).

``discover_stores`` finds the store roots (directories holding experiment directories)
below a served directory: a bounded walk that skips hidden directories, follows no
symlink out of the served directory and visits each real directory once (no loops).
``StoreSet`` is a ``DataSource`` over one ``FileSource`` per store: an experiment's key
in URLs is ``STORE@name:version`` (``STORE`` a short name of its store, with no ``@``),
so the same experiment ID in two stores stays two experiments, and every request goes
to the one store its key names, whose own containment checks then apply.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metalab_smk.errors import MetalabError
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.ui.source import FileSource, NotFound

__all__ = ["StoreSet", "discover_stores", "is_store"]

DISCOVERY_DEPTH = 4  # experiment directories up to this many levels below a served root
DISCOVERY_DIRS = 20_000  # directories looked at per walk, at most
REDISCOVER_SECONDS = 15  # new stores below a served root appear within this time
SEP = "@"


def _children(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return []  # unreadable: nothing to serve there


def is_store(path: Path) -> bool:
    """An experiment directory, or a directory with one directly inside."""
    if ExperimentDir.at(path).exists():
        return True
    for entry in _children(path):
        try:
            if entry.is_dir() and ExperimentDir(Path(entry.path)).exists():
                return True
        except OSError:
            continue
    return False


def discover_stores(root: Path, depth: int = DISCOVERY_DEPTH) -> list[Path]:
    """The stores at or below ``root``: ``root`` itself when it is an experiment
    directory, else every directory that directly holds an experiment directory found
    within ``depth`` levels. Never leaves ``root`` (symlinks resolving outside it are
    skipped) and visits each real directory once."""
    root = root.absolute()
    if ExperimentDir.at(root).exists():
        return [root]
    inside = root.resolve()
    seen = {inside}
    stores: dict[Path, None] = {}
    level, visited = [root], 0
    for _ in range(depth):
        below: list[Path] = []
        for directory in level:
            for entry in _children(directory):
                visited += 1
                if visited > DISCOVERY_DIRS:
                    return list(stores)
                path = Path(entry.path)
                try:
                    if not entry.is_dir():
                        continue
                    real = path.resolve()
                except (OSError, RuntimeError):
                    continue  # a broken link or a loop
                if real in seen or not real.is_relative_to(inside):
                    continue
                seen.add(real)
                if ExperimentDir(path).exists():
                    stores[directory] = None  # its own experiments are not walked into
                else:
                    below.append(path)
        level = below
    return list(stores)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "store"


class StoreSet:
    """The experiments of several stores (see the module docstring)."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.roots: list[tuple[str, Path]] = []
        for given in paths:
            path = Path(given)
            if not path.is_dir():
                raise MetalabError(
                    f"{given} is not a directory; pass store roots, experiment directories "
                    "or directories that hold them"
                )
            self.roots.append((str(given), path.absolute()))
        self.label = ", ".join(label for label, _ in self.roots)
        self._lock = threading.Lock()
        self._stores: dict[str, tuple[str, FileSource]] = {}  # slug -> (label, source)
        self._known: set[Path] = set()
        self._found_at = -1.0
        self._discover()

    # -- the stores --------------------------------------------------------------------
    def _discover(self) -> None:
        """Add stores found below the served roots (known ones keep their names)."""
        with self._lock:
            found = dict(self._stores)  # swapped in whole: readers never see it change
            for given, root in self.roots:
                for store in discover_stores(root):
                    real = store.resolve()
                    single = ExperimentDir.at(store).exists()
                    if real in self._known or (single and real.parent in self._known):
                        continue  # the same store (or experiment) given twice: served once
                    self._known.add(real)
                    relative = store.relative_to(root).parts
                    name = _slug("-".join(relative) if relative else root.name)
                    slug, n = name, 1
                    while slug in found:
                        n += 1
                        slug = f"{name}-{n}"
                    label = str(Path(given, *relative))
                    found[slug] = (label, FileSource(store))
            self._stores, self._found_at = found, time.monotonic()

    def stores(self) -> dict[str, tuple[str, FileSource]]:
        """Store name -> (label, source), re-discovered in a background thread every
        ``REDISCOVER_SECONDS`` (a walk takes about 0.1 s per 1,000 experiments)."""
        stale = time.monotonic() - self._found_at > REDISCOVER_SECONDS
        if stale and not self._lock.locked():
            threading.Thread(target=self._discover, name="metalab-ui-discover", daemon=True).start()
        return self._stores

    def _split(self, key: str) -> tuple[FileSource, str]:
        slug, sep, experiment_id = key.partition(SEP)
        found = self._stores.get(slug) if sep else None
        if found is None:
            raise NotFound(f"no experiment {key!r} here (keys are STORE{SEP}name:version)")
        return found[1], experiment_id

    # -- DataSource --------------------------------------------------------------------
    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment of every store, with its store and its key."""
        out = []
        for slug, (label, source) in self.stores().items():
            try:
                listed = source.experiments()
            except (OSError, ValueError, MetalabError):
                continue  # a store that vanished or broke: its experiments are not listed
            for experiment in listed:
                key = slug + SEP + experiment["experiment_id"]
                out.append({**experiment, "key": key, "store": label})
        return out

    def warm(self) -> None:
        for _, source in self._stores.values():
            source.warm()

    def manifest(self, key: str) -> dict[str, Any]:
        source, experiment_id = self._split(key)
        label = self._stores[key.partition(SEP)[0]][0]
        return {**source.manifest(experiment_id), "store": label}

    def frame(self, key: str) -> pd.DataFrame:
        source, experiment_id = self._split(key)
        return source.frame(experiment_id)

    def steps(self, key: str) -> pd.DataFrame:
        source, experiment_id = self._split(key)
        return source.steps(experiment_id)

    def record(self, key: str, run_id: str) -> dict[str, Any]:
        source, experiment_id = self._split(key)
        return source.record(experiment_id, run_id)

    def run_steps(self, key: str, run_id: str) -> dict[str, list[list[float]]]:
        source, experiment_id = self._split(key)
        return source.run_steps(experiment_id, run_id)

    def log(self, key: str, run_id: str) -> dict[str, Any]:
        source, experiment_id = self._split(key)
        return source.log(experiment_id, run_id)

    def artifact_path(self, key: str, run_id: str, name: str) -> tuple[Path, str]:
        source, experiment_id = self._split(key)
        return source.artifact_path(experiment_id, run_id, name)

    def data_names(self, key: str, run_id: str) -> list[str]:
        source, experiment_id = self._split(key)
        return source.data_names(experiment_id, run_id)

    def checkpoint(self, key: str, run_id: str) -> dict[str, int] | None:
        source, experiment_id = self._split(key)
        return source.checkpoint(experiment_id, run_id)

    def data(self, key: str, run_id: str, name: str) -> Any:
        source, experiment_id = self._split(key)
        return source.data(experiment_id, run_id, name)

    def in_progress(self, key: str) -> list[str]:
        source, experiment_id = self._split(key)
        return source.in_progress(experiment_id)
