"""Replicate statistics: one row per param case (or per ``by`` group), statistics over the
seed replicates, and the same per step of stepped metrics.

The 95 % confidence interval is Student's t: ``mean ± t(0.975, n-1) · sd / √n``; ``ci95``
is the half-width, ``ci95_low`` / ``ci95_high`` the bounds. scipy is used for the t
quantile when installed, otherwise an exact table (n-1 ≤ 30) and the Cornish-Fisher
expansion beyond (error < 1e-5).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import pandas as pd

from metalab_smk.results.names import columns_for, params_of
from metalab_smk.results.summary import RESERVED_COLUMNS
from metalab_smk.store.jsonio import to_strict_json

__all__ = ["STATS", "aggregate", "aggregate_steps", "group_key", "t_quantile_975"]

STATS = (
    "mean",
    "median",
    "min",
    "max",
    "std",
    "sem",
    "ci95",
    "ci95_low",
    "ci95_high",
    "count",
    "nan",
)
DEFAULT_STATS = ("mean", "std", "sem", "ci95", "count", "nan")
_NOT_METRICS = frozenset(RESERVED_COLUMNS)

# t(0.975, df) for df = 1..30
_T975 = (
    12.706204736,
    4.302652730,
    3.182446305,
    2.776445105,
    2.570581836,
    2.446911851,
    2.364624252,
    2.306004135,
    2.262157163,
    2.228138852,
    2.200985160,
    2.178812830,
    2.160368656,
    2.144786688,
    2.131449546,
    2.119905299,
    2.109815578,
    2.100922040,
    2.093024054,
    2.085963447,
    2.079613845,
    2.073873068,
    2.068657610,
    2.063898562,
    2.059538553,
    2.055529439,
    2.051830516,
    2.048407142,
    2.045229642,
    2.042272456,
)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (NaN for df < 1)."""
    if df < 1:
        return math.nan
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:
        return _t_without_scipy(df)


def _t_without_scipy(df: int) -> float:
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def _check_stats(stats: Sequence[str]) -> None:
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ValueError(f"unknown statistic(s) {unknown}; choose from {list(STATS)}")


def _stats_of(grouped, stats: Sequence[str], nans=None) -> pd.DataFrame:
    """Statistics of a grouped Series, one column per statistic (``nans``: the grouped
    NaN mask, for ``nan``: how many values are NaN; ``count`` counts the others)."""
    derived = {"sem", "ci95", "ci95_low", "ci95_high"}
    needed = ["mean", "std", "count"] + [s for s in ("median", "min", "max") if s in stats]
    if not derived & set(stats):
        needed = [s for s in needed if s in stats] or ["count"]
    base = grouped.agg(needed)
    if "nan" in stats:
        base["nan"] = nans.sum() if nans is not None else 0
    out = pd.DataFrame(index=base.index)
    if derived & set(stats):
        n = base["count"]
        sem = base["std"] / n.pow(0.5)
        quantiles = {int(k): t_quantile_975(int(k) - 1) for k in n.unique()}
        half = n.map(quantiles) * sem
        base["sem"], base["ci95"] = sem, half
        base["ci95_low"], base["ci95_high"] = base["mean"] - half, base["mean"] + half
    for stat in stats:
        out[stat] = base[stat]
    for stat in ("count", "nan"):
        if stat in out:
            out[stat] = out[stat].astype("int64")
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_metrics(df: pd.DataFrame) -> list[str]:
    """Numeric non-param columns, and exact (object) columns holding some numbers."""
    return [
        c
        for c in df.columns
        if c not in _NOT_METRICS
        and not c.startswith("param_")
        and not pd.api.types.is_bool_dtype(df[c])
        and (
            pd.api.types.is_numeric_dtype(df[c])
            or (df[c].dtype == object and any(_is_number(v) for v in df[c]))
        )
    ]


def _numbers(column: pd.Series) -> pd.Series:
    """A metric as floats; in a column mixing numbers with strings or bools (an exact
    column, see ``results/columns.py``) the others count as missing, with a warning."""
    if column.dtype != object:
        return pd.to_numeric(column, errors="coerce")
    values = [float(v) if _is_number(v) else math.nan for v in column]
    other = sum(not _is_number(v) and v is not None for v in column)
    if other:
        warnings.warn(
            f"metric {column.name!r} mixes numbers with {other} other values (strings or "
            "bools); aggregate() uses its numbers and counts the others as missing.",
            stacklevel=3,
        )
    return pd.Series(values, index=column.index, name=column.name)


