"""Data of the versions view: this version of an experiment against another version of it
(the same name), case by case: the delta of the means with Welch's 95 % interval, the
numbers of ``Results.compare_versions``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from metalab_smk.results.stats import compare_versions
from metalab_smk.ui.query import BadQuery, columns_of, jsonable

__all__ = ["other_versions", "versions_view"]


def _key(experiment: dict[str, Any]) -> str:
    return experiment.get("key") or experiment["experiment_id"]


def other_versions(experiments: Sequence[dict[str, Any]], key: str) -> list[str]:
    """Keys of the other versions of ``key``'s experiment, nearest first: the versions
    listed before it (latest first), then those after it."""
    keys = [_key(e) for e in experiments]
    if key not in keys:
        return []
    name = experiments[keys.index(key)].get("name")
    same = [k for k, e in zip(keys, experiments, strict=True) if e.get("name") == name]
    at = same.index(key)
    return same[:at][::-1] + same[at + 1 :]


def _metrics(frame: pd.DataFrame) -> list[str]:
    kinds = columns_of(frame)
    return [c for c in kinds["metrics"] if c in kinds["numeric"]]


def versions_view(
    key: str, frame: pd.DataFrame, other: str, other_frame: pd.DataFrame, metric: str = ""
) -> dict[str, Any]:
    """``{this, other, metric, metrics, rows, plot}``: per case both means, ``delta``
    (this - other) with its 95 % interval and p, and the deltas as plot data."""
    metrics = [m for m in _metrics(frame) if m in _metrics(other_frame)]
    if not metrics:
        raise BadQuery(f"{key} and {other} share no numeric metric")
    if metric and metric not in metrics:
        raise BadQuery(f"no numeric metric {metric!r} in both; metrics: {', '.join(metrics)}")
    metric = metric or metrics[0]
    table = compare_versions(other_frame, frame, metric)
    rows = jsonable(table.to_dict(orient="records"))
    points = [
        [r["case"], r["delta"], r["ci95_low"], r["ci95_high"], r["n_b"]]
        for r in rows
        if r["delta"] is not None
    ]
    plot = {
        "kind": "xy",
        "x": "case",
        "y": f"{metric}: {key} - {other}",
        "categorical": True,
        "agg": "mean",
        "err": "ci95",
        "lines": False,  # points with their interval, and a line at zero
        "zero": True,
        "panels": [{"title": "", "series": [{"name": "delta", "points": points}]}],
    }
    return {"this": key, "other": other, "metric": metric, "metrics": metrics, "rows": rows,
            "plot": plot}  # fmt: skip
