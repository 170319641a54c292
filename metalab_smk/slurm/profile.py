"""The Snakemake profiles metalab writes (``metalab profile slurm [DIR]``).

The shipped template lives inside the package (``workflow/profiles/<name>/config.yaml``;
the repository's ``profiles/slurm`` links to it). Without DIR the profile goes to the
user's Snakemake config folder (``~/.config/snakemake/slurm`` on Linux), where
``snakemake --profile slurm`` and ``metalab submit --profile slurm`` find it by name.
Options (partition, account, time, memory, jobs) fill in the SLURM template.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from metalab_smk.errors import MetalabError
from metalab_smk.slurm.config import memory_mb, minutes

__all__ = [
    "SLURM_EXECUTORS",
    "available_profiles",
    "find_profile",
    "profile_file",
    "profile_template",
    "profile_text",
    "user_profile_dir",
    "write_profile",
]

# A profile with one of these executors runs on SLURM: this project's plugin
# (snakemake_executor_plugin_metalab_slurm) or Snakemake's own.
SLURM_EXECUTORS = ("metalab-slurm", "slurm")

TEMPLATE = """\
# Snakemake profile written by `metalab profile slurm`: run a compiled metalab experiment
# on SLURM with metalab's executor plugin (installed with metalab-smk).
#   cd <experiment directory> && snakemake --profile slurm
#   metalab submit exp.py --profile slurm      (one job array, then exit)
# Snakemake packs short runs into batch jobs (at least 10 runs each, from recorded run
# durations; `--config chunk=K` sets it, chunk=1 gives one job per run), and this executor
# submits the ready batches as ONE job array whose tasks run metalab's worker directly (no
# Snakemake inside a job), as metalab.run(..., SlurmExecutor(...)) does. It sees a batch
# end within 0.2 s (its end marker) and asks squeue only for tasks that died.
# `executor: slurm` (snakemake-executor-plugin-slurm) works too: one job per batch, each
# starting Snakemake inside the job (measured: 2.4-4.5x the time for short runs).
executor: metalab-slurm

# Concurrency limit: at most this many batch jobs (array tasks) submitted or running at once.
jobs: {jobs}

# Resources of every SLURM job (a job runs a batch of runs: budget `runtime` for all
# of them). Experiment(resources={{...}}) overrides these per experiment.
default-resources:
{resources}

keep-going: true      # one failing run (or batch) does not stop the others
retries: 0            # failed runs are run again by the next invocation
latency-wait: 30      # seconds to wait for files written on another node
"""


def _templates():
    return resources.files("metalab_smk").joinpath("workflow", "profiles")


def available_profiles() -> list[str]:
    """Names of the shipped profile templates (e.g. ``slurm``)."""
    return sorted(p.name for p in _templates().iterdir() if p.is_dir())


def profile_template(name: str) -> str:
    """The ``config.yaml`` text of the shipped profile ``name``."""
    if name not in available_profiles():
        raise MetalabError(
            f"no profile template {name!r}; available: {', '.join(available_profiles())}."
        )
    return _templates().joinpath(name, "config.yaml").read_text(encoding="utf-8")


def profile_text(
    partition: str | None = "debug",
    account: str | None = None,
    time: str | int = 30,
    memory: str | int = 1000,
    cpus: int = 1,
    jobs: int = 100,
) -> str:
    """The SLURM profile's ``config.yaml`` (the defaults give the shipped template)."""
    resources = {
        "slurm_partition": f'"{partition}"      # your partition (see `sinfo -s`)'
        if partition
        else None,
        "slurm_account": f'"{account}"' if account else None,
        "runtime": f"{minutes(time)}                   # minutes per job",
        "mem_mb": str(memory_mb(memory)),
        "cpus_per_task": str(cpus),
    }
    lines = [f"  {key}: {value}" for key, value in resources.items() if value is not None]
    if not account:
        lines.insert(1 if partition else 0, '  # slurm_account: "myproject"  # if needed')
    return TEMPLATE.format(jobs=jobs, resources="\n".join(lines))


def user_profile_dir(name: str = "slurm") -> Path:
    """Where Snakemake finds the profile ``name`` of this user."""
    try:
        from platformdirs import user_config_dir  # a dependency of snakemake
    except ImportError:  # pragma: no cover - snakemake always brings it
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return Path(base) / "snakemake" / name
    return Path(user_config_dir("snakemake", "snakemake")) / name


def find_profile(name: str) -> Path | None:
    """The profile directory Snakemake would use for ``--profile name``."""
    found = profile_file(name)
    return found.parent if found is not None else None


def profile_file(name: str) -> Path | None:
    """The file Snakemake reads for ``--profile name`` (``config.yaml``,
    ``profile.yaml``, ``config.v8+.yaml``...: Snakemake's own choice), or None."""
    from snakemake.cli import get_profile_dir

    found = get_profile_dir(name)
    return Path(found[1]) if found is not None else None


def write_profile(
    name: str,
    directory: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    **options: object,
) -> Path:
    """Write the profile ``name`` to ``directory/config.yaml`` (default: the user's
    Snakemake config folder) and return that path: the shipped template, or the SLURM
    template filled with ``options`` (partition, account, time, memory, jobs).

    Refuses to replace an existing ``config.yaml`` unless ``overwrite``."""
    text = profile_template(name)
    if options:
        if name != "slurm":
            raise MetalabError(f"profile {name!r} takes no options; edit its config.yaml.")
        text = profile_text(**options)  # type: ignore[arg-type]
    target = Path(directory) if directory else user_profile_dir(name)
    if target.exists() and not target.is_dir():
        raise MetalabError(f"{target} is a file; give a directory for the profile.")
    config = target / "config.yaml"
    if config.exists() and not overwrite:
        raise MetalabError(f"{config} exists; pass --force to overwrite it, or pick another DIR.")
    target.mkdir(parents=True, exist_ok=True)
    config.write_text(text, encoding="utf-8")
    return config
