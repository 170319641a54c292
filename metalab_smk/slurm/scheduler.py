"""Every call of the SLURM commands (sbatch, sacct, squeue, scontrol, scancel).

Pure argv builders and pure output parsers (tested on recorded output without a cluster),
plus :func:`call`, the one function that runs a command. Standard library only: the job
side uses it too, and a job's start must stay light (docs/architecture.md): ``subprocess``
is imported by :func:`call` only, since a task of metalab's arrays never calls one.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from metalab_smk.errors import SchedulerError

__all__ = [
    "ALIVE_STATES",
    "PartitionLimits",
    "SacctRow",
    "SchedulerError",
    "array_task_indices",
    "available",
    "call",
    "job_states",
    "log_tail",
    "out_of_memory",
    "parse_sacct",
    "parse_sbatch",
    "parse_scontrol_job",
    "parse_partitions",
    "parse_scontrol_config",
    "parse_squeue",
    "sacct_argv",
    "sbatch_argv",
    "scancel_argv",
    "scontrol_config_argv",
    "scontrol_job_argv",
    "scontrol_partition_argv",
    "scontrol_requeue_argv",
    "scontrol_start_soon_argv",
    "squeue_argv",
]

# States in which a job (or array task) still holds or waits for resources.
ALIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "COMPLETING",
        "CONFIGURING",
        "SUSPENDED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
    }
)


# -- argv builders -------------------------------------------------------------------


def sbatch_argv(
    command: Sequence[str] | str,
    *,
    job_name: str,
    output: str,
    chdir: str,
    time_minutes: int | None = None,
    memory_mb: int | None = None,
    cpus: int | None = None,
    gpus: int = 0,
    partition: str | None = None,
    account: str | None = None,
    array: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``sbatch --parsable ... --wrap COMMAND``; ``array`` is e.g. ``"0-19%100"``."""
    argv = ["sbatch", "--parsable", "--job-name", job_name, "--output", output, "--chdir", chdir]
    if array is not None:
        argv += ["--array", array]
    if time_minutes is not None:
        argv += ["--time", str(time_minutes)]
    if memory_mb is not None:
        argv += ["--mem", str(memory_mb)]
    if cpus is not None:
        argv += ["--cpus-per-task", str(cpus)]
    if gpus:
        argv += [f"--gpus={gpus}"]
    if partition:
        argv += ["--partition", partition]
    if account:
        argv += ["--account", account]
    argv += list(extra)
    wrapped = command if isinstance(command, str) else " ".join(command)
    return [*argv, "--wrap", wrapped]


def sacct_argv(job_ids: Iterable[str], since: datetime | None = None) -> list[str]:
    """``sacct`` for the allocation lines (no steps) of ``job_ids``: raw ID, ID, state.

    ``since`` (when the jobs were submitted) leaves out older jobs of the same IDs, which
    the accounting database keeps when the controller restarts and counts from 1 again."""
    argv = ["sacct", "-n", "-X", "-P", "-o", "JobIDRaw,JobID,State", "-j", ",".join(job_ids)]
    if since is not None:
        local = since.astimezone() if since.tzinfo else since  # sacct reads local time
        argv += ["-S", local.strftime("%Y-%m-%dT%H:%M:%S")]
    return argv


def squeue_argv(job_ids: Iterable[str]) -> list[str]:
    """``squeue`` with one line per job or array task: raw ID, ID as shown, state."""
    return ["squeue", "-h", "-r", "-o", "%A|%i|%T", "-j", ",".join(job_ids)]


def scontrol_job_argv(job_id: str) -> list[str]:
    """``scontrol show job -o ID``: one line of ``Key=Value`` fields."""
    return ["scontrol", "show", "job", "-o", job_id]


def scontrol_requeue_argv(job_id: str) -> list[str]:
    """``scontrol requeue ID``: end the job and queue it again under the same ID."""
    return ["scontrol", "requeue", job_id]


