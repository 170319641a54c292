"""Run the batches of a sweep as ONE SLURM job array, each task running the batch worker.

``python -m metalab_smk.slurm.array DIR STAMP N CONFIG_JSON`` submits
``python -m metalab_smk.worker task STAMP`` as ``sbatch --array=0-(N-1)%max_concurrent``
(task i runs the batch ``STAMP-<i, 6 digits>``), waits, and exits 0 when every run of every
task succeeded. It is what ``metalab.run(..., executor=SlurmExecutor(...))`` starts in
place of Snakemake: one submission, no Snakemake start inside each job.

The end of each task is seen from its ``.end`` marker (written by the worker whatever its
runs did), polled every 0.2 s, so the result follows the last task within a second.
Tasks that die without a marker (time limit, memory, node failure) are noticed by asking
``squeue``, at first every second, then less often the longer the sweep runs.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta

from metalab_smk.core.resources import AUTO, Resources, merge
from metalab_smk.errors import ExecutorError, SchedulerError
from metalab_smk.slurm import bytecode, scheduler
from metalab_smk.slurm.config import SlurmConfig, memory_mb, minutes
from metalab_smk.slurm.escalation import Escalation, killed_tasks
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.learned import FIRST_GUESS, Observed, resolve_auto

TIME_LIMIT_VARIABLE = "METALAB_TIME_LIMIT"  # a task's time limit in seconds
WARN_VARIABLE = "METALAB_WARN_BEFORE"  # seconds before it the runs are warned
# "1": a task whose runs were interrupted requeues itself (job/requeue.py); set where no
# waiting process resubmits them (metalab submit, the metalab-slurm executor)
REQUEUE_VARIABLE = "METALAB_REQUEUE"

__all__ = [
    "QueuePolling",
    "array_alive",
    "array_argv",
    "array_indices",
    "array_resources",
    "array_spec",
    "cluster_array_limit",
    "cluster_submit_limit",
    "ended_markers",
    "job_argv",
    "sbatch",
    "sbatch_options",
    "task_resources",
    "main",
    "submit_array",
    "submit_summary",
    "tasks_ended",
]

MARKER_SECONDS = 0.2


def array_indices(tasks: int | Sequence[int]) -> str:
    """``--array`` indices: ``0-(tasks-1)`` for a count, else compact ranges (``0-3,7``)."""
    indices = sorted(set(range(tasks) if isinstance(tasks, int) else tasks))
    ranges: list[str] = []
    start = previous = indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ",".join(ranges)


# How the array engine honours each resource of the model (core/resources.py), as
# Snakemake's SLURM executor plugin does; any other key is refused, never dropped.
_SBATCH = {
    "runtime": "--time={}",
    "mem_mb": "--mem={}",
    "mem_mb_per_cpu": "--mem-per-cpu={}",
    "cpus_per_task": "--cpus-per-task={}",
    "slurm_partition": "--partition={}",
    "slurm_account": "--account={}",
    "constraint": "--constraint={}",
    "qos": "--qos={}",
    "tasks": "--ntasks={}",
    "nodes": "--nodes={}",
    "gres": "--gres={}",
    "disk_mb": "--tmp={}M",
    "slurm_cluster": "--clusters={}",
}
_IGNORED = frozenset({"tmpdir", "_cores", "_nodes", "threads"})  # nothing to ask SLURM for


def sbatch_options(resources: Resources) -> list[str]:
    """The sbatch options of one job's resources; ExecutorError naming any resource
    the array engine cannot honour."""
    options = []
    learned = [key for key, value in resources.items() if value == AUTO]
    if learned:
        raise ExecutorError(
            f"{', '.join(learned)}='auto' reached sbatch unresolved; metalab run/submit "
            "learn it from finished runs (or give a value)."
        )
    if resources.get("mem_mb") and resources.get("mem_mb_per_cpu"):
        raise ExecutorError("resources give mem_mb and mem_mb_per_cpu; keep one.")
    if resources.get("gpu") and "gpu" in str(resources.get("gres", "")):
        raise ExecutorError("resources give GPUs twice (gpu and gres); keep one.")
    for key, value in resources.items():
        if key in _SBATCH:
            options.append(_SBATCH[key].format(value))
        elif key == "gpu":
            model = resources.get("gpu_model")
            options += [f"--gpus={model}:{value}" if model else f"--gpus={value}"] if value else []
        elif key == "slurm_extra":
            options += shlex.split(str(value))
        elif key not in _IGNORED and key != "gpu_model":
            known = ", ".join(sorted({*_SBATCH, "gpu", "gpu_model", "slurm_extra"}))
            raise ExecutorError(
                f"resource {key}={value!r} has no sbatch option on the array engine (it "
                f"knows {known}); pass it in slurm_extra, or use engine='snakemake'."
            )
    return options


def task_resources(config: SlurmConfig, resources: Resources) -> Resources:
    """What each task of an array of runs asking for ``resources`` asks for: those over
    the config's, except GPUs the config gives per task (its runs share them, each taking
    the GPUs it asks for: job/gpus.py)."""
    base = config.job_resources()
    merged = merge(base, resources)
    if base.get("gpu") or "gpu" in str(base.get("gres", "")):
        for key in ("gpu", "gres", "gpu_model"):
            merged.pop(key, None)
            if key in base:
                merged[key] = base[key]
    return dict(sorted(merged.items()))


def array_resources(
    config: SlurmConfig, resources: Resources, observed: Observed | None, runs_per_task: int
) -> Resources:
    """What each task of an array of ``runs_per_task`` runs asking for ``resources``
    asks for (:func:`task_resources`), ``"auto"`` memory and time learned from
    ``observed`` (store/learned.py); with nothing observed, the config's values (a
    profile's default-resources), else the first guess of store/learned.py."""
    fallback = {**FIRST_GUESS, **{k: v for k, v in config.job_resources().items() if v != AUTO}}
    return resolve_auto(task_resources(config, resources), observed, runs_per_task, fallback)


