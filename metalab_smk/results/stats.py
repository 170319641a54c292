"""Seed-aware statistics of a sweep: how much of a metric's variance each param explains
next to the seed noise between replicates of one case, a paired comparison of two cases
on their shared seeds, and two versions of an experiment compared case by case.

Only successful runs with a finite value count (NaN and ±inf are values, but have no
variance); a *case* is one combination of param values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from metalab_smk.errors import MetalabError
from metalab_smk.results.additive import MAX_DEGREE, basis, fit_additive
from metalab_smk.results.aggregate import group_key, t_quantile_975
from metalab_smk.results.distributions import f_sf, t_two_sided
from metalab_smk.results.names import column_of, params_of

__all__ = ["Comparison", "case_labels", "compare_cases", "compare_versions", "importance"]

SEED_COLUMNS = ("seed_root", "seed_replicate")
Case = Mapping[str, Any] | str


def _text(column: pd.Series) -> pd.Series:
    """Each value as text that keeps ``1``, ``1.0`` and ``True`` apart."""
    codes, uniques = pd.factorize(group_key(column), use_na_sentinel=False)
    names = np.array([v if isinstance(v, str) else "(none)" if v is None or v != v else str(v)
                      for v in uniques], dtype=object)  # fmt: skip
    return pd.Series(names[codes], index=column.index, dtype=object)


def varying_params(frame: pd.DataFrame) -> list[str]:
    """The ``param_*`` columns with more than one value."""
    return [p for p in params_of(frame.columns) if len(pd.unique(group_key(frame[p]))) > 1]


def case_labels(frame: pd.DataFrame, params: Sequence[str] | None = None) -> pd.Series:
    """One label per row naming its case: ``lr=0.01, depth=2`` (the varying params)."""
    params = varying_params(frame) if params is None else list(params)
    if not params:
        return pd.Series("all runs", index=frame.index)
    parts = [p.removeprefix("param_") + "=" + _text(frame[p]) for p in params]
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label


def _finite(frame: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.Series]:
    """Successful runs with a finite value of ``metric`` and those values."""
    column = column_of(list(frame.columns), metric)
    ok = frame[frame["status"] == "success"] if "status" in frame.columns else frame
    values = pd.to_numeric(ok[column], errors="coerce").astype(float)
    keep = np.isfinite(values.to_numpy())
    return ok[keep], values[keep]


FULL_GRID = "main effects of a full grid (ANOVA)"
ADDITIVE = (
    "additive model of the case means (weighted by replicates), each param adjusted for "
    "the others (Type II sums of squares); numeric params as a polynomial of degree <= "
    f"{MAX_DEGREE} in their rank"
)


def importance(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The metric's variance split by param against seed noise (ANOVA sums of squares).

    One row per varying param: ``share`` of the total variance its effect explains,
    ``F`` = its mean square over the seed-noise mean square (within each case, between
    replicates), ``p`` and ``below_noise`` (F <= 1: the param moves the metric no more
    than reseeding does). On a full grid the effects are the main effects; otherwise
    (random search, a partial grid) they come from an additive model of the case means,
    each param adjusted for the others, a numeric param as a polynomial of degree <= 3 in
    its rank (see results/additive.py).
    Then ``interactions`` (what the main effects leave between cases, with its own F)
    and ``seed noise`` (its share of the total). ``frame.attrs``: ``method`` (in words),
    ``noise_sd``, ``full_grid``, ``runs``, ``cases``."""
    ok, y = _finite(frame, metric)
    params = varying_params(ok)
    cases = case_labels(ok, params)
    n = len(y)
    grand = float(y.mean()) if n else math.nan
    total = float(((y - grand) ** 2).sum())
    within = float(((y - y.groupby(cases).transform("mean")) ** 2).sum())
    n_cases = int(cases.nunique())
    df_within = n - n_cases
    noise = within / df_within if df_within > 0 else math.nan
    levels = {p: _text(ok[p]) for p in params}
    full = n_cases == math.prod(v.nunique() for v in levels.values())
    if full:
        method = FULL_GRID
        effects = {
            p: (float(((y.groupby(keys).transform("mean") - grand) ** 2).sum()),
                keys.nunique() - 1, "main effect")
            for p, keys in levels.items()
        }  # fmt: skip
        rest = max(0.0, total - within - sum(e[0] for e in effects.values()))
        rest_df = n_cases - 1 - sum(e[1] for e in effects.values())
    else:
        method = ADDITIVE
        effects, rest, rest_df = _adjusted(ok, y, cases, params)
    rows = [
        _row(p.removeprefix("param_"), kind, ss, df, noise, df_within, levels[p].nunique())
        for p, (ss, df, kind) in effects.items()
    ]
    rows.sort(key=lambda r: -r["ss"])
    if len(params) > 1:
        rows.append(_row("interactions", "interactions", rest, rest_df, noise, df_within))
    rows.append(_row("seed noise", "seed noise", within, 0, noise, df_within))
    out = pd.DataFrame(rows, columns=["source", "kind", "levels", "ss", "F", "p", "below_noise"])
    out.insert(3, "share", out["ss"] / total if total > 0 else math.nan)
    out["below_noise"] = out["below_noise"].astype("boolean")
    out.attrs.update(
        metric=metric, method=method, runs=n, cases=n_cases, noise_sd=math.sqrt(noise),
        full_grid=full,
    )  # fmt: skip
    return out


