"""ParamCase and the ParamSource contract shared by all parameter sources."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from metalab_smk.core.identity import encode, fingerprint
from metalab_smk.core.values import is_int
from metalab_smk.errors import ParamError

__all__ = ["ParamCase", "ParamSource", "check_value", "source_from_manifest"]


@dataclass(frozen=True)
class ParamCase:
    """One parameter combination; ``case_id`` is the fingerprint of its params."""

    params: dict[str, Any]
    case_id: str
    tags: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, params: dict[str, Any], tags: list[str] | None = None) -> ParamCase:
        return cls(params, fingerprint(params), list(tags or []))


def check_value(value: Any, where: str) -> None:
    """Raise a ParamError naming ``where`` when ``value`` has no canonical form."""
    try:
        encode(value, where)
    except ValueError as exc:
        raise ParamError(str(exc)) from None


class ParamSource:
    """A sized, indexable sequence of ParamCases; ``source[i]`` is O(1) and equals the
    i-th case of iteration. Subclasses implement ``__len__``, ``_case`` and the manifest."""

    manifest_type: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[ParamSource]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.manifest_type:
            ParamSource._registry[cls.manifest_type] = cls

    def __len__(self) -> int:
        raise NotImplementedError

    def _case(self, index: int) -> ParamCase:
        raise NotImplementedError

    def __getitem__(self, index: int) -> ParamCase:
        if not is_int(index):
            raise TypeError(f"param source indices are ints, got {type(index).__name__}")
        size = len(self)
        position = index + size if index < 0 else index
        if not 0 <= position < size:
            raise IndexError(f"param case {index} out of range for {size} cases")
        return self._case(position)

    def __iter__(self) -> Iterator[ParamCase]:
        return (self._case(i) for i in range(len(self)))

    def case_ids(self) -> Iterator[str]:
        """Every case ID in order (sources may compute them without building cases)."""
        return (case.case_id for case in self)

    def table_key(self) -> str | None:
        """A digest of everything the case IDs are computed from, when the source can
        give one without building its cases (then an unchanged recompile need not
        recompute the run table); None otherwise."""
        return None

    def to_manifest(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_manifest_dict(self) -> dict[str, Any]:
        """Upstream's name for ``to_manifest``."""
        return self.to_manifest()

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> ParamSource:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} cases)"


def source_from_manifest(data: dict[str, Any]) -> ParamSource:
    """Rebuild any param source from its ``to_manifest()`` dict."""
    kind = data.get("type")
    source_cls = ParamSource._registry.get(kind or "")
    if source_cls is None:
        known = ", ".join(sorted(ParamSource._registry))
        raise ParamError(f"unknown param source type {kind!r} in manifest; known: {known}.")
    return source_cls.from_manifest(data)