def job_argv(
    command: str,
    config: SlurmConfig,
    *,
    job_name: str,
    output: str,
    chdir: str,
    array: str | None = None,
    resources: Resources | None = None,
) -> list[str]:
    """``sbatch`` of ``command`` asking for ``resources`` (default: the config's); each
    job first runs the config's setup lines (modules, conda, ``setup``)."""
    resources = config.job_resources() if resources is None else resources
    if config.precommand():
        command = f"{config.precommand()} && {command}"
    return scheduler.sbatch_argv(
        command,
        job_name=job_name,
        output=output,
        chdir=chdir,
        array=array,
        extra=sbatch_options(resources),
    )


def task_command(
    stamp: str, config: SlurmConfig, limit: int, env: dict[str, str] | None = None
) -> str:
    """The shell command of an array task running the batch ``STAMP-<task>``. The task
    warns its runs itself before its time limit (``limit`` minutes; SLURM's ``--signal``
    comes up to a minute early): it reads the limit and the warning time from these
    variables; ``env`` adds more."""
    limits = f"{TIME_LIMIT_VARIABLE}={limit * 60} {WARN_VARIABLE}={warning_seconds(config, limit)}"
    for name, value in (env or {}).items():
        limits += f" {name}={shlex.quote(value)}"
    worker = shlex.join([sys.executable, "-m", "metalab_smk.worker", "task", stamp])
    return f"export {limits} && exec {worker}"


