"""Parameter sources: grid, random, manual, with_resolver."""

from metalab_smk.params.grid import GridSource, grid
from metalab_smk.params.manual import ManualSource, manual
from metalab_smk.params.random_source import (
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
from metalab_smk.params.resolver import ResolvedSource, with_resolver
from metalab_smk.params.source import ParamCase, ParamSource, source_from_manifest

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