def scontrol_start_soon_argv(job_id: str, seconds: int = 5) -> list[str]:
    """Make a job being requeued eligible in ``seconds`` instead of after SLURM's hold
    (SLURM keeps a begin time still ahead when the requeue completes)."""
    return ["scontrol", "update", f"JobId={job_id}", f"StartTime=now+{seconds}"]


def scancel_argv(job_ids: Iterable[str], signal: str | None = None) -> list[str]:
    """``scancel`` of ``job_ids`` (whole arrays when given an array's ID)."""
    return ["scancel", *([f"--signal={signal}"] if signal else []), *job_ids]


# -- output parsers ------------------------------------------------------------------


def parse_sbatch(stdout: str) -> str:
    """The job ID printed by ``sbatch --parsable`` (``"123"`` or ``"123;cluster"``)."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = line.split(";")[0].strip()
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch printed no job ID: {stdout.strip()!r}")
    return job_id


@dataclass(frozen=True)
class SacctRow:
    """One ``sacct -P`` line of :func:`sacct_argv`: ``raw_id`` is SLURM_JOB_ID (array tasks
    have their own), ``job_id`` as shown (``123_4`` for a task, ``123.batch`` for a step)."""

    raw_id: str
    job_id: str
    state: str
    by: str | None = None  # "CANCELLED by 0": who cancelled

    @property
    def is_step(self) -> bool:
        return "." in self.job_id

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES


def parse_sacct(stdout: str) -> list[SacctRow]:
    """Rows of ``sacct -P -o JobIDRaw,JobID,State`` output (extra fields ignored)."""
    rows = []
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3 or not fields[2]:
            continue
        state, _, by = fields[2].partition(" by ")
        rows.append(SacctRow(fields[0], fields[1], state.strip(), by.strip() or None))
    return rows


def array_task_indices(job_id: str) -> list[int]:
    """The task indices of an array job's line, by its ID as shown: ``123_5``, or tasks
    that never started, shown as one line while pending or once cancelled:
    ``123_[5-9%2]``, ``123_[1,3-4]``; [] for any other ID."""
    spec = job_id.partition("_")[2]
    if spec.isdigit():
        return [int(spec)]
    if not (spec.startswith("[") and spec.endswith("]")):
        return []
    indices: list[int] = []
    for part in spec[1:-1].partition("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (last.isdigit() or not last):
            indices += range(int(first), int(last or first) + 1)
    return indices


def parse_squeue(stdout: str) -> dict[str, str]:
    """``{ID: state}`` from ``squeue -h -o '%A|%i|%T'`` output, keyed by the raw ID and by
    the ID as shown (``123_4``); a pending array shows as ``123_[5-9%2]``."""
    states = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 3 and fields[2]:
            states[fields[0]] = states[fields[1]] = fields[2].strip()
        elif len(fields) == 2 and fields[1]:
            states[fields[0]] = fields[1].strip()
    return states


def parse_scontrol_job(stdout: str) -> dict[str, str]:
    """``Key=Value`` fields of ``scontrol show job`` (one-line ``-o`` or multi-line form).

    Values never contain spaces in SLURM's output except ``Command=``/``Comment=`` at the
    end; a field without ``=`` continues the previous value."""
    fields: dict[str, str] = {}
    last = None
    for token in stdout.split():
        key, sep, value = token.partition("=")
        if sep and key and key.replace("/", "").replace(":", "").isalnum():
            fields[key] = value
            last = key
        elif last is not None:
            fields[last] += " " + token
    return fields


# -- running -------------------------------------------------------------------------


def available(command: str = "sbatch") -> bool:
    """Whether the SLURM command ``command`` is installed here."""
    return shutil.which(command) is not None


def call(argv: Sequence[str], timeout: float = 30, env: dict[str, str] | None = None) -> str:
    """Run a SLURM command and return its stdout; SchedulerError when it fails."""
    import subprocess

    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SchedulerError(f"{argv[0]} failed: {exc}") from None
    if done.returncode != 0:
        raise SchedulerError(f"{argv[0]} refused the request: {done.stderr.strip()}")
    return done.stdout


def job_states(job_ids: Iterable[str], since: datetime | None = None) -> dict[str, str]:
    """State of each job (by SLURM_JOB_ID, array tasks included): sacct when it exists,
    else squeue (which forgets finished jobs); {} when neither answers. ``since``: no
    job of these IDs was submitted before (see :func:`sacct_argv`)."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    if available("sacct"):
        try:
            rows = parse_sacct(call(sacct_argv(ids, since)))
        except SchedulerError:
            rows = []
        states = {r.raw_id: r.state for r in rows if not r.is_step}
        if states:
            return states
    if available("squeue"):
        try:
            return parse_squeue(call(squeue_argv(ids)))
        except SchedulerError:
            return {}
    return {}


