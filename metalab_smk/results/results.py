"""Results and Run: one table of a sweep, read from the parquet summary when it is
current and from the records otherwise."""

from __future__ import annotations

import inspect
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from metalab_smk.core.seeds import SeedBundle
from metalab_smk.errors import MetalabError, NotAnExperimentError, RecordError
from metalab_smk.results.derived import (
    compute_derived_for_run,
    normalise_functions,
    read_derived,
    store_derived,
)
from metalab_smk.results.display import closing_report
from metalab_smk.results.names import column_of
from metalab_smk.results.summary import (
    RESERVED_COLUMNS,
    read_summary,
    record_row,
)
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.filestore import FileStore
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import ArtifactDescriptor, RunRecord, Status
from metalab_smk.store.safepath import check_run_id, inside, read_json_inside
from metalab_smk.store.upstream import (
    FOREIGN_FORMATS,
    load_array,
    load_foreign_artifact,
    resolve_artifact_path,
)
from metalab_smk.store.uri import file_path
from metalab_smk.store.validate import check_record

if TYPE_CHECKING:
    from metalab_smk.results.stats import Comparison

__all__ = ["ExperimentInfo", "Results", "Run", "load_results"]

RECORD_COLUMNS = ["run_id", "experiment_id", "status", "duration_ms", "started_at", "finished_at"]


def _load_frame(layout: ExperimentDir) -> pd.DataFrame:
    """The summary when it covers every record, else the records read in memory: a
    reader never writes into the store (``metalab collect`` brings the summary up to
    date)."""
    return read_summary(layout)[0]


@dataclass
class ExperimentInfo:
    """Experiment-level facts of a run (``run.experiment``), from the compiled description."""

    experiment_id: str
    name: str = ""
    version: str = ""
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, layout: ExperimentDir) -> ExperimentInfo:
        data = read_json_inside(layout.root, layout.compiled)
        return cls(
            experiment_id=data["experiment_id"],
            name=data.get("name", ""),
            version=str(data.get("version", "")),
            description=data.get("description") or "",
            metadata=dict(data.get("metadata") or {}),
            tags=list(data.get("tags") or []),
        )


