"""Derived metrics: ``fn(run) -> dict`` computed after the runs, stored per run in
``derived/<run_id>.json``; they never change a run ID (upstream's ``metalab.derived``)."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from metalab_smk.core.params.resolver import callable_from_reference
from metalab_smk.errors import MetalabError
from metalab_smk.store.jsonio import atomic_write_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.safepath import check_run_id, read_json_inside

__all__ = [
    "DerivedMetricFn",
    "compute_derived_for_run",
    "get_func_ref",
    "import_derived_metric",
    "normalise_functions",
    "read_derived",
    "store_derived",
]

logger = logging.getLogger(__name__)

DerivedMetricFn = Callable[[Any], Mapping[str, Any]]


def get_func_ref(func: Callable[..., Any]) -> str:
    """``module:qualname`` of an importable function (lambdas and local functions refused)."""
    module, name = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if not module or not name or "<lambda>" in name or "<locals>" in name:
        raise MetalabError(
            f"derived metric {func!r} is not importable; define it at module level "
            "(not a lambda or a nested function)."
        )
    return f"{module}:{name}"


def import_derived_metric(ref: str) -> DerivedMetricFn:
    """The function behind ``module:qualname``."""
    _, sep, name = ref.partition(":")
    if not sep or not name:
        raise MetalabError(f"derived metric reference {ref!r}: expected 'module:function'.")
    return callable_from_reference(ref)


def normalise_functions(
    metrics: Iterable[str | DerivedMetricFn] | Mapping[str, Callable[[Any], Any]] | None,
) -> list[DerivedMetricFn]:
    """Functions from upstream's forms: callables or ``'module:func'`` references; a
    ``{name: fn}`` mapping (``fn(run)`` returns one value) is accepted too."""
    if not metrics:
        return []
    if isinstance(metrics, Mapping):
        return [_named(name, fn) for name, fn in metrics.items()]
    functions = []
    for metric in metrics:
        if isinstance(metric, str):
            functions.append(import_derived_metric(metric))
        elif callable(metric):
            functions.append(metric)
        else:
            raise MetalabError(f"derived_metrics: {metric!r} is neither a function nor 'mod:fn'.")
    return functions


def _named(name: str, fn: Callable[[Any], Any]) -> DerivedMetricFn:
    def one(run: Any) -> dict[str, Any]:
        return {name: fn(run)}

    one.__name__ = name
    return one


def _clean(value: Any) -> Any:
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON: NaN/Inf are stored as null
    return value


def compute_derived_for_run(run: Any, functions: list[DerivedMetricFn]) -> dict[str, Any]:
    """Merged results of ``functions`` on ``run``; a failing function is skipped with a
    warning naming it (like upstream)."""
    derived: dict[str, Any] = {}
    for fn in functions:
        try:
            values = fn(run) or {}
            if not isinstance(values, Mapping):
                raise TypeError(f"returned {type(values).__name__}, expected a dict")
            derived.update({str(k): _clean(v) for k, v in values.items()})
        except Exception as exc:
            name = getattr(fn, "__name__", repr(fn))
            print(
                f"metalab: derived metric {name!r} failed for run {run.run_id}: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
    return derived


def store_derived(layout: ExperimentDir, run_id: str, values: dict[str, Any]) -> None:
    atomic_write_json(layout.derived(check_run_id(run_id)), values)


def read_derived(layout: ExperimentDir, run_id: str) -> dict[str, Any] | None:
    """The stored derived metrics of ``run_id`` (None when there are none)."""
    path = layout.derived(check_run_id(run_id))
    return read_json_inside(layout.run_root(run_id), path) if path.is_file() else None
