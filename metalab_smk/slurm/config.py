"""SLURM settings of a sweep: partition, time, memory, packing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metalab_smk.core.resources import AUTO, Resources, mem_mb, normalise, runtime_minutes
from metalab_smk.core.values import is_int
from metalab_smk.errors import ExecutorError


def minutes(time: str | int) -> int:
    """SLURM time in minutes: minutes (90), ``"90m"``, ``"2h"``, ``"1d"``, ``"H:M:S"``,
    ``"D-H:M:S"`` (see core/resources.py)."""
    return runtime_minutes(time, f"SlurmConfig(time={time!r})")


def memory_mb(memory: str | int) -> int:
    """Memory in MB as Snakemake counts it: MB (500), ``"500M"``, ``"4G"``, ``"4GiB"``."""
    return mem_mb(memory, f"SlurmConfig(memory={memory!r})")


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

    ``time`` takes minutes or ``"2h"``/``"1d"``/``"H:M:S"``, ``memory`` MB or
    ``"16G"``/``"4GiB"`` (Snakemake's units), or ``"auto"``: learned from the finished
    runs (the array engine; docs/slurm.md, "Learned resources"). ``resources``: further
    Snakemake resources of every job (``gres``, ``constraint``, ``qos``, ``tasks``,
    ``mem_mb_per_cpu``, ``slurm_extra``...); they win over the fields above. Array tasks
    killed for memory or time are run again with twice as much, ``max_escalations``
    times (0: never).

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
    resources: dict[str, int | str] = field(default_factory=dict)
    max_escalations: int = 2  # retries with x2 memory or time after OUT_OF_MEMORY/TIMEOUT

    def __post_init__(self) -> None:
        if self.time != AUTO:
            minutes(self.time)
        if self.memory != AUTO:
            memory_mb(self.memory)
        object.__setattr__(self, "resources", normalise(self.resources, "SlurmConfig(resources)"))
        if not is_int(self.max_escalations) or self.max_escalations < 0:
            raise ExecutorError(
                f"SlurmConfig(max_escalations={self.max_escalations!r}) must be >= 0."
            )
        for name in ("cpus", "max_concurrent"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ExecutorError(f"SlurmConfig({name}={value!r}) must be a positive int.")
        if self.engine not in ("array", "snakemake"):
            raise ExecutorError(f"SlurmConfig(engine={self.engine!r}): use 'array' or 'snakemake'.")
        if self.engine == "snakemake" and AUTO in self.job_resources().values():
            raise ExecutorError(
                "SlurmConfig: 'auto' time or memory is learned by the array engine; give a "
                "value with engine='snakemake' (or 'auto' in Experiment(resources=...))."
            )
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ExecutorError(f"SlurmConfig(chunk_size={self.chunk_size}) must be >= 1.")

    @classmethod
    def from_resources(cls, resources: Mapping[str, Any], **fields: Any) -> SlurmConfig:
        """The settings Snakemake resources give a job (a job's resources, as the SLURM
        executor plugins read them), in the one model; ``fields`` set the rest."""
        # Snakemake's bookkeeping, the forms it derives from mem_mb / disk_mb (a job holds
        # mem, mem_mib and mem_mb together), and disk, which it sets by default (no --tmp)
        ignored = {"_cores", "_nodes", "tmpdir", "threads", "mem", "mem_mib"}
        ignored |= {"disk", "disk_mb", "disk_mib"}
        given = {k: v for k, v in resources.items() if k not in ignored and v is not None}
        return cls(resources=given, **fields)

    def job_resources(self) -> Resources:
        """Every job's resources in the one model (core/resources.py)."""
        extra = " ".join([*([self.extra] if self.extra else []), *self.extra_sbatch_options()])
        fields = {
            "runtime": AUTO if self.time == AUTO else minutes(self.time),
            "mem_mb": AUTO if self.memory == AUTO else memory_mb(self.memory),
            "cpus_per_task": self.cpus,
            "slurm_partition": self.partition,
            "slurm_account": self.account,
            "gpu": self.gpus or None,
            "slurm_extra": extra or None,
        }
        if "mem_mb_per_cpu" in self.resources:  # one memory request, not two
            fields.pop("mem_mb")
        if "gres" in self.resources:
            fields.pop("gpu")
        return normalise({**fields, **self.resources}, "SlurmConfig")

    def default_resources(self) -> list[str]:
        """``--default-resources`` of Snakemake's SLURM executor plugin."""
        return [
            f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
            for key, value in self.job_resources().items()
        ]

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
