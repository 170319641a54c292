"""Data of the seed-aware sweep view (dashboard page and report section): the case means
for parallel coordinates, the importance table with its seed-noise share, and a paired
comparison of two cases; the numbers are those of ``Results`` (results/stats.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from metalab_smk.results.aggregate import aggregate
from metalab_smk.results.names import params_of
from metalab_smk.results.stats import case_labels, compare_cases, importance, varying_params
from metalab_smk.ui.axes import log_grid, log_values
from metalab_smk.ui.query import BadQuery, columns_of, jsonable

__all__ = ["MAX_CASES", "MAX_RUN_LINES", "paired", "seed_lines", "sweep_view"]

MAX_CASES = 5000  # parallel-coordinate lines drawn
MAX_RUN_LINES = 20000  # seed-level lines, on demand


def _metrics(frame: pd.DataFrame) -> list[str]:
    kinds = columns_of(frame)
    return [c for c in kinds["metrics"] if c in kinds["numeric"]]


def _narrow(frame: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, str, list[str]]:
    """(the columns the statistics read, the metric chosen, every numeric metric)."""
    numeric = _metrics(frame)
    if not numeric:
        raise BadQuery("no numeric metric in this experiment")
    if metric and metric not in numeric:
        raise BadQuery(f"no numeric metric {metric!r}; metrics: {', '.join(numeric)}")
    metric = metric or numeric[0]
    keep = ["status", "seed_root", "seed_replicate", *params_of(frame.columns), metric]
    return frame[[c for c in dict.fromkeys(keep) if c in frame.columns]], metric, numeric


def sweep_view(
    frame: pd.DataFrame, metric: str = "", log_params: Collection[str] = ()
) -> dict[str, Any]:
    """``{metric, metrics, axes, cases, importance, method, noise_sd, full_grid}``: one
    case per param combination (``values`` in axis order, then mean, 95 % half-width, n,
    NaN count), axes with their values and whether they are logarithmic (a param in
    ``log_params``, drawn log-uniformly, or a log grid)."""
    frame, metric, metrics = _narrow(frame, metric)
    ok = frame[frame["status"] == "success"] if "status" in frame.columns else frame
    params = varying_params(ok)
    table = aggregate(ok, metrics=[metric], by=params, stats=("mean", "ci95", "count", "nan"))
    labels = case_labels(table, params).tolist()
    columns = [*params, f"{metric}_mean", f"{metric}_ci95", f"{metric}_count", f"{metric}_nan"]
    rows = table[columns].head(MAX_CASES).itertuples(index=False, name=None)
    cases = [
        {"label": label, "values": jsonable(list(row[: len(params)])), "mean": jsonable(row[-4]),
         "ci95": jsonable(row[-3]), "n": int(row[-2]), "nan": int(row[-1])}
        for label, row in zip(labels, rows, strict=False)
    ]  # fmt: skip
    axes = []
    for param in params:
        values = table[param].drop_duplicates().tolist()
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        axes.append(
            {
                "name": param.removeprefix("param_"),
                "categorical": not numeric,
                "log": numeric and (param in log_params or log_grid(values)),
                "values": jsonable(sorted(values) if numeric else [str(v) for v in values]),
            }
        )
    means = table[f"{metric}_mean"].tolist()
    split = importance(ok, metric)
    return {
        "metric": metric,
        "metrics": metrics,
        "axes": axes,
        "metric_log": log_values(means),
        "cases": cases,
        "cases_total": len(table),
        "importance": jsonable(split.to_dict(orient="records")),
        "method": split.attrs["method"],
        "noise_sd": jsonable(split.attrs["noise_sd"]),
        "full_grid": bool(split.attrs["full_grid"]),
    }


def seed_lines(frame: pd.DataFrame, metric: str = "") -> dict[str, Any]:
    """``{metric, runs}``: ``[param values..., metric]`` of each successful run with a
    finite metric (the first ``MAX_RUN_LINES``), params in ``sweep_view``'s axis order:
    one parallel-coordinate line per seed replicate."""
    frame, metric, _ = _narrow(frame, metric)
    ok = frame[frame["status"] == "success"] if "status" in frame.columns else frame
    params = varying_params(ok)
    values = pd.to_numeric(ok[metric], errors="coerce").to_numpy(dtype=float)
    keep = ok[np.isfinite(values)].head(MAX_RUN_LINES)
    return {"metric": metric, "runs": jsonable(keep[[*params, metric]].values.tolist())}


def paired(frame: pd.DataFrame, metric: str, case_a: str, case_b: str) -> dict[str, Any]:
    """The paired comparison of two cases (labels as ``sweep_view`` names them)."""
    frame, metric, _ = _narrow(frame, metric)
    return jsonable(compare_cases(frame, case_a, case_b, metric).to_dict())
