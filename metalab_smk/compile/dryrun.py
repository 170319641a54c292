"""``metalab plan``: what running an experiment would do, and why runs are reused or rerun.

Nothing is written: the experiment is planned and described as ``metalab compile`` would,
then compared with its experiment directory (records on disk, the last compiled
description).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from typing import Any

from metalab_smk.compile.compiler import describe
from metalab_smk.compile.fingerprints import identity_changes, reuse_warning
from metalab_smk.compile.reader import read_compiled
from metalab_smk.core.experiment import Experiment
from metalab_smk.core.plan import Plan
from metalab_smk.core.resources import AUTO
from metalab_smk.core.resources import describe as describe_resources
from metalab_smk.store.classes import ResourceClasses
from metalab_smk.store.config import DEFAULT_STORE, FileStoreConfig
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.learned import LEARN_FACTOR, observe, request
from metalab_smk.store.locate import check_store, shown

__all__ = ["DryRun", "dry_run"]


@dataclass
class DryRun:
    """Counts of a planned sweep against its directory, and what changed since the last
    compile."""

    experiment_id: str
    directory: str
    total: int
    new: int
    done: int
    failed: int
    stale: int
    compiled_before: bool
    other_versions: list[str] = field(default_factory=list)
    changes: list[tuple[str, list[str]]] = field(default_factory=list)
    warning: str | None = None
    learned: list[dict[str, Any]] = field(default_factory=list)

    def as_text(self) -> str:
        lines = [
            f"{self.experiment_id} ({self.directory}): {self.total} runs",
            f"  {self.new} new (would run), {self.failed} failed (would rerun), "
            f"{self.done} done (reused)",
        ]
        if self.stale:
            lines.append(f"  {self.stale} records of runs no longer in the plan (stale, kept)")
        if not self.compiled_before:
            lines.append("first compile of this name:version here.")
            if self.other_versions:
                lines.append(
                    "the store also holds "
                    + ", ".join(self.other_versions)
                    + "; another version never reuses their runs."
                )
        elif self.changes:
            parts = ", ".join(part for part, _ in self.changes)
            lines.append(f"run IDs changed since the last compile: {parts} changed.")
            for part, diff in self.changes:
                lines.append(f"  {part}:")
                lines.extend(f"    {line}" for line in diff)
        else:
            lines.append("run IDs are the same as at the last compile.")
        if self.learned:
            lines.append(
                f"resources learned from finished runs ('auto' asks {LEARN_FACTOR}x the most "
                "any used):"
            )
            lines.extend(f"  {_learned_line(entry)}" for entry in self.learned)
        if self.warning:
            lines.append(textwrap.fill(f"warning: {self.warning}", 80, subsequent_indent="  "))
        return "\n".join(lines)


def _learned_line(entry: dict[str, Any]) -> str:
    peak = f"peak {entry['max_mem_mb']} MB" if entry["max_mem_mb"] else "peak memory unknown"
    asks = entry["asks"]
    parts = []
    if "mem_mb" in asks:
        parts.append(f"mem_mb={asks['mem_mb']}")
    if "seconds_per_run" in asks:
        parts.append(f"runtime {asks['seconds_per_run']:g} s per run + 1 min per job")
    what = ", ".join(parts) if parts else "what it gives (no 'auto')"
    return (
        f"{entry['resources']}: {entry['runs']} finished, {peak}, longest "
        f"{entry['max_seconds']:g} s -> asks {what}"
    )


def learned_resources(layout: ExperimentDir) -> list[dict[str, Any]]:
    """Per resource class with finished runs: what they used at most and what the
    rest asks for where the class says ``"auto"`` (store/learned.py)."""
    if not layout.runs_dir.is_dir():
        return []
    table = ResourceClasses.read(layout)
    entries = []
    for number, seen in observe(layout, table.of_run).items():
        resources = table.classes[number] if number < len(table.classes) else {}
        learned = request(seen)
        asks: dict[str, Any] = {}
        if resources.get("mem_mb") == AUTO and "mem_mb" in learned:
            asks["mem_mb"] = learned["mem_mb"]
        if resources.get("runtime") == AUTO:
            asks["seconds_per_run"] = round(LEARN_FACTOR * seen.max_seconds, 1)
        entries.append(
            {
                "resources": describe_resources(resources),
                "runs": seen.runs,
                "max_mem_mb": seen.max_mem_mb,
                "max_seconds": round(seen.max_seconds, 1),
                "asks": asks,
            }
        )
    return entries


def dry_run(experiment: Experiment, store: str | os.PathLike[str] | None = None) -> DryRun:
    """Plan ``experiment`` against its directory under ``store`` without writing."""
    store = store or DEFAULT_STORE
    check_store(store, experiment.experiment_id)
    config = FileStoreConfig(store)
    layout: ExperimentDir = config.experiment_dir(experiment.experiment_id)
    plan = Plan(experiment)
    run_ids = plan.run_table()
    current = set(run_ids)
    done = layout.done_ids()
    failed = layout.failed_ids() - done
    previous = read_compiled(layout)
    description = describe(experiment, plan, layout)
    others = [
        e
        for e in config.list_experiments()
        if e.partition(":")[0] == experiment.name and e != experiment.experiment_id
    ]
    return DryRun(
        experiment_id=experiment.experiment_id,
        directory=shown(layout.root),
        total=len(run_ids),
        new=len(current - done - failed),
        done=len(current & done),
        failed=len(current & failed),
        stale=len((done | failed) - current),
        compiled_before=bool(previous),
        other_versions=others,
        changes=identity_changes(previous, description) if previous else [],
        warning=reuse_warning(previous, description) if current & done else None,
        learned=learned_resources(layout) if done else [],
    )
