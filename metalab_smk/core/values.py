"""Small value checks shared by every layer: ints that are not bools, numpy values
without importing numpy, UTC timestamps and GPUs per run (docs/architecture.md)."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from typing import Any, TypeGuard


def is_int(value: Any) -> TypeGuard[int]:
    """True for an ``int`` that is not a ``bool`` (``True`` is an int in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_numpy(value: Any) -> bool:
    """True for a numpy scalar or array, checked without importing numpy."""
    return type(value).__module__ == "numpy" and hasattr(value, "tolist")


def is_numpy_scalar(value: Any) -> bool:
    """True for a zero-dimensional numpy value (``np.float32(1)``, ``arr.sum()``)."""
    return is_numpy(value) and getattr(value, "ndim", 1) == 0


def numpy_to_python(value: Any) -> Any:
    """The Python equivalent of a numpy scalar (int, float, bool...) or array (lists)."""
    return value.tolist()


def utc_now() -> str:
    """The current time in UTC, ISO 8601 with offset (how records store time)."""
    return _dt.datetime.now(_dt.UTC).isoformat()


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def control_character(text: str) -> str | None:
    """The first control character (NUL, newline, escape, ...) in ``text``, or None."""
    found = _CONTROL.search(text)
    return None if found is None else found.group()


def gpus_per_run(resources: Mapping[str, Any]) -> int:
    """The GPUs each run asks for: resources ``gpus`` or ``gpu`` (Snakemake's name)."""
    value = resources.get("gpus", resources.get("gpu", 0))
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
