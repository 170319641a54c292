"""``metalab plan``: what running an experiment would do, and why runs are reused or rerun.

Nothing is written: the experiment is planned and described as ``metalab compile`` would,
then compared with its experiment directory (records on disk, the last compiled
description).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field

from metalab_smk.compile.compiler import describe
from metalab_smk.compile.fingerprints import identity_changes, reuse_warning
from metalab_smk.core.experiment import Experiment
from metalab_smk.core.plan import Plan
from metalab_smk.store.config import DEFAULT_STORE, FileStoreConfig
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
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
        if self.warning:
            lines.append(textwrap.fill(f"warning: {self.warning}", 80, subsequent_indent="  "))
        return "\n".join(lines)


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
    previous = read_json(layout.compiled) if layout.compiled.is_file() else {}
    description = describe(experiment, plan, layout)
    others = [
        e
        for e in config.list_experiments()
        if e.rpartition(":")[0] == experiment.name and e != experiment.experiment_id
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
    )
