"""Where a sweep's jobs run: the ``Executor`` protocol, ``LocalExecutor`` (this machine)
and the registry of every executor (the SLURM ones live in slurm/executors.py).

An executor says how many runs go into each job, builds the options of the Snakemake
that runs them (or names the SLURM settings of the job arrays that replace it), where a
submitted sweep's head runs, how its jobs are cancelled, and its JSON form for that head."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from metalab_smk.core.lifecycle import ContextManaged
from metalab_smk.core.values import is_int
from metalab_smk.errors import ExecutorError
from metalab_smk.job.gpus import (
    DEVICES_VARIABLE,
    PER_GPU_VARIABLE,
    detect_devices,
    gpus_per_run,
    split_devices,
)
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.slurm.executors import ProfileExecutor, SlurmExecutor
from metalab_smk.slurm.profile_settings import JOB_RULES, profile_resources
from metalab_smk.store.layout import ExperimentDir

__all__ = [
    "EXECUTORS",
    "JOB_RULES",
    "Executor",
    "GpuPlan",
    "LocalExecutor",
    "ProcessExecutor",
    "ProfileExecutor",
    "SlurmExecutor",
    "ThreadExecutor",
    "array_config",
    "as_executor",
    "executor_from_dict",
    "executor_to_dict",
    "profile_resources",
]


@runtime_checkable
class Executor(Protocol):
    """What a sweep asks of an executor (docs/architecture.md, "Add an executor").

    Chunking: ``chunk_size`` (runs per job; None: automatic), ``min_chunk`` (the fewest
    runs per job), ``total_cores()`` (jobs at once). Launch: ``snakemake_args()``, the
    options of the Snakemake that runs the batch targets, or ``array_config()``: the
    SLURM settings when the batches go to job arrays instead (None: Snakemake runs
    them). Head: ``head_argv(layout, command, head_time)``, the command that starts a
    submitted sweep's head as a scheduler job (None: a background process here).
    ``cancel(layout, also)``: end the scheduler jobs of the sweep in ``layout`` and
    ``also``; returns their IDs. ``to_dict()`` and the class method ``from_dict()``: its
    JSON form, ``kind`` naming the class, for the detached head."""

    kind: str

    @property
    def chunk_size(self) -> int | None: ...

    @property
    def min_chunk(self) -> int: ...

    def total_cores(self) -> int: ...

    def snakemake_args(self) -> list[str]: ...

    def array_config(self) -> SlurmConfig | None: ...

    def head_argv(
        self, layout: ExperimentDir, command: list[str], head_time: str
    ) -> list[str] | None: ...

    def cancel(self, layout: ExperimentDir, also: Iterable[str | None] = ()) -> list[str]: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class GpuPlan:
    """How a local sweep whose runs ask for GPUs shares this machine's devices."""

    devices: list[str]
    runs_per_gpu: int
    gpus_per_run: int

    @property
    def concurrent(self) -> int:
        """Runs that can hold GPUs at once."""
        return len(self.devices) * self.runs_per_gpu // self.gpus_per_run

    def job_env(self) -> dict[str, str]:
        """What the jobs read to take their slots (job/gpus.py)."""
        return {DEVICES_VARIABLE: ",".join(self.devices), PER_GPU_VARIABLE: str(self.runs_per_gpu)}

    def snakemake_args(self) -> list[str]:
        """Snakemake starts no more GPU jobs than there are slots."""
        return ["--resources", f"gpu={len(self.devices) * self.runs_per_gpu}"]