def _datetime(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class Run:
    """One run: its record, params, metrics, artifacts, data and derived metrics."""

    def __init__(self, layout: ExperimentDir | RunRecord | Run, row: Any) -> None:
        """``Run(layout, summary_row)``, or upstream's ``Run(record, store)`` (a record or
        Run, and the FileStore, config or path holding it)."""
        self._record: RunRecord | None = None
        if not isinstance(layout, ExperimentDir):
            record = layout.record if isinstance(layout, Run) else layout
            self._layout = FileStore(row)._layout_of(record.run_id)
            self._row = {"run_id": record.run_id, "status": str(record.status)}
            self._record = record
            return
        self._layout = layout
        self._row = row

    @property
    def run_id(self) -> str:
        """The run ID (checked: the summary it came from is data too)."""
        return check_run_id(self._row["run_id"])

    @property
    def record(self) -> RunRecord:
        if self._record is None:
            path = self._layout.record(self.run_id)
            if not path.is_file():
                path = self._layout.failed_record(self.run_id)
            root = self._layout.run_root(self.run_id)
            self._record = RunRecord.from_dict(_valid_record(inside(root, path), self.run_id))
        return self._record

    @property
    def status(self) -> Status:
        return Status(self.record.status)

    @property
    def metrics(self) -> dict[str, Any]:
        """Scalar metrics; stepped metrics are curves (``run.data(name)``), not here."""
        stepped = set(self.record.stepped_metrics)
        return {k: v for k, v in self.record.metrics.items() if k not in stepped}

    experiment_id = property(lambda self: self.record.experiment_id)
    params = property(lambda self: dict(self.record.params_resolved))
    error = property(lambda self: self.record.error)
    duration_ms = property(lambda self: self.record.duration_ms)
    started_at = property(lambda self: _datetime(self.record.started_at))
    finished_at = property(lambda self: _datetime(self.record.finished_at))
    tags = property(lambda self: list(self.record.tags))
    context_fingerprint = property(lambda self: self.record.context_fingerprint)
    params_fingerprint = property(lambda self: self.record.params_fingerprint)
    seed_fingerprint = property(lambda self: self.record.seed_fingerprint)

    @property
    def experiment(self) -> ExperimentInfo:
        return ExperimentInfo.of(ExperimentDir(self._layout.run_root(self.run_id)))

    @property
    def seed(self) -> SeedBundle | None:
        """The run's seeds (None for records of the original metalab, which lack them)."""
        return SeedBundle.from_dict(self.record.seed) if self.record.seed else None

    @property
    def derived(self) -> dict[str, Any]:
        """Derived metrics stored for this run (``{}`` when none were computed)."""
        return read_derived(self._layout, self.run_id) or {}

    def artifacts(self) -> list[ArtifactDescriptor]:
        return [ArtifactDescriptor.from_dict(a) for a in self.record.artifacts]

    def artifact(self, name: str, allow_pickle: bool = False) -> Any:
        """Load the artifact ``name``: arrays, JSON values, text; files and figures as
        bytes, like upstream (pickles only with ``allow_pickle=True``); a missing one
        raises FileNotFoundError."""
        for descriptor in self.artifacts():
            if descriptor.name == name:
                root = self._layout.run_root(self.run_id)
                path = resolve_artifact_path(root, self.run_id, descriptor.uri)
                path = ExperimentDir(root).resolve_inside(path)  # never outside the store
                return _load_artifact(path, descriptor.format, allow_pickle)
        known = ", ".join(a["name"] for a in self.record.artifacts) or "none"
        raise FileNotFoundError(f"run {self.run_id} has no artifact {name!r} (it has: {known})")

    def list_data(self) -> list[str]:
        directory = self._layout.results(self.run_id)
        return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []

    def data(self, name: str) -> Any:
        """Data captured as ``name`` (numpy arrays rebuilt with their dtype and shape; a
        stepped metric as ``[[step, value], ...]``)."""
        root = ExperimentDir(self._layout.run_root(self.run_id))
        path = root.resolve_inside(self._layout.data_file(self.run_id, name))
        if not path.is_file():
            raise KeyError(
                f"run {self.run_id} has no data {name!r} (it has: "
                f"{', '.join(self.list_data()) or 'none'})"
            )
        payload = _read_store_json(path)
        if payload.get("shape") is not None and payload.get("dtype"):
            import numpy as np

            return np.array(payload["data"], dtype=payload["dtype"]).reshape(payload["shape"])
        return payload["data"]

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, status={self._row.get('status')!r})"


def _counted(runs: Results, progress: bool, what: str) -> Iterator[Run]:
    """The runs; with ``progress`` a count on stderr (one line, rewritten)."""
    total = len(runs)
    for done, run in enumerate(runs, 1):
        yield run
        if progress:
            end = "\n" if done == total else ""
            print(f"\rmetalab: {what}: {done}/{total} runs", end=end, file=sys.stderr, flush=True)


def _read_store_json(path: Path) -> Any:
    """A JSON file of the store; a MetalabError naming it when it does not parse."""
    try:
        return read_json(path)
    except ValueError as exc:
        raise MetalabError(f"{path} is not valid JSON ({exc}); it was damaged.") from None


def _valid_record(path: Path, run_id: str) -> dict[str, Any]:
    """The record at ``path``; a clear MetalabError naming it when it is missing or bad."""
    try:
        return check_record(path.read_bytes(), run_id)
    except FileNotFoundError:
        raise MetalabError(f"run {run_id} has no record ({path} is missing).") from None
    except RecordError as exc:
        raise MetalabError(
            f"{path} is not a valid record ({exc}); `metalab collect` or the next `metalab "
            "run` moves it to quarantine so the run is recomputed."
        ) from None


def _load_artifact(path: Path, fmt: str, allow_pickle: bool) -> Any:
    if fmt in FOREIGN_FORMATS:  # written by the upstream metalab
        return load_foreign_artifact(path, fmt, allow_pickle)
    if fmt == "numpy":
        return load_array(path)
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
    return path.read_bytes()  # files, figures, bytes: their content, as upstream gives


