"""Parameter importance where the sweep is not a full grid (random search, a partial grid):
an additive model of the case means, each param's effect adjusted for the others.

The model is fitted to the mean of each case over its seed replicates, weighted by the
number of replicates, so its sums of squares are in the units of the run-level ANOVA and
compare directly with the seed noise (the variance between replicates of one case). A
categorical param enters as one indicator per value; a numeric one as a polynomial of
degree ``min(3, distinct values - 1)`` in its rank among the cases (scaled to [-1, 1]):
the same fit as indicators when it has at most 4 values, a smooth curve when it has many
(a random search), and the same on a log scale, since ranks do not depend on a monotone
transform. A param's sum of squares is what the residual grows by when it is dropped from
the model (Type II); what the additive model leaves between the cases is their
interactions (and any wiggle a cubic does not follow).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["MAX_DEGREE", "AdditiveFit", "basis", "fit_additive"]

MAX_DEGREE = 3


@dataclass(frozen=True)
class AdditiveFit:
    """``effects``: param -> (sum of squares, degrees of freedom); ``residual``: the sum
    of squares between cases the model leaves, on ``residual_df``."""

    effects: dict[str, tuple[float, int]]
    residual: float
    residual_df: int


def basis(values: pd.Series, degree: int = MAX_DEGREE) -> tuple[np.ndarray, str]:
    """(columns of ``values``' effect, the kind of effect): indicators of a categorical
    param's values (the first left out), or powers 1..d of a numeric param's rank
    scaled to [-1, 1]."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    distinct = values.nunique()
    if not numeric or values.isna().any():  # a missing value is a level of its own
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        return (codes[:, None] == np.arange(1, len(uniques))[None, :]).astype(float), "levels"
    rank = values.rank(method="dense").to_numpy(float)
    u = 2 * (rank - 1) / max(distinct - 1, 1) - 1
    d = min(degree, distinct - 1)
    return np.column_stack([u**k for k in range(1, d + 1)]), f"degree {d}"


def _rss(design: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Residual sum of squares and rank of a least-squares fit (rows already weighted)."""
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    return float(residual @ residual), int(rank)


def fit_additive(
    means: np.ndarray, weights: np.ndarray, blocks: Mapping[str, np.ndarray]
) -> AdditiveFit:
    """Weighted least squares of ``means`` on an intercept and each param's ``basis``
    columns; Type II sums of squares of each param."""
    root = np.sqrt(weights.astype(float))
    y = root * means

    def design(without: str | None) -> np.ndarray:
        parts = [np.ones((len(means), 1))] + [b for n, b in blocks.items() if n != without]
        return root[:, None] * np.hstack(parts)

    full, rank = _rss(design(None), y)
    effects = {}
    for name in blocks:
        reduced, reduced_rank = _rss(design(name), y)
        effects[name] = (max(0.0, reduced - full), rank - reduced_rank)
    return AdditiveFit(effects, max(0.0, full), len(means) - rank)