# What slurmstepd writes to a job's log when it kills the job for its memory: with
# cgroups ("oom-kill event") or by accounting (JobAcctGatherParams=OverMemoryKill).
_MEMORY_KILL = re.compile(
    r"exceeded (job )?memory limit|oom[-_ ]kill event|out of memory", re.IGNORECASE
)


def log_tail(path: str | None, size: int = 8192) -> str:
    """The end of a (SLURM) log, '' when it cannot be read."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def out_of_memory(state: str | None, log_text: str = "") -> bool:
    """Whether SLURM ended a job for its memory: state OUT_OF_MEMORY, or the job's log
    says so (clusters without cgroups report such a job as FAILED or CANCELLED)."""
    return state == "OUT_OF_MEMORY" or bool(_MEMORY_KILL.search(log_text))


# -- cluster limits ------------------------------------------------------------------


def scontrol_config_argv() -> list[str]:
    """``scontrol show config``: the controller's settings, one ``Key = Value`` a line."""
    return ["scontrol", "show", "config"]


def parse_scontrol_config(stdout: str) -> dict[str, str]:
    """``{Key: Value}`` of ``scontrol show config`` output."""
    fields = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            fields[key.strip()] = value.strip()
    return fields


def scontrol_partition_argv(partition: str | None = None) -> list[str]:
    """``scontrol show partition -o [P]``: one line of ``Key=Value`` fields a partition."""
    return ["scontrol", "show", "partition", "-o", *([partition] if partition else [])]


def _slurm_minutes(text: str) -> int | None:
    """SLURM's ``[D-]H:M:S`` (or ``M``) in minutes; None for UNLIMITED or unknown."""
    days, _, clock = text.rpartition("-")
    parts = clock.split(":")
    if not all(p.isdigit() for p in parts) or (days and not days.isdigit()):
        return None
    hours, mins, secs = ([0, 0, *map(int, parts)])[-3:] if len(parts) > 1 else (0, int(parts[0]), 0)
    return int(days or 0) * 1440 + hours * 60 + mins + (1 if secs else 0)


def _slurm_mb(text: str) -> int | None:
    """SLURM memory (``19284M``, ``4G``, ``1T``, MB as a number) in MB; None otherwise."""
    match = re.fullmatch(r"(\d+)([MGT]?)", text.strip())
    if match is None:
        return None
    return int(match.group(1)) * {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2)]


@dataclass(frozen=True)
class PartitionLimits:
    """What one job may ask for in a partition (None: no limit known)."""

    name: str
    max_minutes: int | None
    max_mem_mb: int | None
    default: bool = False


def parse_partitions(stdout: str) -> list[PartitionLimits]:
    """The limits of each partition in ``scontrol show partition -o`` output: MaxTime,
    and MaxMemPerNode, else the memory of its TRES (the most a node offers)."""
    limits = []
    for line in stdout.splitlines():
        fields = parse_scontrol_job(line)
        if "PartitionName" not in fields:
            continue
        memory = _slurm_mb(fields.get("MaxMemPerNode", ""))
        if memory is None:
            tres = dict(
                item.partition("=")[::2] for item in fields.get("TRES", "").split(",") if item
            )
            memory = _slurm_mb(tres.get("mem", ""))
        limits.append(
            PartitionLimits(
                fields["PartitionName"],
                _slurm_minutes(fields.get("MaxTime", "")),
                memory,
                fields.get("Default") == "YES",
            )
        )
    return limits
