"""Where Snakemake runs the jobs: this machine (LocalExecutor) or SLURM (SlurmExecutor).

Both are carried out by Snakemake; an executor only says which options it gets and how
many runs go into each job (``chunk_size``; default: chosen from the sweep).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from metalab_smk.errors import MetalabError

__all__ = [
    "LocalExecutor",
    "ProfileExecutor",
    "SlurmConfig",
    "SlurmExecutor",
    "executor_from_dict",
    "executor_to_dict",
    "snakemake_env",
    "start_detached",
    "memory_mb",
    "minutes",
]


def snakemake_env() -> dict[str, str]:
    """Environment for Snakemake processes: PYTHONSAFEPATH keeps ``python -m snakemake``
    from putting the experiment directory on sys.path, where Snakemake's plugin discovery
    would list every file of runs/ and logs/ (seconds at 100,000 runs)."""
    return {**os.environ, "PYTHONSAFEPATH": "1"}


def start_detached(command: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (so it can be signalled as a group and outlive
    its parent), appending its output to ``log``."""
    with open(log, "ab") as handle:
        handle.write(f"\n$ {' '.join(command)}\n".encode())
        handle.flush()
        return subprocess.Popen(
            command,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=snakemake_env(),
        )


class ExecutorError(MetalabError, ValueError):
    """An executor was configured wrongly."""


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
    if isinstance(memory, int) and not isinstance(memory, bool):
        return memory
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", str(memory).strip().upper())
    if match is None:
        raise ExecutorError(f"SlurmConfig(memory={memory!r}): use e.g. '4G', '500M' or MB.")
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2)]
    return max(1, round(float(match.group(1)) * scale))


@dataclass(frozen=True)
class LocalExecutor:
    """Run on this machine with ``cores`` parallel jobs (default: all cores)."""

    cores: int | None = None
    chunk_size: int | None = None
    min_chunk: int = 1

    def total_cores(self) -> int:
        return self.cores or os.cpu_count() or 1

    def snakemake_args(self) -> list[str]:
        return ["--cores", str(self.total_cores())]


@dataclass(frozen=True)
class SlurmConfig:
    """Resources of each SLURM job (one job runs ``chunk_size`` runs).

    ``time`` and ``memory`` are per job; ``max_concurrent`` caps the jobs submitted at
    once; ``extra`` is passed to sbatch as is (e.g. ``"--qos=short"``)."""

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

    def __post_init__(self) -> None:
        minutes(self.time)
        memory_mb(self.memory)
        for name in ("cpus", "max_concurrent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExecutorError(f"SlurmConfig({name}={value!r}) must be a positive int.")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ExecutorError(f"SlurmConfig(chunk_size={self.chunk_size}) must be >= 1.")

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
        if self.extra:
            resources.append(f"slurm_extra={self.extra!r}")
        return resources


@dataclass(frozen=True)
class SlurmExecutor:
    """Run every job as a SLURM job through snakemake-executor-plugin-slurm."""

    config: SlurmConfig = field(default_factory=SlurmConfig)

    min_chunk: int = 10  # each SLURM job costs seconds of start-up

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
            *self.config.snakemake_options,
        ]


@dataclass(frozen=True)
class ProfileExecutor:
    """Run with a Snakemake profile directory (``--profile``), e.g. ``profiles/slurm``."""

    profile: str
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        if not (Path(self.profile) / "config.yaml").is_file():
            raise ExecutorError(
                f"profile {self.profile!r} has no config.yaml; pass a Snakemake profile "
                "directory such as profiles/slurm (copy it and edit the partition)."
            )
        object.__setattr__(self, "profile", str(Path(self.profile).absolute()))

    def settings(self) -> dict:
        import yaml  # a dependency of snakemake

        return yaml.safe_load((Path(self.profile) / "config.yaml").read_text()) or {}

    @property
    def is_slurm(self) -> bool:
        return self.settings().get("executor") == "slurm"

    @property
    def min_chunk(self) -> int:
        return SlurmExecutor.min_chunk if self.is_slurm else 1

    def total_cores(self) -> int:
        settings = self.settings()
        value = settings.get("jobs") or settings.get("cores")
        return int(value) if str(value).isdigit() else (os.cpu_count() or 1)

    def snakemake_args(self) -> list[str]:
        return ["--profile", self.profile]


def executor_to_dict(executor: LocalExecutor | SlurmExecutor | ProfileExecutor) -> dict:
    """A JSON form of an executor, for the detached head process."""
    if isinstance(executor, SlurmExecutor):
        return {"kind": "slurm", **asdict(executor.config)}
    if isinstance(executor, ProfileExecutor):
        return {"kind": "profile", "profile": executor.profile, "chunk_size": executor.chunk_size}
    return {"kind": "local", "cores": executor.cores, "chunk_size": executor.chunk_size}


def executor_from_dict(data: dict) -> LocalExecutor | SlurmExecutor | ProfileExecutor:
    fields = dict(data)
    kind = fields.pop("kind")
    if kind == "slurm":
        return SlurmExecutor(SlurmConfig(**fields))
    if kind == "profile":
        return ProfileExecutor(**fields)
    return LocalExecutor(**fields)
