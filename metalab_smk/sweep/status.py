"""Progress of a sweep read from the files alone: done / running / failed / pending.

A run is done when its success record exists, failed when only its failed record does,
running while its ``.partial`` log names a live process or SLURM job, and pending
otherwise. A partial log whose process died (SIGKILL, out of memory, a SLURM
time limit) makes the run count as failed, with the SLURM state when ``sacct`` knows it.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalab_smk.errors import StoreError
from metalab_smk.job.exits import disk_full
from metalab_smk.job.runlog import read_header
from metalab_smk.slurm import scheduler
from metalab_smk.slurm.escalation import retry_lines
from metalab_smk.slurm.jobs import alive_slurm_jobs, cancel_slurm_jobs, slurm_job_ids
from metalab_smk.store.coverage import status_coverage, stored_coverage, validated_before
from metalab_smk.store.layout import ExperimentDir, newest_by_run
from metalab_smk.store.locate import shown
from metalab_smk.store.records import Status
from metalab_smk.store.validate import process_alive, read_valid_record, scan_records

__all__ = [
    "alive_slurm_jobs",
    "cancel_slurm_jobs",
    "FailedRun",
    "SweepStatus",
    "pid_alive",
    "slurm_job_ids",
    "sweep_status",
]


_NUMBER = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    status: str
    error_type: str
    message: str
    log: str
    slurm_state: str | None = None
    slurm_log: str | None = None
    params: dict[str, Any] | None = None

    @property
    def first_line(self) -> str:
        return (self.message.splitlines() or [""])[0]

    @property
    def kind(self) -> tuple[str, str, str]:
        """What groups failures: status, error type and the message's first line with
        its numbers blanked (``missing key 7`` and ``missing key 14`` are one kind)."""
        return (self.status, self.error_type, _NUMBER.sub("#", self.first_line))


@dataclass
class SweepStatus:
    """Counts over the current run table; ``stale`` are records of runs no longer in it."""

    experiment_id: str
    directory: str
    total: int
    done: int
    failed: int
    running: int
    pending: int
    stale: int
    failed_runs: list[FailedRun] = field(default_factory=list)
    skipped: int = 0  # runs done before this invocation (set by a RunHandle)
    retries: list[str] = field(default_factory=list)  # "retried 2 run(s) with 600 MB after ..."

    @property
    def completed(self) -> int:
        """Successful runs of this invocation (upstream's ``completed``)."""
        return self.done - self.skipped

    @property
    def in_flight(self) -> int:
        return self.running + self.pending

    @property
    def missing(self) -> int:
        return self.running + self.pending

    @property
    def is_complete(self) -> bool:
        return self.done == self.total

    def headline(self) -> str:
        return (
            f"{self.experiment_id}: {self.total} runs: {self.done} done, {self.running} "
            f"running, {self.failed} failed, {self.pending} pending"
            + (f" ({self.stale} stale records)" if self.stale else "")
        )

    def groups(self) -> list[list[FailedRun]]:
        """Failed runs grouped by kind of error, most frequent kind first."""
        groups: dict[tuple[str, str, str], list[FailedRun]] = {}
        for run in self.failed_runs:
            groups.setdefault(run.kind, []).append(run)
        return sorted(groups.values(), key=len, reverse=True)

    def failure_lines(self, max_groups: int = 3) -> list[str]:
        """One line per kind of failure (most frequent first), at most ``max_groups``."""
        groups = self.groups()
        lines = [_group_line(runs) for runs in groups[:max_groups]]
        if len(groups) > max_groups:
            lines.append(f"  ... {len(groups) - max_groups} more kinds of error")
        return lines

    def as_text(self, every_run: bool = False, max_groups: int = 6) -> str:
        """The headline, then failures grouped by error with a few example runs (their
        params and log); ``every_run`` lists each failed run instead."""
        lines = [self.headline(), *(f"  {line}" for line in self.retries)]
        if every_run:
            for run in self.failed_runs:
                lines.extend(_run_lines(run))
            return "\n".join(lines)
        groups = self.groups()
        if not groups:
            return "\n".join(lines)
        examples = 3 if len(groups) <= 2 else 1
        kinds = f"{len(groups)} kind{'s' if len(groups) > 1 else ''}"
        lines.append(f"failures by error ({kinds}; --all lists every failed run):")
        for runs in groups[:max_groups]:
            lines.append(_group_line(runs))
            for run in runs[:examples]:
                state = f" (SLURM {run.slurm_state})" if run.slurm_state else ""
                lines.append(_clip(f"    e.g. {run.run_id}{state}  {_params_text(run.params)}"))
                lines.append(f"         log: {shown(run.log)}")
                if run.slurm_log:
                    lines.append(f"         SLURM log: {shown(run.slurm_log)}")
            if len(runs) > examples:
                lines.append(f"    ... and {len(runs) - examples} more")
        if len(groups) > max_groups:
            rest = sum(len(r) for r in groups[max_groups:])
            lines.append(f"  ... {len(groups) - max_groups} more kinds of error ({rest} runs)")
        return "\n".join(lines)


def _group_line(runs: list[FailedRun]) -> str:
    first = runs[0]
    similar = " (and similar)" if any(r.first_line != first.first_line for r in runs) else ""
    return _clip(f"  {len(runs)} x {first.status} {first.error_type}: {first.first_line}{similar}")


def _run_lines(run: FailedRun) -> list[str]:
    state = f" (SLURM {run.slurm_state})" if run.slurm_state else ""
    lines = [f"  {run.status}{state} {run.run_id}: {run.error_type}: {run.message}"]
    if run.params is not None:
        lines.append(f"    params: {_params_text(run.params, limit=None)}")
    lines.append(f"    log: {run.log}")
    if run.slurm_log:
        lines.append(f"    SLURM log: {run.slurm_log}")
    return lines


def _params_text(params: dict[str, Any] | None, limit: int | None = 50) -> str:
    if params is None:
        return ""
    text = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def _clip(line: str, width: int = 80) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def pid_alive(marker: dict[str, Any]) -> bool:
    """Whether the process ``{"pid", "host"}`` names runs on this host."""
    if marker.get("host") != os.uname().nodename:
        return False
    try:
        return process_alive(int(marker["pid"]))
    except (KeyError, TypeError, ValueError):
        return False


RECOMPILE = "`metalab run FILE` (or `metalab compile FILE`) writes it again"
MAX_STATUS_READS = 10_000  # records changed since validated that status reads at most


def sweep_status(
    layout: ExperimentDir,
    with_errors: bool = True,
    verify: bool = False,
    experiment_id: str | None = None,
    check_records: bool = False,
) -> SweepStatus:
    """Done / running / failed / pending over the run table of ``layout``.

    With ``check_records`` every success record is stat'ed and those changed since they
    were last validated are read (at most MAX_STATUS_READS), so a record damaged after
    the summary was built no longer counts; ``verify`` reads every record. Bad records
    are named and left out, never moved (``metalab run`` and ``metalab collect``
    quarantine them). The counts come from the summary's coverage when nothing changed
    since it was written (no directory listing; ``store/coverage.py``)."""
    from metalab_smk.store.runtable import RunTable  # numpy: off a sweep's start

    table = RunTable(layout.run_table)
    counted = None if verify else status_coverage(layout)
    done_names: set[str] | None = None
    if verify or check_records:
        stored = None if verify else stored_coverage(layout)
        since = None if stored is None else validated_before(stored)
        limit = None if verify else MAX_STATUS_READS
        scan = scan_records(layout, layout.runs_dir, since, limit, move_bad=False)
        done_names = scan.found
        counted = counted if scan.clean else None
    if counted is not None:  # the summary's listing still holds: no listing needed
        n_done, stale = counted["n_done"], counted["n_stale"]
        failed_current_ids = dict(counted["failed_positions"])
        partials = _newest_partials(layout, counted["partial_logs"])
        in_progress = table.positions(rid for rid in partials if not layout.record(rid).exists())
    else:
        done_names = layout.done_ids() if done_names is None else done_names
        failed_names = layout.failed_ids() - done_names
        n_done = table.count(done_names)
        failed_current_ids = table.positions(failed_names)
        stale = len(done_names) - n_done + len(failed_names) - len(failed_current_ids)
        partials = layout.partial_logs()
        in_progress = table.positions(partials.keys() - done_names)
    position = {**failed_current_ids}
    position.update(in_progress)
    failed_ids = set(failed_current_ids)
    markers = {rid: read_header(partials[rid]) for rid in in_progress}
    jobs = {m["slurm_job_id"] for m in markers.values() if m.get("slurm_job_id")}
    failed_records = {}
    if with_errors:
        for rid in list(failed_ids):
            record = read_valid_record(layout, layout.failed_record(rid), rid, move_bad=False)
            if record is None:
                failed_ids.discard(rid)
            else:
                failed_records[rid] = record
    jobs |= {
        r.get("provenance", {}).get("extra", {}).get("slurm_job_id")
        for r in failed_records.values()
    } - {None}
    states = scheduler.job_states(jobs, _earliest(markers, failed_records)) if jobs else {}

    running, dead = set(), {}
    for run_id, marker in markers.items():
        job = marker.get("slurm_job_id")
        alive = states.get(job) in scheduler.ALIVE_STATES if job else pid_alive(marker)
        if job and job not in states:  # sacct does not know it (yet): trust the marker
            alive = True
        if alive:
            running.add(run_id)
        elif run_id not in failed_ids or _newer(layout, partials[run_id], run_id):
            dead[run_id] = marker
    failed_current = sorted((failed_ids - running) | set(dead), key=position.__getitem__)
    failed_runs = []
    if with_errors:
        for run_id in failed_current:
            failed_runs.append(
                _failed_run(
                    layout, run_id, dead.get(run_id), failed_records.get(run_id, {}), states
                )
            )
    return SweepStatus(
        experiment_id=experiment_id or _experiment_id(layout),
        directory=os.path.relpath(layout.root),
        total=len(table),
        done=n_done,
        failed=len(failed_current),
        running=len(running),
        pending=len(table) - n_done - len(failed_current) - len(running),
        stale=stale,
        failed_runs=failed_runs,
        retries=retry_lines(layout),
    )


def _experiment_id(layout: ExperimentDir) -> str:
    """The compiled experiment ID (the directory's name when it was never compiled)."""
    if not layout.compiled.is_file():
        return layout.root.name
    compiled = layout.read_meta(layout.compiled, RECOMPILE)
    if not isinstance(compiled, dict) or not isinstance(compiled.get("experiment_id"), str):
        raise StoreError(f"{layout.compiled} is damaged (no experiment_id); {RECOMPILE}.")
    return compiled["experiment_id"]


def _newest_partials(layout: ExperimentDir, names: list[str]) -> dict[str, Path]:
    """``layout.partial_logs()`` restricted to the partial logs ``names``."""
    return newest_by_run((name.partition("_run.log.")[0], layout.logs_dir / name) for name in names)


def _earliest(
    markers: dict[str, dict[str, Any]], records: dict[str, dict[str, Any]]
) -> _dt.datetime | None:
    """A minute before the earliest start among ``markers`` and ``records``: the jobs
    asked about were submitted after it."""
    times = []
    for item in [*markers.values(), *records.values()]:
        try:
            times.append(_dt.datetime.fromisoformat(item["started_at"]))
        except (KeyError, TypeError, ValueError):
            return None  # unknown: do not narrow the query
    return min(times) - _dt.timedelta(minutes=1) if times else None


def _newer(layout: ExperimentDir, partial, run_id: str) -> bool:
    """The partial log is newer than the failed record (a later attempt died)."""
    try:
        return partial.stat().st_mtime_ns > layout.failed_record(run_id).stat().st_mtime_ns
    except OSError:
        return False


def _failed_run(
    layout: ExperimentDir,
    run_id: str,
    marker: dict[str, Any] | None,
    record: dict[str, Any],
    states: dict[str, str],
) -> FailedRun:
    if marker is not None:  # the process died without writing a record
        job = marker.get("slurm_job_id")
        state = states.get(job) if job else None
        if job and scheduler.out_of_memory(state, scheduler.log_tail(marker.get("slurm_log"))):
            message = (
                f"out of memory: SLURM killed its job (ended {state}) for using more than "
                "its memory request; ask for more with SlurmConfig(memory=...)"
            )
        else:
            message = "the run's process died without writing a record" + (
                f" (its SLURM job ended {state})" if state else ""
            )
        return FailedRun(
            run_id,
            Status.KILLED,
            state or "Killed",
            message + (" (no space left on device)" if disk_full(layout.root) else ""),
            str(layout.log(run_id)),
            state,
            marker.get("slurm_log"),
        )
    error = record.get("error") or {}
    extra = record.get("provenance", {}).get("extra", {})
    job = extra.get("slurm_job_id")
    return FailedRun(
        run_id,
        record.get("status", "failed"),
        error.get("type", "?"),
        error.get("message", ""),
        str(layout.log(run_id)),
        states.get(job) if job else None,
        extra.get("slurm_log"),
        record.get("params_resolved"),
    )
