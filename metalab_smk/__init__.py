"""metalab-smk: define an experiment once, run it reproducibly with Snakemake.

Users import it as ``metalab`` (``import metalab``); this package holds the implementation.
"""

import sys

from metalab_smk import _aliases
from metalab_smk.core.context import DirPath, FilePath, Fingerprintable, context_spec
from metalab_smk.core.experiment import Experiment
from metalab_smk.core.filehash import dir_hash, file_hash
from metalab_smk.core.identity import canonical, fingerprint, run_id
from metalab_smk.core.lazy import lazy_getattr as _lazy_getattr
from metalab_smk.core.operation import Operation, OperationWrapper, operation
from metalab_smk.core.params import (
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
from metalab_smk.core.plan import Plan, PlannedRun
from metalab_smk.core.seeds import SeedBundle, SeedPlan, seeds
from metalab_smk.errors import (
    CanonicalizeError,
    DuplicateRunError,
    ExperimentError,
    MetalabError,
    MissingPathError,
    OperationError,
    ParamError,
    SweepError,
    SweepInterrupted,
)

__version__ = "0.1.0"

_aliases.install(sys.modules[__name__])  # upstream module paths: metalab.types, ...

# Names whose modules import pandas or start processes load on first use, so a job's
# worker (which imports this package) starts fast.
_LAZY = {
    "run": "metalab_smk.sweep.runner",
    "start": "metalab_smk.sweep.runner",
    "RunHandle": "metalab_smk.sweep.handle",
    "LocalExecutor": "metalab_smk.sweep.executors",
    "SlurmExecutor": "metalab_smk.slurm.executors",
    "ThreadExecutor": "metalab_smk.sweep.executors",
    "ProcessExecutor": "metalab_smk.sweep.executors",
    "ProfileExecutor": "metalab_smk.slurm.executors",
    "Progress": "metalab_smk.sweep.progress",
    "MetricDisplay": "metalab_smk.sweep.progress",
    "display_results": "metalab_smk.results.display",
    "Event": "metalab_smk.sweep.events",
    "EventKind": "metalab_smk.sweep.events",
    "FileStore": "metalab_smk.store.filestore",
    "ExperimentInfo": "metalab_smk.results.results",
    "Metric": "metalab_smk.store.records",
    "SlurmConfig": "metalab_smk.slurm.config",
    "reconnect": "metalab_smk.sweep.runner",
    "Results": "metalab_smk.results.results",
    "Run": "metalab_smk.results.results",
    "load_results": "metalab_smk.results.results",
    "compile_experiment": "metalab_smk.compile.compiler",
    "collect": "metalab_smk.results.summary",
    "FileStoreConfig": "metalab_smk.store.config",
    "StoreConfig": "metalab_smk.store.config",
    "create_store": "metalab_smk.store.locator",
    "RunRecord": "metalab_smk.store.records",
    "Status": "metalab_smk.store.records",
    "ArtifactDescriptor": "metalab_smk.store.records",
    "Provenance": "metalab_smk.store.records",
    "Capture": "metalab_smk.job.capture",
    "Runtime": "metalab_smk.job.capture",
    "CaptureError": "metalab_smk.errors",
}


__getattr__ = _lazy_getattr("metalab", _LAZY, globals())


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
    "OperationWrapper",
    "ParamCase",
    "ParamError",
    "ParamSource",
    "Plan",
    "PlannedRun",
    "RandomSource",
    "ResolvedSource",
    "SeedBundle",
    "SeedPlan",
    "SweepError",
    "SweepInterrupted",
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
