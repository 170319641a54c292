"""metalab-smk: define an experiment once, run it reproducibly with Snakemake.

Users import it as ``metalab`` (``import metalab``); this package holds the implementation.
"""

from metalab_smk.context import DirPath, FilePath, Fingerprintable, context_spec
from metalab_smk.errors import (
    CanonicalizeError,
    DuplicateRunError,
    ExperimentError,
    MetalabError,
    MissingPathError,
    OperationError,
    ParamError,
)
from metalab_smk.experiment import Experiment
from metalab_smk.filehash import dir_hash, file_hash
from metalab_smk.identity import canonical, fingerprint, run_id
from metalab_smk.operation import Operation, operation
from metalab_smk.params import (
    GridSource,
    ManualSource,
    ParamCase,
    ParamSource,
    RandomSource,
    ResolvedSource,
    choice,
    grid,
    loguniform,
    loguniform_int,
    manual,
    randint,
    random,
    uniform,
    with_resolver,
)
from metalab_smk.plan import Plan, PlannedRun
from metalab_smk.seeds import SeedBundle, SeedPlan, seeds

__version__ = "0.1.0"

__all__ = [
    "CanonicalizeError",
    "DirPath",
    "DuplicateRunError",
    "Experiment",
    "ExperimentError",
    "FilePath",
    "Fingerprintable",
    "GridSource",
    "ManualSource",
    "MetalabError",
    "MissingPathError",
    "Operation",
    "OperationError",
    "ParamCase",
    "ParamError",
    "ParamSource",
    "Plan",
    "PlannedRun",
    "RandomSource",
    "ResolvedSource",
    "SeedBundle",
    "SeedPlan",
    "__version__",
    "canonical",
    "choice",
    "context_spec",
    "dir_hash",
    "file_hash",
    "fingerprint",
    "grid",
    "loguniform",
    "loguniform_int",
    "manual",
    "operation",
    "randint",
    "random",
    "run_id",
    "seeds",
    "uniform",
    "with_resolver",
]
