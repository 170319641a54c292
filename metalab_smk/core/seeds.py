"""Seeds: every random stream of a run derives from (root_seed, replicate_index).

``SeedBundle.numpy()`` seeds numpy with 32 bits by default, exactly as upstream metalab
does (``default_rng(derive(name) % 2**32)``), so the same run ID gives the same numbers in
both. 32-bit seeds collide: among N runs the chance that two share a numpy stream is about
``1 - exp(-N**2 / 2**33)`` (1,000 runs: 0.01 %; 10,000: 1.2 %; 77,000: 50 %; 100,000:
69 %). ``seeds(base, replicates, numpy_bits=64)`` seeds numpy with the full 64-bit
``derive(name)`` (100,000 runs: 3e-10); it changes the numbers, so it is part of the run ID.
"""

from __future__ import annotations

import hashlib
import random as _random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from metalab_smk.core.values import is_int, is_numpy_scalar, numpy_to_python
from metalab_smk.errors import ParamError

__all__ = ["NUMPY_BITS", "SeedBundle", "SeedPlan", "seeds"]

NUMPY_BITS = (32, 64)  # accepted numpy_bits; 32 is upstream's and the default


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class SeedBundle:
    """The seeds of one run. ``derive(name)`` gives independent 64-bit seeds per name;
    ``numpy_bits`` is how many of them seed ``numpy()`` (32: upstream's stream)."""

    root_seed: int
    replicate_index: int | None = 0
    numpy_bits: int = 32

    def derive(self, name: str = "default") -> int:
        """64-bit seed for the stream ``name`` (sha256 of ``root:name:replicate``)."""
        return _hash64(f"{self.root_seed}:{name}:{self.replicate_index or 0}")

    def rng(self, name: str = "default") -> _random.Random:
        """A ``random.Random`` seeded for stream ``name``."""
        return _random.Random(self.derive(name))

    def numpy(self, name: str = "default") -> Any:
        """A ``numpy.random.Generator`` for stream ``name``: seeded with ``numpy_seed(name)``
        (upstream's stream), or with the full ``derive(name)`` when ``numpy_bits=64``."""
        import numpy as np

        seed = self.derive(name) if self.numpy_bits == 64 else self.numpy_seed(name)
        return np.random.default_rng(seed)

    def numpy_seed(self, name: str = "default") -> int:
        """A 32-bit seed for APIs that need one (``derive(name) % 2**32``)."""
        return self.derive(name) % 2**32

    def to_dict(self) -> dict[str, int | None]:
        """``root_seed`` and ``replicate_index``, plus ``numpy_bits`` when it is not 32."""
        data = {"root_seed": self.root_seed, "replicate_index": self.replicate_index}
        if self.numpy_bits != 32:
            data["numpy_bits"] = self.numpy_bits
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedBundle:
        return cls(int(data["root_seed"]), data.get("replicate_index"), data.get("numpy_bits", 32))

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
    numpy_bits: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", _check_int("base", self.base))
        object.__setattr__(self, "replicates", _check_int("replicates", self.replicates, 1))
        if not is_int(self.numpy_bits) or self.numpy_bits not in NUMPY_BITS:
            raise ParamError(
                f"seeds(numpy_bits={self.numpy_bits!r}) must be 32 (upstream's numpy "
                "streams) or 64 (full 64-bit numpy seeds; changes the run IDs)."
            )

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
        return SeedBundle(self.base, index, self.numpy_bits)

    def __iter__(self) -> Iterator[SeedBundle]:
        return (SeedBundle(self.base, i, self.numpy_bits) for i in range(self.replicates))

    def to_manifest(self) -> dict[str, Any]:
        manifest = {"type": "SeedPlan", "base": self.base, "replicates": self.replicates}
        if self.numpy_bits != 32:
            manifest["numpy_bits"] = self.numpy_bits
        return manifest

    def to_manifest_dict(self) -> dict[str, Any]:
        """Upstream's name for ``to_manifest``."""
        return self.to_manifest()

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> SeedPlan:
        return cls(data["base"], data["replicates"], data.get("numpy_bits", 32))


def seeds(base: int, replicates: int = 1, numpy_bits: int = 32) -> SeedPlan:
    """``replicates`` seed bundles from ``base`` (replicate indices 0..replicates-1).

    ``numpy_bits=64`` seeds ``SeedBundle.numpy()`` with 64 bits instead of upstream's 32
    (no stream collisions in large sweeps; different numbers, so different run IDs)."""
    return SeedPlan(base, replicates, numpy_bits)
