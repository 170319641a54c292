"""Execute one planned run: call the operation with seeds, runtime and capture, then
write its RunRecord atomically (``runs/<id>.json`` on success, ``failed/<id>.json``
otherwise)."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.getsignal without its enum wrap
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metalab_smk import __version__
from metalab_smk.core.experiment import Experiment
from metalab_smk.core.plan import Plan, PlannedRun
from metalab_smk.core.values import utc_now
from metalab_smk.job.attempts import (
    earlier_attempts,
    had_checkpoint,
    had_failed_record,
    had_log,
)
from metalab_smk.job.capture import Capture, Runtime
from metalab_smk.job.gpus import RUN_GPUS_VARIABLE, gpu_models, split_devices
from metalab_smk.job.peakmem import PeakMemory
from metalab_smk.job.runlog import RunLog
from metalab_smk.slurm import scheduler
from metalab_smk.store.jsonio import atomic_write_json, fsync_path
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import Provenance, RunRecord, Status

__all__ = ["execute_run", "record_crash", "sync_records", "warm_up", "write_record"]


@functools.cache
def _snakemake_version() -> str:
    """The installed Snakemake's version, read from its dist-info folder name (importing
    importlib.metadata would cost a job about 0.1 s)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("snakemake-") and name.endswith(".dist-info"):
                version = name[len("snakemake-") : -len(".dist-info")]
                if version[:1].isdigit():
                    return version
    return ""


@functools.cache
def slurm_facts() -> dict[str, str]:
    """SLURM job ID, node and job log path when running inside a SLURM job, else {}.

    The log path comes from METALAB_SLURM_LOG when the submitter knows it (metalab's own
    job arrays), else from ``scontrol show job`` (one call per process)."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return {}
    facts = {
        "slurm_job_id": job_id,
        "slurm_node": os.environ.get("SLURMD_NODENAME", os.uname().nodename),
    }
    if os.environ.get("METALAB_SLURM_LOG"):
        facts["slurm_log"] = os.environ["METALAB_SLURM_LOG"]
        return facts
    try:
        shown = scheduler.parse_scontrol_job(
            scheduler.call(scheduler.scontrol_job_argv(job_id), timeout=10)
        )
    except scheduler.SchedulerError:
        shown = {}
    if shown.get("StdOut"):
        facts["slurm_log"] = shown["StdOut"]
    return facts


def _provenance(code_fp: str, compiled: dict[str, Any], log_path: Path | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if compiled.get("git_commit"):
        extra["git_commit"] = compiled["git_commit"]
    extra.update(slurm_facts())
    slurm_job = extra.get("slurm_job_id")
    if log_path is not None:
        extra["log"] = str(log_path)
    attempts = os.environ.get("METALAB_RESOURCE_ATTEMPTS")  # retried with more memory or
    if attempts:  # time (slurm/escalation.py): each attempt's resources
        extra["resource_attempts"] = json.loads(attempts)
    devices = split_devices(os.environ.get(RUN_GPUS_VARIABLE, ""))
    if devices:
        extra["gpus"] = devices
        models = gpu_models(devices)
        if models:
            extra["gpu_models"] = models
    provenance = Provenance(
        code_hash=code_fp,
        python_version=platform.python_version(),
        metalab_version=__version__,
        snakemake_version=_snakemake_version(),
        executor_id="slurm" if slurm_job else "local",
        host=_host(),
        extra=extra,
    )  # its fields as they are (extra is this record's own): asdict deep-copies
    return {name: getattr(provenance, name) for name in Provenance.__dataclass_fields__}


@functools.cache
def _host() -> str:
    return os.uname().nodename


_sigints = 0  # SIGINTs this process received (a run may raise KeyboardInterrupt itself)


def _count_sigint(signum: int, frame: Any) -> None:
    global _sigints
    _sigints += 1
    signal.default_int_handler(signum, frame)


def _sigints_seen() -> int:
    """How many SIGINTs arrived so far; counting starts at the first call, where Python's
    default handler is in place and this is the main thread."""
    # _signal's getsignal: signal's wraps the handler in an enum (10 µs a run)
    if _signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        with contextlib.suppress(ValueError):  # not the main thread: no signals here
            signal.signal(signal.SIGINT, _count_sigint)
    return _sigints


def _error_of(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _record(
    layout: ExperimentDir,
    plan: Plan,
    run: PlannedRun,
    compiled: dict[str, Any],
    status: Status,
    started_at: str,
    seconds: float,
    captured: dict[str, Any],
    error: dict[str, Any] | None,
    warnings: list[Any],
    logged: bool = True,
) -> RunRecord:
    """The run's record; ``logged``: it has a run log (a quiet success has none)."""
    log = layout.log(run.run_id).relative_to(layout.root) if logged else None
    return RunRecord(
        run_id=run.run_id,
        experiment_id=plan.experiment_id,
        status=status,
        context_fingerprint=plan.context_fp,
        params_fingerprint=run.params_fp,
        seed_fingerprint=plan.seed_fp(run.replicate_index),
        started_at=started_at,
        finished_at=utc_now(),
        duration_ms=round(seconds * 1000),
        metrics=captured["metrics"],
        provenance=_provenance(plan.code_fp, compiled, log),
        error=error,
        params_resolved=dict(run.params),
        tags=list(run.case.tags),
        warnings=warnings,
        artifacts=captured["artifacts"],
        seed=run.seed.to_dict(),
        run_index=run.index,
        stepped_metrics=captured["stepped_metrics"],
    )


