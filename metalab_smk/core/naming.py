"""The directory name of an experiment, and the rules that keep it valid and unique."""

from __future__ import annotations

from urllib.parse import quote

from metalab_smk.errors import ExperimentError

__all__ = [
    "MAX_DIRNAME_BYTES",
    "check_experiment_id",
    "check_name_version",
    "experiment_dirname",
]

_SAFE = "-._"  # besides letters and digits; everything else is %-escaped
# NAME_MAX is 255 bytes on common filesystems; the manifest file adds ".json"
MAX_DIRNAME_BYTES = 250


def experiment_dirname(name: str, version: str) -> str:
    """``name`` and ``version`` %-escaped, joined by ``+``."""
    return f"{quote(name, safe=_SAFE)}+{quote(version, safe=_SAFE)}"


def check_name_version(name: str, version: str) -> None:
    """Raise ExperimentError unless (name, version) makes a valid, unique directory."""
    if ":" in name:
        raise ExperimentError(
            f"Experiment(name={name!r}): ':' separates name and version in the experiment "
            "ID, so a name cannot contain it; use '-' or '_' instead."
        )
    if not version.strip():
        raise ExperimentError(
            f"Experiment(name={name!r}, version={version!r}): the version is empty; give one "
            "such as '1'."
        )
    length = len(experiment_dirname(name, version).encode())
    if length > MAX_DIRNAME_BYTES:
        raise ExperimentError(
            f"Experiment(name={name[:40]!r}..., version={version[:20]!r}): the directory name "
            f"would be {length} bytes (after escaping), above the {MAX_DIRNAME_BYTES}-byte "
            "limit of file names; use a shorter name or version."
        )


def check_experiment_id(experiment_id: object) -> str:
    """``experiment_id`` (read from data) when it is a ``name:version`` that makes a
    valid directory name, else ExperimentError."""
    if not isinstance(experiment_id, str) or ":" not in experiment_id:
        raise ExperimentError(f"{experiment_id!r} is not an experiment ID (name:version)")
    name, _, version = experiment_id.partition(":")
    check_name_version(name, version)
    return experiment_id
