"""Why a sweep did not finish, in one line: a run's error, Snakemake's own error line,
or the runs no job reached, always with the log to read."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.locate import shown
from metalab_smk.sweep.status import SweepStatus, sweep_status

__all__ = ["engine_log", "error_line", "failed_runs_warning", "failure_cause", "jobs_started"]

_ERROR = re.compile(r"^\s*(\w*(Error|Exception)\b|snakemake: error:|Error:|error:)")
_TAIL_BYTES = 200_000


def _last_invocation(path: Path) -> list[str]:
    """The lines of ``path`` written by its last command (after the last ``$ `` line)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - _TAIL_BYTES))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    return lines[starts[-1] + 1 :] if starts else lines


def jobs_started(layout: ExperimentDir) -> bool:
    """Whether the last Snakemake invocation got as far as starting jobs."""
    return any(
        line.startswith("Execute ") or "submitted with SLURM jobid" in line
        for line in _last_invocation(layout.snakemake_log)
    )


def error_line(path: Path) -> str | None:
    """The line of a Snakemake or head log that best says what went wrong."""
    lines = [line.strip() for line in _last_invocation(path) if line.strip()]
    for prefix in ("metalab worker:", "metalab: error", "metalab submit: error"):
        for line in lines:
            if line.startswith(prefix):
                return line
    errors = [line for line in lines if _ERROR.match(line) and "Error in rule" not in line]
    if errors:
        return errors[-1] if errors[-1].startswith(("snakemake: error", "Error:")) else errors[0]
    for line in lines:
        if line.startswith("Error in rule"):
            return line
    return lines[-1] if lines else None


def engine_log(layout: ExperimentDir) -> tuple[Path, str]:
    """The log of the sweep's last engine process and its name: Snakemake's, or the
    SLURM array's when that ran last."""

    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return -1.0

    if mtime(layout.array_log) > mtime(layout.snakemake_log):
        return layout.array_log, "the SLURM array"
    return layout.snakemake_log, "snakemake"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def failure_cause(
    layout: ExperimentDir, returncode: int | None, status: SweepStatus | None = None
) -> str | None:
    """None when every run is done and Snakemake succeeded; else why not, in one line."""
    status = status or sweep_status(layout)
    if status.is_complete and not returncode:
        return None
    where = shown(layout.root)
    engine_log_path, engine = engine_log(layout)
    log = shown(engine_log_path)
    counts = (
        f"{status.done} of {status.total} runs done, {status.failed} failed, "
        f"{status.missing} missing"
    )
    if status.failed_runs:
        first = status.failed_runs[0]
        return (
            f"{counts}; run {first.run_id}: {first.error_type}: {first.message} "
            f"(log: {shown(first.log)}; all: `metalab status {where}`)"
        )
    if returncode and returncode < 0:  # its last log line says nothing about why
        return f"{engine} was killed by {_signal_name(-returncode)} ({counts}; log: {log})"
    if returncode:
        line = error_line(engine_log_path) or "no error message"
        return f"{engine} failed (exit {returncode}): {line} ({counts}; log: {log})"
    return f"{counts}: no job ran the missing runs (log: {log})"


def failed_runs_warning(layout: ExperimentDir, status: SweepStatus) -> str:
    """One line naming the failed runs of a finished sweep and ``metalab status``."""
    groups = status.groups()
    kinds = "; ".join(
        f"{len(runs)} x {runs[0].error_type}: {runs[0].first_line[:60]}" for runs in groups[:2]
    )
    if len(groups) > 2:
        kinds += f"; {len(groups) - 2} more kinds"
    return (
        f"metalab: warning: {status.failed} of {status.total} runs failed ({kinds}); the "
        f"Results include them; details: `metalab status {shown(layout.root)}`"
    )