def _nan_mask(column: pd.Series) -> pd.Series:
    """Which values are NaN: a float column's missing values, an exact column's float
    NaNs (a nullable int or bool column has no NaN)."""
    if pd.api.types.is_float_dtype(column.dtype):
        return column.isna()
    if column.dtype == object:
        return column.map(lambda v: isinstance(v, float) and v != v).astype(bool)
    return pd.Series(False, index=column.index)


def group_key(column: pd.Series) -> pd.Series:
    """Group keys that keep True, 1 and 1.0 apart: an exact (object) column's values as
    their JSON text (strings stay as they are)."""
    if column.dtype != object:
        return column
    return column.map(lambda v: v if v is None or isinstance(v, str) else to_strict_json(v))


def aggregate(
    df: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] | None = None,
    stats: Sequence[str] = DEFAULT_STATS,
) -> pd.DataFrame:
    """Statistics of ``metrics`` over replicates: one row per distinct value of ``by``
    (default: every ``param_*`` column, i.e. one row per param case).

    ``df`` is a results table (``Results.to_dataframe()``); when it has a ``status``
    column only successful runs count. Columns: the ``by`` columns, then
    ``<metric>_<stat>`` for each metric and statistic (``mean, median, min, max, std,
    sem, ci95, ci95_low, ci95_high, count, nan``). NaN and ±inf are values: ``nan``
    counts the NaN values of successful runs (a run that recorded no value counts there
    too: the table cannot tell them apart), ``count`` the others, over which the
    statistics are taken (an infinite value makes the mean infinite). ``std`` uses n-1;
    with one replicate std, sem and the interval are NaN. ``by`` and ``metrics`` take
    names as :class:`Results` does (``lr`` or ``param_lr``); metrics default to every
    numeric non-param column.
    """
    _check_stats(stats)
    frame = df[df["status"] == "success"] if "status" in df.columns else df
    columns = list(df.columns)
    by = params_of(columns) if by is None else columns_for(columns, by)
    metrics = _numeric_metrics(frame) if metrics is None else columns_for(columns, metrics)
    keys = [group_key(frame[c]) for c in by] if by else (lambda _: 0)
    parts = []
    for metric in metrics:
        values, nans = _numbers(frame[metric]), _nan_mask(frame[metric])
        part = _stats_of(
            values.groupby(keys, dropna=False, sort=True),
            stats,
            nans.groupby(keys, dropna=False, sort=True),
        )
        part.columns = [f"{metric}_{s}" for s in part.columns]
        parts.append(part)
    if not parts:
        index = frame[by].drop_duplicates().sort_values(by) if by else pd.DataFrame(index=[0])
        return index.reset_index(drop=True)
    out = pd.concat(parts, axis=1)
    return out.reset_index(drop=not by) if by else out.reset_index(drop=True)


def aggregate_steps(
    steps: pd.DataFrame,
    runs: pd.DataFrame | None = None,
    by: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    stats: Sequence[str] = DEFAULT_STATS,
) -> pd.DataFrame:
    """Statistics per step of stepped metrics (``summary/steps.parquet``: run_id, name,
    step, value), over the runs of each ``by`` group (columns of ``runs``, joined on
    run_id; default: every ``param_*`` column of ``runs``, or all runs together when
    ``runs`` is None). Columns: the ``by`` columns, ``name``, ``step``, then one column
    per statistic of ``value`` (``mean``, ``std``, ``ci95``...)."""
    _check_stats(stats)
    frame = steps if names is None else steps[steps["name"].isin(list(names))]
    by = (
        []
        if runs is None
        else ([c for c in runs.columns if c.startswith("param_")] if by is None else list(by))
    )
    if runs is not None:
        keep = runs[runs["status"] == "success"] if "status" in runs.columns else runs
        frame = frame.merge(keep[["run_id", *by]], on="run_id", how="inner")
    keys = [frame[c] for c in [*by, "name", "step"]]
    values = pd.to_numeric(frame["value"], errors="coerce")
    grouped = values.groupby(keys, dropna=False, sort=True)
    nans = values.isna().groupby(keys, dropna=False, sort=True)
    return _stats_of(grouped, stats, nans).reset_index()
