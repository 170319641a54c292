"""Submit and exit: a detached head process drives Snakemake for a compiled experiment.

``metalab submit`` (and ``metalab.run(..., wait=False)``) start
``python -m metalab_smk.sweep.head DIR`` as its own SLURM job when the sweep runs on SLURM and
``sbatch`` exists, and as a background process otherwise; ``.metalab/head.json`` says
where it runs so that ``metalab status`` and ``metalab.reconnect`` can follow it.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metalab_smk.core.values import utc_now
from metalab_smk.errors import MetalabError
from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.locate import shown
from metalab_smk.sweep.executors import (
    LocalExecutor,
    ProfileExecutor,
    SlurmExecutor,
    executor_to_dict,
)
from metalab_smk.sweep.processes import snakemake_env, start_detached
from metalab_smk.sweep.status import ALIVE_STATES, pid_alive, slurm_states

__all__ = ["dead_head_error", "head_alive", "head_state", "submit"]

Executor = LocalExecutor | SlurmExecutor | ProfileExecutor


def _on_slurm(executor: Executor) -> bool:
    return isinstance(executor, SlurmExecutor) or (
        isinstance(executor, ProfileExecutor) and executor.is_slurm
    )


def _partition(executor: Executor) -> str | None:
    if isinstance(executor, SlurmExecutor):
        return executor.config.partition
    if isinstance(executor, ProfileExecutor):
        return (executor.settings().get("default-resources") or {}).get("slurm_partition")
    return None


def submit(
    layout: ExperimentDir, executor: Executor, head_time: str = "1-00:00:00", local: bool = False
) -> dict[str, Any]:
    """Start the head process detached and return what ``.metalab/head.json`` records."""
    if head_alive(layout):
        raise MetalabError(
            f"a submitted sweep is still running in {layout.root}; follow it with "
            f"`metalab status {shown(layout.root)}`."
        )
    settings = layout.executor_file
    atomic_write_json(settings, executor_to_dict(executor))
    command = [sys.executable, "-m", "metalab_smk.sweep.head", str(layout.root)]
    now = utc_now()
    if _on_slurm(executor) and not local and shutil.which("sbatch"):
        log = layout.head_log(on_slurm=True)
        sbatch = [
            "sbatch",
            "--parsable",
            "--job-name",
            f"metalab-head-{layout.root.name}",
            "--output",
            str(log),
            "--time",
            head_time,
            "--cpus-per-task",
            "1",
            "--mem",
            "1000",
            "--chdir",
            str(layout.root),
        ]
        if _partition(executor):
            sbatch += ["--partition", str(_partition(executor))]
        done = subprocess.run(
            [*sbatch, "--wrap", "exec " + " ".join(command)],  # SIGTERM reaches the head
            capture_output=True,
            text=True,
            check=False,
            env=snakemake_env(),
        )
        if done.returncode != 0:
            raise MetalabError(f"sbatch refused the head job: {done.stderr.strip()}")
        job_id = done.stdout.strip().split(";")[0]
        poll = None
        head = {
            "kind": "slurm",
            "job_id": job_id,
            "submitted_at": now,
            "log": str(log).replace("%j", job_id),
        }
    else:
        log = layout.head_log(on_slurm=False)
        process = start_detached(command, layout.root, log)
        poll: Callable[[], int | None] | None = process.poll
        head = {
            "kind": "local",
            "pid": process.pid,
            "host": os.uname().nodename,
            "submitted_at": now,
            "log": str(log),
        }
    layout.head_state.unlink(missing_ok=True)
    atomic_write_json(layout.head_file, head)
    _wait_until_started(layout, head, poll)
    return head


def head_state(layout: ExperimentDir) -> dict[str, Any]:
    """What the head reported (``state``: running, finished, failed, stopped), or {}."""
    try:
        return read_json(layout.head_state)
    except (OSError, ValueError):
        return {}


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
        if state.get("state") == "failed":
            raise MetalabError(
                f"the sweep's head failed at start: {state.get('error')} "
                f"(log: {shown(head['log'])})"
            )
        if state.get("state") in ("running", "finished", "stopped"):
            return
        alive = poll() is None if poll is not None else head_alive(layout)
        if not alive and not head_state(layout):
            raise MetalabError(
                f"the sweep's head died at start: {dead_head_error(layout, head)} "
                f"(log: {shown(head['log'])})"
            )
        time.sleep(0.2)


def head_alive(layout: ExperimentDir) -> bool:
    """Whether the head process recorded in ``.metalab/head.json`` is still alive."""
    path = layout.head_file
    if not path.is_file():
        return False
    head = read_json(path)
    if head.get("kind") == "slurm":
        state = slurm_states({head["job_id"]}).get(head["job_id"]) or _squeue_state(head)
        if state is None:  # not known to the scheduler yet, or long gone
            submitted = _dt.datetime.fromisoformat(head["submitted_at"])
            return (_dt.datetime.now(_dt.UTC) - submitted).total_seconds() < 60
        return state in ALIVE_STATES
    if not pid_alive(head):
        return False
    try:  # a reused PID: the head's command line names this module
        with open(f"/proc/{head['pid']}/cmdline", "rb") as handle:
            return b"metalab_smk.sweep.head" in handle.read()
    except OSError:
        return True


def _squeue_state(head: dict[str, Any]) -> str | None:
    if shutil.which("squeue") is None:
        return None
    done = subprocess.run(
        ["squeue", "-h", "-j", head["job_id"], "-o", "%T"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None
