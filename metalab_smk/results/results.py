"""Results and Run: one table of a sweep, read from the parquet summary when it is
current and from the records otherwise."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from metalab_smk.core.seeds import SeedBundle
from metalab_smk.errors import MetalabError
from metalab_smk.results.summary import (
    RESERVED_COLUMNS,
    record_row,
    records_frame,
    summary_is_current,
)
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import RunRecord
from metalab_smk.store.upstream import (
    FOREIGN_FORMATS,
    load_foreign_artifact,
    resolve_artifact_path,
)
from metalab_smk.store.uri import file_path

__all__ = ["Results", "Run", "load_results"]

RECORD_COLUMNS = ["run_id", "experiment_id", "status", "duration_ms", "started_at", "finished_at"]


def _load_frame(layout: ExperimentDir) -> pd.DataFrame:
    if summary_is_current(layout):
        return pd.read_parquet(layout.summary_runs)
    return records_frame(layout)[0]


class Run:
    """One run: its record, params, metrics, artifacts and data."""

    def __init__(self, layout: ExperimentDir, row: dict[str, Any]) -> None:
        self._layout = layout
        self._row = row
        self._record: RunRecord | None = None

    @property
    def run_id(self) -> str:
        return self._row["run_id"]

    @property
    def record(self) -> RunRecord:
        if self._record is None:
            path = self._layout.record(self.run_id)
            if not path.is_file():
                path = self._layout.failed_record(self.run_id)
            self._record = RunRecord.from_dict(read_json(path))
        return self._record

    status = property(lambda self: str(self.record.status))
    params = property(lambda self: dict(self.record.params_resolved))
    metrics = property(lambda self: dict(self.record.metrics))
    error = property(lambda self: self.record.error)
    duration_ms = property(lambda self: self.record.duration_ms)
    started_at = property(lambda self: self.record.started_at)
    finished_at = property(lambda self: self.record.finished_at)
    tags = property(lambda self: list(self.record.tags))

    @property
    def seed(self) -> SeedBundle | None:
        """The run's seeds (None for records of the original metalab, which lack them)."""
        return SeedBundle.from_dict(self.record.seed) if self.record.seed else None

    @property
    def derived(self) -> dict[str, Any]:
        path = self._layout.derived(self.run_id)
        return read_json(path) if path.is_file() else {}

    def artifacts(self) -> list[dict[str, Any]]:
        return list(self.record.artifacts)

    def artifact(self, name: str, allow_pickle: bool = False) -> Any:
        """Load the artifact ``name`` (pickles only with ``allow_pickle=True``)."""
        for descriptor in self.record.artifacts:
            if descriptor["name"] == name:
                root = self._layout.run_root(self.run_id)
                path = resolve_artifact_path(root, self.run_id, descriptor["uri"])
                return _load_artifact(path, descriptor["format"], allow_pickle)
        known = ", ".join(a["name"] for a in self.record.artifacts) or "none"
        raise KeyError(f"run {self.run_id} has no artifact {name!r} (it has: {known})")

    def list_data(self) -> list[str]:
        directory = self._layout.results(self.run_id)
        return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []

    def data(self, name: str) -> Any:
        path = self._layout.results(self.run_id) / f"{name}.json"
        if not path.is_file():
            raise KeyError(
                f"run {self.run_id} has no data {name!r} (it has: "
                f"{', '.join(self.list_data()) or 'none'})"
            )
        return read_json(path)["data"]

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, status={self._row.get('status')!r})"


def _load_artifact(path: Path, fmt: str, allow_pickle: bool) -> Any:
    if fmt in FOREIGN_FORMATS:  # written by the upstream metalab
        return load_foreign_artifact(path, fmt, allow_pickle)
    if fmt == "numpy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if fmt == "json":
        return json.loads(path.read_text())
    if fmt == "pickle":
        if not allow_pickle:
            raise MetalabError(
                f"{path.name} is a pickle; loading runs arbitrary code, so pass "
                "allow_pickle=True if you trust it."
            )
        import pickle

        return pickle.loads(path.read_bytes())
    if fmt == "text":
        return path.read_text()
    return path.read_bytes() if fmt in ("bytes",) else path


def _matches(series: pd.Series, wanted: Any) -> pd.Series:
    if callable(wanted):
        return series.map(lambda v: bool(wanted(v)))
    if isinstance(wanted, (list, tuple, set, frozenset)):
        return series.isin(list(wanted))
    return series == wanted