def _same(value: Any, wanted: Any) -> bool:
    """Equality that keeps ``True``, ``1`` and ``1.0`` apart (values of exact columns)."""
    return type(value) is type(wanted) and value == wanted


def _matches(series: pd.Series, wanted: Any) -> pd.Series:
    """Rows whose value equals ``wanted`` (a bool matches only bools; in columns that
    mix ints and floats, an int matches only ints), is in a list, or passes a predicate."""
    if callable(wanted):
        return series.map(lambda v: bool(wanted(v)))
    if isinstance(wanted, (list, tuple, set, frozenset)):
        mask = pd.Series(False, index=series.index)
        for item in wanted:
            mask |= _matches(series, item)
        return mask
    if type(wanted).__module__ == "numpy" and hasattr(wanted, "item"):
        wanted = wanted.item()
    if series.dtype == object:
        return series.map(lambda v: _same(v, wanted)).astype(bool)
    if isinstance(wanted, bool) != pd.api.types.is_bool_dtype(series.dtype):
        return pd.Series(False, index=series.index)
    return (series == wanted).fillna(False).astype(bool)


def _reduce_artifact(run: Run, reducer: Callable[..., Any], name: str) -> dict[str, Any]:
    """Upstream's artifact reducer: ``reducer(artifact)`` or ``reducer(artifact, run)``."""
    try:
        artifact = run.artifact(name)
    except FileNotFoundError:
        return {}
    required = [
        p
        for p in inspect.signature(reducer).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    try:
        return dict(reducer(artifact, run) if len(required) >= 2 else reducer(artifact))
    except Exception as exc:
        warnings.warn(f"reducer for {name!r} failed on run {run.run_id}: {exc}", stacklevel=3)
        return {}


class Results:
    """The runs of one experiment as a table and as Run objects."""

    def __init__(
        self,
        layout: ExperimentDir | FileStore | None = None,
        frame: pd.DataFrame | list[RunRecord] | None = None,
        *,
        store: FileStore | None = None,
        records: list[RunRecord] | None = None,
    ) -> None:
        """``Results(layout)``, or upstream's ``Results(store, records)``."""
        layout = layout if layout is not None else store
        frame = frame if frame is not None else records
        if isinstance(layout, FileStore):
            dirs = layout.experiment_dirs()
            layout = dirs[0] if len(dirs) == 1 else ExperimentDir.at(layout.root)
        if layout is None:
            raise MetalabError("Results needs an experiment directory or a FileStore.")
        if isinstance(frame, list):
            frame = pd.DataFrame(
                [record_row(r.to_dict() if isinstance(r, RunRecord) else r) for r in frame],
                columns=None if frame else list(RESERVED_COLUMNS),
            )
        self.layout = layout
        self._frame: pd.DataFrame = _load_frame(layout) if frame is None else frame

    @classmethod
    def from_store(cls, store: Any, experiment_id: str | None = None) -> Results:
        """Results of a ``FileStore``, a ``FileStoreConfig`` or a directory path."""
        if isinstance(store, FileStore):
            store = store.root
        return load_results(store, experiment_id)

    @property
    def frame(self) -> pd.DataFrame:
        return self._frame

    @property
    def store(self) -> FileStore:
        return FileStore(self.layout.root)

    @property
    def runs(self) -> list[Run]:
        return list(self)

    @property
    def records(self) -> list[RunRecord]:
        return [run.record for run in self]

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
            if c not in RESERVED_COLUMNS and not c.startswith(("param_", "derived_"))
        ]

    def _derived_frame(self) -> pd.DataFrame:
        rows = [
            {f"derived_{k}": v for k, v in (read_derived(self.layout, rid) or {}).items()}
            for rid in self._frame["run_id"].tolist()
        ]
        return pd.DataFrame(rows, index=range(len(rows)))

    def to_dataframe(
        self,
        include_params: bool = True,
        include_metrics: bool = True,
        include_record: bool = True,
        include_derived: bool = False,
        derived_metrics: list[Callable[[Run], dict[str, Any]]]
        | dict[str, Callable[[Run], Any]]
        | None = None,
        artifact_reducers: dict[str, Callable[..., dict[str, Any]]] | None = None,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Columns: run_id, experiment_id, status, duration_ms, started_at, finished_at
        (``include_record``), param_<name>..., <metrics>..., derived_<name>...
        (``include_derived``: the stored derived metrics), then the columns of
        ``derived_metrics`` (``[fn(run) -> dict]``, computed now and not stored; or
        ``{name: fn(run)}``) and ``artifact_reducers`` ({artifact: fn}).
        ``progress=True`` counts the runs on stderr while those functions run."""
        columns = list(RECORD_COLUMNS) if include_record else []
        if include_params:
            columns += [f"param_{n}" for n in self.param_names()]
        if include_metrics:
            columns += self.metric_names()
        frame = self._frame.reindex(columns=columns).reset_index(drop=True)
        extra = []
        if include_derived:
            extra.append(self._derived_frame())
        if derived_metrics:  # computed now, not stored
            functions = normalise_functions(derived_metrics)
            extra.append(
                pd.DataFrame(
                    [
                        compute_derived_for_run(run, functions)
                        for run in _counted(self, progress, "derived metrics")
                    ],
                    index=range(len(self)),
                )
            )
        if artifact_reducers:
            rows = []
            for run in _counted(self, progress, "artifact reducers"):
                row: dict[str, Any] = {}
                for name, reducer in artifact_reducers.items():
                    row.update(_reduce_artifact(run, reducer, name))
                rows.append(row)
            extra.append(pd.DataFrame(rows, index=range(len(rows))))
        for part in extra:
            frame = pd.concat([frame, part.reset_index(drop=True)], axis=1)
        return frame

    def table(self, as_dataframe: bool = False) -> list[dict[str, Any]] | pd.DataFrame:
        """One dict per run: record fields, fingerprints, ``param_<name>``, metrics, tags
        (``as_dataframe=True``: a DataFrame)."""
        rows = []
        for run in self:
            record = run.record
            rows.append(
                {
                    "run_id": record.run_id,
                    "experiment_id": record.experiment_id,
                    "status": str(record.status),
                    "duration_ms": record.duration_ms,
                    "started_at": record.started_at,
                    "finished_at": record.finished_at,
                    "context_fingerprint": record.context_fingerprint,
                    "params_fingerprint": record.params_fingerprint,
                    "seed_fingerprint": record.seed_fingerprint,
                    **{f"param_{k}": v for k, v in record.params_resolved.items()},
                    **run.metrics,
                    "tags": ",".join(record.tags),
                }
            )
        return pd.DataFrame(rows) if as_dataframe else rows

    def to_csv(
        self,
        path: str | os.PathLike[str],
        *,
        include_fingerprints: bool = False,
        timestamp: bool = False,
    ) -> Path:
        """Write the table as CSV and return its path (a directory or a name without a
        suffix gets ``results_<time>.csv`` inside it)."""
        target = Path(path)
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        if target.is_dir() or not target.suffix:
            target.mkdir(parents=True, exist_ok=True)
            target = target / f"results_{stamp}.csv"
        elif timestamp:
            target = target.with_stem(f"{target.stem}_{stamp}")
        target.parent.mkdir(parents=True, exist_ok=True)
        frame: pd.DataFrame = self.table(as_dataframe=True)
        if not include_fingerprints:
            frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_fingerprint")])
        frame.to_csv(target, index=False)
        return target

    def filter(
        self,
        status: str | None = None,
        tags: list[str] | str | None = None,
        **metrics_or_params: Any,
    ) -> Results:
        """Runs matching all conditions; a value may be a scalar, a list (any of) or a
        predicate. A name is a metric or a param (``lr`` or ``param_lr``); any other name
        is an UnknownNameError listing the valid ones."""
        mask = pd.Series(True, index=self._frame.index)
        if status is not None:
            mask &= self._frame["status"] == str(Status(status))
        for tag in [tags] if isinstance(tags, str) else (tags or []):
            mask &= self._frame["tags"].fillna("").str.split(",").map(lambda t, g=tag: g in t)
        columns = list(self._frame.columns)
        for name, wanted in metrics_or_params.items():
            if not len(self) and name not in columns and f"param_{name}" not in columns:
                return self  # no runs yet: no names to check against
            mask &= _matches(self._frame[column_of(columns, name)], wanted)
        return Results(self.layout, self._frame[mask])

    @property
    def successful(self) -> Results:
        return self.filter(status="success")

    @property
    def failed(self) -> Results:
        """Runs that failed (cancelled runs are in ``cancelled``)."""
        return self.filter(status="failed")

    @property
    def cancelled(self) -> Results:
        return self.filter(status="cancelled")

    def aggregate(
        self,
        metrics: list[str] | None = None,
        by: list[str] | None = None,
        stats: tuple[str, ...] = ("mean", "std", "sem", "ci95", "count", "nan"),
    ) -> pd.DataFrame:
        """Replicate statistics per param case (or per ``by``: param or metric names,
        ``lr`` or ``param_lr``); see :func:`metalab_smk.results.aggregate.aggregate`."""
        from metalab_smk.results.aggregate import aggregate

        return aggregate(self.to_dataframe(), metrics=metrics, by=by, stats=stats)

    def steps(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """Stepped metrics as a tidy table, one row per recorded step: ``run_id``,
        ``param_<name>``..., ``metric``, ``step``, ``value`` (NaN and ±inf kept), runs in
        table order (successful or not: filter first to choose)."""
        params = [f"param_{n}" for n in self.param_names()]
        columns = ["run_id", *params, "metric", "step", "value"]
        try:
            steps = read_summary(self.layout, steps=True)[1]
        except (OSError, MetalabError):
            steps = pd.DataFrame(columns=["run_id", "name", "step", "value"])
        steps = steps.rename(columns={"name": "metric"})
        if metrics is not None:
            steps = steps[steps["metric"].isin(list(metrics))]
        runs = self._frame[["run_id", *params]].reset_index(drop=True)
        tidy = runs.merge(steps, on="run_id", how="inner", sort=False)
        tidy["metric"] = tidy["metric"].astype(str)
        return tidy.reindex(columns=columns).reset_index(drop=True)

    def importance(self, metric: str) -> pd.DataFrame:
        """How much of ``metric``'s variance each param explains, against seed noise;
        see :func:`metalab_smk.results.stats.importance`."""
        from metalab_smk.results.stats import importance

        return importance(self._frame, metric)

    def compare(
        self, case_a: Mapping[str, Any] | str, case_b: Mapping[str, Any] | str, metric: str
    ) -> Comparison:
        """Case B against case A (``{"lr": 0.01}`` or a label ``"lr=0.01, depth=2"``) on
        their shared seeds: paired t and a bootstrap interval of the mean difference."""
        from metalab_smk.results.stats import compare_cases

        return compare_cases(self._frame, case_a, case_b, metric)

    def compare_versions(self, other: Results, metric: str) -> pd.DataFrame:
        """``other`` (say ``exp:2``) against these runs (``exp:1``), case by case: delta
        of means (other - these) with Welch's 95 % interval."""
        from metalab_smk.results.stats import compare_versions

        return compare_versions(self._frame, other.frame, metric)

    def summary(self) -> dict[str, Any]:
        """``total_runs``, ``by_status`` counts and avg/min/max ``duration_ms`` (upstream's
        summary; statistics per param case are ``aggregate()``)."""
        durations = pd.to_numeric(self._frame["duration_ms"], errors="coerce").dropna()
        counts = self._frame["status"].value_counts() if len(self) else pd.Series(dtype=int)
        return {
            "total_runs": len(self),
            "by_status": {str(k): int(v) for k, v in counts.items()},
            "avg_duration_ms": float(durations.mean()) if len(durations) else 0,
            "min_duration_ms": int(durations.min()) if len(durations) else 0,
            "max_duration_ms": int(durations.max()) if len(durations) else 0,
        }

    def display(self, *, group_by: list[str] | None = None, show_summary: bool = True) -> None:
        """Print the summary and, with ``group_by`` (metric or param names), success /
        failed / total counts per group."""
        summary = self.summary()
        if show_summary:
            print(f"\nResults Summary\n  Total runs: {summary['total_runs']}")
            for status, count in summary["by_status"].items():
                print(f"  {status}: {count}")
            print(f"  Avg duration: {summary['avg_duration_ms']:.1f}ms")
        if group_by and len(self):
            columns = [k if k in self.metric_names() else f"param_{k}" for k in group_by]
            frame = self._frame.reindex(columns=[*columns, "status"])
            print(f"\nBy {', '.join(group_by)}:")
            for key, group in frame.groupby(columns, dropna=False, sort=True):
                key = key if isinstance(key, tuple) else (key,)
                label = ", ".join(f"{k}={v}" for k, v in zip(group_by, key, strict=True))
                ok = int((group["status"] == "success").sum())
                bad = int((group["status"] == "failed").sum())
                print(f"  {label}: {ok} success, {bad} failed, {len(group)} total")

    def report(self, width: int = 80, max_rows: int = 20) -> str:
        """A terminal summary: counts, one line per param case (params, then metrics as
        mean ± std over replicates, as many as fit in ``width``), where the results are
        and the next commands."""
        total = len(self.layout.read_run_ids()) if self.layout.run_table.is_file() else len(self)
        return closing_report(self.to_dataframe(), self.layout.root, total, width, max_rows)

    def compute_derived(
        self,
        metrics: Any,
        overwrite: bool = False,
        progress: bool = False,
    ) -> dict[str, dict[str, Any]]:
        """Compute derived metrics (``fn(run) -> dict``, or ``'module:fn'``) for every
        successful run and store them in ``derived/<run_id>.json``; runs that already
        have them are skipped unless ``overwrite``. Returns {run_id: values} computed."""
        functions = normalise_functions(metrics)
        done: dict[str, dict[str, Any]] = {}
        runs = list(self.successful)
        for position, run in enumerate(runs, 1):
            existing = read_derived(self.layout, run.run_id)
            if existing is not None and not overwrite:
                continue
            values = compute_derived_for_run(run, functions)
            store_derived(self.layout, run.run_id, values)
            done[run.run_id] = values
            if progress:
                print(f"metalab: derived metrics {position}/{len(runs)}", flush=True)
        return done

    def load(self, run_id: str, artifact: str, allow_pickle: bool = False) -> Any:
        row = record_row(_valid_record(self.layout.record(run_id), run_id))
        return Run(self.layout, row).artifact(artifact, allow_pickle)

    def __repr__(self) -> str:
        summary = self.summary()
        parts = ", ".join(f"{k}={v}" for k, v in summary["by_status"].items())
        return f"Results({summary['total_runs']} runs: {parts})"


def load_results(
    path_or_config: str | os.PathLike[str] | FileStoreConfig | FileStore | None = None,
    experiment_id: str | None = None,
    *,
    store: str | os.PathLike[str] | FileStoreConfig | FileStore | None = None,
    **query: Any,
) -> Results:
    """Results of an experiment directory, or of ``experiment_id`` under a collection root
    (a path, ``file://`` URI, FileStoreConfig or FileStore; ``store=`` is upstream's name
    for it), of a store written by the upstream metalab, or of a PostgreSQL index URL
    (``query``: see docs/stores.md, "PostgreSQL index")."""
    from metalab_smk.results.stores import open_special  # upstream stores, PostgreSQL

    if (path_or_config is None) == (store is None):
        raise TypeError("load_results() takes a path or store=, exactly one of them")
    path_or_config = path_or_config if store is None else store
    if isinstance(path_or_config, (FileStoreConfig, FileStore)):
        experiment_id = experiment_id or getattr(path_or_config, "experiment_id", None)
    special = open_special(path_or_config, experiment_id, query)  # (layout, frame) | None
    if special is not None:
        return Results(*special)
    root = file_path(path_or_config)
    if not Path(root).exists():
        raise NotAnExperimentError(f"{root} does not exist (no results there).")
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
