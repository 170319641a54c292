"""Packing runs into Snakemake jobs: each batch is one job running several runs.

A batch is ``.metalab/batches/<name>.txt`` (run indices, one per line) and its job's
output ``<name>.done``. The worker skips runs whose success record exists and writes
each run's record on its own, so a failed or killed batch loses no finished run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

from metalab_smk.store import ExperimentDir, atomic_write_text

__all__ = ["MAX_AUTO_CHUNK", "choose_chunk_size", "clear_batches", "write_batches"]

MAX_AUTO_CHUNK = 200
JOBS_PER_CORE = 4  # enough jobs per core to balance uneven run times


def choose_chunk_size(n_runs: int, cores: int, chunk_size: int | None = None) -> int:
    """Runs per job: ``chunk_size`` when given, else about JOBS_PER_CORE jobs per core."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size} must be at least 1.")
        return chunk_size
    jobs = max(1, cores * JOBS_PER_CORE)
    return max(1, min(MAX_AUTO_CHUNK, math.ceil(n_runs / jobs)))


def clear_batches(layout: ExperimentDir) -> None:
    """Remove batch files of earlier invocations (only call with no Snakemake running)."""
    directory = layout.meta_dir / "batches"
    if directory.is_dir():
        for path in directory.iterdir():
            path.unlink(missing_ok=True)


def write_batches(layout: ExperimentDir, indices: Sequence[int], chunk: int) -> list[Path]:
    """Write batch listings of ``chunk`` runs each; return the ``.done`` targets."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    targets = []
    for number, start in enumerate(range(0, len(indices), chunk)):
        name = f"{stamp}-{number:06d}"
        listing = layout.meta_dir / "batches" / f"{name}.txt"
        atomic_write_text(listing, "".join(f"{i}\n" for i in indices[start : start + chunk]))
        targets.append(listing.with_suffix(".done"))
    return targets
