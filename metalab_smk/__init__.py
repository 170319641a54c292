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

# Names whose modules import pandas or start processes load on first use, so a job's
# worker (which imports this package) starts fast.
_LAZY = {
    "run": "metalab_smk.runner",
    "start": "metalab_smk.runner",
    "RunHandle": "metalab_smk.runner",
    "LocalExecutor": "metalab_smk.executors",
    "SlurmExecutor": "metalab_smk.executors",
    "SlurmConfig": "metalab_smk.executors",
    "reconnect": "metalab_smk.runner",
    "Results": "metalab_smk.results",
    "Run": "metalab_smk.results",
    "load_results": "metalab_smk.results",
    "compile_experiment": "metalab_smk.compile",
    "collect": "metalab_smk.reduce",
    "FileStoreConfig": "metalab_smk.store",
    "RunRecord": "metalab_smk.records",
    "Status": "metalab_smk.records",
    "ArtifactDescriptor": "metalab_smk.records",
    "Provenance": "metalab_smk.records",
    "Capture": "metalab_smk.capture",
    "Runtime": "metalab_smk.capture",
    "CaptureError": "metalab_smk.capture",
}


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'metalab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    *_LAZY,
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
