"""SLURM settings of a sweep: partition, time, memory, packing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metalab_smk.core.values import gpus_per_run, is_int
from metalab_smk.errors import ExecutorError


def minutes(time: str | int) -> int:
    """SLURM time in minutes: an int of minutes, or ``"M"``, ``"M:S"``, ``"H:M:S"``,
    ``"D-H"``, ``"D-H:M"``, ``"D-H:M:S"``."""
    text = str(time).strip()
    try:
        if isinstance(time, bool):
            raise ValueError
        days, _, clock = text.rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        if days:
            hours, mins, secs = [*parts, 0, 0][:3]
        elif len(parts) == 3:
            hours, mins, secs = parts
        elif len(parts) == 2:
            hours, (mins, secs) = 0, parts
        elif len(parts) == 1:
            hours, mins, secs = 0, parts[0], 0
        else:
            raise ValueError
        total = int(days or 0) * 1440 + hours * 60 + mins + (1 if secs else 0)
    except ValueError:
        raise ExecutorError(
            f"SlurmConfig(time={time!r}): use minutes (90) or 'HH:MM:SS' / 'D-HH:MM:SS'."
        ) from None
    if total < 1:
        raise ExecutorError(f"SlurmConfig(time={time!r}) must be at least one minute.")
    return total


def memory_mb(memory: str | int) -> int:
    """``"4G"``, ``"500M"``, ``"1T"`` or an int of MB, in MB."""
    if is_int(memory):
        return memory
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", str(memory).strip().upper())
    if match is None:
        raise ExecutorError(f"SlurmConfig(memory={memory!r}): use e.g. '4G', '500M' or MB.")
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2)]
    return max(1, round(float(match.group(1)) * scale))


@dataclass(frozen=True)
class SlurmConfig:
    """Resources of each SLURM job (one job runs ``chunk_size`` runs).

    ``time`` and ``memory`` are per job; ``max_concurrent`` caps the jobs submitted at
    once; ``extra`` is passed to sbatch as is (e.g. ``"--qos=short"``).

    Upstream's fields: ``modules`` (``module load`` each), ``conda_env`` (activated) and
    ``setup`` (shell lines) run in every SLURM job before it starts (Snakemake's
    ``--precommand``); ``extra_sbatch`` ({"qos": "short"}) adds sbatch options;
    ``max_array_size`` caps the tasks of one array submission. ``warn_before``: seconds
    before its time limit a task is warned (``capture.should_stop()``; at most half the
    limit), so runs can save a checkpoint and are started again.

    ``engine="array"`` (default) submits one job array whose tasks run the batch worker
    directly; ``engine="snakemake"`` runs Snakemake's SLURM executor plugin (one job per
    batch, each starting Snakemake inside the job)."""

    partition: str | None = None
    time: str | int = "00:30:00"
    cpus: int = 1
    memory: str | int = "1G"
    gpus: int = 0
    max_concurrent: int = 100
    chunk_size: int | None = None
    account: str | None = None
    extra: str | None = None
    status_interval: int = 10
    snakemake_options: list[str] = field(default_factory=list)
    engine: str = "array"

    modules: list[str] = field(default_factory=list)
    conda_env: str | None = None
    setup: list[str] = field(default_factory=list)
    extra_sbatch: dict[str, str] = field(default_factory=dict)
    max_array_size: int = 1000
    warn_before: int = 180  # seconds: SIGUSR1 before the time limit (capture.should_stop)

    def __post_init__(self) -> None:
        minutes(self.time)
        memory_mb(self.memory)
        for name in ("cpus", "max_concurrent"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ExecutorError(f"SlurmConfig({name}={value!r}) must be a positive int.")
        if self.engine not in ("array", "snakemake"):
            raise ExecutorError(f"SlurmConfig(engine={self.engine!r}): use 'array' or 'snakemake'.")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ExecutorError(f"SlurmConfig(chunk_size={self.chunk_size}) must be >= 1.")

    @classmethod
    def from_resources(cls, resources: Mapping[str, Any], **fields: Any) -> SlurmConfig:
        """The settings Snakemake resources give a job (``slurm_partition``,
        ``slurm_account``, ``runtime``, ``mem_mb``, ``cpus_per_task``, ``gpu``/``gpus`` or
        ``gres``, ``slurm_extra``), as the SLURM executor plugins read them; ``fields``
        set the rest. Refused when GPUs are given twice (a count and ``gres``)."""
        extra = str(resources.get("slurm_extra") or "").strip("'\"")
        gpus = gpus_per_run(resources)
        gres = str(resources.get("gres") or "").strip("'\" ")
        if gpus and "gpu" in gres:
            raise ExecutorError("the resources give GPUs twice (gpu and gres); keep one.")
        extra = " ".join(part for part in (extra, f"--gres={gres}" if gres else "") if part)
        return cls(
            partition=resources.get("slurm_partition") or None,
            account=resources.get("slurm_account") or None,
            time=int(resources.get("runtime") or 30),
            memory=int(resources.get("mem_mb") or 1000),
            cpus=int(resources.get("cpus_per_task") or 1),
            gpus=gpus,
            extra=extra or None,
            **fields,
        )

    def default_resources(self) -> list[str]:
        resources = [
            f"runtime={minutes(self.time)}",
            f"mem_mb={memory_mb(self.memory)}",
            f"cpus_per_task={self.cpus}",
        ]
        if self.partition:
            resources.append(f"slurm_partition={self.partition}")
        if self.account:
            resources.append(f"slurm_account={self.account}")
        if self.gpus:
            resources.append(f"gpu={self.gpus}")
        extra = " ".join([*([self.extra] if self.extra else []), *self.extra_sbatch_options()])
        if extra:
            resources.append(f"slurm_extra={extra!r}")
        return resources

    def extra_sbatch_options(self) -> list[str]:
        """``extra_sbatch`` as sbatch options (``{"qos": "short"}`` -> ``--qos=short``)."""
        return [
            f"--{key.lstrip('-').replace('_', '-')}" + ("" if value in (None, "") else f"={value}")
            for key, value in self.extra_sbatch.items()
        ]

    def precommand(self) -> str:
        """Shell run in each job before it starts: module loads, conda, setup lines."""
        lines = [f"module load {module}" for module in self.modules]
        if self.conda_env:
            lines += ['eval "$(conda shell.bash hook)"', f"conda activate {self.conda_env}"]
        lines += [line.strip() for line in self.setup if line.strip()]
        return " && ".join(lines)