class Results:
    """The runs of one experiment as a table and as Run objects."""

    def __init__(self, layout: ExperimentDir, frame: pd.DataFrame | None = None) -> None:
        self.layout = layout
        self._frame = _load_frame(layout) if frame is None else frame

    @property
    def frame(self) -> pd.DataFrame:
        return self._frame

    def __len__(self) -> int:
        return len(self._frame)

    def _run(self, position: int) -> Run:
        return Run(self.layout, self._frame.iloc[position].to_dict())

    def __iter__(self) -> Iterator[Run]:
        return (self._run(i) for i in range(len(self)))

    def __getitem__(self, key: int | slice) -> Run | Results:
        if isinstance(key, slice):
            return Results(self.layout, self._frame.iloc[key])
        return self._run(key)

    def param_names(self) -> list[str]:
        return [c[len("param_") :] for c in self._frame.columns if c.startswith("param_")]

    def metric_names(self) -> list[str]:
        return [
            c
            for c in self._frame.columns
            if c not in RESERVED_COLUMNS and not c.startswith("param_")
        ]

    def to_dataframe(
        self,
        include_params: bool = True,
        include_metrics: bool = True,
        include_record: bool = True,
        include_derived: bool = False,
        derived_metrics: dict[str, Callable[[Run], Any]] | None = None,
    ) -> pd.DataFrame:
        """Columns: run_id, experiment_id, status, duration_ms, started_at, finished_at,
        param_<name>..., <metrics>... (and derived metrics when asked)."""
        columns = ["run_id"] + (RECORD_COLUMNS[1:] if include_record else [])
        if include_params:
            columns += [f"param_{n}" for n in self.param_names()]
        if include_metrics:
            columns += self.metric_names()
        frame = self._frame.reindex(columns=columns).reset_index(drop=True)
        if include_derived or derived_metrics:
            derived = (
                pd.DataFrame([run.derived for run in self])
                if not derived_metrics
                else pd.DataFrame(
                    [{k: fn(run) for k, fn in derived_metrics.items()} for run in self]
                )
            )
            frame = pd.concat([frame, derived.reset_index(drop=True)], axis=1)
        return frame

    def table(self, as_dataframe: bool = False) -> pd.DataFrame | str:
        frame = self.to_dataframe()
        return frame if as_dataframe else frame.to_string(index=False)

    def to_csv(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        self.to_dataframe().to_csv(path, index=False, **kwargs)

    def filter(
        self,
        status: str | None = None,
        tags: list[str] | str | None = None,
        **params_or_metrics: Any,
    ) -> Results:
        """Runs matching all conditions; a value may be a scalar, a list (any of) or a
        predicate. Names are matched against params first, then metrics."""
        mask = pd.Series(True, index=self._frame.index)
        if status is not None:
            mask &= self._frame["status"] == str(status)
        for tag in [tags] if isinstance(tags, str) else (tags or []):
            mask &= self._frame["tags"].fillna("").str.split(",").map(lambda t, g=tag: g in t)
        for name, wanted in params_or_metrics.items():
            column = f"param_{name}" if f"param_{name}" in self._frame else name
            if column not in self._frame:
                raise KeyError(
                    f"no param or metric named {name!r}; params: "
                    f"{self.param_names()}, metrics: {self.metric_names()}"
                )
            mask &= _matches(self._frame[column], wanted)
        return Results(self.layout, self._frame[mask])

    @property
    def successful(self) -> Results:
        return self.filter(status="success")

    @property
    def failed(self) -> Results:
        """Runs that did not succeed (failed or cancelled)."""
        return Results(self.layout, self._frame[self._frame["status"] != "success"])

    def summary(self) -> pd.DataFrame:
        """Mean, std and count of each metric per param case (over replicates)."""
        params = [f"param_{n}" for n in self.param_names()]
        metrics = [m for m in self.metric_names() if pd.api.types.is_numeric_dtype(self._frame[m])]
        ok = self._frame[self._frame["status"] == "success"]
        if not params or not metrics:
            return ok[metrics].agg(["mean", "std", "count"]) if metrics else pd.DataFrame()
        return ok.groupby(params, dropna=False)[metrics].agg(["mean", "std", "count"])

    def display(self) -> None:
        print(self.table())

    def compute_derived(self, fns: dict[str, Callable[[Run], Any]]) -> pd.DataFrame:
        """Evaluate ``fns`` on every run and store them in ``derived/<run_id>.json``."""
        from metalab_smk.store.jsonio import atomic_write_json

        rows = []
        for run in self:
            values = {**run.derived, **{name: fn(run) for name, fn in fns.items()}}
            atomic_write_json(self.layout.derived(run.run_id), values)
            rows.append({"run_id": run.run_id, **values})
        return pd.DataFrame(rows)

    def load(self, run_id: str, artifact: str, allow_pickle: bool = False) -> Any:
        row = record_row(read_json(self.layout.record(run_id)))
        return Run(self.layout, row).artifact(artifact, allow_pickle)

    def __repr__(self) -> str:
        counts = self._frame["status"].value_counts().to_dict() if len(self) else {}
        return f"Results({len(self)} runs {counts}, {self.layout.root})"


def load_results(
    path_or_config: str | os.PathLike[str] | FileStoreConfig,
    experiment_id: str | None = None,
    **query: Any,
) -> Results:
    """Results of an experiment directory, or of ``experiment_id`` under a collection root
    (a path, ``file://`` URI or FileStoreConfig), of a store written by the upstream
    metalab, or of a PostgreSQL index URL (``query``: see README, "Stores")."""
    from metalab_smk.results.stores import open_special  # upstream stores, PostgreSQL

    special = open_special(path_or_config, experiment_id, query)  # (layout, frame) | None
    if special is not None:
        return Results(*special)
    root = file_path(path_or_config)
    if experiment_id is None and ExperimentDir.at(root).exists():
        return Results(ExperimentDir.at(root))
    store = FileStoreConfig(root)
    if experiment_id is None:
        found = store.list_experiments()
        if len(found) != 1:
            raise MetalabError(
                f"{root} holds {len(found)} experiments ({', '.join(found) or 'none'}); pass "
                "experiment_id='name:version'."
            )
        experiment_id = found[0]
    layout = store.experiment_dir(experiment_id)
    if not layout.exists():
        raise MetalabError(
            f"no experiment {experiment_id!r} under {root}; it holds: "
            f"{', '.join(store.list_experiments()) or 'none'}."
        )
    return Results(layout)
