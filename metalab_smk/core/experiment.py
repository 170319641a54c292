"""Experiment: what to run (operation), over what (params x seeds), in which context."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from metalab_smk.core.context import context_fingerprint
from metalab_smk.core.naming import check_name_version
from metalab_smk.core.operation import Operation
from metalab_smk.core.params.resolver import with_resolver
from metalab_smk.core.params.source import ParamSource
from metalab_smk.core.seeds import SeedPlan
from metalab_smk.core.values import is_int
from metalab_smk.errors import ExperimentError

__all__ = ["Experiment"]


def _check_params(params: Any) -> ParamSource:
    if isinstance(params, ParamSource):
        return params
    if isinstance(params, dict):
        raise ExperimentError(
            "Experiment(params=dict): wrap it in a param source: metalab.grid(**values) for a "
            "sweep or metalab.manual([params]) for a single case."
        )
    raise ExperimentError(
        f"Experiment(params={params!r}): expected a param source such as metalab.grid(...), "
        "metalab.random(...) or metalab.manual([...])."
    )


def _check_seeds(seeds: Any) -> SeedPlan:
    if isinstance(seeds, SeedPlan):
        return seeds
    raise ExperimentError(
        f"Experiment(seeds={seeds!r}): expected metalab.seeds(base=..., replicates=...)."
    )


def _check_resources(resources: Any) -> dict[str, int | str] | Callable[[dict], dict]:
    """A dict of Snakemake resources, or a function of a case's params returning one
    (normalised when compiling: core/resources.py)."""
    if resources is None:
        return {}
    if callable(resources):
        return resources
    if not isinstance(resources, dict):
        raise ExperimentError(
            "Experiment(resources=...) expects a dict of Snakemake resources, e.g. "
            "{'mem': '4G', 'runtime': '2h', 'slurm_partition': 'gpu', 'gpus': 1}, or a "
            "function of a case's params returning one."
        )
    for key, value in resources.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ExperimentError(f"Experiment(resources=...): {key!r} is not a resource name.")
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ExperimentError(
                f"Experiment(resources={{{key!r}: {value!r}}}): values must be ints or strings."
            )
    if "gpus" in resources and "gpu" in resources:
        raise ExperimentError("Experiment(resources=...): give `gpus` or `gpu`, not both.")
    return dict(resources)


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ExperimentError(f"Experiment(timeout={timeout!r}) must be seconds > 0 or None.")
    return float(timeout)


class Experiment:
    """A named, versioned sweep; ``experiment_id == f"{name}:{version}"``.

    ``resources`` (Snakemake resources such as ``mem`` (``"16G"``), ``runtime``
    (``"2h"``), ``cpus_per_task``, ``slurm_partition``, ``gpus``) apply to every job of
    the sweep and take precedence over an executor's or profile's defaults; a function
    ``resources(params) -> dict`` gives each param case its own (runs with equal
    resources share jobs). ``timeout``: seconds
    a run may take before it fails as timed out. ``isolation="run"`` gives every run a
    fresh process (module globals never leak from run to run; costs an import per run).
    ``max_attempts``: how often an interrupted run (time limit, preemption) is started
    again in the same sweep; ``keep_checkpoints`` keeps ``capture.checkpoint_dir`` after
    a run succeeds. None of these enters run IDs."""

    def __init__(
        self,
        name: str,
        version: str,
        context: Any,
        operation: Operation | Any,
        params: ParamSource,
        seeds: SeedPlan,
        description: str | None = None,
        tags: list[str] | None = None,
        param_resolver: Any = None,
        metadata: dict[str, Any] | None = None,
        resources: dict[str, int | str] | Callable[[dict], dict] | None = None,
        timeout: float | None = None,
        isolation: str = "batch",
        max_attempts: int = 3,
        keep_checkpoints: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ExperimentError(f"Experiment(name={name!r}) must be a non-empty string.")
        if isinstance(version, bool) or not isinstance(version, (str, int, float)):
            raise ExperimentError(f"Experiment(version={version!r}) must be a string like '1'.")
        check_name_version(name, str(version))
        self.name = name
        self.version = str(version)
        self.context = context
        self.operation = operation if isinstance(operation, Operation) else Operation(operation)
        self.params = _check_params(params)
        self.seeds = _check_seeds(seeds)
        self.description = description
        if isinstance(tags, str):
            raise ExperimentError(f"Experiment(tags={tags!r}) expects a list of strings.")
        self.tags = list(tags or [])
        self.param_resolver = param_resolver
        self.metadata = dict(metadata or {})
        self.resources = _check_resources(resources)
        self.timeout = _check_timeout(timeout)
        if isolation not in ("batch", "run"):
            raise ExperimentError(
                f"Experiment(isolation={isolation!r}): use 'batch' (runs of a job share a "
                "process, cwd and environment restored) or 'run' (a process per run)."
            )
        self.isolation = isolation
        if not is_int(max_attempts) or max_attempts < 1:
            raise ExperimentError(f"Experiment(max_attempts={max_attempts!r}) must be an int >= 1.")
        self.max_attempts = max_attempts
        self.keep_checkpoints = bool(keep_checkpoints)
        frame = sys._getframe(1)
        caller = frame.f_globals
        self.source_file: str | None = caller.get("__file__")
        self.source_module: str | None = caller.get("__name__")
        self.source_line: int = frame.f_lineno
        self.defined_in_function: bool = frame.f_code.co_name != "<module>"

    @property
    def experiment_id(self) -> str:
        return f"{self.name}:{self.version}"

    @functools.cached_property
    def param_source(self) -> ParamSource:
        """The params as runs see them (after ``param_resolver`` when one is set)."""
        if self.param_resolver is None:
            return self.params
        return with_resolver(self.params, self.param_resolver)

    @functools.cached_property
    def context_fp(self) -> str:
        return context_fingerprint(self.context)

    @property
    def n_runs(self) -> int:
        return len(self.param_source) * self.seeds.replicates

    def __repr__(self) -> str:
        return (
            f"Experiment({self.experiment_id!r}, operation={self.operation.name!r}, "
            f"cases={len(self.param_source)}, replicates={self.seeds.replicates})"
        )
