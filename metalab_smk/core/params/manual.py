"""manual(): an explicit list of parameter dicts."""

from __future__ import annotations

from typing import Any

from metalab_smk.core.naming import check_param_name
from metalab_smk.core.params.source import ParamCase, ParamSource, check_value
from metalab_smk.errors import ParamError

__all__ = ["ManualSource", "manual"]


class ManualSource(ParamSource):
    """The given cases in the given order; each tagged ``manual_<i>``."""

    manifest_type = "ManualSource"

    def __init__(self, cases: list[dict[str, Any]], tags: list[str] | None = None) -> None:
        if isinstance(cases, dict) or not hasattr(cases, "__iter__"):
            raise ParamError("manual(cases) expects a list of dicts, e.g. manual([{'lr': 0.1}]).")
        self._cases = list(cases)
        if not self._cases:
            raise ParamError("manual([]): the case list is empty; give at least one dict.")
        for position, case in enumerate(self._cases):
            if not isinstance(case, dict):
                raise ParamError(
                    f"manual(cases)[{position}] is {type(case).__name__}, not a dict of "
                    "parameter name -> value."
                )
            for key in case:
                check_param_name(key, f"manual(cases)[{position}]")
            check_value(case, f"cases[{position}]")
        if isinstance(tags, str):
            raise ParamError(f"manual(tags={tags!r}) expects a list of strings.")
        self._tags = list(tags or [])

    def __len__(self) -> int:
        return len(self._cases)

    def _case(self, index: int) -> ParamCase:
        return ParamCase.of(dict(self._cases[index]), [*self._tags, f"manual_{index}"])

    def to_manifest(self) -> dict[str, Any]:
        return {
            "type": self.manifest_type,
            "cases": self._cases,
            "tags": self._tags,
            "total_cases": len(self._cases),
        }

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> ManualSource:
        return cls(data["cases"], data.get("tags"))


def manual(cases: list[dict[str, Any]], tags: list[str] | None = None) -> ManualSource:
    """Explicit cases: ``manual([{"lr": 0.1}, {"lr": 0.01}])``."""
    return ManualSource(cases, tags)
