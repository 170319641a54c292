"""Submit and exit: a detached head process drives Snakemake for a compiled experiment.

``metalab submit`` (and ``metalab.run(..., wait=False)``) start
``python -m metalab_smk.sweep.head DIR`` as its own SLURM job when the sweep runs on SLURM and
``sbatch`` exists, and as a background process otherwise; ``.metalab/head.json`` says
where it runs so that ``metalab status`` and ``metalab.reconnect`` can follow it. On the
array engine no head process runs: job arrays and a dependent follower job
(sweep/follow.py), which head.json lists and the follower updates.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metalab_smk.core.values import utc_now
from metalab_smk.errors import ExecutorError, MetalabError, StoreError
from metalab_smk.slurm import scheduler
from metalab_smk.slurm.array import (
    REQUEUE_VARIABLE,
    array_alive,
    array_argv,
    ended_markers,
    submit_array,
    submit_summary,
    tasks_ended,
)
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.locate import shown
from metalab_smk.sweep.arrays import plan_arrays
from metalab_smk.sweep.batches import missing_indices
from metalab_smk.sweep.executors import EXECUTORS, Executor, LocalExecutor, executor_from_dict
from metalab_smk.sweep.processes import (
    is_recorded_process,
    process_identity,
    snakemake_env,
    start_detached,
)
from metalab_smk.sweep.status import pid_alive

__all__ = [
    "array_fields",
    "array_in_flight",
    "awaited_tasks",
    "dead_head_error",
    "head_arrays",
    "head_alive",
    "head_outcome",
    "head_state",
    "is_head_process",
    "stopped_since",
    "submit",
    "submit_arrays",
]

HEAD_MODULE = "metalab_smk.sweep.head"
FOLLOW_MODULE = "metalab_smk.sweep.follow"  # the job after a submitted sweep's arrays


def recorded_executor(layout: ExperimentDir, kind: str = "local") -> Executor:
    """The executor ``metalab submit`` recorded for this directory's head; when none is
    recorded or it cannot be read, the default executor of ``kind`` (head.json's)."""
    try:
        return executor_from_dict(read_json(layout.executor_file))
    except (OSError, ValueError, TypeError, KeyError, MetalabError):
        return EXECUTORS.get(kind, LocalExecutor)()


def submit(
    layout: ExperimentDir, executor: Executor, head_time: str = "1-00:00:00", local: bool = False
) -> dict[str, Any] | None:
    """Start the head process detached and return what ``.metalab/head.json`` records;
    None, submitting nothing, when every run is done."""
    if head_alive(layout):
        raise MetalabError(
            f"a submitted sweep is still running in {layout.root}; follow it with "
            f"`metalab status {shown(layout.root)}`."
        )
    missing = missing_indices(layout)
    if not missing:
        return None
    settings = layout.executor_file
    atomic_write_json(settings, executor.to_dict())
    command = [sys.executable, "-m", HEAD_MODULE, str(layout.root)]
    now = utc_now()
    slurm = executor.array_config()
    head_argv = None if local else executor.head_argv(layout, command, head_time)
    poll: Callable[[], int | None] | None = None
    if slurm is not None and not local and scheduler.available("sbatch"):
        head = _submit_array(layout, executor, slurm, missing, now)  # no head process
    elif head_argv is not None:  # the head as a SLURM job
        log = layout.head_log(on_slurm=True)
        try:
            job_id = scheduler.parse_sbatch(scheduler.call(head_argv, env=snakemake_env()))
        except scheduler.SchedulerError as exc:
            raise MetalabError(f"the head job was not submitted: {exc}") from None
        head = {
            "kind": "slurm",
            "job_id": job_id,
            "submitted_at": now,
            "log": str(log).replace("%j", job_id),
        }
    else:
        log = layout.head_log(on_slurm=False)
        process = start_detached(command, layout.root, log)
        poll = process.poll
        head = {
            "kind": "local",
            **(process_identity(process.pid) or {"pid": process.pid}),
            "host": os.uname().nodename,
            "submitted_at": now,
            "log": str(log),
        }
    layout.head_state.unlink(missing_ok=True)
    atomic_write_json(layout.head_file, head)
    if "array_job_id" not in head:  # a head process: wait until its Snakemake started
        _wait_until_started(layout, head, poll)
    return head


HEAD_FIX = (
    "it only describes the head of a submitted sweep: remove it when none runs (`metalab "
    "status` then counts the runs from their files)"
)


def read_head(layout: ExperimentDir) -> dict[str, Any]:
    """``.metalab/head.json`` ({} when none); StoreError naming it when it is damaged."""
    try:
        head = layout.read_meta(layout.head_file, HEAD_FIX)
    except FileNotFoundError:
        return {}
    if not isinstance(head, dict) or not isinstance(head.get("log"), str):
        raise StoreError(f"{layout.head_file} is damaged (not a head description); {HEAD_FIX}.")
    return head


def head_state(layout: ExperimentDir) -> dict[str, Any]:
    """What the head reported (``state``: running, finished, failed, stopped), or {}."""
    try:
        return read_json(layout.head_state)
    except (OSError, ValueError):
        return {}


def head_outcome(layout: ExperimentDir) -> str | None:
    """The submitted head in a few words (None when nothing was submitted): ``running``,
    what the head recorded (``finished``, ``stopped``, ``failed: <error>``), ``finished``
    for a job array whose every task wrote its end marker, else how it ended."""
    if not layout.head_file.is_file():
        return None
    head = read_json(layout.head_file)
    reported = head_state(layout)
    if reported.get("state") in ("finished", "stopped"):
        return reported["state"]
    if reported.get("state") == "failed":
        return f"failed: {reported.get('error')}"
    if head_alive(layout):
        return "running"
    if "array_job_id" in head:  # no head process: the arrays' end markers are its record
        if stopped_since(layout, head["submitted_at"]):  # tasks cancelled while queued
            return "stopped"  # wrote no end marker: stopped, not killed
        names = [n for array in head_arrays(head) for n in awaited_tasks(array)]
        ended = len(ended_markers(layout, names))
        if ended >= len(names):
            return "finished"
        return (
            f"ended: {len(names) - ended} of {len(names)} array tasks were killed "
            "before finishing (their runs are counted above)"
        )
    return f"died: {dead_head_error(layout, head)}"


def stopped_since(layout: ExperimentDir, submitted_at: str) -> bool:
    """Whether `metalab stop` was asked after the submission at ``submitted_at``."""
    try:
        asked = layout.stop_request.stat().st_mtime
    except OSError:
        return False
    return asked >= _dt.datetime.fromisoformat(submitted_at).timestamp()


def head_arrays(head: dict[str, Any]) -> list[dict[str, Any]]:
    """The job arrays of a submitted sweep (``job_id``, ``stamp``, ``tasks``; those of
    a retry with more also ``attempts``, the killed tasks it replaced ``retried``)."""
    return head.get("arrays") or [
        {"job_id": head["array_job_id"], "stamp": head["stamp"], "tasks": head["tasks"]}
    ]


def awaited_tasks(array: dict[str, Any]) -> list[str]:
    """The batches of ``array`` whose end markers the sweep waits for: all but the
    killed ones whose runs a later array runs again."""
    retried = set(array.get("retried", ()))
    names = (f"{array['stamp']}-{i:06d}" for i in range(array["tasks"]))
    return [name for name in names if name not in retried]


def dead_head_error(layout: ExperimentDir, head: dict[str, Any]) -> str:
    """Why a head that ended without reporting died, from its log."""
    from metalab_smk.sweep.outcome import error_line

    line = error_line(Path(head["log"])) if head.get("log") else None
    return line or "it ended without a message"


def _wait_until_started(
    layout: ExperimentDir,
    head: dict[str, Any],
    poll: Callable[[], int | None] | None,
    queued_timeout: float = 180.0,
) -> None:
    """Return once the head's Snakemake started jobs (or after ``queued_timeout`` seconds,
    e.g. while the head job is queued); raise MetalabError with the head's error when it
    died at start."""
    deadline = time.monotonic() + queued_timeout
    while time.monotonic() < deadline:
        state = head_state(layout)
        if state.get("state") == "failed" and not state.get("started", False):
            raise MetalabError(
                f"the sweep's head failed at start: {state.get('error')} "
                f"(log: {shown(head['log'])})"
            )
        if state.get("state") in ("running", "finished", "stopped", "failed"):
            return  # it ran: a sweep whose runs failed is reported by `metalab status`
        alive = poll() is None if poll is not None else head_alive(layout)
        if not alive and not head_state(layout):
            raise MetalabError(
                f"the sweep's head died at start: {dead_head_error(layout, head)} "
                f"(log: {shown(head['log'])})"
            )
        time.sleep(0.2)


def _submit_array(
    layout: ExperimentDir, executor: Executor, slurm: SlurmConfig, missing: list[int], now: str
) -> dict[str, Any]:
    """No head process: the arrays run the batches, a dependent job follows them (retries
    with more memory or time, then writes the summary: sweep/follow.py)."""
    planned, _ = plan_arrays(layout, slurm, missing, executor.total_cores(), executor.min_chunk)
    arrays = [{"stamp": a.stamp, "tasks": a.tasks, "resources": a.resources} for a in planned]
    try:
        submitted, job_id, log = submit_arrays(layout, slurm, arrays)
    except (scheduler.SchedulerError, ExecutorError) as exc:
        raise MetalabError(f"the sweep was not submitted: {exc}") from None
    return {"kind": "slurm", "submitted_at": now, **array_fields(submitted, job_id, log)}


def submit_arrays(
    layout: ExperimentDir,
    slurm: SlurmConfig,
    arrays: list[dict[str, Any]],
    env: Callable[[str], dict[str, str]] = lambda stamp: {},
) -> tuple[list[dict[str, Any]], str, str]:
    """Submit ``arrays`` (``stamp``, ``tasks``, ``resources``; ``env(stamp)`` adds to
    their tasks' environment) and the follower job that starts when they ended: the
    arrays with their ``job_id`` and ``submitted_at``, the follower's job ID and log."""
    submitted = []
    for array in arrays:
        task_env = {REQUEUE_VARIABLE: "1", **env(array["stamp"])}  # interrupted tasks requeue
        argv = array_argv(
            layout, array["stamp"], array["tasks"], slurm, array["resources"], task_env
        )
        job = submit_array(layout, argv)
        submitted.append({**array, "job_id": job, "submitted_at": utc_now()})
    after = ":".join(a["job_id"] for a in submitted)
    job_id, log = submit_summary(layout, slurm, after=after, module=FOLLOW_MODULE)
    return submitted, job_id, log


def array_fields(arrays: list[dict[str, Any]], job_id: str, log: str) -> dict[str, Any]:
    """What head.json says of the arrays ``arrays`` and their follower job ``job_id``."""
    return {
        "job_id": job_id,
        "array_job_id": arrays[0]["job_id"],
        "array_job_ids": [a["job_id"] for a in arrays],
        "arrays": arrays,
        "stamp": arrays[0]["stamp"],
        "tasks": sum(a["tasks"] for a in arrays),
        "log": log,
    }


def head_alive(layout: ExperimentDir, ask_scheduler: bool = True) -> bool:
    """Whether the sweep submitted in ``.metalab/head.json`` still runs: its head process,
    or the tasks of its job array (ended when every task wrote its end marker).
    ``ask_scheduler=False`` answers from files only (alive unless known to have ended)."""
    head = read_head(layout)
    if not head:
        return False
    if "array_job_id" in head:
        running = [a for a in head_arrays(head) if not _array_ended(layout, a)]
        if not running:
            return False
        if not ask_scheduler:
            return True
        # the follower job too: between a killed array and its retry, only it runs
        answers = [array_alive(job) for job in [*(a["job_id"] for a in running), head["job_id"]]]
        if any(answers):
            return True
        return _just_submitted(head) if None in answers else False
    if head.get("kind") == "slurm":
        if not ask_scheduler:
            return True
        state = scheduler.job_states({head["job_id"]}, _submitted(head)).get(head["job_id"])
        if state is None:  # not known to the scheduler yet, or long gone
            return _just_submitted(head)
        return state in scheduler.ALIVE_STATES
    return is_head_process(layout, head)


def _array_ended(layout: ExperimentDir, array: dict[str, Any]) -> bool:
    """Whether every task of ``array`` that the sweep waits for wrote its end marker."""
    if "retried" not in array:
        return tasks_ended(layout, array["stamp"], array["tasks"])
    awaited = awaited_tasks(array)
    return len(ended_markers(layout, awaited)) >= len(awaited)


def is_head_process(layout: ExperimentDir, head: dict[str, Any]) -> bool:
    """Whether ``head`` (head.json of a local head) names a live process that is provably
    this sweep's head: the pid, start time and command line recorded at submission, the
    head module, working in ``layout`` (never a reused or crafted pid)."""
    if head.get("kind") != "local" or not pid_alive(head) or not is_recorded_process(head):
        return False
    cwd = os.path.realpath(f"/proc/{head['pid']}/cwd")  # unresolved when unreadable
    return HEAD_MODULE in head["cmdline"][:4] and cwd == os.path.realpath(layout.root)


def _submitted(head: dict[str, Any]) -> _dt.datetime:
    """A minute before the submission (clocks of login and controller may differ)."""
    return _dt.datetime.fromisoformat(head["submitted_at"]) - _dt.timedelta(minutes=1)


def _just_submitted(head: dict[str, Any]) -> bool:
    submitted = _dt.datetime.fromisoformat(head["submitted_at"])
    return (_dt.datetime.now(_dt.UTC) - submitted).total_seconds() < 60


def array_in_flight(layout: ExperimentDir) -> bool:
    """Whether the tasks of a job array submitted by ``metalab submit`` still run."""
    return "array_job_id" in read_head(layout) and head_alive(layout)
