"""Where Snakemake runs the jobs: this machine (LocalExecutor), SLURM (SlurmExecutor) or a profile.

An executor only builds Snakemake's options and says how many runs go into each job."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Self

from metalab_smk.core.resources import merge, normalise
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
from metalab_smk.slurm.profile import SLURM_EXECUTORS, find_profile, profile_file


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


class _ContextManaged:
    """Upstream's executor lifecycle: ``with Executor(...) as ex:`` and ``shutdown()``.
    Executors here hold no workers (Snakemake starts the jobs per sweep), so there is
    nothing to release."""

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Nothing to release (accepted for upstream code)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)


@dataclass(frozen=True)
class LocalExecutor(_ContextManaged):
    """Run on this machine with ``cores`` parallel jobs (default: all cores).

    ``gpus`` (``"0,1"``, a count, or ``"auto"``, the default: ``CUDA_VISIBLE_DEVICES`` or
    ``nvidia-smi``) are the devices handed to runs that ask for GPUs
    (``Experiment(resources={"gpus": 1})``), ``runs_per_gpu`` runs per device."""

    cores: int | None = None
    chunk_size: int | None = None
    min_chunk: int = 1
    gpus: str | int | None = None
    runs_per_gpu: int = 1

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


@dataclass(frozen=True)
class SlurmExecutor(_ContextManaged):
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
            *(["--precommand", self.config.precommand()] if self.config.precommand() else []),
            *self.config.snakemake_options,
        ]


@dataclass(frozen=True)
class ProfileExecutor(_ContextManaged):
    """Run with a Snakemake profile directory (``--profile``), e.g. ``profiles/slurm``."""

    profile: str
    chunk_size: int | None = None
    engine: str = "array"

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
        import yaml  # a dependency of snakemake

        path = profile_file(self.profile)
        return (yaml.safe_load(path.read_text()) if path else None) or {}

    @property
    def is_slurm(self) -> bool:
        return self.settings().get("executor") in SLURM_EXECUTORS

    @property
    def min_chunk(self) -> int:
        return SlurmExecutor.min_chunk if self.is_slurm else 1

    def total_cores(self) -> int:
        settings = self.settings()
        value = settings.get("jobs") or settings.get("cores")
        return int(str(value)) if str(value).isdigit() else (os.cpu_count() or 1)

    def snakemake_args(self) -> list[str]:
        return ["--profile", self.profile]

    def slurm_config(self) -> SlurmConfig:
        """The profile's SLURM settings as a SlurmConfig: its ``default-resources``, the
        ``set-resources`` of metalab's job rules, ``slurm-qos`` / ``slurm-reservation``
        / ``slurm-requeue`` and ``jobs``."""
        settings = self.settings()
        resources = profile_resources(settings)
        extra = [str(resources.pop("slurm_extra", ""))]
        if settings.get("slurm-qos"):
            resources.setdefault("qos", settings["slurm-qos"])
        if settings.get("slurm-reservation"):
            extra.append(f"--reservation={settings['slurm-reservation']}")
        if settings.get("slurm-requeue"):
            extra.append("--requeue")
        if any(extra):
            resources["slurm_extra"] = " ".join(part for part in extra if part)
        return SlurmConfig(
            max_concurrent=int(settings.get("jobs", 100)),
            chunk_size=self.chunk_size,
            resources=resources,
        )


JOB_RULES = ("metalab_batch", "metalab_run")


def _key_values(section: object, where: str) -> dict:
    """A profile's resource section: a mapping, or Snakemake's list of ``key=value``."""
    if isinstance(section, list):
        try:
            return dict(str(item).split("=", 1) for item in section)
        except ValueError:
            raise ExecutorError(f"profile {where}: use key=value items, not {section!r}") from None
    if section is None or isinstance(section, dict):
        return dict(section or {})
    raise ExecutorError(f"profile {where}: expected a mapping of resources, not {section!r}.")


def profile_resources(settings: dict) -> dict[str, int | str]:
    """A profile's job resources in the one model: ``default-resources`` with the
    ``set-resources`` of metalab's job rules on top; ``set-resources`` of another rule
    is refused (metalab's jobs run only these rules)."""
    resources = normalise(
        _key_values(settings.get("default-resources"), "default-resources"),
        "profile default-resources",
    )
    per_rule = settings.get("set-resources") or {}
    if isinstance(per_rule, list):  # ["metalab_batch:mem_mb=2000", ...]
        grouped: dict[str, list[str]] = {}
        for item in per_rule:
            rule, _, assignment = str(item).partition(":")
            grouped.setdefault(rule, []).append(assignment)
        per_rule = grouped
    for rule, section in dict(per_rule).items():
        if rule not in (*JOB_RULES, "metalab_summary"):
            raise ExecutorError(
                f"profile set-resources names the rule {rule!r}; metalab's jobs run the "
                f"rules {', '.join(JOB_RULES)} (and metalab_summary)."
            )
        if rule in JOB_RULES:
            where = f"profile set-resources of {rule}"
            resources = merge(resources, normalise(_key_values(section, where), where))
    return resources


def array_config(executor: LocalExecutor | SlurmExecutor | ProfileExecutor) -> SlurmConfig | None:
    """The SLURM settings when ``executor`` runs its batches as one SLURM job array."""
    if isinstance(executor, SlurmExecutor) and executor.config.engine == "array":
        return executor.config
    if isinstance(executor, ProfileExecutor) and executor.engine == "array" and executor.is_slurm:
        return executor.slurm_config()
    return None


class ThreadExecutor(LocalExecutor):
    """Upstream's ``ThreadExecutor(max_workers=n)``: local Snakemake with ``n`` cores
    (runs execute in job processes, not threads)."""

    def __init__(self, max_workers: int | None = None, chunk_size: int | None = None) -> None:
        super().__init__(cores=max_workers, chunk_size=chunk_size)


class ProcessExecutor(LocalExecutor):
    """Upstream's ``ProcessExecutor(max_workers=n)``: local Snakemake with ``n`` cores."""

    def __init__(self, max_workers: int | None = None, chunk_size: int | None = None) -> None:
        super().__init__(cores=max_workers, chunk_size=chunk_size)


def as_executor(executor: object) -> LocalExecutor | SlurmExecutor | ProfileExecutor:
    """``executor`` checked (``None``: all local cores)."""
    if executor is None:
        return LocalExecutor()
    if isinstance(executor, (LocalExecutor, SlurmExecutor, ProfileExecutor)):
        return executor
    raise ExecutorError(
        f"executor={executor!r} is not supported; use metalab.LocalExecutor(cores=n), "
        "ThreadExecutor/ProcessExecutor(max_workers=n), SlurmExecutor(SlurmConfig(...)) "
        "or ProfileExecutor(profile_dir)."
    )


def executor_to_dict(executor: LocalExecutor | SlurmExecutor | ProfileExecutor) -> dict:
    """A JSON form of an executor, for the detached head process."""
    if isinstance(executor, SlurmExecutor):
        return {"kind": "slurm", **asdict(executor.config)}
    if isinstance(executor, ProfileExecutor):
        return {
            "kind": "profile",
            "profile": executor.profile,
            "chunk_size": executor.chunk_size,
            "engine": executor.engine,
        }
    return {
        "kind": "local",
        "cores": executor.cores,
        "chunk_size": executor.chunk_size,
        "gpus": executor.gpus,
        "runs_per_gpu": executor.runs_per_gpu,
    }


def executor_from_dict(data: dict) -> LocalExecutor | SlurmExecutor | ProfileExecutor:
    fields = dict(data)
    kind = fields.pop("kind")
    if kind == "slurm":
        return SlurmExecutor(SlurmConfig(**fields))
    if kind == "profile":
        return ProfileExecutor(**fields)
    return LocalExecutor(**fields)
