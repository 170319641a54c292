"""Server-side table view: run-ID prefix search, filters, sorting and paging of a runs table.

A filter is ``(column, op, value)`` with op one of ``= != < <= > >= ~`` (``~``: contains,
case-insensitive); the value is compared as a number when the column is numeric.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metalab_smk.errors import MetalabError
from metalab_smk.results.summary import RESERVED_COLUMNS

__all__ = ["OPS", "TableQuery", "columns_of", "jsonable", "run_query"]

OPS = ("=", "!=", "<", "<=", ">", ">=", "~")
MAX_LIMIT = 1000


class BadQuery(MetalabError):
    """A table request naming an unknown column or operator."""


@dataclass
class TableQuery:
    """One view of a runs table (what the URL of the runs page holds)."""

    search: str = ""
    status: str = ""
    filters: list[tuple[str, str, str]] = field(default_factory=list)
    sort: str = ""
    desc: bool = False
    offset: int = 0
    limit: int = 50
    columns: list[str] = field(default_factory=list)

    @classmethod
    def from_params(cls, params: Any) -> TableQuery:
        """From URL query parameters (``q, status, filter (JSON list), sort, desc,
        offset, limit, columns (comma list)``)."""
        try:
            raw = json.loads(params.get("filter") or "[]")
            filters = [(str(c), str(o), str(v)) for c, o, v in raw]
            offset = max(0, int(params.get("offset") or 0))
            limit = min(MAX_LIMIT, max(1, int(params.get("limit") or 50)))
        except (ValueError, TypeError) as exc:
            raise BadQuery(f"bad table query: {exc}") from None
        columns = [c for c in (params.get("columns") or "").split(",") if c]
        return cls(
            search=(params.get("q") or "").strip().lower(),
            status=params.get("status") or "",
            filters=filters,
            sort=params.get("sort") or "",
            desc=(params.get("desc") or "") in ("1", "true"),
            offset=offset,
            limit=limit,
            columns=columns,
        )


def columns_of(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The table's columns by kind: params, metrics (numeric first), record columns."""
    params = [c for c in frame.columns if c.startswith("param_")]
    metrics = [c for c in frame.columns if c not in RESERVED_COLUMNS and c not in params]
    numeric = [c for c in metrics if pd.api.types.is_numeric_dtype(frame[c])]
    record = [c for c in RESERVED_COLUMNS if c in frame.columns]
    return {
        "params": params,
        "metrics": numeric + [c for c in metrics if c not in numeric],
        "numeric": [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])],
        "record": record,
    }


def _condition(frame: pd.DataFrame, column: str, op: str, value: str) -> pd.Series:
    if column not in frame.columns:
        raise BadQuery(f"no column {column!r} to filter on")
    if op not in OPS:
        raise BadQuery(f"unknown filter operator {op!r}; use one of {' '.join(OPS)}")
    series = frame[column]
    if op == "~":
        return series.astype(str).str.contains(value, case=False, regex=False, na=False)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        try:
            wanted: Any = float(value)
        except ValueError:
            raise BadQuery(f"{column} is numeric; {value!r} is not a number") from None
    else:
        series = series.astype(str)
        wanted = value
    return {
        "=": series.__eq__,
        "!=": series.__ne__,
        "<": series.__lt__,
        "<=": series.__le__,
        ">": series.__gt__,
        ">=": series.__ge__,
    }[op](wanted).fillna(False)


def view_mask(frame: pd.DataFrame, query: TableQuery) -> np.ndarray | None:
    """Which rows the search, status and filters keep (None: all of them)."""
    mask = np.ones(len(frame), dtype=bool)
    if query.search:
        mask &= frame["run_id"].str.startswith(query.search).to_numpy(dtype=bool)
    if query.status:
        mask &= (frame["status"] == query.status).to_numpy(dtype=bool)
    for column, op, value in query.filters:
        mask &= _condition(frame, column, op, value).to_numpy(dtype=bool)
    return None if mask.all() else mask


