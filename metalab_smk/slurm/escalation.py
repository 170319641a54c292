"""Retry with more: array tasks SLURM killed for memory or time are run again at once.

After an array ends, its tasks that SLURM ended OUT_OF_MEMORY or TIMEOUT (sacct, or the
task's log where the cluster reports a memory kill as FAILED) have their unfinished runs
(no record, or the cancelled record of the run the limit stopped) packed into a new
array asking for ``FACTOR`` times the memory or time, at most
``SlurmConfig.max_escalations`` times (2) and never beyond the partition's limits
(``scontrol show partition``). Each escalation is noted in ``.metalab/escalations.jsonl``
(``metalab status`` shows it) and handed to the retried runs' records
(``provenance.extra.resource_attempts``); runs that still die fail with one line naming
what they asked for and what killed them. A detached ``metalab submit`` has no process
waiting: its follower job does the same after the arrays end (sweep/follow.py).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

from metalab_smk.core.resources import Resources, describe
from metalab_smk.core.values import utc_now
from metalab_smk.errors import SchedulerError
from metalab_smk.slurm import scheduler
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.store.classes import write_batch_resources, write_batches
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import Status

__all__ = [
    "ATTEMPTS_VARIABLE",
    "Escalation",
    "FACTOR",
    "killed_tasks",
    "note_escalation",
    "retry_lines",
]

ATTEMPTS_VARIABLE = "METALAB_RESOURCE_ATTEMPTS"  # JSON: this task's resource attempts
FACTOR = 2
MEMORY, TIME = "OUT_OF_MEMORY", "TIMEOUT"
_GROWN = {MEMORY: ("mem_mb_per_cpu", "mem_mb"), TIME: ("runtime",)}


_NO_ACCOUNTING = "accounting storage is disabled"  # what sacct says without slurmdbd


def _ended_rows(
    job_id: str, tasks: int, since: datetime, wait: float = 15.0
) -> dict[int, scheduler.SacctRow] | None:
    """The array's task lines in sacct by task index, once every task has one and none
    is alive, asking for up to ``wait`` seconds (sacct lags a little: for a moment it
    shows the array as one line, or some of its tasks only; a failing sacct, say while
    slurmdbd restarts, is asked again); None when this cluster keeps no accounting."""
    if not scheduler.available("sacct"):
        return None
    rows: dict[int, scheduler.SacctRow] = {}
    deadline = time.monotonic() + wait
    while True:
        try:
            parsed = scheduler.parse_sacct(scheduler.call(scheduler.sacct_argv([job_id], since)))
        except SchedulerError as exc:
            if _NO_ACCOUNTING in str(exc).lower():
                return None
            parsed = None
        if parsed is not None:
            rows = {}
            for row in parsed:
                if not row.is_step:
                    rows.update(dict.fromkeys(scheduler.array_task_indices(row.job_id), row))
            if len(rows) >= tasks and not any(r.alive for r in rows.values()):
                return rows
        if time.monotonic() >= deadline:
            return rows
        time.sleep(0.5)


def killed_tasks(
    layout: ExperimentDir, job_id: str, stamp: str, tasks: int, since: datetime
) -> dict[str, list[str]]:
    """The batches of the array ``job_id`` (``tasks`` tasks) whose task SLURM ended for
    memory or time, by cause (a killed task's worker may still have written its end
    marker). ``since``: when the array was submitted (older jobs of the same ID are left
    out). A task that ended without its end marker for no reason seen yet (or not in
    sacct yet) is looked at again for a few seconds: the accounting and slurmstepd's
    last log lines may come late."""
    killed: dict[str, list[str]] = {}
    for attempt in range(6):
        killed, unknown = {}, []
        rows = _ended_rows(job_id, tasks, since, wait=15.0 if attempt == 0 else 0.0)
        if rows is None:
            return {}  # without accounting, nothing tells a memory or time kill
        for task in range(tasks):
            name = f"{stamp}-{task:06d}"
            row = rows.get(task)
            state = row.state if row is not None else None
            if state == TIME:
                killed.setdefault(TIME, []).append(name)
            elif state not in (None, "COMPLETED") and scheduler.out_of_memory(
                state, scheduler.log_tail(str(layout.slurm_log(f"{stamp}-{task}")))
            ):
                killed.setdefault(MEMORY, []).append(name)
            elif not layout.batch_end(name).exists():  # else its runs ended by themselves
                unknown.append(f"{job_id}_{task} {state or 'not in sacct'}")
        if not unknown:
            break
        if attempt == 5:
            print(f"metalab: task(s) ended: {', '.join(unknown)}", flush=True)
        time.sleep(2)
    return killed


class Escalation:
    """The escalations of one ``metalab run`` on the array engine."""

    def __init__(self, layout: ExperimentDir, config: SlurmConfig) -> None:
        self.layout = layout
        self.config = config
        self.attempts: dict[str, list[dict[str, Any]]] = {}  # by stamp: earlier attempts
        self.current: dict[str, Resources] = {}  # by stamp: what its tasks ask for
        self._limits: list[scheduler.PartitionLimits] | None = None
        self.superseded: set[str] = set()  # killed batches whose runs run again
        self.refused: list[str] = []  # one line per cause not retried

    def restore(self, stamp: str, resources: Resources, attempts: list[dict[str, Any]]) -> None:
        """Go on from an earlier process: the array ``stamp`` asks for ``resources`` after
        the earlier ``attempts`` (what :meth:`retry` noted for it)."""
        self.attempts[stamp] = attempts
        self.current[stamp] = resources

    def env(self, stamp: str) -> dict[str, str]:
        """What the tasks of the array ``stamp`` put into their runs' records."""
        if stamp not in self.attempts:
            return {}
        attempts = [*self.attempts[stamp], {"resources": self.current[stamp]}]
        return {ATTEMPTS_VARIABLE: json.dumps(attempts)}

    def _limit(self, partition: str | None) -> scheduler.PartitionLimits | None:
        if self._limits is None:
            try:
                out = scheduler.call(scheduler.scontrol_partition_argv())
                self._limits = scheduler.parse_partitions(out)
            except SchedulerError:
                self._limits = []
        for limits in self._limits:
            if (limits.name == partition) if partition else limits.default:
                return limits
        return None

    def grown(self, resources: Resources, cause: str) -> tuple[Resources, str | None]:
        """``resources`` with FACTOR times the memory or time, capped by the partition;
        the reason when they cannot grow."""
        key = next((k for k in _GROWN[cause] if k in resources), _GROWN[cause][-1])
        current = int(resources.get(key, 0))
        limits = self._limit(resources.get("slurm_partition"))  # type: ignore[arg-type]
        cap = None
        if limits is not None:
            cap = limits.max_minutes if cause == TIME else limits.max_mem_mb
            if cap is not None and key == "mem_mb_per_cpu":
                cap //= max(1, int(resources.get("cpus_per_task", 1)))
        wanted = current * FACTOR if current else None
        if wanted is None:
            return resources, f"no {key} was asked for"
        if cap is not None and current >= cap:
            return resources, f"{key}={current} is the partition's limit"
        return {**resources, key: min(wanted, cap) if cap else wanted}, None

    def retry(
        self, stamp: str, resources: Resources, killed: dict[str, list[str]]
    ) -> tuple[int, list[tuple[str, int, Resources]]]:
        """Retry the unfinished runs of the killed batches of the array ``stamp`` with
        grown resources: how many killed tasks are retried, and the arrays (stamp,
        tasks, resources) to submit; one line for each cause not retried."""
        earlier = self.attempts.get(stamp, [])
        retried, arrays = 0, []
        for cause, names in killed.items():
            grown, why_not = self.grown(resources, cause)
            if why_not is None and len(earlier) >= self.config.max_escalations:
                why_not = f"already retried {len(earlier)} times"
            if why_not is not None:
                asked = [*(a["resources"] for a in earlier), resources]
                shown = ", then ".join(describe(_part(r, cause)) for r in asked)
                line = (
                    f"{len(names)} array task(s) killed by {cause} asking for {shown}; "
                    f"not retried: {why_not}"
                )
                self.refused.append(line)
                print(f"metalab: {line}", file=sys.stderr, flush=True)
                continue
            retried += len(names)
            self.superseded.update(names)
            indices, chunk = self._unfinished(names)
            if not indices:
                continue
            new_stamp = f"{stamp}{'m' if cause == MEMORY else 't'}{len(earlier) + 1}"
            targets = write_batches(self.layout, indices, chunk, new_stamp)
            for target in targets:
                write_batch_resources(self.layout, target.stem, grown)
            self.attempts[new_stamp] = [*earlier, {"resources": resources, "killed_by": cause}]
            self.current[new_stamp] = grown
            self._note(cause, len(indices), resources, grown)
            arrays.append((new_stamp, len(targets), grown))
        return retried, arrays

    def _unfinished(self, names: list[str]) -> tuple[list[int], int]:
        """The runs of the batches ``names`` that did not finish by themselves (no
        record, or a failed record of a run stopped from outside: the time limit's
        SIGTERM), and the batches' size."""
        done, failed = self.layout.done_ids(), self.layout.failed_ids()
        run_ids = self.layout.read_run_ids()
        indices, chunk = [], 1
        for name in names:
            listing = [int(i) for i in self.layout.batch_listing(name).read_text().split()]
            chunk = max(chunk, len(listing))
            for index in listing:
                run_id = run_ids[index]
                if run_id not in done and (run_id not in failed or self._stopped(run_id)):
                    indices.append(index)
        return indices, chunk

    def _stopped(self, run_id: str) -> bool:
        """Whether the failed record of ``run_id`` says it was stopped, not failed."""
        try:
            status = read_json(self.layout.failed_record(run_id)).get("status")
        except (OSError, ValueError, AttributeError):
            return True
        return status in (Status.CANCELLED, Status.INTERRUPTED)

    def _note(self, cause: str, runs: int, before: Resources, after: Resources) -> None:
        note_escalation(self.layout, cause, runs, _part(before, cause), _part(after, cause))


