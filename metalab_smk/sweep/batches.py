"""Packing runs into Snakemake jobs: each batch is one job running several runs.

A batch is ``.metalab/batches/<name>.txt`` (run indices, one per line) and its job's
output ``<name>.done``. The worker skips runs whose success record exists and writes
each run's record on its own, so a failed or killed batch loses no finished run.
"""

from __future__ import annotations

import hashlib
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalab_smk.errors import ExecutorError
from metalab_smk.store.classes import (
    ResourceClasses,
    batch_parts,
    write_batch_resources,
    write_batches,
)
from metalab_smk.store.coverage import stored_coverage, validated_before
from metalab_smk.store.jsonio import atomic_write_text, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.learned import Observed, fitting_chunk, observe
from metalab_smk.store.validate import valid_names

__all__ = [
    "MAX_AUTO_CHUNK",
    "BatchGroup",
    "choose_chunk_size",
    "clear_batches",
    "batch_stamp",
    "dag_targets",
    "missing_indices",
    "plan_batches",
    "median_run_seconds",
    "write_batches",
]

MAX_AUTO_CHUNK = 1000  # on a cluster
MAX_LOCAL_CHUNK = 10_000  # on one machine, where a job costs a tenth of a second to start
JOBS_PER_WORKER = 2  # on a cluster, a few jobs per parallel slot balance uneven run times
LONG_RUN_SECONDS = 30.0  # runs at least this long get a job each
MIN_JOB_SECONDS = 60.0  # on a cluster, short runs fill each job with about this much work


