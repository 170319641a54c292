"""What a Snakemake profile asks of SLURM: its settings, read from the file Snakemake
reads, and its job resources in the one model (core/resources.py)."""

from __future__ import annotations

import os
from pathlib import Path

from metalab_smk.core.resources import merge, normalise
from metalab_smk.errors import ExecutorError
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.slurm.profile import profile_file

__all__ = ["JOB_RULES", "profile_resources", "profile_settings", "profile_slurm_config"]

JOB_RULES = ("metalab_batch", "metalab_run")


def profile_settings(profile: str | os.PathLike[str]) -> dict:
    """The profile's settings, from the file Snakemake reads ({} when it has none)."""
    import yaml  # a dependency of snakemake

    path = profile_file(str(profile))
    return (yaml.safe_load(Path(path).read_text()) if path else None) or {}


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


def profile_slurm_config(settings: dict, chunk_size: int | None = None) -> SlurmConfig:
    """A profile's SLURM settings as a SlurmConfig: its ``default-resources``, the
    ``set-resources`` of metalab's job rules, ``slurm-qos`` / ``slurm-reservation`` /
    ``slurm-requeue`` and ``jobs``."""
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
        max_concurrent=int(settings.get("jobs", 100)), chunk_size=chunk_size, resources=resources
    )