@dataclass(frozen=True)
class LocalExecutor(ContextManaged):
    """Run on this machine with ``cores`` parallel jobs (default: all cores).

    ``gpus`` (``"0,1"``, a count, or ``"auto"``, the default: ``CUDA_VISIBLE_DEVICES`` or
    ``nvidia-smi``) are the devices handed to runs that ask for GPUs
    (``Experiment(resources={"gpus": 1})``), ``runs_per_gpu`` runs per device."""

    cores: int | None = None
    chunk_size: int | None = None
    min_chunk: int = 1
    gpus: str | int | None = None
    runs_per_gpu: int = 1
    kind = "local"

    def __post_init__(self) -> None:
        if not is_int(self.runs_per_gpu) or self.runs_per_gpu < 1:
            raise ExecutorError(f"runs_per_gpu={self.runs_per_gpu!r} must be an int >= 1.")
        if self.gpus not in (None, "auto"):
            self.gpu_devices()  # a malformed `gpus` is refused here, not in a job

    def gpu_devices(self) -> list[str]:
        """The devices named by ``gpus``."""
        gpus = self.gpus
        if gpus is None or gpus == "auto":
            return detect_devices()
        if is_int(gpus) and gpus >= 0:
            return [str(i) for i in range(gpus)]
        devices = split_devices(gpus) if isinstance(gpus, str) else []
        if not devices or not all(d.isdigit() or d.startswith(("GPU-", "MIG-")) for d in devices):
            raise ExecutorError(
                f"gpus={gpus!r}: give device indices ('0,1'), a count (2) or 'auto'."
            )
        return devices

    def gpu_plan(self, resources: dict) -> GpuPlan | None:
        """How runs asking for GPUs in ``resources`` get them (None: they ask for none)."""
        need = gpus_per_run(resources)
        if not need:
            return None
        devices = self.gpu_devices()
        if len(devices) < need:
            found = ", ".join(devices) or "nvidia-smi finds none, CUDA_VISIBLE_DEVICES is unset"
            raise ExecutorError(
                f"each run asks for {need} GPU(s) but this machine has {len(devices)} "
                f"({found}); pass --gpus 0,1 / LocalExecutor(gpus=...) or lower "
                "resources['gpus']."
            )
        return GpuPlan(devices, self.runs_per_gpu, need)

    def total_cores(self, gpu: GpuPlan | None = None) -> int:
        """Parallel jobs: ``cores``, else all cores, or every GPU slot if there are more."""
        return self.cores or max(os.cpu_count() or 1, gpu.concurrent if gpu else 0)

    def snakemake_args(self, gpu: GpuPlan | None = None) -> list[str]:
        return ["--cores", str(self.total_cores(gpu)), *(gpu.snakemake_args() if gpu else [])]

    def array_config(self) -> SlurmConfig | None:
        return None

    def head_argv(
        self, layout: ExperimentDir, command: list[str], head_time: str
    ) -> list[str] | None:
        return None  # the head runs in the background here

    def cancel(self, layout: ExperimentDir, also: Iterable[str | None] = ()) -> list[str]:
        return []  # its jobs are Snakemake's processes, ended with Snakemake

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cores": self.cores,
            "chunk_size": self.chunk_size,
            "gpus": self.gpus,
            "runs_per_gpu": self.runs_per_gpu,
        }

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> LocalExecutor:
        return cls(**fields)


class ThreadExecutor(LocalExecutor):
    """Upstream's ``ThreadExecutor(max_workers=n)``: local Snakemake with ``n`` cores
    (runs execute in job processes, not threads)."""

    def __init__(self, max_workers: int | None = None, chunk_size: int | None = None) -> None:
        super().__init__(cores=max_workers, chunk_size=chunk_size)


class ProcessExecutor(LocalExecutor):
    """Upstream's ``ProcessExecutor(max_workers=n)``: local Snakemake with ``n`` cores."""

    def __init__(self, max_workers: int | None = None, chunk_size: int | None = None) -> None:
        super().__init__(cores=max_workers, chunk_size=chunk_size)


def array_config(executor: Executor) -> SlurmConfig | None:
    """The SLURM settings when ``executor`` runs its batches as SLURM job arrays."""
    return executor.array_config()


# kind -> class: how the detached head rebuilds an executor from its JSON form
EXECUTORS: dict[str, Any] = {
    cls.kind: cls for cls in (LocalExecutor, SlurmExecutor, ProfileExecutor)
}


def as_executor(executor: object) -> Executor:
    """``executor`` checked (``None``: all local cores)."""
    if executor is None:
        return LocalExecutor()
    if isinstance(executor, tuple(EXECUTORS.values())):
        return executor  # type: ignore[return-value]
    raise ExecutorError(
        f"executor={executor!r} is not supported; use metalab.LocalExecutor(cores=n), "
        "ThreadExecutor/ProcessExecutor(max_workers=n), SlurmExecutor(SlurmConfig(...)) "
        "or ProfileExecutor(profile_dir)."
    )


def executor_to_dict(executor: Executor) -> dict[str, Any]:
    """A JSON form of an executor, for the detached head process."""
    return executor.to_dict()


def executor_from_dict(data: dict[str, Any]) -> Executor:
    """The executor ``executor_to_dict`` described."""
    fields = dict(data)
    return EXECUTORS[fields.pop("kind")].from_dict(fields)
