"""Column types of the summary, and how they survive parquet.

Each column of the summary gets one type from the values its records hold:

* all ``bool`` -> ``bool`` (``boolean`` when some runs lack the value);
* all ``int`` within 64 bits -> ``int64`` (nullable ``Int64`` when some runs lack it);
* all ``float`` -> ``float64`` (NaN and ±inf are values: a metric NaN in every run is a
  ``float64`` column of NaN); all ``str`` -> strings;
* a metric mixing ints and floats -> ``float64`` (a param keeps each value exactly);
* anything else -- ints beyond 64 bits, bools mixed with numbers, strings mixed with
  numbers, ints mixed with floats in a param -- is an *exact* column: an ``object``
  column of the original Python values, stored in parquet as the JSON text of each
  value with the column named in the file's ``metalab.json_columns`` metadata, and
  decoded on reading. Nothing is rounded, coerced or dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from metalab_smk.store.jsonio import from_strict_json, to_strict_json

__all__ = ["concat_typed", "read_frame", "to_table", "typed_frame"]

JSON_COLUMNS_KEY = b"metalab.json_columns"
_INT64 = (-(2**63), 2**63 - 1)


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


_NULL_TYPES = frozenset({type(None), type(pd.NA)})  # with float's: a null value's types
_PLAIN = {frozenset({str}): "str", frozenset({float}): "float", frozenset({bool}): "bool"}


def _kind(values: list[Any]) -> str:
    """'empty', 'bool', 'int', 'float', 'number', 'str' or 'exact' for non-null values."""
    seen = frozenset(map(type, values))  # one type (the common case): no loop in Python
    if seen in _PLAIN:
        return _PLAIN[seen]
    if seen == {int}:
        return "int" if _INT64[0] <= min(values) and max(values) <= _INT64[1] else "exact"
    return _kind_of_each(values)


def _kind_of_each(values: Iterable[Any]) -> str:
    kinds: set[str] = set()
    big = False
    for value in values:
        kind = type(value)
        if kind is bool or kind is np.bool_:
            kinds.add("bool")
        elif kind is int or isinstance(value, np.integer):
            kinds.add("int")
            if not big and not _INT64[0] <= value <= _INT64[1]:
                big = True
        elif kind is float or isinstance(value, np.floating):
            kinds.add("float")
        elif kind is str:
            kinds.add("str")
        else:
            return "exact"
        if len(kinds) > 1 and kinds != {"int", "float"}:
            return "exact"
    if not kinds:
        return "empty"
    if kinds == {"int", "float"}:
        return "exact" if big else "number"
    return "exact" if big else kinds.pop()


def _typed(column: pd.Series, exact: bool) -> pd.Series:
    """``column`` (any dtype) with the type its values call for (see the module doc)."""
    if column.dtype != object:
        return column
    values = column.tolist()
    if not any(t in _NULL_TYPES or issubclass(t, float) for t in set(map(type, values))):
        present = values
    else:
        present = [v for v in values if not _is_null(v)]
    kind = _kind(present)
    complete = len(present) == len(values)
    if kind == "number" and exact:
        kind = "exact"
    if kind == "bool":
        return column.astype(bool if complete else "boolean")
    if kind == "int":
        return column.astype("int64" if complete else "Int64")
    if kind in ("float", "number"):
        if complete:
            return pd.Series(np.asarray(values, dtype=float), index=column.index)
        return pd.Series([np.nan if _is_null(v) else float(v) for v in values], index=column.index)
    if kind == "empty":
        if any(isinstance(v, float) for v in values):  # NaN values: a float column
            return pd.Series(np.full(len(values), np.nan), index=column.index)
        return pd.Series([None] * len(values), index=column.index, dtype=object)
    cleaned = [None if _is_null(v) else v for v in values]
    return pd.Series(cleaned, index=column.index, dtype=object)


def typed_frame(frame: pd.DataFrame, exact: Callable[[str], bool]) -> pd.DataFrame:
    """``frame`` with every object column given its type; ``exact(name)`` says whether
    ints and floats mixed in that column keep their types (params) or become floats."""
    return pd.DataFrame(
        {name: _typed(frame[name], exact(name)) for name in frame.columns}, index=frame.index
    )


def _missing_like(dtype: Any, length: int) -> pd.Series:
    if pd.api.types.is_bool_dtype(dtype):
        return pd.Series(pd.array([None] * length, dtype="boolean"))
    if pd.api.types.is_integer_dtype(dtype):
        return pd.Series(pd.array([None] * length, dtype="Int64"))
    if pd.api.types.is_float_dtype(dtype):
        return pd.Series(np.full(length, np.nan))
    return pd.Series([None] * length, dtype=object)


def _merge(parts: list[pd.Series], exact: bool) -> pd.Series:
    dtypes = {str(p.dtype) for p in parts}
    if len(dtypes) == 1 and "object" not in dtypes:
        return pd.concat(parts, ignore_index=True)
    if dtypes <= {"int64", "Int64"}:
        return pd.concat([p.astype("Int64") for p in parts], ignore_index=True)
    if dtypes <= {"bool", "boolean"}:
        return pd.concat([p.astype("boolean") for p in parts], ignore_index=True)
    values: list[Any] = []
    for part in parts:
        values.extend(None if _is_null(v) else v for v in part.astype(object).tolist())
    typed = _typed(pd.Series(values, dtype=object), exact)
    if (
        str(typed.dtype) in ("int64", "bool")
        and len(typed)
        and any(str(p.dtype) in ("Int64", "boolean") for p in parts)
    ):
        typed = typed.astype("Int64" if str(typed.dtype) == "int64" else "boolean")
    return typed


def concat_typed(frames: list[pd.DataFrame], exact: Callable[[str], bool]) -> pd.DataFrame:
    """Concatenate typed frames without losing types (an int column stays an int column
    when another part lacks it or has missing values)."""
    frames = [f.reset_index(drop=True) for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    columns: list[str] = []
    for frame in frames:
        columns.extend(c for c in frame.columns if c not in columns)
    merged = {}
    for name in columns:
        parts = []
        for frame in frames:
            if name in frame.columns:
                parts.append(frame[name].reset_index(drop=True))
            else:
                other = next(f[name] for f in frames if name in f.columns)
                parts.append(_missing_like(other.dtype, len(frame)))
        merged[name] = _merge(parts, exact(name)).reset_index(drop=True)
    return pd.DataFrame(merged)


def to_table(frame: pd.DataFrame, metadata: dict[bytes, bytes] | None = None) -> pa.Table:
    """Arrow table of a typed frame; exact (object, not all-string) columns become the
    JSON text of each value, listed in the table's ``metalab.json_columns`` metadata."""
    encoded = {}
    json_columns = []
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object and _kind([v for v in column if v is not None]) not in (
            "str",
            "empty",
        ):
            json_columns.append(name)
            column = column.map(lambda v: None if v is None else to_strict_json(v))
        encoded[name] = column
    table = pa.Table.from_pandas(pd.DataFrame(encoded, index=frame.index), preserve_index=False)
    extra = {JSON_COLUMNS_KEY: json.dumps(json_columns).encode(), **(metadata or {})}
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})


def read_frame(path: Path) -> pd.DataFrame:
    """A summary written by ``to_table``, with exact columns decoded."""
    return frame_of(pq.read_table(path))


def frame_of(table: pa.Table) -> pd.DataFrame:
    """The frame of a table made by ``to_table`` (as ``read_frame`` reads it back)."""
    frame = table.to_pandas()
    meta = table.schema.metadata or {}
    for name in json.loads(meta.get(JSON_COLUMNS_KEY, b"[]")):
        if name in frame.columns:
            frame[name] = pd.Series(
                [None if _is_null(v) else from_strict_json(v) for v in frame[name].tolist()],
                index=frame.index,
                dtype=object,
            )
    return frame