def note_escalation(
    layout: ExperimentDir, cause: str, runs: int, before: Resources, after: Resources
) -> None:
    """Note in ``.metalab/escalations.jsonl`` (and say) that ``runs`` runs killed by
    ``cause`` asking for ``before`` run again asking for ``after``."""
    note = {"at": utc_now(), "killed_by": cause, "runs": runs, "from": before, "to": after}
    with open(layout.escalations, "a") as log:
        log.write(json.dumps(note) + "\n")
    print(f"metalab: {runs} run(s) killed by {cause}: retried with {describe(after)}", flush=True)


def _part(resources: Resources, cause: str) -> Resources:
    """The memory or time part of ``resources``."""
    return {k: v for k, v in resources.items() if k in _GROWN[cause]}


def retry_lines(layout: ExperimentDir) -> list[str]:
    """``retried 2 runs with 600 MB after OUT_OF_MEMORY``: one line per escalation."""
    try:
        text = layout.escalations.read_text()
    except OSError:
        return []
    lines = []
    for line in text.splitlines():
        try:
            note = json.loads(line)
        except ValueError:
            continue
        wanted = ", ".join(_shown(k, v) for k, v in note.get("to", {}).items())
        lines.append(f"retried {note['runs']} run(s) with {wanted} after {note['killed_by']}")
    return lines


def _shown(key: str, value: int) -> str:
    if key == "runtime":
        return f"{value} min"
    return f"{value} MB" + (" per CPU" if key == "mem_mb_per_cpu" else "")
