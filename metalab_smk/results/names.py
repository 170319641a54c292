"""Param and metric names of a results table: ``lr`` and ``param_lr`` name the same
column; a name that is neither a param nor a metric is an error listing the valid ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from metalab_smk.errors import UnknownNameError
from metalab_smk.results.summary import RESERVED_COLUMNS

__all__ = ["column_of", "columns_for", "params_of", "metrics_of"]

PARAM = "param_"


def params_of(columns: Iterable[str]) -> list[str]:
    """The ``param_*`` columns."""
    return [c for c in columns if c.startswith(PARAM)]


def metrics_of(columns: Iterable[str]) -> list[str]:
    """Columns that are neither record columns, params nor derived-metric columns."""
    return [
        c for c in columns if c not in RESERVED_COLUMNS and not c.startswith((PARAM, "derived_"))
    ]


def _valid(columns: Sequence[str]) -> str:
    params = ", ".join(c.removeprefix(PARAM) for c in params_of(columns)) or "none"
    metrics = ", ".join(metrics_of(columns)) or "none"
    return f"params: {params}; metrics: {metrics}"


def column_of(columns: Sequence[str], name: str) -> str:
    """The column ``name`` means: a column of the table (a metric, ``param_lr``), else
    a param by its bare name (``lr``); otherwise an UnknownNameError listing the valid
    names."""
    if name in columns:
        return name
    if f"{PARAM}{name}" in columns:
        return f"{PARAM}{name}"
    raise UnknownNameError(f"{name!r} is neither a param nor a metric here ({_valid(columns)})")


def columns_for(columns: Sequence[str], names: Iterable[str]) -> list[str]:
    """``column_of`` of each name."""
    return [column_of(columns, name) for name in names]