def array_argv(
    layout: ExperimentDir,
    stamp: str,
    tasks: int | Sequence[int],
    config: SlurmConfig,
    resources: Resources | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """The ``sbatch --array`` of the batches ``STAMP-<task>`` (``tasks``: a count from 0,
    or the task numbers), each task asking for ``resources`` (default: the config's)."""
    resources = config.job_resources() if resources is None else resources
    limit = int(resources.get("runtime") or config_minutes(config))
    n_tasks = tasks if isinstance(tasks, int) else len(tasks)
    # a `%` limit only when it limits anything
    throttle = f"%{config.max_concurrent}" if config.max_concurrent < n_tasks else ""
    return job_argv(
        task_command(stamp, config, limit, env),
        config,
        job_name=f"metalab-{layout.root.name}",
        output=str(layout.slurm_log(f"{stamp}-%a")),
        chdir=str(layout.root),
        array=array_indices(tasks) + throttle,
        resources=resources,
    )


@functools.cache
def _cluster_limit(name: str) -> int:
    """A limit of ``scontrol show config`` (a large number when SLURM is not reachable
    or does not show it)."""
    if not scheduler.available("scontrol"):
        return 10**9
    try:
        settings = scheduler.parse_scontrol_config(scheduler.call(scheduler.scontrol_config_argv()))
    except SchedulerError:
        return 10**9
    value = settings.get(name, "")
    return max(1, int(value)) if value.isdigit() else 10**9


def cluster_array_limit() -> int:
    """The most tasks one array may have here (``MaxArraySize``; task indices stay below
    it): larger sweeps are split into several arrays."""
    return _cluster_limit("MaxArraySize")


def cluster_submit_limit() -> int:
    """The most jobs (array tasks count one each) one submission may queue here, where
    the controller shows ``MaxSubmitJobs``: batches grow to fit."""
    return _cluster_limit("MaxSubmitJobs")


def warning_seconds(config: SlurmConfig, limit: int | None = None) -> int:
    """When a task is warned before its time limit (``limit`` minutes, default the
    config's): ``warn_before``, at most half of it."""
    return max(10, min(int(config.warn_before), (limit or config_minutes(config)) * 30))


def config_minutes(config: SlurmConfig) -> int:
    """The config's time limit in minutes (SlurmConfig's default when it is "auto")."""
    return minutes(config.time if config.time != AUTO else SlurmConfig.time)


# sbatch errors worth another try: the controller was busy or briefly unreachable
_TRANSIENT = re.compile(
    r"timed out|temporarily unavailable|try again|unable to contact|connection refused|"
    r"socket|busy|Slurm backup controller in standby",
    re.IGNORECASE,
)


def sbatch(argv: list[str], attempts: int = 5) -> str:
    """Run ``sbatch --parsable`` and return the job ID, retried with exponential
    back-off (1 s, 2 s, 4 s...) while the controller answers with a transient error."""
    import tenacity  # installed with snakemake

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, SchedulerError) and bool(_TRANSIENT.search(str(exc)))
        ),
        wait=tenacity.wait_exponential(multiplier=1, max=30),
        stop=tenacity.stop_after_attempt(attempts),
        reraise=True,
    )
    return retrying(lambda: scheduler.parse_sbatch(scheduler.call(argv, timeout=120)))


def submit_array(layout: ExperimentDir, argv: list[str]) -> str:
    """Submit an array of :func:`array_argv`; its job ID (SchedulerError if refused)."""
    layout.slurm_logs_dir.mkdir(parents=True, exist_ok=True)
    bytecode.precompile()  # once here, not in every task (see slurm/bytecode.py)
    return sbatch(argv)


def submit_summary(
    layout: ExperimentDir, config: SlurmConfig, after: str, module: str = "metalab_smk.reduce"
) -> tuple[str, str]:
    """Submit the summary (``python -m MODULE .``, by default metalab_smk.reduce) as a
    job that starts when every task of the arrays ``after`` has ended; its job ID and
    log path."""
    log = str(layout.slurm_log("summary-%j"))
    argv = scheduler.sbatch_argv(
        [sys.executable, "-m", module, "."],
        job_name=f"metalab-summary-{layout.root.name}",
        output=log,
        chdir=str(layout.root),
        time_minutes=max(10, config_minutes(config)),
        memory_mb=max(2000, memory_mb(config.memory if config.memory != AUTO else 2000)),
        cpus=1,
        partition=config.partition,
        account=config.account,
        extra=[f"--dependency=afterany:{after}", *shlex.split(config.extra or "")],
    )
    job_id = sbatch(argv)
    return job_id, log.replace("%j", job_id)


class QueuePolling:
    """When to ask squeue next: every ``first`` s at first, growing by ``factor`` per
    check up to ``longest`` s (a long sweep is asked rarely)."""

    def __init__(self, first: float = 1.0, factor: float = 1.3, longest: float = 30.0) -> None:
        self.interval, self.factor, self.longest = first, factor, longest
        self.next_at = time.monotonic() + first

    def due(self) -> bool:
        if time.monotonic() < self.next_at:
            return False
        self.interval = min(self.longest, self.interval * self.factor)
        self.next_at = time.monotonic() + self.interval
        return True


def tasks_ended(layout: ExperimentDir, stamp: str, n_tasks: int) -> bool:
    """Whether every task of the array of ``stamp`` wrote its end marker."""
    try:
        names = os.listdir(layout.batches_dir)
    except OSError:
        return False
    prefix = f"{stamp}-"
    return sum(1 for n in names if n.startswith(prefix) and n.endswith(".end")) >= n_tasks


