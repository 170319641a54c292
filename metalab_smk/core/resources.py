"""The one resource model: Snakemake's resource names and units, wherever they come from.

``Experiment(resources=...)``, a profile's ``default-resources`` / ``set-resources``,
``SlurmConfig`` and per-case resources all become one normalised dict here:
``runtime`` in minutes (``90``, ``"90m"``, ``"2h"``, ``"1d"``, ``"1:30:00"``,
``"1-12:00:00"``), ``mem_mb`` (from ``mem``/``mem_mb``/``mem_mib``: ``"16G"``,
``"500M"``, ``"4GiB"``), ``gpu`` (``gpus`` is an alias), and every other key as given.
Sizes and time spans are parsed by Snakemake itself (``snakemake.resources``,
humanfriendly), so ``mem: 16G`` means here what it means to ``snakemake --profile``
(16000 MB). Snakemake is imported only when a value needs it: a job's start never does.
``"auto"`` as ``runtime`` or memory is kept as ``AUTO``: learned from finished runs
(store/learned.py) where a job's resources are decided.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from metalab_smk.core.values import is_int
from metalab_smk.errors import ExecutorError

__all__ = [
    "AUTO",
    "Resources",
    "class_key",
    "describe",
    "mem_mb",
    "merge",
    "normalise",
    "runtime_minutes",
]

Resources = dict[str, int | str]

_SIZES = ("mem", "mem_mb", "mem_mib", "disk", "disk_mb", "disk_mib")
_MEMORY = ("mem", "mem_mb", "mem_mib")
AUTO = "auto"  # runtime or memory learned from the finished runs (store/learned.py)


def _clock_minutes(text: str) -> int | None:
    """SLURM's time forms (``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) in
    minutes, seconds rounded up; None when ``text`` is not one of them."""
    if ":" not in text and "-" not in text:
        return None
    days, _, clock = text.rpartition("-")
    try:
        parts = [int(p) for p in clock.split(":")]
        if days:
            hours, mins, secs = [*parts, 0, 0][:3]
        elif len(parts) == 3:
            hours, mins, secs = parts
        elif len(parts) == 2:
            hours, (mins, secs) = 0, parts
        else:
            return None
        return int(days or 0) * 1440 + hours * 60 + mins + (1 if secs else 0)
    except ValueError:
        return None


def _snakemake_parse(mapping: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Snakemake's own normalisation of ``mapping`` (sizes to ``mem_mb``/``disk_mb``,
    ``runtime`` to minutes); its errors become one ExecutorError naming ``where``."""
    from snakemake.resources import Resources as SnakemakeResources

    try:
        parsed = SnakemakeResources.from_mapping(mapping)
        return {name: resource.value for name, resource in parsed.items()}
    except Exception as exc:  # WorkflowError and its resource errors
        text = " ".join(str(a) for a in getattr(exc, "args", ()) if a) or str(exc)
        raise ExecutorError(f"{where}: {text}") from None


def runtime_minutes(value: Any, where: str = "runtime") -> int:
    """A time limit in minutes: an int of minutes, ``"90"``, ``"90m"``, ``"2h"``,
    ``"1d"``, or SLURM's ``"1:30:00"`` / ``"1-00:00:00"``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ExecutorError(f"{where}={value!r}: give minutes (90) or e.g. '2h', '1d', '1:30:00'.")
    text = str(value).strip().strip("'\"")
    total = _clock_minutes(text)
    if total is None:
        try:
            total = int(
                _snakemake_parse({"runtime": int(text) if text.isdecimal() else text}, where)[
                    "runtime"
                ]
            )
        except ExecutorError:
            raise ExecutorError(
                f"{where}={value!r}: give minutes (90) or e.g. '90m', '2h', '1d', '1:30:00'."
            ) from None
    if total < 1:
        raise ExecutorError(f"{where}={value!r} must be at least one minute.")
    return total


def mem_mb(value: Any, where: str = "mem") -> int:
    """A memory size in MB as Snakemake counts it: an int of MB, ``"500M"``, ``"16G"``
    (16000), ``"4GiB"`` (4295)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ExecutorError(f"{where}={value!r}: give MB (500) or e.g. '500M', '16G', '4GiB'.")
    text = str(value).strip().strip("'\"")
    if text.isdecimal():
        return max(1, int(text))
    try:
        return int(_snakemake_parse({"mem": text}, where)["mem_mb"])
    except ExecutorError:
        raise ExecutorError(
            f"{where}={value!r}: give MB (500) or e.g. '500M', '16G', '4GiB'."
        ) from None