def choose_chunk_size(
    n_runs: int,
    parallel: int,
    chunk_size: int | None = None,
    min_chunk: int = 1,
    median_run_seconds: float | None = None,
    local: bool = False,
) -> int:
    """Runs per job: ``chunk_size`` when given; one when earlier runs of the experiment
    took at least LONG_RUN_SECONDS. Else, on one machine (``local``), one job per
    parallel slot (its batch strided over the sweep, ``write_batches``) of at most
    MAX_LOCAL_CHUNK runs; elsewhere (a cluster job costs seconds to start), about
    JOBS_PER_WORKER jobs per parallel slot of at least ``min_chunk`` and at most
    MAX_AUTO_CHUNK runs, and with recorded durations on a cluster (``min_chunk`` > 1)
    about MIN_JOB_SECONDS of runs per job, as long as that still gives every parallel
    slot a job."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise ExecutorError(f"chunk_size={chunk_size} must be at least 1.")
        return chunk_size
    if median_run_seconds is not None and median_run_seconds >= LONG_RUN_SECONDS:
        return 1
    if local:
        return max(1, min(MAX_LOCAL_CHUNK, math.ceil(n_runs / max(1, parallel))))
    spread = math.ceil(n_runs / max(1, parallel * JOBS_PER_WORKER))
    if median_run_seconds is not None and min_chunk > 1:
        by_time = math.ceil(MIN_JOB_SECONDS / max(median_run_seconds, 1e-3))
        spread = max(spread, min(by_time, math.ceil(n_runs / max(1, parallel))))
    return max(1, min(MAX_AUTO_CHUNK, max(min_chunk, spread)))


def median_run_seconds(layout: ExperimentDir, sample: int = 50) -> float | None:
    """Median duration of up to ``sample`` finished runs of this experiment, if any."""
    if not layout.runs_dir.is_dir():
        return None
    durations: list[float] = []
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


def batch_stamp(targets: Sequence[Path]) -> str:
    """The common stamp of the batches ``<stamp>-<number>`` written by write_batches."""
    return targets[0].stem.rsplit("-", 1)[0]


def missing_indices(layout: ExperimentDir, scan: bool = True) -> list[int]:
    """Indices of the runs without a valid success record, in run order. With ``scan``,
    empty records and records changed since the summary validated them are checked (one
    stat per record; bad ones are quarantined); right after a collect, which did the same,
    pass False."""
    if scan:
        coverage = stored_coverage(layout) or {}
        done = valid_names(layout, layout.runs_dir, validated_before(coverage))
    else:
        done = layout.done_ids()
    return [i for i, rid in enumerate(layout.read_run_ids()) if rid not in done]


@dataclass(frozen=True)
class BatchGroup:
    """Batches of one resource class (all of them, or one array's share): the class's
    resources, the batches' targets, their runs per batch and what the class's finished
    runs used (None: none finished)."""

    resources: dict[str, Any]
    targets: list[Path]
    chunk: int = 1
    observed: Observed | None = None

    @property
    def stamp(self) -> str:
        return batch_stamp(self.targets)


def plan_batches(
    layout: ExperimentDir,
    missing: Sequence[int],
    parallel: int,
    chunk_size: int | None,
    min_chunk: int,
    max_jobs: int | None = None,
    max_group: int | None = None,
    time_limit: Callable[[dict[str, Any]], int | None] | None = None,
    local: bool = False,
) -> tuple[list[BatchGroup], int]:
    """Replace earlier batches by batches of ``missing``, one group per resource class
    (a batch never mixes classes); return the groups and the largest batch size.

    ``time_limit(resources)``: a job's time limit in minutes (None: none); an automatic
    batch size is lowered per class so that its runs fit it, by the longest finished run
    of the class. ``max_jobs`` (SLURM's MaxSubmitJobs) raises the size until all batches
    fit; ``max_group`` (a job array's size limit) splits a class's batches into groups of
    at most that many (one array each). ``local``: the jobs run on this machine
    (``choose_chunk_size``)."""
    clear_batches(layout)
    chunk = choose_chunk_size(
        len(missing), parallel, chunk_size, min_chunk, median_run_seconds(layout), local
    )
    table = ResourceClasses.read(layout)
    groups = table.group(missing)
    observed = observe(layout, table.of_run) if time_limit is not None else {}
    sizes = {}
    for number in groups:
        limit = time_limit(table.classes[number]) if time_limit is not None else None
        fit = fitting_chunk(limit, observed.get(number)) if limit else None
        sizes[number] = min(chunk, fit) if fit and chunk_size is None else chunk
    if max_jobs:
        total = sum(math.ceil(len(groups[n]) / size) for n, size in sizes.items())
        if total > max_jobs:  # the scheduler refuses more: fewer, larger batches
            grown = math.ceil(len(missing) / max(1, max_jobs - len(groups)))
            sizes = {n: max(size, grown) for n, size in sizes.items()}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    planned = []
    for number, indices in groups.items():
        size = sizes[number]
        step = size * max_group if max_group else len(indices)
        for part, start in enumerate(range(0, len(indices), step)):
            prefix = f"{stamp}c{number}" if table.per_case else stamp
            prefix += f"p{part}" if part else ""
            part_indices = indices[start : start + step]
            targets = write_batches(layout, part_indices, size, prefix, strided=local)
            if table.per_case:
                for target in targets:
                    write_batch_resources(layout, target.stem, table.classes[number])
            resources = table.classes[number]
            planned.append(BatchGroup(resources, targets, size, observed.get(number)))
    return planned, max(sizes.values(), default=chunk)


def dag_targets(
    root: str | os.PathLike[str], chunk: int | None, parallel: int, remote: bool
) -> list[str]:
    """What plain ``snakemake`` in an experiment directory builds: the record of each
    finished run, and the missing runs packed into batch targets (``chunk`` runs each;
    default from recorded durations and ``parallel``; at least 10 on a cluster, where
    each job costs seconds to start). ``chunk=1`` gives one job per run.

    Batch names hash the missing runs, so every evaluation within one invocation agrees;
    a stale ``.done`` of an earlier batch of the same runs is removed (its runs are
    missing again)."""
    layout = ExperimentDir.at(root)
    run_ids = layout.read_run_ids()
    done = layout.done_ids()
    missing = [i for i, rid in enumerate(run_ids) if rid not in done]
    median = median_run_seconds(layout) if missing else None
    size = choose_chunk_size(
        len(missing), parallel, chunk, 10 if remote else 1, median, local=not remote
    )
    if size == 1 or not missing:
        return [f"runs/{rid}.json" for rid in run_ids]
    targets = [f"runs/{rid}.json" for rid in run_ids if rid in done]
    table = ResourceClasses.read(layout)
    for number, indices in table.group(missing).items():
        digest = hashlib.sha256(f"{size}:{','.join(map(str, indices))}".encode()).hexdigest()
        for part, batch in enumerate(batch_parts(indices, size, strided=not remote)):
            name = f"dag-{digest[:12]}-{part:06d}"
            listing = layout.batch_listing(name)
            text = "".join(f"{i}\n" for i in batch)
            if not listing.is_file() or listing.read_text() != text:
                atomic_write_text(listing, text)
            if table.per_case:
                write_batch_resources(layout, name, table.classes[number])
            layout.batch_done(name).unlink(missing_ok=True)
            targets.append(os.path.relpath(layout.batch_done(name), layout.root))
    return targets
