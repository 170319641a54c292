"""Packing runs into Snakemake jobs: each batch is one job running several runs.

A batch is ``.metalab/batches/<name>.txt`` (run indices, one per line) and its job's
output ``<name>.done``. The worker skips runs whose success record exists and writes
each run's record on its own, so a failed or killed batch loses no finished run.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from metalab_smk.errors import ExecutorError
from metalab_smk.store.jsonio import atomic_write_text, read_json
from metalab_smk.store.layout import ExperimentDir

__all__ = [
    "MAX_AUTO_CHUNK",
    "choose_chunk_size",
    "clear_batches",
    "median_run_seconds",
    "write_batches",
]

MAX_AUTO_CHUNK = 1000
JOBS_PER_WORKER = 2  # a few jobs per parallel slot balance uneven run times
LONG_RUN_SECONDS = 30.0  # runs at least this long get a job each


def choose_chunk_size(
    n_runs: int,
    parallel: int,
    chunk_size: int | None = None,
    min_chunk: int = 1,
    median_run_seconds: float | None = None,
) -> int:
    """Runs per job: ``chunk_size`` when given; one when earlier runs of the experiment
    took at least LONG_RUN_SECONDS; else about JOBS_PER_WORKER jobs per parallel slot,
    at least ``min_chunk`` (a SLURM job costs seconds to start) and at most MAX_AUTO_CHUNK."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise ExecutorError(f"chunk_size={chunk_size} must be at least 1.")
        return chunk_size
    if median_run_seconds is not None and median_run_seconds >= LONG_RUN_SECONDS:
        return 1
    spread = math.ceil(n_runs / max(1, parallel * JOBS_PER_WORKER))
    return max(1, min(MAX_AUTO_CHUNK, max(min_chunk, spread)))


def median_run_seconds(layout: ExperimentDir, sample: int = 50) -> float | None:
    """Median duration of up to ``sample`` finished runs of this experiment, if any."""
    if not layout.runs_dir.is_dir():
        return None
    durations = []
    with os.scandir(layout.runs_dir) as entries:
        for entry in entries:
            if len(durations) >= sample:
                break
            try:
                durations.append(read_json(entry.path)["duration_ms"] / 1000)
            except (OSError, ValueError, KeyError):
                continue
    return statistics.median(durations) if durations else None


def clear_batches(layout: ExperimentDir) -> None:
    """Remove batch files of earlier invocations (only call with no Snakemake running)."""
    directory = layout.batches_dir
    if directory.is_dir():
        for path in directory.iterdir():
            path.unlink(missing_ok=True)


def write_batches(layout: ExperimentDir, indices: Sequence[int], chunk: int) -> list[Path]:
    """Write batch listings of ``chunk`` runs each; return the ``.done`` targets."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    targets = []
    for number, start in enumerate(range(0, len(indices), chunk)):
        name = f"{stamp}-{number:06d}"
        listing = "".join(f"{i}\n" for i in indices[start : start + chunk])
        atomic_write_text(layout.batch_listing(name), listing)
        targets.append(layout.batch_done(name))
    return targets