RecordWriter = Callable[[Path, dict[str, Any]], None]


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write a record in place: fsynced file, atomic rename (the worker fsyncs the
    directory once per batch, ``sync_records``)."""
    atomic_write_json(path, record, indent=None, sync_directory=False)


def execute_run(
    layout: ExperimentDir,
    plan: Plan,
    experiment: Experiment,
    run: PlannedRun,
    compiled: dict[str, Any],
    runtime_hook: Any = None,
    writer: RecordWriter = write_record,
) -> RunRecord:
    """Run ``run`` and write its record with ``writer``; never raises for errors of the
    operation."""
    started_at, start = utc_now(), time.perf_counter()
    log_path = layout.log(run.run_id)
    error: dict[str, Any] | None = None
    status = Status.SUCCESS
    header = {
        "run_id": run.run_id,
        "pid": os.getpid(),
        "host": _host(),
        "started_at": started_at,
        **slurm_facts(),
    }
    earlier = earlier_attempts(layout, run.run_id)
    with RunLog(log_path, header, layout.partial_log(run.run_id, os.getpid())) as runlog:
        runtime = Runtime(
            runlog.logger,
            {
                "run_id": run.run_id,
                "run_index": run.index,
                "experiment_id": plan.experiment_id,
                "experiment_dir": str(layout.root),
            },
            experiment.metadata,
        )
        runtime.deadline = _job_deadline()
        attempt = len(earlier) + 1
        capture = Capture(layout, run.run_id, runlog, runtime=runtime, attempt=attempt)
        if earlier:
            capture.continue_steps()
        if runtime_hook is not None:
            runtime_hook(runtime)
        interrupts = _sigints_seen()
        peak = PeakMemory()
        peak.start()
        try:
            runtime.in_operation = True
            returned = experiment.operation.invoke(
                context=experiment.context,
                params=dict(run.params),
                seeds=run.seed,
                runtime=runtime,
                capture=capture,
            )
            runtime.in_operation = False
            if isinstance(returned, dict):
                capture.log_metrics(returned)
            elif returned is not None:
                runlog.warn(
                    f"the operation returned a value of type {type(returned).__name__}, "
                    "not a dict of metrics or None; the value was ignored"
                )
            if runtime.stop_seen:  # it saved and returned early at the warning
                status, error = Status.INTERRUPTED, _INTERRUPTED
        except BaseException as exc:  # every failure of the operation becomes a record
            runtime.in_operation = False
            ctrl_c = isinstance(exc, KeyboardInterrupt) and _sigints_seen() > interrupts
            if ctrl_c and not runtime.cancelled:  # a real Ctrl-C ends the batch
                raise
            status = Status.CANCELLED if runtime.cancelled else Status.FAILED
            if status is Status.CANCELLED and (runtime.checkpointing or runtime.stop_seen):
                status = Status.INTERRUPTED
            error = _error_of(exc)
            runlog.logger.error("run failed:\n%s", error["traceback"])
        try:
            captured = capture.finalize()
        except Exception as exc:
            status, error = Status.FAILED, _error_of(exc)
            captured = {"metrics": capture.metrics, "stepped_metrics": [], "artifacts": []}
        runlog.succeeded = status is Status.SUCCESS
    runtime.remove_scratch()
    peak_mb = peak.mb()
    record = _record(
        layout,
        plan,
        run,
        compiled,
        status,
        started_at,
        time.perf_counter() - start,
        captured,
        error,
        runlog.warnings,
        logged=not runlog.kept,
    )
    if peak_mb is not None:  # beside duration_ms: what `metalab plan` learns from
        record.provenance["extra"]["peak_mem_mb"] = peak_mb
    if earlier or status is not Status.SUCCESS:  # every attempt, however it ended
        _add_attempt(record, earlier, started_at)
    if status is Status.SUCCESS:
        checkpoint = capture.checkpoint_used or had_checkpoint(layout, run.run_id)
        if checkpoint and not compiled.get("keep_checkpoints"):
            shutil.rmtree(layout.checkpoint(run.run_id), ignore_errors=True)
        writer(layout.record(run.run_id), record.to_dict())
        if runlog.kept and had_log(layout, run.run_id):  # an earlier attempt's: not this
            log_path.unlink(missing_ok=True)  # one's (its record is written now)
        if had_failed_record(layout, run.run_id):
            layout.failed_record(run.run_id).unlink(missing_ok=True)
    else:
        writer(layout.failed_record(run.run_id), record.to_dict())
    return record


_INTERRUPTED = {
    "type": "Interrupted",
    "message": "the run stopped early at a warning (time limit, preemption or stop); "
    "its checkpoint is kept and its next attempt continues it",
    "traceback": "",
}


def _add_attempt(record: RunRecord, earlier: list[dict[str, Any]], started_at: str) -> None:
    """List the run's attempts in its record: the earlier ones, then this one."""
    this = {"attempt": len(earlier) + 1, "started_at": started_at, "status": str(record.status)}
    this["seconds"] = round(record.duration_ms / 1000, 3)
    record.provenance["extra"]["attempts"] = [*earlier, this]