def array_alive(job_id: str) -> bool | None:
    """Whether a task of the array ``job_id`` is pending or running, from ``squeue`` (the
    controller's live view: sacct lags behind and shows a split array's tasks late);
    None when squeue is missing or fails."""
    if not scheduler.available("squeue"):
        return None
    try:
        out = scheduler.call(scheduler.squeue_argv([job_id]))
    except SchedulerError as exc:
        return False if "Invalid job id" in str(exc) else None
    return any(state in scheduler.ALIVE_STATES for state in scheduler.parse_squeue(out).values())


def ended_markers(layout: ExperimentDir, names: Iterable[str]) -> dict[str, str]:
    """``{name: marker text}`` of the batches whose task has ended."""
    try:
        present = set(os.listdir(layout.batches_dir))
    except OSError:
        return {}
    ended = {}
    for name in names:
        if f"{name}.end" in present:
            try:
                ended[name] = layout.batch_end(name).read_text().strip()
            except OSError:
                continue
    return ended


def wait_for(layout: ExperimentDir, job_id: str, names: set[str]) -> int:
    """Wait until every task ended; return the number of tasks with failures or no marker."""
    waiting, failed = set(names), 0
    polling = QueuePolling()
    while waiting:
        ended = ended_markers(layout, waiting)
        waiting -= set(ended)
        failed += sum(1 for text in ended.values() if text != "0")
        if not waiting:
            break
        if polling.due() and array_alive(job_id) is False:
            time.sleep(MARKER_SECONDS)  # a marker written just before the task ended
            ended = ended_markers(layout, waiting)
            failed += sum(1 for t in ended.values() if t != "0") + len(waiting - set(ended))
            print(
                f"metalab: {len(waiting - set(ended))} array task(s) of SLURM job {job_id} "
                "ended without finishing (see `metalab status`)",
                flush=True,
            )
            break
        time.sleep(MARKER_SECONDS)
    return failed


def array_spec(config: SlurmConfig, arrays: list[tuple[str, int, Resources]]) -> str:
    """The JSON argument of ``python -m metalab_smk.slurm.array``: the config and, per
    array, its stamp, task count and resources."""
    listed = [{"stamp": s, "tasks": n, "resources": r} for s, n, r in arrays]
    return json.dumps({"config": asdict(config), "arrays": listed})


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m metalab_smk.slurm.array DIR SPEC_JSON", file=sys.stderr)
        return 2
    layout = ExperimentDir.at(args[0])
    spec = json.loads(args[1])
    config = SlurmConfig(**spec["config"])
    arrays = [(a["stamp"], int(a["tasks"]), a["resources"]) for a in spec["arrays"]]
    submitted: list[str] = []

    def cancel(signum: int, frame: object) -> None:
        try:  # the tasks get SIGTERM: their running runs record themselves as cancelled
            scheduler.call(scheduler.scancel_argv(submitted))
        except SchedulerError as exc:
            print(f"metalab: {exc}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(array_alive(j) is not False for j in submitted):
            time.sleep(0.5)
        sys.exit(1)

    signal.signal(signal.SIGTERM, cancel)
    signal.signal(signal.SIGINT, cancel)
    escalation = Escalation(layout, config)
    failed = 0
    while arrays:
        running = []
        for stamp, n_tasks, resources in arrays:
            env = escalation.env(stamp)
            try:
                argv = array_argv(layout, stamp, n_tasks, config, resources, env)
                since = datetime.now() - timedelta(minutes=1)  # clocks may differ a little
                job_id = submit_array(layout, argv)
            except (SchedulerError, ExecutorError) as exc:
                print(
                    f"metalab: the SLURM array was not submitted: {exc}",
                    file=sys.stderr,
                    flush=True,
                )
                return 2
            submitted.append(job_id)
            running.append((job_id, stamp, n_tasks, resources, since))
            print(f"metalab: submitted SLURM array job {job_id} ({n_tasks} tasks)", flush=True)
        arrays = []
        for job_id, stamp, n_tasks, resources, since in running:
            names = {f"{stamp}-{i:06d}" for i in range(n_tasks)}
            ended_badly = wait_for(layout, job_id, names)
            if not ended_badly:
                continue
            retried, again = escalation.retry(
                stamp, resources, killed_tasks(layout, job_id, stamp, n_tasks, since)
            )
            failed += ended_badly - retried
            arrays += again
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
