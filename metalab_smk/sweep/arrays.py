"""The job arrays of a sweep on SLURM's array engine: batches per resource class, split
to fit the cluster's ``MaxArraySize``, sized to fit the jobs' time limit, each array with
its tasks' resources (``"auto"`` learned from finished runs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from metalab_smk.core.resources import Resources
from metalab_smk.slurm.array import (
    array_resources,
    cluster_array_limit,
    cluster_submit_limit,
    sbatch_options,
    task_resources,
)
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.batches import plan_batches

__all__ = ["PlannedArray", "plan_arrays"]


@dataclass(frozen=True)
class PlannedArray:
    """One ``sbatch --array``: batches ``<stamp>-<i>`` for i < tasks, and what each
    task asks for."""

    stamp: str
    tasks: int
    resources: Resources


def plan_arrays(
    layout: ExperimentDir,
    config: SlurmConfig,
    missing: Sequence[int],
    parallel: int,
    min_chunk: int,
) -> tuple[list[PlannedArray], int]:
    """Write the batches of ``missing`` and return their arrays and the batch size;
    a resource no array can honour is refused here (ExecutorError), before anything is
    submitted."""

    def time_limit(resources: dict[str, Any]) -> int | None:
        runtime = task_resources(config, resources).get("runtime")
        return runtime if isinstance(runtime, int) else None  # "auto" follows the batch

    groups, chunk = plan_batches(
        layout,
        missing,
        parallel,
        config.chunk_size,
        min_chunk,
        max_jobs=cluster_submit_limit(),
        max_group=min(config.max_array_size, cluster_array_limit()),
        time_limit=time_limit,
    )
    arrays = [
        PlannedArray(
            g.stamp, len(g.targets), array_resources(config, g.resources, g.observed, g.chunk)
        )
        for g in groups
    ]
    for array in arrays:
        sbatch_options(array.resources)
    return arrays, chunk
