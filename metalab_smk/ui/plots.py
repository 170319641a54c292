"""Plot data for the dashboard and the report: series computed on the server (replicate
statistics come from :mod:`metalab_smk.results.aggregate`), drawn by the browser."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from metalab_smk.results.aggregate import aggregate, aggregate_steps
from metalab_smk.ui.axes import log_grid, log_values, smooth
from metalab_smk.ui.query import BadQuery, jsonable

__all__ = ["AGGS", "ERRORS", "compare", "histogram", "stepped", "xy"]

AGGS = ("none", "mean", "median", "min", "max")
ERRORS = ("none", "std", "sem", "ci95")
MAX_RUN_CURVES = 100
MAX_POINTS = 20000


def _need(frame: pd.DataFrame, *columns: str | None) -> None:
    for column in columns:
        if column and column not in frame.columns:
            raise BadQuery(f"no column {column!r} to plot")


def _finite(values: list[Any]) -> list[Any]:
    """A column's ``tolist()`` as JSON values: NaN and ±inf become None."""
    return [
        None if (type(v) is float and not math.isfinite(v)) or v is pd.NA else v for v in values
    ]


def _labels(column: pd.Series, label: Any) -> list[str]:
    """``label`` of each value, computed once per distinct value."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    names = [label(v) for v in uniques]
    return [names[c] for c in codes.tolist()]


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
    log_params: Collection[str] = (),
) -> dict[str, Any]:
    """Y against X, one series per ``group`` value, one panel per ``facet`` value.

    With ``agg`` the replicates of each (x, group, facet) are reduced to one point with
    an error bar (``err``: std, SEM or the 95 % Student-t interval half-width); with
    ``agg="none"`` every run is a point. Points: ``[x, y, low, high, n]``. ``log_x``
    starts on for a param in ``log_params`` (drawn log-uniformly) or on a log grid."""
    _need(frame, x, y, group, facet)
    if agg not in AGGS or err not in ERRORS:
        raise BadQuery(f"agg must be one of {AGGS} and err one of {ERRORS}")
    columns = list(dict.fromkeys(c for c in ("status", x, y, group, facet) if c in frame))
    ok = frame[columns]  # only the columns plotted: filtering rows then copies little
    keep = pd.to_numeric(ok[y], errors="coerce").notna().to_numpy(dtype=bool, copy=True)
    if "status" in ok:
        keep &= (ok["status"] == "success").to_numpy(dtype=bool)
    ok = ok[keep]
    categorical = not _numeric(ok[x]) if len(ok) else False
    keys = [c for c in dict.fromkeys([facet, group]) if c]
    panels: dict[str, dict[str, list[list[Any]]]] = {}
    if agg == "none":
        for values, part in ok.groupby(keys, dropna=False, sort=True) if keys else [((), ok)]:
            values = values if isinstance(values, tuple) else (values,)
            named = dict(zip(keys, values, strict=True))
            xs = _finite(part[x].tolist()[:MAX_POINTS])
            ys = _finite(part[y].tolist()[:MAX_POINTS])
            points = [[a, b, None, None, 1] for a, b in zip(xs, ys, strict=True)]
            panel = panels.setdefault(_facet(facet, named[facet]) if facet else "", {})
            panel[_named(group, named[group]) if group else y] = points
    else:
        by = list(dict.fromkeys([*keys, x]))
        stats = tuple(dict.fromkeys([agg, "count"] + ([err] if err != "none" else [])))
        table = aggregate(ok, metrics=[y], by=by, stats=stats)
        n = len(table)
        xs = _finite(table[x].tolist())
        centers = _finite(table[f"{y}_{agg}"].tolist())
        spreads = _finite(table[f"{y}_{err}"].tolist()) if err != "none" else [None] * n
        counts = table[f"{y}_count"].tolist()
        facets = _labels(table[facet], lambda v: _facet(facet, v)) if facet else [""] * n
        groups = _labels(table[group], lambda v: _named(group, v)) if group else [y] * n
        for i in range(n):
            center, spread = centers[i], spreads[i]
            bounded = center is not None and spread is not None
            point = [
                xs[i],
                center,
                center - spread if bounded else None,
                center + spread if bounded else None,
                int(counts[i]),
            ]
            panels.setdefault(facets[i], {}).setdefault(groups[i], []).append(point)
    return {
        "kind": "xy",
        "x": x,
        "y": y,
        "categorical": categorical,
        "log_x": not categorical
        and (x in log_params or log_grid(ok[x].drop_duplicates().tolist())),
        "log_y": log_values(ok[y].tolist()),
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
    data = values.to_numpy(dtype=float)
    slot = np.clip(np.searchsorted(edges, data, side="right") - 1, 0, bins - 1)
    if group:
        codes, names = pd.factorize(frame.loc[keep, group], sort=True, use_na_sentinel=False)
    else:
        codes, names = np.zeros(len(data), dtype=int), [y]
    counts = np.bincount(codes * bins + slot, minlength=len(names) * bins).reshape(-1, bins)
    series = [
        {"name": _label(name) if group else y, "counts": row.tolist()}
        for name, row in zip(names, counts, strict=True)
    ]
    return {"kind": "hist", "y": y, "edges": jsonable(edges.tolist()), "series": series}


def _named(column: str, value: Any) -> str:
    """A legend entry naming its param: ``lr=0.01``."""
    return f"{column.removeprefix('param_')}={_label(value)}"


def _curve(steps: list[Any], ys: list[Any], lows: list[Any], highs: list[Any], weight: float):
    ys, lows, highs = (smooth(_finite(v), weight) for v in (ys, lows, highs))
    return [[s, y, lo, hi] for s, y, lo, hi in zip(steps, ys, lows, highs, strict=True)]


def stepped(
    frame: pd.DataFrame,
    steps: pd.DataFrame,
    name: str,
    group: str = "",
    mode: str = "mean",
    err: str = "ci95",
    facet: str = "",
    smoothing: float = 0.0,
) -> dict[str, Any]:
    """Curves of the stepped metric ``name``, one panel per ``facet`` value: the mean per
    ``group`` with a band (``err``), or every run (``mode="runs"``, at most 100) coloured
    by its group. Legends name the param (``lr=0.01``); ``smoothing`` is an exponential
    moving average weight (0 to 0.99). Points: ``[step, y, low, high]``; ``log_y`` says
    whether a log axis suits the values (positive, >= 3 decades)."""
    _need(frame, group, facet)
    if err not in ERRORS:
        raise BadQuery(f"err must be one of {ERRORS}")
    weight = min(max(float(smoothing), 0.0), 0.99)
    keys = list(dict.fromkeys(c for c in (facet, group) if c))
    sub = frame[list(dict.fromkeys(c for c in ("run_id", "status", *keys) if c))]
    ok = sub[(sub["status"] == "success").to_numpy(dtype=bool)] if "status" in sub else sub
    of_name = steps[(steps["name"] == name).to_numpy(dtype=bool)]
    panels: dict[str, list[dict[str, Any]]] = {}
    colors: dict[str, int] = {}
    if mode == "runs":
        wanted = set(ok["run_id"].tolist())
        keep = [rid in wanted for rid in of_name["run_id"].to_numpy(dtype=object)]
        chosen = of_name[keep]
        order = list(dict.fromkeys(chosen["run_id"].tolist()))[:MAX_RUN_CURVES]
        labels = ok.drop_duplicates("run_id").set_index("run_id")
        chosen = chosen[chosen["run_id"].isin(order)].sort_values(["run_id", "step"], kind="stable")
        for run_id, part in chosen.groupby("run_id", sort=False):
            named = _named(group, labels.at[run_id, group]) if group else str(run_id)
            title = _named(facet, labels.at[run_id, facet]) if facet else ""
            values = part["value"].tolist()
            points = _curve(
                part["step"].tolist(), values, [None] * len(values), [None] * len(values), weight
            )
            color = colors.setdefault(named if group else str(len(colors)), len(colors))
            panels.setdefault(title, []).append(
                {"name": named, "run_id": str(run_id), "color": color, "points": jsonable(points)}
            )
    else:
        stats = ("mean",) + ((err,) if err != "none" else ())
        table = aggregate_steps(of_name, ok[["run_id", *keys]], by=keys, stats=stats)
        table = table.sort_values([*keys, "step"], kind="stable")
        groups = table.groupby(keys, dropna=False, sort=True) if keys else [((), table)]
        for key, part in groups:
            key = key if isinstance(key, tuple) else (key,)
            named_keys = dict(zip(keys, key, strict=True))
            means = part["mean"].tolist()
            spread = part[err].tolist() if err != "none" else [math.nan] * len(part)
            lows = [m - e if e == e else None for m, e in zip(means, spread, strict=True)]
            highs = [m + e if e == e else None for m, e in zip(means, spread, strict=True)]
            named = _named(group, named_keys[group]) if group else name
            title = _named(facet, named_keys[facet]) if facet else ""
            color = colors.setdefault(named, len(colors))
            points = _curve(part["step"].tolist(), means, lows, highs, weight)
            panels.setdefault(title, []).append(
                {"name": named, "color": color, "points": jsonable(points)}
            )
    values = pd.to_numeric(of_name["value"], errors="coerce")
    return {
        "kind": "steps",
        "name": name,
        "mode": mode,
        "err": err,
        "group": group.removeprefix("param_"),
        "log_y": log_values(values.tolist()),
        "panels": [{"title": t, "series": series} for t, series in panels.items()],
    }


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


def compare_steps(
    run_ids: list[str], steps: list[dict[str, list[list[float]]]]
) -> list[dict[str, Any]]:
    """One plot per stepped metric, one curve per run (``stepped`` data, mode "runs")."""
    names = sorted({name for per_run in steps for name in per_run})
    return [
        {
            "kind": "steps",
            "name": name,
            "mode": "runs",
            "err": "none",
            "panels": [
                {
                    "title": "",
                    "series": [
                        {
                            "name": run_id,
                            "points": jsonable([[s, v, None, None] for s, v in data[name]]),
                        }
                        for run_id, data in zip(run_ids, steps, strict=True)
                        if name in data
                    ],
                }
            ],
        }
        for name in names
    ]
