"""When an axis is logarithmic by default: params whose values span two decades or more
with a constant ratio (a log grid), and positive metrics spanning three decades or more.
Every chart also has a toggle; this only picks the starting point."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["log_grid", "log_values", "smooth"]


def _positive(values: Iterable[object]) -> np.ndarray | None:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    array = np.asarray(numbers, dtype=float)
    array = array[np.isfinite(array)]
    return array if len(array) and (array > 0).all() else None


def log_grid(values: Iterable[object]) -> bool:
    """Distinct positive values (3 or more) with a constant ratio spanning >= 2 decades."""
    array = _positive(values)
    if array is None:
        return False
    distinct = np.unique(array)
    if len(distinct) < 3 or distinct[-1] / distinct[0] < 100:
        return False
    ratios = np.log(distinct[1:] / distinct[:-1])
    return bool(np.allclose(ratios, ratios[0], rtol=0.05))


def log_values(values: Iterable[object]) -> bool:
    """Positive values spanning >= 3 decades."""
    array = _positive(values)
    return array is not None and float(array.max() / array.min()) >= 1000


def smooth(values: list[float | None], weight: float) -> list[float | None]:
    """Exponential moving average (TensorBoard's, debiased); None and non-finite values
    are passed through and do not enter the average."""
    if weight <= 0:
        return values
    out: list[float | None] = []
    last, norm = 0.0, 0.0
    for value in values:
        if value is None or not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        norm = norm * weight + (1 - weight)
        out.append(last / norm)
    return out