def sort_order(frame: pd.DataFrame, column: str, desc: bool) -> np.ndarray:
    """Row positions sorted by ``column`` (stable, missing values last); only the one
    column is sorted, never the whole table."""
    if column not in frame.columns:
        raise BadQuery(f"no column {column!r} to sort by")
    series = frame[column].reset_index(drop=True)
    try:
        ordered = series.sort_values(ascending=not desc, na_position="last", kind="stable")
    except TypeError:  # mixed types: compare as text, missing values still last
        text = series.map(lambda v: None if v is None or v != v else str(v))
        ordered = text.sort_values(ascending=not desc, na_position="last", kind="stable")
    return ordered.index.to_numpy()


class SortCache:
    """The sort orders of the last few (table, column, direction): paging through a
    sorted view of 100,000 runs sorts once. Entries hold their table, so a hit is exact."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._items: OrderedDict[tuple[int, str, bool], tuple[pd.DataFrame, np.ndarray]] = (
            OrderedDict()
        )

    def order(self, frame: pd.DataFrame, column: str, desc: bool) -> np.ndarray:
        key = (id(frame), column, desc)
        hit = self._items.get(key)
        if hit is not None and hit[0] is frame:
            self._items.move_to_end(key)
            return hit[1]
        result = sort_order(frame, column, desc)
        self._items[key] = (frame, result)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return result


def view_positions(
    frame: pd.DataFrame, query: TableQuery, sorter: SortCache | None = None
) -> np.ndarray | None:
    """Row positions of the view in display order (None: every row, in table order)."""
    mask = view_mask(frame, query)
    if not query.sort:
        return None if mask is None else np.flatnonzero(mask)
    order = (sorter.order if sorter else sort_order)(frame, query.sort, query.desc)
    return order if mask is None else order[mask[order]]


def view_frame(
    frame: pd.DataFrame, query: TableQuery, sorter: SortCache | None = None
) -> pd.DataFrame:
    """Filtered and sorted rows (all of them: what export writes and plots use)."""
    positions = view_positions(frame, query, sorter)
    return frame if positions is None else frame.iloc[positions]


def default_columns(frame: pd.DataFrame, max_metrics: int = 6) -> list[str]:
    kinds = columns_of(frame)
    return ["run_id", "status", *kinds["params"], *kinds["metrics"][:max_metrics], "duration_ms"]


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/±inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _shown(value: Any) -> Any:
    """A cell of a successful run: NaN and ±inf are values it recorded, shown as such."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("inf" if value > 0 else "-inf")
    return jsonable(value)


def run_query(
    frame: pd.DataFrame, query: TableQuery, sorter: SortCache | None = None
) -> dict[str, Any]:
    """One page of the view: ``{total, offset, limit, columns, rows}`` (rows as lists)."""
    positions = view_positions(frame, query, sorter)
    total = len(frame) if positions is None else len(positions)
    columns = [c for c in (query.columns or default_columns(frame)) if c in frame.columns]
    if "run_id" not in columns:
        columns.insert(0, "run_id")
    window = slice(query.offset, query.offset + query.limit)
    rows_at = np.arange(len(frame))[window] if positions is None else positions[window]
    page = frame.iloc[rows_at, [frame.columns.get_loc(c) for c in columns]]
    ok = (
        (frame["status"].iloc[rows_at] == "success").tolist()
        if "status" in frame.columns
        else [True] * len(page)
    )
    metric = [c in columns_of(page)["metrics"] for c in columns]
    rows = [
        [_shown(v) if m else jsonable(v) for v, m in zip(row, metric, strict=True)]
        if good
        else jsonable(list(row))
        for row, good in zip(page.itertuples(index=False, name=None), ok, strict=True)
    ]
    return {
        "total": total,
        "all": len(frame),
        "offset": query.offset,
        "limit": query.limit,
        "columns": columns,
        "rows": rows,
    }


def export_columns(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    chosen = [c for c in columns if c in frame.columns] or list(frame.columns)
    return chosen if "run_id" in chosen else ["run_id", *chosen]
