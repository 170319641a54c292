"""The executors that run a sweep on SLURM: ``SlurmExecutor`` (settings in Python) and
``ProfileExecutor`` (a Snakemake profile directory). Both follow the ``Executor``
protocol of sweep/executors.py."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from metalab_smk.core.lifecycle import ContextManaged
from metalab_smk.errors import ExecutorError
from metalab_smk.slurm import scheduler
from metalab_smk.slurm.config import SlurmConfig, minutes
from metalab_smk.slurm.jobs import cancel_slurm_jobs
from metalab_smk.slurm.profile import SLURM_EXECUTORS, find_profile
from metalab_smk.slurm.profile_settings import profile_settings, profile_slurm_config
from metalab_smk.store.layout import ExperimentDir

__all__ = ["ProfileExecutor", "SlurmExecutor"]

SLURM_MIN_CHUNK = 10  # each SLURM job costs seconds of start-up


def _head_argv(
    layout: ExperimentDir, command: list[str], head_time: str, partition: str | None
) -> list[str] | None:
    """``sbatch`` of the head process as its own SLURM job (None: no sbatch here)."""
    if not scheduler.available("sbatch"):
        return None
    return scheduler.sbatch_argv(
        ["exec", *command],  # the head is the job's process: scancel's SIGTERM reaches it
        job_name=f"metalab-head-{layout.root.name}",
        output=str(layout.head_log(on_slurm=True)),
        chdir=str(layout.root),
        time_minutes=minutes(head_time),
        memory_mb=1000,
        cpus=1,
        partition=partition,
    )


@dataclass(frozen=True)
class SlurmExecutor(ContextManaged):
    """Run the batches on SLURM: one job array (``engine="array"``, default), or
    snakemake-executor-plugin-slurm (``SlurmConfig(engine="snakemake")``)."""

    config: SlurmConfig = field(default_factory=SlurmConfig)

    min_chunk: int = SLURM_MIN_CHUNK
    kind = "slurm"

    @property
    def chunk_size(self) -> int | None:
        return self.config.chunk_size

    def total_cores(self) -> int:
        return self.config.max_concurrent

    def snakemake_args(self) -> list[str]:
        interval = str(self.config.status_interval)
        return [
            "--executor",
            "slurm",
            "--jobs",
            str(self.config.max_concurrent),
            "--default-resources",
            *self.config.default_resources(),
            "--slurm-init-seconds-before-status-checks",
            interval,
            "--seconds-between-status-checks",
            interval,
            "--latency-wait",
            "30",
            *(["--precommand", self.config.precommand()] if self.config.precommand() else []),
            *self.config.snakemake_options,
        ]

    def array_config(self) -> SlurmConfig | None:
        return self.config if self.config.engine == "array" else None

    def head_argv(
        self, layout: ExperimentDir, command: list[str], head_time: str
    ) -> list[str] | None:
        return _head_argv(layout, command, head_time, self.config.partition)

    def cancel(self, layout: ExperimentDir, also: Iterable[str | None] = ()) -> list[str]:
        return cancel_slurm_jobs(layout, also)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self.config)}

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> SlurmExecutor:
        return cls(SlurmConfig(**fields))


@dataclass(frozen=True)
class ProfileExecutor(ContextManaged):
    """Run with a Snakemake profile directory (``--profile``), e.g. ``profiles/slurm``;
    a SLURM profile's batches go to one job array (``engine="array"``) unless
    ``engine="snakemake"``."""

    profile: str
    chunk_size: int | None = None
    engine: str = "array"
    kind = "profile"

    def __post_init__(self) -> None:
        found = find_profile(self.profile)
        if found is None:
            raise ExecutorError(
                f"profile {self.profile!r} has no config.yaml (nor profile.yaml, "
                "config.v8+.yaml); pass a Snakemake profile directory; `metalab profile "
                "slurm DIR` writes one to edit, and `metalab profile slurm --partition P` "
                "installs one you pass by name, slurm."
            )
        object.__setattr__(self, "profile", str(found.absolute()))

    def settings(self) -> dict:
        """The profile's settings, from the file Snakemake reads."""
        return profile_settings(self.profile)

    @property
    def is_slurm(self) -> bool:
        return self.settings().get("executor") in SLURM_EXECUTORS

    @property
    def min_chunk(self) -> int:
        return SLURM_MIN_CHUNK if self.is_slurm else 1

    def total_cores(self) -> int:
        settings = self.settings()
        value = settings.get("jobs") or settings.get("cores")
        return int(str(value)) if str(value).isdigit() else (os.cpu_count() or 1)

    def snakemake_args(self) -> list[str]:
        return ["--profile", self.profile]

    def slurm_config(self) -> SlurmConfig:
        """The profile's SLURM settings as a SlurmConfig (slurm/profile_settings.py)."""
        return profile_slurm_config(self.settings(), self.chunk_size)

    def array_config(self) -> SlurmConfig | None:
        return self.slurm_config() if self.engine == "array" and self.is_slurm else None

    def head_argv(
        self, layout: ExperimentDir, command: list[str], head_time: str
    ) -> list[str] | None:
        if not self.is_slurm:
            return None
        partition = (self.settings().get("default-resources") or {}).get("slurm_partition")
        return _head_argv(layout, command, head_time, partition)

    def cancel(self, layout: ExperimentDir, also: Iterable[str | None] = ()) -> list[str]:
        return cancel_slurm_jobs(layout, also)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "profile": self.profile,
            "chunk_size": self.chunk_size,
            "engine": self.engine,
        }

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> ProfileExecutor:
        return cls(**fields)
