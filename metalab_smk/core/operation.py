"""The @operation decorator: declared-argument injection and the code fingerprint."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import Any

from metalab_smk.core.identity import fingerprint
from metalab_smk.errors import OperationError

__all__ = ["ARGUMENTS", "Operation", "OperationWrapper", "code_hash", "operation"]

ARGUMENTS = ("context", "params", "seeds", "runtime", "capture")


def code_hash(fn: Callable[..., Any]) -> str:
    """First 16 hex of sha256 of the function's source (decorators included); '' if none."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return ""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def _declared_arguments(fn: Callable[..., Any], name: str) -> tuple[tuple[str, ...], bool]:
    """Names metalab injects into ``fn`` and whether it takes ``**kwargs``."""
    declared: list[str] = []
    takes_all = False
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            takes_all = True
        elif parameter.kind is parameter.VAR_POSITIONAL:
            raise OperationError(
                f"operation {name!r} takes *{parameter.name}; declare the arguments it needs "
                f"by name instead (any of: {', '.join(ARGUMENTS)})."
            )
        elif parameter.name in ARGUMENTS:
            declared.append(parameter.name)
        elif parameter.default is parameter.empty:
            raise OperationError(
                f"operation {name!r} declares argument {parameter.name!r} (an invalid "
                "parameter: metalab cannot provide it); rename it to one of "
                f"{', '.join(ARGUMENTS)} or give it a default value."
            )
    return tuple(declared), takes_all


class Operation:
    """A user function plus its name and code fingerprint; call ``invoke(**available)``."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        code_version: str | None = None,
    ) -> None:
        if not callable(fn):
            raise OperationError(f"operation() expects a function, got {fn!r}.")
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "operation"))
        if code_version is not None and not isinstance(code_version, str):
            raise OperationError(
                f"operation(code_version={code_version!r}) must be a string such as '1'."
            )
        self.code_version = code_version
        self.arguments, self._takes_all = _declared_arguments(fn, self.name)
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def code_fp(self) -> str:
        """Part of every run ID: ``code_version``'s fingerprint if set, else the source hash."""
        if self.code_version is not None:
            return fingerprint(self.code_version)
        return code_hash(self.fn)

    def invoke(self, **available: Any) -> Any:
        """Call the function with the declared subset of ``available``."""
        if self._takes_all:
            return self.fn(**available)
        return self.fn(**{name: available[name] for name in self.arguments})

    @property
    def code_hash(self) -> str:
        """Upstream's name for the code fingerprint that enters every run ID."""
        return self.code_fp

    @property
    def ref(self) -> str:
        """``module:qualname`` of the wrapped function."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def run(
        self,
        context: Any = None,
        params: dict[str, Any] | None = None,
        seeds: Any = None,
        runtime: Any = None,
        capture: Any = None,
    ) -> Any:
        """Upstream's call form: all five arguments, the function gets those it declares."""
        return self.invoke(
            context=context, params=params, seeds=seeds, runtime=runtime, capture=capture
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Operation({self.name})"  # upstream's form


OperationWrapper = Operation  # upstream's class name


def operation(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    code_version: str | None = None,
) -> Any:
    """Mark ``fn`` as an operation: ``@operation``, ``@operation()``, ``@operation(name=...)``."""
    if fn is None:
        return lambda target: Operation(target, name=name, code_version=code_version)
    return Operation(fn, name=name, code_version=code_version)
