"""grid(): the Cartesian product of value lists, keys sorted, last key fastest."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from typing import Any

from metalab_smk.core.identity import encode, sha16
from metalab_smk.core.naming import check_param_name
from metalab_smk.core.params.source import ParamCase, ParamSource, check_value
from metalab_smk.core.values import is_numpy, numpy_to_python
from metalab_smk.errors import ParamError

__all__ = ["GridSource", "grid"]

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_PLAIN = frozenset((int, str, bool, type(None)))


def _as_value_list(name: str, values: Any) -> list[Any]:
    if isinstance(values, (str, bytes)):
        raise ParamError(
            f"grid({name}={values!r}): expected a list of values, got a string; "
            f"write {name}=[{values!r}] for a single value."
        )
    if isinstance(values, dict):
        raise ParamError(
            f"grid({name}=...): expected a list of values, got a dict; wrap it in a list "
            f"({name}=[{{...}}]) to use the dict as one value."
        )
    if isinstance(values, (set, frozenset)):
        raise ParamError(
            f"grid({name}=...): a set has no order, so run order would be arbitrary; "
            f"pass sorted(...) or a list."
        )
    if is_numpy(values):
        values = numpy_to_python(values)
    try:
        items = list(values)
    except TypeError:
        raise ParamError(
            f"grid({name}={values!r}): expected a list of values, got "
            f"{type(values).__name__}; write {name}=[{values!r}] for a single value."
        ) from None
    if not items:
        raise ParamError(f"grid({name}=[]): the value list is empty; give at least one value.")
    if not set(map(type, items)) <= _PLAIN:  # ints, strings, bools and None always encode
        for position, item in enumerate(items):
            if type(item) not in _PLAIN:
                check_value(item, f"{name}[{position}]")
    return items


def _values_json(items: list[Any]) -> list[str]:
    """Canonical JSON text of each value (a whole axis of ints in one pass)."""
    if set(map(type, items)) == {int}:
        return list(map(repr, items))
    return [_value_json(v) for v in items]


def _value_json(value: Any) -> str:
    """Canonical JSON text of one grid value (ints and strings on a fast path)."""
    if type(value) is int:
        return repr(value)
    if type(value) is str:
        return _CANONICAL.encode(value)
    return _CANONICAL.encode(encode(value))


class GridSource(ParamSource):
    """Every combination of the given value lists."""

    manifest_type = "GridSource"

    def __init__(self, **values: Any) -> None:
        for key in values:
            check_param_name(key, "grid()")
        self._keys = sorted(values)
        self._values = [_as_value_list(key, values[key]) for key in self._keys]
        self._size = 1
        for items in self._values:
            self._size *= len(items)
        # canonical JSON of each key and value, so a case's ID is one join and one hash
        self._key_json = [json.dumps(key) + ":" for key in self._keys]
        self._value_json = [_values_json(items) for items in self._values]

    def _make(self, digits: tuple[int, ...]) -> ParamCase:
        params = {key: self._values[k][digits[k]] for k, key in enumerate(self._keys)}
        text = ",".join(self._key_json[k] + self._value_json[k][d] for k, d in enumerate(digits))
        return ParamCase(params, sha16("{" + text + "}"), [])

    @property
    def spec(self) -> dict[str, list[Any]]:
        return dict(zip(self._keys, self._values, strict=True))

    def __len__(self) -> int:
        return self._size

    def _case(self, index: int) -> ParamCase:
        digits = [0] * len(self._keys)
        for position in range(len(self._keys) - 1, -1, -1):
            index, digits[position] = divmod(index, len(self._values[position]))
        return self._make(tuple(digits))

    def __iter__(self) -> Iterator[ParamCase]:
        for digits in itertools.product(*(range(len(items)) for items in self._values)):
            yield self._make(digits)

    def case_ids(self) -> Iterator[str]:
        """Every case ID in order, without building the cases (what a run table needs):
        ``sha16`` of ``{"key":value,...}``, hashed from pre-encoded parts."""
        sha = hashlib.sha256
        columns = []
        for k, texts in enumerate(self._value_json):
            head = ("{" if k == 0 else "") + self._key_json[k]
            tail = "}" if k == len(self._keys) - 1 else ""
            columns.append([f"{head}{text}{tail}".encode() for text in texts])
        if len(columns) == 1:
            return (sha(text).hexdigest()[:16] for text in columns[0])
        return (sha(b",".join(parts)).hexdigest()[:16] for parts in itertools.product(*columns))

    def table_key(self) -> str | None:
        """The digest of the canonical JSON of every key and value (the case IDs are
        hashed from nothing else); None for a subclass that computes them otherwise."""
        if type(self).case_ids is not GridSource.case_ids:
            return None
        digest = hashlib.sha256(b"GridSource:1\n")
        for key_json, texts in zip(self._key_json, self._value_json, strict=True):
            digest.update(f"{len(texts)}:{key_json}\n".encode())
            digest.update("\n".join(texts).encode())  # JSON texts hold no raw newline
            digest.update(b"\n")
        return digest.hexdigest()

    def to_manifest(self) -> dict[str, Any]:
        return {"type": self.manifest_type, "spec": self.spec, "total_cases": self._size}

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> GridSource:
        return cls(**data["spec"])


def grid(**values: Any) -> GridSource:
    """Cartesian product of value lists: ``grid(lr=[0.1, 0.01], depth=[2, 4])``."""
    return GridSource(**values)
