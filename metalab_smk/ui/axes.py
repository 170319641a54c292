"""When an axis is logarithmic by default: params drawn from a log-uniform random source
or whose values span two decades or more with a constant ratio (a log grid), and positive
metrics spanning three decades or more. Every chart also has a toggle; this only picks
the starting point."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["LOG_DISTRIBUTIONS", "log_grid", "log_params", "log_values", "smooth"]

LOG_DISTRIBUTIONS = ("LogUniform", "LogUniformInt")


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


def log_params(manifest: Any) -> set[str]:
    """The ``param_*`` columns an experiment's param manifest draws log-uniformly
    (``random(space={"lr": loguniform(...)})``, also inside a resolved source)."""
    found: set[str] = set()
    if isinstance(manifest, dict):
        space = manifest.get("space") if manifest.get("type") == "RandomSource" else None
        for name, dist in (space or {}).items():
            if isinstance(dist, dict) and dist.get("type") in LOG_DISTRIBUTIONS:
                found.add(f"param_{name}")
        for value in manifest.values():
            found |= log_params(value)
    elif isinstance(manifest, list):
        for value in manifest:
            found |= log_params(value)
    return found


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
