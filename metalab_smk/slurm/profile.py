"""The Snakemake profile templates shipped inside the package (``metalab profile``)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from metalab_smk.errors import MetalabError

__all__ = ["available_profiles", "profile_template", "write_profile"]


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


def write_profile(name: str, directory: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write the shipped profile ``name`` to ``directory/config.yaml``; returns that path.

    Refuses to replace an existing ``config.yaml`` unless ``overwrite``."""
    text = profile_template(name)
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise MetalabError(f"{target} is a file; give a directory for the profile.")
    config = target / "config.yaml"
    if config.exists() and not overwrite:
        raise MetalabError(f"{config} exists; pass --force to overwrite it, or pick another DIR.")
    target.mkdir(parents=True, exist_ok=True)
    config.write_text(text, encoding="utf-8")
    return config
