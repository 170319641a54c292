"""Parameter sources: grid, random, manual, with_resolver."""

from metalab_smk.core.params.grid import GridSource, grid
from metalab_smk.core.params.manual import ManualSource, manual
from metalab_smk.core.params.random_source import (
    Choice,
    Distribution,
    LogUniform,
    LogUniformInt,
    RandInt,
    RandomSource,
    Uniform,
    choice,
    loguniform,
    loguniform_int,
    randint,
    random,
    uniform,
)
from metalab_smk.core.params.resolver import ResolvedSource, with_resolver
from metalab_smk.core.params.source import ParamCase, ParamSource, source_from_manifest

__all__ = [
    "Choice",
    "Distribution",
    "GridSource",
    "LogUniform",
    "LogUniformInt",
    "ManualSource",
    "ParamCase",
    "ParamSource",
    "RandInt",
    "RandomSource",
    "ResolvedSource",
    "Uniform",
    "choice",
    "grid",
    "loguniform",
    "loguniform_int",
    "manual",
    "randint",
    "random",
    "source_from_manifest",
    "uniform",
    "with_resolver",
]
