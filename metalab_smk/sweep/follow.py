"""The follower job of a detached ``metalab submit`` on SLURM: ``python -m
metalab_smk.sweep.follow DIR``.

``metalab submit`` leaves no process waiting for its job arrays; this job starts when
they have ended (``--dependency=afterany``). The runs of tasks SLURM killed
OUT_OF_MEMORY or TIMEOUT are retried as in the foreground (slurm/escalation.py: the same
record of attempts and ``.metalab/escalations.jsonl``): grown arrays and a new follower
are submitted and ``.metalab/head.json`` lists them, so that ``metalab status``,
``metalab stop`` and the dashboard follow them. When nothing is retried, it writes the
summary; causes not retried are the head's one-line failure (``metalab status``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from metalab_smk.core.resources import Resources
from metalab_smk.core.values import utc_now
from metalab_smk.errors import ExecutorError, MetalabError, SchedulerError
from metalab_smk.results.ending import summary_rule
from metalab_smk.slurm import scheduler
from metalab_smk.slurm.array import ended_markers
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.slurm.escalation import Escalation, killed_tasks
from metalab_smk.store.jsonio import atomic_write_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.detached import (
    array_fields,
    head_arrays,
    read_head,
    recorded_executor,
    stopped_since,
    submit_arrays,
)

__all__ = ["follow", "main"]


Grown = tuple[str, int, Resources]  # an array to submit: stamp, tasks, resources


def follow(layout: ExperimentDir, stopping: threading.Event) -> bool:
    """Retry the killed tasks of the arrays not followed yet; whether arrays were
    resubmitted (their new follower then writes the summary). ``stopping`` is set on
    SIGTERM (``metalab stop``): nothing more is submitted, or it is cancelled again."""
    head = read_head(layout)
    config = recorded_executor(layout, "slurm").array_config()
    if "array_job_id" not in head or config is None:
        return False
    arrays = head_arrays(head)
    escalation = Escalation(layout, config)
    for array in arrays:
        if "attempts" in array:
            escalation.restore(array["stamp"], array["resources"], array["attempts"])
    again: list[Grown] = []
    followed = 0  # arrays with tasks that did not end well, looked at now
    for array in arrays:
        if array.get("followed") or "resources" not in array:
            continue
        names = [f"{array['stamp']}-{i:06d}" for i in range(array["tasks"])]
        ended = ended_markers(layout, names)
        if len(ended) == len(names) and all(text == "0" for text in ended.values()):
            continue  # every task ended by itself, its runs succeeded
        array["followed"], followed = True, followed + 1
        submitted = _dt.datetime.fromisoformat(array.get("submitted_at", head["submitted_at"]))
        since = submitted - _dt.timedelta(minutes=1)  # clocks may differ a little
        killed = killed_tasks(layout, array["job_id"], array["stamp"], array["tasks"], since)
        before = set(escalation.superseded)
        again += escalation.retry(array["stamp"], array["resources"], killed)[1]
        array["retried"] = sorted(escalation.superseded - before)
    if stopped_since(layout, head["submitted_at"]) or stopping.is_set():
        again = []  # stopped: nothing more starts
    if escalation.refused:
        head["refused"] = [*head.get("refused", []), *escalation.refused]
    if again:
        again = _resubmit(layout, config, head, again, escalation, stopping)
    elif followed:  # head.json of a sweep that ended well stays as submitted
        atomic_write_json(layout.head_file, head)
    if head.get("refused") and not again:  # the sweep ends: the causes not retried say why
        error = "; ".join(head["refused"])
        state = {"state": "failed", "error": error, "exit_code": 1, "started": True}
        atomic_write_json(layout.head_state, {**state, "at": utc_now()})
    return bool(again)


def _resubmit(
    layout: ExperimentDir,
    config: SlurmConfig,
    head: dict[str, Any],
    again: list[Grown],
    escalation: Escalation,
    stopping: threading.Event,
) -> list[Grown]:
    """Submit the grown arrays ``again`` and their follower; head.json lists them.
    Returns ``again``, or [] when sbatch refused them."""
    grown = [
        {"stamp": s, "tasks": n, "resources": r, "attempts": escalation.attempts[s]}
        for s, n, r in again
    ]
    try:
        submitted, job_id, log = submit_arrays(layout, config, grown, escalation.env)
    except (SchedulerError, ExecutorError) as exc:
        head.setdefault("refused", []).append(f"the retry with more was not submitted: {exc}")
        atomic_write_json(layout.head_file, head)
        return []
    fields = array_fields([*head_arrays(head), *submitted], job_id, log)
    atomic_write_json(layout.head_file, {**head, **fields})
    for array in submitted:
        print(
            f"metalab: submitted SLURM array job {array['job_id']} ({array['tasks']} tasks) "
            f"asking for more, then the follower job {job_id}",
            flush=True,
        )
    if stopping.is_set() or stopped_since(layout, head["submitted_at"]):  # stop came meanwhile
        jobs = [*(a["job_id"] for a in submitted), job_id]
        with contextlib.suppress(SchedulerError):  # some had ended: the rest go
            scheduler.call(scheduler.scancel_argv(jobs))
    return again


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m metalab_smk.sweep.follow DIR", file=sys.stderr)
        return 2
    layout = ExperimentDir.at(args[0])
    stopping = threading.Event()  # finish what was begun, then cancel what it submitted
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    try:
        if follow(layout, stopping):
            return 0  # the new follower writes the summary
    except (MetalabError, OSError, ValueError) as exc:  # the summary is still written
        print(f"metalab: no retry with more: {exc}", file=sys.stderr, flush=True)
    return summary_rule([str(layout.root)])


if __name__ == "__main__":
    sys.exit(main())
