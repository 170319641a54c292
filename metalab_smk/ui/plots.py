"""Plot data for the dashboard and the report: series computed on the server (replicate
statistics come from :mod:`metalab_smk.results.aggregate`), drawn by the browser."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from metalab_smk.results.aggregate import aggregate, aggregate_steps
from metalab_smk.ui.query import BadQuery, jsonable

__all__ = ["AGGS", "ERRORS", "compare", "histogram", "stepped", "xy"]

AGGS = ("none", "mean", "median", "min", "max")
ERRORS = ("none", "std", "sem", "ci95")
MAX_RUN_CURVES = 50
MAX_POINTS = 20000


def _need(frame: pd.DataFrame, *columns: str | None) -> None:
    for column in columns:
        if column and column not in frame.columns:
            raise BadQuery(f"no column {column!r} to plot")


def _label(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "(none)"
    return str(jsonable(value))


def _facet(column: str, value: Any) -> str:
    return f"{column.removeprefix('param_')} = {_label(value)}"


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def xy(
    frame: pd.DataFrame,
    x: str,
    y: str,
    group: str = "",
    facet: str = "",
    agg: str = "mean",
    err: str = "ci95",
) -> dict[str, Any]:
    """Y against X, one series per ``group`` value, one panel per ``facet`` value.

    With ``agg`` the replicates of each (x, group, facet) are reduced to one point with
    an error bar (``err``: std, SEM or the 95 % Student-t interval half-width); with
    ``agg="none"`` every run is a point. Points: ``[x, y, low, high, n]``."""
    _need(frame, x, y, group, facet)
    if agg not in AGGS or err not in ERRORS:
        raise BadQuery(f"agg must be one of {AGGS} and err one of {ERRORS}")
    ok = frame[frame["status"] == "success"] if "status" in frame.columns else frame
    ok = ok[pd.to_numeric(ok[y], errors="coerce").notna()]
    categorical = not _numeric(ok[x]) if len(ok) else False
    keys = [c for c in dict.fromkeys([facet, group]) if c]
    panels: dict[str, dict[str, list[list[Any]]]] = {}
    if agg == "none":
        for values, part in ok.groupby(keys, dropna=False, sort=True) if keys else [((), ok)]:
            values = values if isinstance(values, tuple) else (values,)
            named = dict(zip(keys, values, strict=True))
            points = [
                [jsonable(a), jsonable(b), None, None, 1]
                for a, b in zip(part[x].tolist()[:MAX_POINTS], part[y].tolist(), strict=False)
            ]
            panel = panels.setdefault(_facet(facet, named[facet]) if facet else "", {})
            panel[_label(named[group]) if group else y] = points
    else:
        by = list(dict.fromkeys([*keys, x]))
        stats = ("mean", "median", "min", "max", "std", "sem", "ci95", "count")
        table = aggregate(ok, metrics=[y], by=by, stats=stats)
        for row in table.to_dict("records"):
            center = row[f"{y}_{agg}"]
            spread = row[f"{y}_{err}"] if err != "none" else None
            spread = None if spread is None or np.isnan(spread) else spread
            point = [
                jsonable(row[x]),
                jsonable(center),
                jsonable(center - spread) if spread is not None else None,
                jsonable(center + spread) if spread is not None else None,
                int(row[f"{y}_count"]),
            ]
            panel = panels.setdefault(_facet(facet, row[facet]) if facet else "", {})
            panel.setdefault(_label(row[group]) if group else y, []).append(point)
    return {
        "kind": "xy",
        "x": x,
        "y": y,
        "categorical": categorical,
        "agg": agg,
        "err": err,
        "panels": [
            {"title": title, "series": [{"name": n, "points": p} for n, p in series.items()]}
            for title, series in panels.items()
        ],
    }


def histogram(frame: pd.DataFrame, y: str, group: str = "", bins: int = 20) -> dict[str, Any]:
    """Counts of ``y`` in ``bins`` equal bins shared by every ``group`` value."""
    _need(frame, y, group)
    values = pd.to_numeric(frame[y], errors="coerce")
    keep = values.notna()
    values = values[keep]
    bins = max(1, min(int(bins), 200))
    if values.empty:
        return {"kind": "hist", "y": y, "edges": [], "series": []}
    edges = np.histogram_bin_edges(values.to_numpy(dtype=float), bins=bins)
    groups = frame.loc[keep, group].map(_label) if group else pd.Series(y, index=values.index)
    series = []
    for name in sorted(groups.unique(), key=str):
        counts, _ = np.histogram(values[groups == name].to_numpy(dtype=float), bins=edges)
        series.append({"name": name, "counts": counts.tolist()})
    return {"kind": "hist", "y": y, "edges": jsonable(edges.tolist()), "series": series}


def stepped(
    frame: pd.DataFrame,
    steps: pd.DataFrame,
    name: str,
    group: str = "",
    mode: str = "mean",
    err: str = "ci95",
) -> dict[str, Any]:
    """Curves of the stepped metric ``name``: one per run (``mode="runs"``, at most 50
    runs) or the mean per ``group`` with a band (``err``). Points: ``[step, y, low, high]``."""
    _need(frame, group)
    if err not in ERRORS:
        raise BadQuery(f"err must be one of {ERRORS}")
    ids = frame.loc[frame["status"] == "success", "run_id"] if "status" in frame else frame.run_id
    chosen = steps[(steps["name"] == name) & steps["run_id"].isin(ids)]
    series = []
    if mode == "runs":
        for run_id in list(dict.fromkeys(chosen["run_id"].tolist()))[:MAX_RUN_CURVES]:
            part = chosen[chosen["run_id"] == run_id].sort_values("step")
            points = [
                [jsonable(s), jsonable(v), None, None]
                for s, v in zip(part["step"].tolist(), part["value"].tolist(), strict=True)
            ]
            series.append({"name": run_id, "points": points})
    else:
        by = [group] if group else []
        runs = frame[["run_id", "status", *by]] if "status" in frame else frame[["run_id", *by]]
        table = aggregate_steps(chosen, runs, by=by, stats=("mean", "std", "sem", "ci95"))
        for key, part in table.groupby(by, dropna=False, sort=True) if by else [((), table)]:
            key = key if isinstance(key, tuple) else (key,)
            points = []
            for row in part.sort_values("step").to_dict("records"):
                spread = row.get(err) if err != "none" else None
                spread = None if spread is None or np.isnan(spread) else spread
                low = row["mean"] - spread if spread is not None else None
                high = row["mean"] + spread if spread is not None else None
                points.append(jsonable([row["step"], row["mean"], low, high]))
            series.append({"name": _label(key[0]) if by else name, "points": points})
    return {"kind": "steps", "name": name, "mode": mode, "err": err, "series": series}


def compare(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Params, metrics, seed and provenance of 2..N runs side by side; ``differs`` marks
    the rows whose values are not all equal."""
    sections: list[tuple[str, str]] = [
        ("params", "params_resolved"),
        ("metrics", "metrics"),
        ("provenance", "provenance"),
    ]
    rows: list[dict[str, Any]] = []

    def add(section: str, key: str, values: list[Any]) -> None:
        encoded = [jsonable(v) for v in values]
        differs = len({repr(v) for v in encoded}) > 1
        rows.append({"section": section, "key": key, "values": encoded, "differs": differs})

    add("run", "status", [r.get("status") for r in records])
    add("run", "duration_ms", [r.get("duration_ms") for r in records])
    add("run", "seed", [(r.get("seed") or {}).get("root_seed") for r in records])
    add("run", "replicate", [(r.get("seed") or {}).get("replicate_index") for r in records])
    errors = [r.get("error") or {} for r in records]
    if any(errors):
        add("run", "error", [f"{e.get('type')}: {e.get('message')}" if e else None for e in errors])
    for section, field in sections:
        keys = sorted({k for r in records for k in (r.get(field) or {})})
        for key in keys:
            values = [(r.get(field) or {}).get(key) for r in records]
            if section == "provenance" and any(isinstance(v, dict) for v in values):
                inner = sorted({k for v in values if isinstance(v, dict) for k in v})
                for sub in inner:
                    add(section, f"{key}.{sub}", [(v or {}).get(sub) for v in values])
                continue
            add(section, key, values)
    return {"run_ids": [r["run_id"] for r in records], "rows": rows}
