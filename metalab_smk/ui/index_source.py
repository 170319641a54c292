"""``metalab ui --db URL``: the dashboard over the PostgreSQL index (``metalab index``).

Experiments and their runs tables come from the index (the table through
``load_results(URL, experiment_id=...)``, equal to the file store's). The index holds
finished runs only: the experiments list's live counts (running, pending) and SLURM
head state are read from each recorded directory when it is reachable from the server
(by the file-backed source's code), and marked unavailable when it is not. One run's record,
log, data, artifacts, steps and manifest are read by a ``FileSource`` over the
experiment directory the index recorded, with its path-containment checks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from metalab_smk.errors import MetalabError
from metalab_smk.results.index.query import indexed_experiments
from metalab_smk.results.results import load_results
from metalab_smk.store.uri import mask_url
from metalab_smk.ui.source import BACKGROUND_ROWS, FileSource, NotFound, _Refresher

__all__ = ["IndexSource"]

LISTING_SECONDS = 2  # how long one read of the experiments list is reused
UNREACHABLE = "live state unavailable: directory not reachable"


class IndexSource:
    """The experiments of the index at ``url`` (only those whose directory lies under
    ``path`` when a path is given)."""

    def __init__(self, url: str, path: str | os.PathLike[str] | None = None) -> None:
        self.url = url
        self.root = Path(path).absolute() if path is not None else None
        self.label = mask_url(url) + (f" ({path})" if path is not None else "")
        self._cache = _Refresher()
        self._files: dict[str, FileSource] = {}
        self._listing: dict[str, dict[str, Any]] = {}
        self._listed_at = -1.0
        self._query_experiments()  # an unreachable index fails here, in one line

    # -- the index ---------------------------------------------------------------------
    def _query_experiments(self) -> dict[str, dict[str, Any]]:
        rows = indexed_experiments(self.url)
        found = {}
        for eid, name, version, directory, n_runs, description, at_ns, done, failed in rows:
            if self.root is not None and not Path(directory).is_relative_to(self.root):
                continue
            total = n_runs if n_runs is not None else done + failed
            found[eid] = {
                "experiment_id": eid,
                "name": name,
                "version": version,
                "description": description,
                "directory": Path(directory).name,
                "total": total,
                "done": done,
                "running": None,  # the index holds records; runs in flight have none yet
                "failed": failed,
                "pending": None,
                "last_activity_ns": at_ns,
                "head": None,
                "store": str(Path(directory).parent),
                "_path": directory,
                "_indexed_ns": at_ns,
            }
        self._listing, self._listed_at = found, time.monotonic()
        return found

    def _live(self, entry: dict[str, Any]) -> dict[str, Any]:
        """``entry`` with the live counts and head state read from its directory by the
        file-backed source (runs in flight, SLURM head), or marked unavailable."""
        experiment_id = entry["experiment_id"]
        try:
            listed = self.files(experiment_id).experiments()
            live = next(e for e in listed if e["experiment_id"] == experiment_id)
        except (NotFound, StopIteration, OSError, ValueError, MetalabError):
            return {**entry, "live": False, "live_note": UNREACHABLE}
        if "error" in live:  # its directory is there but its state cannot be read
            return {**entry, "live": False, "live_note": live["error"]}
        counts = ("total", "done", "running", "failed", "pending", "head")
        activity = max(entry["last_activity_ns"] or 0, live["last_activity_ns"] or 0)
        return {
            **entry,
            **{k: live[k] for k in counts},
            "last_activity_ns": activity or None,
            "live": True,
        }

    def _experiments(self) -> dict[str, dict[str, Any]]:
        if time.monotonic() - self._listed_at > LISTING_SECONDS:
            return self._query_experiments()
        return self._listing

    def _entry(self, experiment_id: str) -> dict[str, Any]:
        entry = self._experiments().get(experiment_id)
        if entry is None:
            raise NotFound(f"no experiment {experiment_id!r} in the index")
        return entry

    def experiments(self) -> list[dict[str, Any]]:
        """Each indexed experiment with its counts: live ones (running, pending, head
        state) when its directory is reachable from here, else the indexed ones with
        ``live: False`` and a note."""
        return [
            {k: v for k, v in self._live(e).items() if not k.startswith("_")}
            for e in self._experiments().values()
        ]

    def frame(self, experiment_id: str) -> pd.DataFrame:
        """The runs table from the index, reloaded when the experiment is re-indexed."""
        entry = self._entry(experiment_id)
        return self._cache.get(
            ("frame", experiment_id),
            (entry["_indexed_ns"],),
            lambda: load_results(self.url, experiment_id).frame.reset_index(drop=True),
            large=lambda frame: len(frame) >= BACKGROUND_ROWS,
        )

    def warm(self) -> None:
        """Load every experiment's table once (in the background at server start)."""
        try:
            for experiment in self.experiments():
                self.frame(experiment["experiment_id"])
        except (OSError, ValueError, MetalabError):
            pass  # shown when the page is opened

    # -- files of the recorded experiment directory ------------------------------------
    def files(self, experiment_id: str) -> FileSource:
        """A FileSource over the directory the index recorded for ``experiment_id``."""
        directory = self._entry(experiment_id)["_path"]
        source = self._files.get(experiment_id)
        if source is None or str(source.root) != directory:
            try:
                source = FileSource(directory)
            except MetalabError:
                raise NotFound(
                    f"{experiment_id}: its directory {directory} (recorded in the index) is "
                    "missing; re-run `metalab index`"
                ) from None
            self._files[experiment_id] = source
        return source

    def steps(self, experiment_id: str) -> pd.DataFrame:
        return self.files(experiment_id).steps(experiment_id)

    def manifest(self, experiment_id: str) -> dict[str, Any]:
        return self.files(experiment_id).manifest(experiment_id)

    def record(self, experiment_id: str, run_id: str) -> dict[str, Any]:
        return self.files(experiment_id).record(experiment_id, run_id)

    def run_steps(self, experiment_id: str, run_id: str) -> dict[str, list[list[float]]]:
        return self.files(experiment_id).run_steps(experiment_id, run_id)

    def log(self, experiment_id: str, run_id: str) -> dict[str, Any]:
        return self.files(experiment_id).log(experiment_id, run_id)

    def artifact_path(self, experiment_id: str, run_id: str, name: str) -> tuple[Path, str]:
        return self.files(experiment_id).artifact_path(experiment_id, run_id, name)

    def data_names(self, experiment_id: str, run_id: str) -> list[str]:
        return self.files(experiment_id).data_names(experiment_id, run_id)

    def checkpoint(self, experiment_id: str, run_id: str) -> dict[str, int] | None:
        return self.files(experiment_id).checkpoint(experiment_id, run_id)

    def data(self, experiment_id: str, run_id: str, name: str) -> Any:
        return self.files(experiment_id).data(experiment_id, run_id, name)

    def in_progress(self, experiment_id: str) -> list[str]:
        return self.files(experiment_id).in_progress(experiment_id)
