"""Learned resources: what the finished runs of each resource class used (peak memory,
duration: their records), and what metalab asks for the rest when a resource is
``"auto"`` (``LEARN_FACTOR`` times the most any finished run of the class used)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from metalab_smk.core.resources import AUTO, Resources
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir

__all__ = [
    "AUTO",
    "FIRST_GUESS",
    "LEARN_FACTOR",
    "Observed",
    "fitting_chunk",
    "observe",
    "request",
    "resolve_auto",
]

LEARN_FACTOR = 1.3  # what is asked for, against the most a finished run used
FIRST_GUESS: Resources = {"mem_mb": 1000, "runtime": 30}  # "auto" before any run finished
START_SECONDS = 60  # a job's start (Python, imports) in its time limit
MAX_READ = 20_000  # records read at most (a sample of bigger sweeps)


@dataclass(frozen=True)
class Observed:
    """What the finished runs of one resource class used: their count, the largest peak
    memory (MB; None when no record has one) and the longest duration (seconds)."""

    runs: int
    max_mem_mb: int | None
    max_seconds: float


def observe(layout: ExperimentDir, class_of: Callable[[int], int]) -> dict[int, Observed]:
    """Per class number (``class_of(run_index)``), what its finished runs used (classes
    without any are absent)."""
    seen: dict[int, list[Any]] = {}
    if not layout.runs_dir.is_dir():
        return {}
    read = 0
    with os.scandir(layout.runs_dir) as entries:
        for entry in entries:
            if read >= MAX_READ:
                break
            if not entry.name.endswith(".json"):
                continue
            try:
                record = read_json(entry.path)
                number = class_of(int(record["run_index"]))
                seconds = float(record["duration_ms"]) / 1000
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                continue
            read += 1
            peak = ((record.get("provenance") or {}).get("extra") or {}).get("peak_mem_mb")
            runs, mem, longest = seen.get(number, [0, None, 0.0])
            if isinstance(peak, int) and not isinstance(peak, bool):
                mem = max(mem or 0, peak)
            seen[number] = [runs + 1, mem, max(longest, seconds)]
    return {number: Observed(*values) for number, values in sorted(seen.items())}


def request(observed: Observed, runs_per_job: int = 1) -> Resources:
    """What a job of ``runs_per_job`` runs of a class asks for, learned from
    ``observed``: ``mem_mb`` and ``runtime`` (minutes, its start included)."""
    learned: Resources = {}
    if observed.max_mem_mb:
        learned["mem_mb"] = math.ceil(LEARN_FACTOR * observed.max_mem_mb)
    seconds = LEARN_FACTOR * observed.max_seconds * runs_per_job + START_SECONDS
    learned["runtime"] = max(1, math.ceil(seconds / 60))
    return learned


def fitting_chunk(runtime_minutes: int, observed: Observed | None) -> int | None:
    """The most runs a job with a time limit of ``runtime_minutes`` fits, learned from
    ``observed`` (None: nothing observed)."""
    if observed is None or observed.max_seconds <= 0:
        return None
    room = runtime_minutes * 60 - START_SECONDS
    return max(1, math.floor(room / (LEARN_FACTOR * observed.max_seconds)))


def resolve_auto(
    resources: Mapping[str, Any],
    observed: Observed | None,
    runs_per_job: int,
    fallback: Mapping[str, Any] | None = None,
) -> Resources:
    """``resources`` with every ``"auto"`` (``mem_mb``, ``runtime``) replaced by what
    ``observed`` teaches, else by ``fallback``'s value (default ``FIRST_GUESS``)."""
    learned = request(observed, runs_per_job) if observed is not None else {}
    out = dict(resources)
    for key in ("mem_mb", "runtime"):
        if out.get(key) != AUTO:
            continue
        value = learned.get(key, (fallback or FIRST_GUESS).get(key))
        if value is None or value == AUTO:
            del out[key]
        else:
            out[key] = value
    return out
