"""grid(): the Cartesian product of value lists, keys sorted, last key fastest."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from metalab_smk.errors import ParamError
from metalab_smk.params.source import ParamCase, ParamSource, check_value

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
    if hasattr(values, "tolist") and type(values).__module__ == "numpy":
        values = values.tolist()
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

    @property
    def spec(self) -> dict[str, list[Any]]:
        return dict(zip(self._keys, self._values, strict=True))

    def __len__(self) -> int:
        return self._size

    def _case(self, index: int) -> ParamCase:
        chosen: list[Any] = [None] * len(self._keys)
        for position in range(len(self._keys) - 1, -1, -1):
            items = self._values[position]
            index, digit = divmod(index, len(items))
            chosen[position] = items[digit]
        return ParamCase.of(dict(zip(self._keys, chosen, strict=True)))

    def __iter__(self) -> Iterator[ParamCase]:
        for combo in itertools.product(*self._values):
            yield ParamCase.of(dict(zip(self._keys, combo, strict=True)))

    def to_manifest(self) -> dict[str, Any]:
        return {"type": self.manifest_type, "spec": self.spec, "total_cases": self._size}

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> GridSource:
        return cls(**data["spec"])


def grid(**values: Any) -> GridSource:
    """Cartesian product of value lists: ``grid(lr=[0.1, 0.01], depth=[2, 4])``."""
    return GridSource(**values)