def _adjusted(
    ok: pd.DataFrame, y: pd.Series, cases: pd.Series, params: list[str]
) -> tuple[dict[str, tuple[float, int, str]], float, int]:
    """Effects of an additive model of the case means (results/additive.py)."""
    keys = cases.to_numpy()
    stats = y.groupby(keys).agg(["mean", "count"])
    values = ok[params].groupby(keys).first().loc[stats.index]
    blocks, kinds = {}, {}
    for p in params:
        blocks[p], shape = basis(values[p])
        kinds[p] = f"adjusted effect ({shape})"
    fit = fit_additive(stats["mean"].to_numpy(float), stats["count"].to_numpy(float), blocks)
    effects = {p: (ss, df, kinds[p]) for p, (ss, df) in fit.effects.items()}
    return effects, fit.residual, fit.residual_df


def _row(
    source: str,
    kind: str,
    ss: float,
    df: int,
    noise: float,
    df_within: int,
    levels: int | None = None,
) -> dict[str, Any]:
    """One line of the importance table; the seed-noise line (df 0) has no F."""
    if df <= 0:
        f = math.nan
    elif noise > 0:
        f = (ss / df) / noise
    else:
        f = math.inf if ss > 0 else math.nan
    return {
        "source": source,
        "kind": kind,
        "levels": levels,
        "ss": ss,
        "F": f,
        "p": f_sf(f, df, df_within) if df_within > 0 and df > 0 else math.nan,
        "below_noise": bool(f <= 1) if not math.isnan(f) else None,
    }  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """Case B against case A on their shared seeds: ``diff`` = mean of (B - A) per seed,
    the Student-t interval (``ci95_*``, ``t``, ``p``) and a percentile bootstrap
    interval of the mean difference (``boot_*``); ``unpaired``: runs without a partner."""

    metric: str
    case_a: str
    case_b: str
    pairs: int
    unpaired: int
    mean_a: float
    mean_b: float
    diff: float
    sd_diff: float
    t: float
    df: int
    p: float
    ci95_low: float
    ci95_high: float
    boot_low: float
    boot_high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pick(frame: pd.DataFrame, labels: pd.Series, case: Case) -> str:
    """The label of ``case`` (a label, or {param: value} naming exactly one case)."""
    known = list(dict.fromkeys(labels.tolist()))
    if isinstance(case, str):
        if case in known:
            return case
        raise MetalabError(f"no case {case!r}; cases: {'; '.join(known[:20])}")
    mask = pd.Series(True, index=frame.index)
    for name, value in case.items():
        column = column_of(list(frame.columns), name)
        text = _text(pd.Series([value], dtype=object)).iloc[0]
        mask &= _text(frame[column]) == text
    found = list(dict.fromkeys(labels[mask].tolist()))
    if len(found) != 1:
        what = "no case" if not found else f"{len(found)} cases"
        raise MetalabError(
            f"{dict(case)} names {what}; name one of: {'; '.join((found or known)[:20])}"
        )
    return found[0]


