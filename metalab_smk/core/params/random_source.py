"""random(): replayable random sampling; case i depends only on (seed, i)."""

from __future__ import annotations

import math
import random as _random
from dataclasses import dataclass
from typing import Any, ClassVar

from metalab_smk.core.naming import check_param_name
from metalab_smk.core.params.source import ParamCase, ParamSource, check_value
from metalab_smk.core.values import is_int
from metalab_smk.errors import ParamError

__all__ = [
    "Choice",
    "Distribution",
    "LogUniform",
    "LogUniformInt",
    "RandInt",
    "RandomSource",
    "Uniform",
    "choice",
    "loguniform",
    "loguniform_int",
    "randint",
    "random",
    "uniform",
]


def _finite(name: str, label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"{name}(): {label} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise ParamError(f"{name}(): {label} must be finite, got {value!r}.")
    return value


@dataclass(frozen=True)
class Distribution:
    """A one-dimensional distribution sampled with a ``random.Random``."""

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Distribution]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Distribution._kinds[cls.kind] = cls

    def sample(self, rng: _random.Random) -> Any:
        raise NotImplementedError

    def to_manifest(self) -> dict[str, Any]:
        return {"type": self.kind, **self.__dict__}

    @staticmethod
    def from_manifest(data: dict[str, Any]) -> Distribution:
        fields = dict(data)
        kind = fields.pop("type", None)
        if kind not in Distribution._kinds:
            raise ParamError(f"unknown distribution type {kind!r} in manifest.")
        if "options" in fields:
            fields["options"] = tuple(fields["options"])
        return Distribution._kinds[kind](**fields)


@dataclass(frozen=True)
class _Bounded(Distribution):
    low: float
    high: float

    def __post_init__(self) -> None:
        name = type(self).kind
        _finite(name, "low", self.low)
        _finite(name, "high", self.high)
        if self.low > self.high:
            raise ParamError(
                f"{name}(low={self.low}, high={self.high}): low is above high; swap them."
            )


@dataclass(frozen=True)
class Uniform(_Bounded):
    kind: ClassVar[str] = "Uniform"

    def sample(self, rng: _random.Random) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class LogUniform(_Bounded):
    kind: ClassVar[str] = "LogUniform"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low <= 0 or self.high <= 0:
            raise ParamError(
                f"{'loguniform_int' if self.kind == 'LogUniformInt' else 'loguniform'}"
                f"(low={self.low}, high={self.high}): both bounds must be positive "
                "(the log of zero or a negative number is undefined); use uniform() for a "
                "range that includes 0."
            )

    def sample(self, rng: _random.Random) -> float:
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))


@dataclass(frozen=True)
class LogUniformInt(LogUniform):
    kind: ClassVar[str] = "LogUniformInt"

    def sample(self, rng: _random.Random) -> int:
        return round(super().sample(rng))


@dataclass(frozen=True)
class RandInt(_Bounded):
    kind: ClassVar[str] = "RandInt"

    def sample(self, rng: _random.Random) -> int:
        return rng.randint(self.low, self.high)  # type: ignore[arg-type]  # ints, else random's error


@dataclass(frozen=True)
class Choice(Distribution):
    kind: ClassVar[str] = "Choice"
    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise ParamError("choice([]): the option list is empty; give at least one option.")
        for position, option in enumerate(self.options):
            check_value(option, f"choice option [{position}]")

    def sample(self, rng: _random.Random) -> Any:
        return rng.choice(self.options)

    def to_manifest(self) -> dict[str, Any]:
        return {"type": self.kind, "options": list(self.options)}


def uniform(low: float, high: float) -> Uniform:
    """Uniform float in [low, high]."""
    return Uniform(low, high)


def loguniform(low: float, high: float) -> LogUniform:
    """Float whose log is uniform in [log low, log high]; both bounds positive."""
    return LogUniform(low, high)


def loguniform_int(low: int, high: int) -> LogUniformInt:
    """Rounded log-uniform integer; both bounds positive."""
    return LogUniformInt(low, high)


def randint(low: int, high: int) -> RandInt:
    """Uniform integer in [low, high] (both ends included)."""
    for label, value in (("low", low), ("high", high)):
        if not is_int(value):
            raise ParamError(f"randint(): {label} must be an int, got {value!r}.")
    return RandInt(low, high)


def choice(options: Any) -> Choice:
    """One of ``options``, uniformly."""
    if isinstance(options, (str, bytes)):
        raise ParamError(
            f"choice({options!r}): expected a list of options, got a string; "
            f"write choice([{options!r}])."
        )
    return Choice(tuple(options))


class RandomSource(ParamSource):
    """``n_trials`` samples of ``space``; trial i uses ``Random(seed * 1_000_000_007 + i)``."""

    manifest_type = "RandomSource"

    def __init__(self, space: dict[str, Distribution], n_trials: int, seed: int) -> None:
        if not isinstance(space, dict) or not space:
            raise ParamError("random(space=...) needs a non-empty dict of name -> distribution.")
        for key, dist in space.items():
            check_param_name(key, "random(space)")
            if not isinstance(dist, Distribution):
                raise ParamError(
                    f"random(space={{{key!r}: {dist!r}}}): not a distribution; use "
                    "uniform(), loguniform(), loguniform_int(), randint() or choice()."
                )
        if not is_int(n_trials) or n_trials < 1:
            raise ParamError(f"random(n_trials={n_trials!r}) must be a positive int.")
        if not is_int(seed):
            raise ParamError(f"random(seed={seed!r}) must be an int.")
        self._space = dict(space)
        self._keys = sorted(space)
        self._n_trials = n_trials
        self._seed = seed

    def __len__(self) -> int:
        return self._n_trials

    def _case(self, index: int) -> ParamCase:
        rng = _random.Random(self._seed * 1_000_000_007 + index)
        params = {key: self._space[key].sample(rng) for key in self._keys}
        return ParamCase.of(params, [f"trial_{index}"])

    def to_manifest(self) -> dict[str, Any]:
        return {
            "type": self.manifest_type,
            "space": {key: dist.to_manifest() for key, dist in self._space.items()},
            "n_trials": self._n_trials,
            "seed": self._seed,
        }

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> RandomSource:
        space = {k: Distribution.from_manifest(v) for k, v in data["space"].items()}
        return cls(space, data["n_trials"], data["seed"])


def random(space: dict[str, Distribution], n_trials: int, seed: int) -> RandomSource:
    """Replayable random search: ``random({"lr": loguniform(1e-4, 1e-1)}, 20, seed=1)``."""
    return RandomSource(space, n_trials, seed)
