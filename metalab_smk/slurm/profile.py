"""The Snakemake profile for SLURM, written where ``snakemake --profile slurm`` finds it.

Snakemake looks a profile name up in the working directory, then in the user's
Snakemake config folder (``~/.config/snakemake`` on Linux), then the site's.
``metalab profile slurm`` writes ``<that folder>/slurm/config.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path

from metalab_smk.errors import ExecutorError
from metalab_smk.slurm.config import memory_mb, minutes
from metalab_smk.store.jsonio import atomic_write_text

__all__ = ["find_profile", "install_profile", "profile_text", "user_profile_dir"]

TEMPLATE = """\
# Snakemake profile written by `metalab profile slurm`: run a compiled metalab experiment
# on SLURM through snakemake-executor-plugin-slurm (pip install "metalab-smk[slurm]").
#   cd <experiment directory> && snakemake --profile slurm
#   metalab submit exp.py --profile slurm      (one job array, then exit)
# Plain snakemake packs short runs: each SLURM job runs a batch of runs (at least 10, from
# recorded run durations; `--config chunk=K` sets it, chunk=1 gives one job per run).
executor: slurm

# Concurrency limit: at most this many SLURM jobs submitted or running at once.
jobs: {jobs}

# Resources of every SLURM job (a job runs a batch of runs: budget `runtime` for all
# of them). Experiment(resources={{...}}) overrides these per experiment.
default-resources:
{resources}

# Status: the plugin asks sacct this many seconds after a submission or a finished job,
# and backs off by 10 s per check (up to 180 s) while nothing finishes, so long runs cost
# the scheduler few queries and short runs are seen within seconds.
slurm-init-seconds-before-status-checks: {status}
seconds-between-status-checks: {status}

slurm-logdir: ".snakemake/slurm_logs"
slurm-keep-successful-logs: false
keep-going: true      # one failing run (or batch) does not stop the others
retries: 0            # failed runs are run again by the next invocation
latency-wait: 30      # seconds to wait for files written on another node
"""


def profile_text(
    partition: str | None = None,
    account: str | None = None,
    time: str | int = 30,
    memory: str | int = "1G",
    cpus: int = 1,
    jobs: int = 100,
    status_seconds: int = 3,
) -> str:
    """The ``config.yaml`` of the profile."""
    resources = {
        "slurm_partition": f'"{partition}"' if partition else None,
        "slurm_account": f'"{account}"' if account else None,
        "runtime": f"{minutes(time)}                   # minutes per job",
        "mem_mb": str(memory_mb(memory)),
        "cpus_per_task": str(cpus),
    }
    lines = [f"  {key}: {value}" for key, value in resources.items() if value is not None]
    if not partition:
        lines.insert(0, '  # slurm_partition: "debug"   # your partition (see `sinfo -s`)')
    return TEMPLATE.format(
        jobs=jobs, resources="\n".join(lines), status=max(1, int(status_seconds))
    )


def user_profile_dir(name: str = "slurm") -> Path:
    """Where Snakemake finds the profile ``name`` of this user."""
    try:
        from platformdirs import user_config_dir  # a dependency of snakemake
    except ImportError:  # pragma: no cover - snakemake always brings it
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return Path(base) / "snakemake" / name
    return Path(user_config_dir("snakemake", "snakemake")) / name


def find_profile(name: str) -> Path | None:
    """The profile directory Snakemake would use for ``--profile name``: a directory
    path, else ``name`` in the user's Snakemake config folder."""
    if (Path(name) / "config.yaml").is_file():
        return Path(name)
    if os.sep not in name and (user_profile_dir(name) / "config.yaml").is_file():
        return user_profile_dir(name)
    return None


def install_profile(
    directory: str | os.PathLike[str] | None = None, force: bool = False, **options: object
) -> Path:
    """Write the profile's ``config.yaml`` into ``directory`` (default: the user's
    Snakemake config folder); refuse to overwrite a different one unless ``force``."""
    target = Path(directory) if directory else user_profile_dir()
    config = target / "config.yaml"
    text = profile_text(**options)
    if config.is_file() and config.read_text() != text and not force:
        raise ExecutorError(
            f"{config} exists with other settings; pass --force to overwrite it "
            "(or edit it by hand)."
        )
    atomic_write_text(config, text)
    return config
