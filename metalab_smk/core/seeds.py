"""Seeds: every random stream of a run derives from (root_seed, replicate_index)."""

from __future__ import annotations

import hashlib
import random as _random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from metalab_smk.core.values import is_int, is_numpy_scalar, numpy_to_python
from metalab_smk.errors import ParamError

__all__ = ["SeedBundle", "SeedPlan", "seeds"]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class SeedBundle:
    """The seeds of one run. ``derive(name)`` gives independent 64-bit seeds per name."""

    root_seed: int
    replicate_index: int | None = 0

    def derive(self, name: str = "default") -> int:
        """64-bit seed for the stream ``name`` (sha256 of ``root:name:replicate``)."""
        return _hash64(f"{self.root_seed}:{name}:{self.replicate_index or 0}")

    def rng(self, name: str = "default") -> _random.Random:
        """A ``random.Random`` seeded for stream ``name``."""
        return _random.Random(self.derive(name))

    def numpy(self, name: str = "default") -> Any:
        """A ``numpy.random.Generator`` seeded with the full 64-bit ``derive(name)``."""
        import numpy as np

        return np.random.default_rng(self.derive(name))

    def numpy_seed(self, name: str = "default") -> int:
        """A 32-bit seed for APIs that need one (``derive(name) % 2**32``)."""
        return self.derive(name) % 2**32

    def to_dict(self) -> dict[str, int | None]:
        return {"root_seed": self.root_seed, "replicate_index": self.replicate_index}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedBundle:
        return cls(int(data["root_seed"]), data.get("replicate_index"))

    @classmethod
    def for_preprocessing(cls, base: int) -> SeedBundle:
        """Seeds for work shared by all runs (data generation), independent of replicates."""
        return cls(_hash64(f"{base}:preprocessing:0"), None)


def _check_int(name: str, value: Any, minimum: int | None = None) -> int:
    if not is_int(value):
        if is_numpy_scalar(value):
            value = numpy_to_python(value)
        if not is_int(value):
            raise ParamError(f"seeds({name}=...) must be an int, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ParamError(f"seeds({name}={value}) must be at least {minimum}.")
    return value


@dataclass(frozen=True)
class SeedPlan:
    """``replicates`` seed bundles sharing one base seed."""

    base: int
    replicates: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", _check_int("base", self.base))
        object.__setattr__(self, "replicates", _check_int("replicates", self.replicates, 1))

    @property
    def base_seed(self) -> int:
        """Upstream's name for ``base``."""
        return self.base

    def __len__(self) -> int:
        return self.replicates

    def __getitem__(self, index: int) -> SeedBundle:
        if index < 0:
            index += self.replicates
        if not 0 <= index < self.replicates:
            raise IndexError(f"replicate {index} out of range [0, {self.replicates})")
        return SeedBundle(self.base, index)

    def __iter__(self) -> Iterator[SeedBundle]:
        return (SeedBundle(self.base, i) for i in range(self.replicates))

    def to_manifest(self) -> dict[str, Any]:
        return {"type": "SeedPlan", "base": self.base, "replicates": self.replicates}

    def to_manifest_dict(self) -> dict[str, Any]:
        """Upstream's name for ``to_manifest``."""
        return self.to_manifest()

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> SeedPlan:
        return cls(data["base"], data["replicates"])


def seeds(base: int, replicates: int = 1) -> SeedPlan:
    """``replicates`` seed bundles from ``base`` (replicate indices 0..replicates-1)."""
    return SeedPlan(base, replicates)
