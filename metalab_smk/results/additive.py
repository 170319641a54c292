"""Parameter importance where the sweep is not a full grid (random search, a partial grid):
an additive model of the case means, each param's effect adjusted for the others.

The model is fitted to the mean of each case over its seed replicates, weighted by the
number of replicates, so its sums of squares are in the units of the run-level ANOVA and
compare directly with the seed noise (the variance between replicates of one case). Each
param enters as levels: its values, or, for a numeric param with more distinct values
than ``bins``, ``bins`` quantile bins of the cases' values (the same bins on a log scale,
since quantiles do not depend on a monotone transform). A param's sum of squares is what
the residual grows by when it is dropped from the model (Type II); what the additive
model leaves between the cases is their interactions (and the variation inside a bin).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["AdditiveFit", "default_bins", "fit_additive", "levels"]


@dataclass(frozen=True)
class AdditiveFit:
    """``effects``: param -> (sum of squares, degrees of freedom); ``residual``: the sum
    of squares between cases the model leaves, on ``residual_df``."""

    effects: dict[str, tuple[float, int]]
    residual: float
    residual_df: int


def default_bins(n_cases: int, n_params: int) -> int:
    """About sqrt(cases per param) bins, 2 to 10: every bin holds several cases and the
    model leaves degrees of freedom for its residual."""
    return int(min(10, max(2, round(math.sqrt(n_cases / max(n_params, 1))))))


def levels(values: pd.Series, bins: int) -> tuple[np.ndarray, int, bool]:
    """(level code of each case, number of levels, binned?): the distinct values, or the
    quantile bins of a numeric param with more than ``bins`` distinct values."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > bins:
        codes = pd.qcut(values.rank(method="first"), q=bins, labels=False)
        return np.asarray(codes, dtype=int), bins, True
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes, len(uniques), False


def _rss(design: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Residual sum of squares and rank of a least-squares fit (rows already weighted)."""
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    return float(residual @ residual), int(rank)


def fit_additive(
    means: np.ndarray, weights: np.ndarray, codes: Mapping[str, np.ndarray]
) -> AdditiveFit:
    """Weighted least squares of ``means`` on an intercept and one indicator per level
    of each param (its first level left out); Type II sums of squares of each param."""
    root = np.sqrt(weights.astype(float))
    y = root * means
    blocks = {
        name: (code[:, None] == np.arange(1, int(code.max()) + 1)[None, :]).astype(float)
        for name, code in codes.items()
    }

    def design(without: str | None) -> np.ndarray:
        parts = [np.ones((len(means), 1))] + [b for n, b in blocks.items() if n != without]
        return root[:, None] * np.hstack(parts)

    full, rank = _rss(design(None), y)
    effects = {}
    for name in blocks:
        reduced, reduced_rank = _rss(design(name), y)
        effects[name] = (max(0.0, reduced - full), rank - reduced_rank)
    return AdditiveFit(effects, max(0.0, full), len(means) - rank)