def compare_cases(
    frame: pd.DataFrame,
    case_a: Case,
    case_b: Case,
    metric: str,
    n_boot: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Paired comparison of two cases (labels or {param: value}) on the seeds both ran."""
    missing = [c for c in SEED_COLUMNS if c not in frame.columns]
    if missing:
        raise MetalabError("these runs carry no seeds to pair (records without seed).")
    ok, y = _finite(frame, metric)
    params = varying_params(frame)
    labels = case_labels(ok, params)
    a, b = _pick(ok, labels, case_a), _pick(ok, labels, case_b)
    sides = []
    for label in (a, b):
        rows = (labels == label).to_numpy()
        seeds = [f"{r}/{i}" for r, i in ok.loc[rows, list(SEED_COLUMNS)].itertuples(index=False)]
        sides.append(pd.Series(y[rows].to_numpy(), index=seeds).groupby(level=0).first())
    side_a, side_b = sides
    shared = side_a.index.intersection(side_b.index)
    d = side_b[shared].to_numpy() - side_a[shared].to_numpy()
    n = len(d)
    if n == 0:
        raise MetalabError(f"cases {a!r} and {b!r} share no seed with a finite {metric}.")
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    se = sd / math.sqrt(n)
    t = mean / se if se > 0 else (math.copysign(math.inf, mean) if mean else math.nan)
    half = t_quantile_975(n - 1) * se
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1) if n > 1 else np.array([mean])
    return Comparison(
        metric=metric,
        case_a=a,
        case_b=b,
        pairs=n,
        unpaired=len(side_a) + len(side_b) - 2 * n,
        mean_a=float(side_a[shared].mean()),
        mean_b=float(side_b[shared].mean()),
        diff=mean,
        sd_diff=sd,
        t=t,
        df=n - 1,
        p=t_two_sided(t, n - 1),
        ci95_low=mean - half,
        ci95_high=mean + half,
        boot_low=float(np.quantile(boot, 0.025)),
        boot_high=float(np.quantile(boot, 0.975)),
    )


def compare_versions(frame_a: pd.DataFrame, frame_b: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Version B against version A, case by case (cases matched on the params both have):
    ``n_a, mean_a, n_b, mean_b, delta`` (B - A), Welch's 95 % interval of the delta
    (``ci95_low``, ``ci95_high``; degrees of freedom rounded down) and ``p``. Cases only
    one version ran are left out."""
    ok_a, y_a = _finite(frame_a, metric)
    ok_b, y_b = _finite(frame_b, metric)
    params = [p for p in params_of(frame_a.columns) if p in frame_b.columns]
    varying = [p for p in params if p in varying_params(pd.concat([ok_a[params], ok_b[params]]))]
    sides = []
    for ok, y in ((ok_a, y_a), (ok_b, y_b)):
        labels = case_labels(ok, varying)
        sides.append(y.groupby(labels).agg(["count", "mean", "var"]))
    stats = sides[0].add_suffix("_a").join(sides[1].add_suffix("_b"), how="inner")
    first = ok_a.assign(case=case_labels(ok_a, varying)).drop_duplicates("case").set_index("case")
    rows = []
    for case, s in stats.iterrows():
        se = math.sqrt(s["var_a"] / s["count_a"] + s["var_b"] / s["count_b"])
        df = _welch_df(s, se)
        delta = s["mean_b"] - s["mean_a"]
        half = t_quantile_975(int(df)) * se if df >= 1 else math.nan
        t = delta / se if se > 0 else math.nan
        rows.append(
            {
                **{p: first.at[case, p] for p in varying},
                "case": case,
                "n_a": int(s["count_a"]),
                "mean_a": s["mean_a"],
                "n_b": int(s["count_b"]),
                "mean_b": s["mean_b"],
                "delta": delta,
                "ci95_low": delta - half,
                "ci95_high": delta + half,
                "p": t_two_sided(t, df) if df >= 1 else math.nan,
            }
        )
    columns = [*varying, "case", "n_a", "mean_a", "n_b", "mean_b", "delta", "ci95_low"]
    return pd.DataFrame(rows, columns=[*columns, "ci95_high", "p"])


def _welch_df(s: pd.Series, se: float) -> float:
    """Welch-Satterthwaite degrees of freedom (NaN when a side has one run)."""
    a, b = s["var_a"] / s["count_a"], s["var_b"] / s["count_b"]
    if s["count_a"] < 2 or s["count_b"] < 2 or se == 0:
        return math.nan
    return se**4 / (a**2 / (s["count_a"] - 1) + b**2 / (s["count_b"] - 1))
