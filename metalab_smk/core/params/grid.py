"""grid(): the Cartesian product of value lists, keys sorted, last key fastest."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from metalab_smk.core.identity import encode, sha16
from metalab_smk.core.params.source import ParamCase, ParamSource, check_value
from metalab_smk.core.values import is_numpy, numpy_to_python
from metalab_smk.errors import ParamError

__all__ = ["GridSource", "grid"]


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
    for position, item in enumerate(items):
        check_value(item, f"{name}[{position}]")
    return items


class GridSource(ParamSource):
    """Every combination of the given value lists."""

    manifest_type = "GridSource"

    def __init__(self, **values: Any) -> None:
        self._keys = sorted(values)
        self._values = [_as_value_list(key, values[key]) for key in self._keys]
        self._size = 1
        for items in self._values:
            self._size *= len(items)
        # canonical JSON of each key and value, so a case's ID is one join and one hash
        self._key_json = [json.dumps(key) + ":" for key in self._keys]
        self._value_json = [
            [json.dumps(encode(v), sort_keys=True, separators=(",", ":")) for v in items]
            for items in self._values
        ]

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

    def to_manifest(self) -> dict[str, Any]:
        return {"type": self.manifest_type, "spec": self.spec, "total_cases": self._size}

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> GridSource:
        return cls(**data["spec"])


def grid(**values: Any) -> GridSource:
    """Cartesian product of value lists: ``grid(lr=[0.1, 0.01], depth=[2, 4])``."""
    return GridSource(**values)