def _job_deadline() -> float | None:
    """When this job's time limit ends (a UNIX time), when the scheduler says."""
    for name in ("METALAB_DEADLINE", "SLURM_JOB_END_TIME"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return float(value)
    return None


def sync_records(layout: ExperimentDir) -> None:
    """Make the renames of the records written by ``execute_run`` durable (one directory
    fsync each for ``runs/`` and ``failed/``)."""
    for directory in (layout.runs_dir, layout.failed_dir):
        if directory.is_dir():
            fsync_path(directory)


def record_crash(
    layout: ExperimentDir,
    plan: Plan,
    run: PlannedRun,
    compiled: dict[str, Any],
    started_at: str,
    seconds: float,
    message: str,
    pid: int,
    error_type: str = "Crashed",
) -> None:
    """Write the failed record of a run whose process ``pid`` died (a signal, ``os._exit``,
    a crash in native code, its timeout) and close its log, so the run has a record like
    any other."""
    partial, log_path = layout.partial_log(run.run_id, pid), layout.log(run.run_id)
    earlier = earlier_attempts(layout, run.run_id, exclude=str(partial))
    try:
        with open(partial, "a") as handle:
            handle.write(f"\nmetalab: {message}\n")
        os.replace(partial, log_path)
    except OSError:
        pass
    captured: dict[str, Any] = {"metrics": {}, "stepped_metrics": [], "artifacts": []}
    error = {"type": error_type, "message": message, "traceback": ""}
    record = _record(
        layout, plan, run, compiled, Status.FAILED, started_at, seconds, captured, error, []
    )
    _add_attempt(record, earlier, started_at)
    atomic_write_json(layout.failed_record(run.run_id), record.to_dict(), indent=None)


def warm_up() -> None:
    """Look up the facts every record repeats once, before runs fork from this process."""
    slurm_facts()
    _snakemake_version()
    gpu_models(split_devices(os.environ.get(RUN_GPUS_VARIABLE, "")))