def normalise(resources: Mapping[str, Any] | None, where: str = "resources") -> Resources:
    """``resources`` in the one model: ``runtime`` in minutes, ``mem_mb`` /
    ``mem_mb_per_cpu`` / ``disk_mb`` in MB, ``gpu`` (from ``gpus``), decimal strings
    as ints, quotes around strings (``"'--qos=x'"``, as profiles write them) removed.
    Giving one thing twice (``mem`` and ``mem_mb``, ``gpu`` and ``gpus``) is an error."""
    out: dict[str, Any] = {}
    for key, value in (resources or {}).items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ExecutorError(f"{where}: {key!r} is not a resource name.")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ExecutorError(f"{where}: {key}={value!r} must be an int or a string.")
        if isinstance(value, str):
            value = value.strip().strip("'\"")
            value = int(value) if value.isdecimal() else value
        elif isinstance(value, float):
            value = round(value)
        out[key] = value
    if "gpus" in out:  # Snakemake and its SLURM plugin call it `gpu`
        if "gpu" in out:
            raise ExecutorError(f"{where}: give `gpus` or `gpu`, not both.")
        out["gpu"] = out.pop("gpus")
    if "runtime" in out and out["runtime"] != AUTO:
        out["runtime"] = runtime_minutes(out["runtime"], f"{where}: runtime")
    if "mem_mb_per_cpu" in out:
        out["mem_mb_per_cpu"] = mem_mb(out["mem_mb_per_cpu"], f"{where}: mem_mb_per_cpu")
    sizes = {k: out.pop(k) for k in _SIZES if k in out}
    if AUTO in (sizes.get(k) for k in _MEMORY):
        if sum(k in sizes for k in _MEMORY) > 1:
            raise ExecutorError(f"{where}: give memory once (mem, mem_mb or mem_mib).")
        for key in _MEMORY:
            sizes.pop(key, None)
        out["mem_mb"] = AUTO
    if sizes:
        out.update(_snakemake_parse(sizes, where))
    for key in ("cpus_per_task", "gpu", "tasks", "nodes"):
        if key in out and (not is_int(out[key]) or out[key] < 0):
            raise ExecutorError(f"{where}: {key}={out[key]!r} must be a whole number.")
    return dict(sorted(out.items()))


def class_key(resources: Mapping[str, Any]) -> str:
    """A stable text naming a resource class (equal resources, equal key)."""
    return json.dumps(dict(resources), sort_keys=True, separators=(",", ":"))


def describe(resources: Mapping[str, Any]) -> str:
    """``mem_mb=600 runtime=30``-style text of resources, for messages."""
    return " ".join(f"{key}={value}" for key, value in sorted(resources.items())) or "defaults"


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Resources:
    """``over`` on top of ``base``: a memory (``mem_mb`` / ``mem_mb_per_cpu``) or GPU
    (``gpu`` / ``gres``) request in ``over`` replaces ``base``'s in either form."""
    merged = dict(base)
    if "mem_mb" in over or "mem_mb_per_cpu" in over:
        merged.pop("mem_mb", None)
        merged.pop("mem_mb_per_cpu", None)
    if "gres" in over:
        merged.pop("gpu", None)
    if "gpu" in over and "gpu" in str(merged.get("gres", "")):
        merged.pop("gres")
    return dict(sorted({**merged, **over}.items()))
