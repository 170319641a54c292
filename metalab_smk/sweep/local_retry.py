"""Locally, retry with more memory: runs the OOM killer ended while their resource class
asked for ``mem_mb`` run again in the same ``metalab run`` asking for ``FACTOR`` times
as much (so fewer run beside them), at most ``MAX_ESCALATIONS`` times and never beyond
this machine's memory; then they stay failed, with one line naming what they asked for.
Each attempt's resources go into the records and ``.metalab/escalations.jsonl``, as on
SLURM (slurm/escalation.py)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from metalab_smk.core.resources import Resources, describe
from metalab_smk.job.exits import OOM_KILLED, memory_cgroup_files
from metalab_smk.slurm.escalation import ATTEMPTS_VARIABLE, FACTOR, MEMORY, note_escalation
from metalab_smk.store.classes import ResourceClasses
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir

__all__ = ["MAX_ESCALATIONS", "LocalEscalation", "RetryRound", "machine_memory_mb"]

MAX_ESCALATIONS = 2
JOB_RULES = ("metalab_batch", "metalab_run")


def _cgroup_limit_bytes() -> int | None:
    """The memory limit of this process's cgroup (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``), None when there is none."""
    for path in memory_cgroup_files("memory.max", "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 shows "no limit" as a huge number
            return int(text)
    return None


def machine_memory_mb() -> int:
    """The memory local runs share, in MB: this machine's, or its cgroup's limit."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit_bytes()
    return min(physical, limit or physical) // 10**6


@dataclass(frozen=True)
class RetryRound:
    """Runs to run again, the Snakemake options asking for more memory, and what their
    jobs put into the records (their attempts)."""

    indices: list[int]
    snakemake_args: list[str]
    env: dict[str, str]


@dataclass
class LocalEscalation:
    """The memory escalations of one local ``metalab run``, started at ``since`` (wall
    time): failed records written after it are this sweep's."""

    layout: ExperimentDir
    since: float
    attempts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # by class
    given_up: set[str] = field(default_factory=set)

    def _out_of_memory(self) -> list[int]:
        """Indices of this sweep's runs the OOM killer ended (their failed record says so)."""
        found = set()
        for run_id in self.layout.failed_ids() - self.given_up:
            path = self.layout.failed_record(run_id)
            try:
                if path.stat().st_mtime < self.since:
                    continue
                record = read_json(path)
            except (OSError, ValueError):
                continue
            error = record.get("error") or {}  # the worker's crash record, not a user's
            if error.get("type") == "Crashed" and OOM_KILLED in str(error.get("message")):
                found.add(run_id)  # ... MemoryError or "CUDA out of memory"
        return [i for i, rid in enumerate(self.layout.read_run_ids()) if rid in found]

    def next_round(self) -> RetryRound | None:
        """The OOM-killed runs of one resource class asking for ``FACTOR`` times the
        memory, or None when none is left to retry (one line for each class given up)."""
        table = ResourceClasses.read(self.layout)
        by_class = table.group(self._out_of_memory())
        run_ids = self.layout.read_run_ids()
        for number, indices in by_class.items():
            earlier = self.attempts.get(number, [])  # the last one is the current request
            killed = [a for a in earlier if "killed_by" in a]
            current = (earlier[-1]["resources"] if earlier else table.classes[number]).get("mem_mb")
            why_not = None
            if not isinstance(current, int):
                why_not = "its resources give no mem_mb"
            elif len(killed) >= MAX_ESCALATIONS:
                why_not = f"already retried {len(killed)} times"
            elif current >= machine_memory_mb():
                why_not = f"mem_mb={current} is all this machine has"
            if why_not is not None:
                asked = [*(a["resources"] for a in killed), {"mem_mb": current}]
                shown = ", then ".join(describe(r) for r in asked)
                print(
                    f"metalab: {len(indices)} run(s) killed by the OOM killer asking for "
                    f"{shown}; not retried: {why_not}",
                    file=sys.stderr,
                    flush=True,
                )
                self.given_up.update(run_ids[i] for i in indices)
                continue
            assert isinstance(current, int)  # else why_not was set above
            grown: Resources = {"mem_mb": min(current * FACTOR, machine_memory_mb())}
            before: Resources = {"mem_mb": current}
            self.attempts[number] = [
                *killed,
                {"resources": before, "killed_by": MEMORY},
                {"resources": grown},
            ]
            note_escalation(self.layout, MEMORY, len(indices), before, grown)
            settings = [f"{rule}:mem_mb={grown['mem_mb']}" for rule in JOB_RULES]
            return RetryRound(
                indices,
                ["--set-resources", *settings],
                {ATTEMPTS_VARIABLE: json.dumps(self.attempts[number])},
            )
        return None
