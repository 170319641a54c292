"""The directory name of an experiment, and the rules that keep it valid and unique."""

from __future__ import annotations

from urllib.parse import quote

from metalab_smk.core.values import control_character
from metalab_smk.errors import ExperimentError, ParamError

__all__ = [
    "MAX_DIRNAME_BYTES",
    "check_experiment_id",
    "check_name_version",
    "check_param_name",
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
    for what, text in (("name", name), ("version", version)):
        if (char := control_character(text)) is not None:
            raise ExperimentError(
                f"Experiment({what}={text!r}) contains the control character {char!r}; "
                "names are printed and used in file names, so use printable characters."
            )
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


def check_param_name(name: object, where: str) -> None:
    """Raise ParamError unless the param name ``name`` (given in ``where``) is a string
    without control characters."""
    if not isinstance(name, str):
        raise ParamError(f"{where}: the param name {name!r} is not a string.")
    if (char := control_character(name)) is not None:
        raise ParamError(
            f"{where}: the param name {name!r} contains the control character {char!r}; "
            "use printable characters."
        )


def check_experiment_id(experiment_id: object) -> str:
    """``experiment_id`` (read from data) when it is a ``name:version`` that makes a
    valid directory name, else ExperimentError."""
    if not isinstance(experiment_id, str) or ":" not in experiment_id:
        raise ExperimentError(f"{experiment_id!r} is not an experiment ID (name:version)")
    name, _, version = experiment_id.partition(":")
    check_name_version(name, version)
    return experiment_id
