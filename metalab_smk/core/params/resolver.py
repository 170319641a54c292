"""with_resolver(): derive or validate parameters from each raw case."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from metalab_smk.core.params.source import ParamCase, ParamSource, check_value, source_from_manifest
from metalab_smk.errors import ParamError

__all__ = ["ResolvedSource", "callable_from_reference", "callable_reference", "with_resolver"]

Resolver = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def callable_reference(obj: Any) -> str:
    """``module:qualname`` of an importable function or object."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    if "<" in qualname:
        raise ParamError(
            f"{qualname} cannot be referenced from a compiled experiment (it is a lambda or "
            "defined inside a function); define it at module level."
        )
    return f"{module}:{qualname}"


def callable_from_reference(reference: str) -> Any:
    """Import the object a ``module:qualname`` reference names."""
    module_name, _, qualname = reference.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class ResolvedSource(ParamSource):
    """Applies ``resolver(context_meta, params)`` (or ``resolver.resolve(...)``) per case."""

    manifest_type = "ResolvedSource"

    def __init__(
        self,
        source: ParamSource,
        resolver: Resolver | Any,
        context_meta: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(source, ParamSource):
            raise ParamError(
                f"with_resolver(source={source!r}): expected a param source such as grid(...)."
            )
        method = getattr(resolver, "resolve", None)
        self._apply: Resolver = method if callable(method) else resolver
        if not callable(self._apply):
            raise ParamError(
                "with_resolver(resolver=...) expects a function (context_meta, params) -> "
                "params or an object with a resolve(context_meta, params) method."
            )
        self._source = source
        self._resolver = resolver
        self._context_meta = dict(context_meta or {})

    @property
    def source(self) -> ParamSource:
        return self._source

    def __len__(self) -> int:
        return len(self._source)

    def _resolve(self, index: int, case: ParamCase) -> ParamCase:
        resolved = self._apply(self._context_meta, dict(case.params))
        if not isinstance(resolved, dict):
            raise ParamError(
                f"the param resolver returned {type(resolved).__name__} for case {index} "
                f"({case.params!r}); it must return a dict of parameters."
            )
        check_value(resolved, f"resolved case {index}")
        return ParamCase.of(resolved, case.tags)

    def _case(self, index: int) -> ParamCase:
        return self._resolve(index, self._source[index])

    def __iter__(self):
        return (self._resolve(i, case) for i, case in enumerate(self._source))

    def to_manifest(self) -> dict[str, Any]:
        return {
            "type": self.manifest_type,
            "source": self._source.to_manifest(),
            "resolver": callable_reference(self._resolver),
            "context_meta": self._context_meta,
        }

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> ResolvedSource:
        return cls(
            source_from_manifest(data["source"]),
            callable_from_reference(data["resolver"]),
            data.get("context_meta"),
        )


def with_resolver(
    source: ParamSource, resolver: Resolver | Any, context_meta: dict[str, Any] | None = None
) -> ResolvedSource:
    """Wrap ``source`` so each case's params pass through ``resolver`` first."""
    return ResolvedSource(source, resolver, context_meta)
