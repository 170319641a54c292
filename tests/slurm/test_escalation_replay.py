"""Which tasks of an ended array SLURM killed for memory or time, on sacct outputs
recorded on the local test cluster (slurm-wlm 22.05) while the accounting caught up:
for a moment after an array ends, sacct shows it as one line, or only the task that
kept the array's own ID (for 4 s once), then every task."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from metalab_smk.errors import SchedulerError
from metalab_smk.slurm import escalation, scheduler
from metalab_smk.store.layout import ExperimentDir

STAMP = "20261205T055251"
# recorded: sacct -n -X -P -o JobIDRaw,JobID,State -j 2766, polled every 0.1 s
LAGGING = "2766|2766|COMPLETED\n"
ONE_TASK = "2766|2766_3|COMPLETED\n"  # recorded as 2774|2774_3|COMPLETED
ENDED = """\
2767|2766_0|FAILED
2768|2766_1|COMPLETED
2769|2766_2|COMPLETED
2766|2766_3|COMPLETED
"""
# recorded: what slurmstepd wrote into task 0's log (JobAcctGatherParams=OverMemoryKill)
KILL_LINE = (
    "slurmstepd-vm: error: StepId=2767.batch exceeded memory limit "
    "(1493920768 > 314572800), being killed\n"
)


def _layout(tmp_path: Path, ended: list[int], log_of_0: str) -> ExperimentDir:
    layout = ExperimentDir.at(tmp_path / "exp")
    for task in ended:
        layout.batch_end(f"{STAMP}-{task:06d}").parent.mkdir(parents=True, exist_ok=True)
        layout.batch_end(f"{STAMP}-{task:06d}").write_text("0\n")
    layout.slurm_log(f"{STAMP}-0").parent.mkdir(parents=True, exist_ok=True)
    layout.slurm_log(f"{STAMP}-0").write_text(log_of_0)
    return layout


def _replay(monkeypatch: pytest.MonkeyPatch, outputs: list[str]) -> list[list[str]]:
    """sacct answers ``outputs`` in turn (the last one from then on); the calls made."""
    calls: list[list[str]] = []

    def call(argv: list[str]) -> str:
        calls.append(argv)
        return outputs[min(len(calls), len(outputs)) - 1]

    monkeypatch.setattr(scheduler, "call", call)
    monkeypatch.setattr(scheduler, "available", lambda command="sbatch": True)
    monkeypatch.setattr(escalation.time, "sleep", lambda seconds: None)
    return calls


def test_a_task_missing_from_lagging_sacct_is_waited_for(tmp_path, monkeypatch) -> None:
    """Neither the array's one line nor its one ended task is the answer: task 0, killed,
    comes later (taking the one task as every task once let a killed run go unretried)."""
    layout = _layout(tmp_path, [1, 2, 3], KILL_LINE)
    calls = _replay(monkeypatch, [LAGGING, ONE_TASK, ONE_TASK, ENDED])
    killed = escalation.killed_tasks(layout, "2766", STAMP, 4, datetime(2026, 12, 5))
    assert killed == {"OUT_OF_MEMORY": [f"{STAMP}-000000"]}
    assert len(calls) == 4


def test_tasks_ended_by_themselves_are_not_killed(tmp_path, monkeypatch) -> None:
    """A COMPLETED task is never a memory kill, even where its log mentions one."""
    layout = _layout(tmp_path, [0, 1, 2, 3], "CUDA out of memory\n")
    _replay(monkeypatch, [ENDED.replace("FAILED", "COMPLETED")])
    assert escalation.killed_tasks(layout, "2766", STAMP, 4, datetime(2026, 12, 5)) == {}


def test_a_task_that_died_for_no_reason_seen_is_named(tmp_path, monkeypatch, capsys) -> None:
    layout = _layout(tmp_path, [1, 2, 3], "")
    _replay(monkeypatch, [ENDED])
    assert escalation.killed_tasks(layout, "2766", STAMP, 4, datetime(2026, 12, 5)) == {}
    assert "metalab: task(s) ended: 2766_0 FAILED" in capsys.readouterr().out


def test_without_accounting_nothing_is_retried_at_once(tmp_path, monkeypatch) -> None:
    layout = _layout(tmp_path, [1, 2, 3], KILL_LINE)
    calls: list[list[str]] = []

    def call(argv: list[str]) -> str:
        calls.append(argv)
        raise SchedulerError("sacct: Slurm accounting storage is disabled")

    monkeypatch.setattr(scheduler, "call", call)
    monkeypatch.setattr(scheduler, "available", lambda command="sbatch": True)
    assert escalation.killed_tasks(layout, "2766", STAMP, 4, datetime(2026, 12, 5)) == {}
    assert len(calls) == 1


def test_a_failing_sacct_is_asked_again(tmp_path, monkeypatch) -> None:
    """A timeout or a restarting slurmdbd is not a cluster without accounting."""
    layout = _layout(tmp_path, [1, 2, 3], KILL_LINE)
    answers = iter([SchedulerError("sacct: error: slurmdbd: Connection refused"), ENDED])
    monkeypatch.setattr(scheduler, "available", lambda command="sbatch": True)
    monkeypatch.setattr(escalation.time, "sleep", lambda seconds: None)

    def call(argv: list[str]) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(scheduler, "call", call)
    killed = escalation.killed_tasks(layout, "2766", STAMP, 4, datetime(2026, 12, 5))
    assert killed == {"OUT_OF_MEMORY": [f"{STAMP}-000000"]}


def test_tasks_cancelled_before_they_started_count_as_ended(tmp_path, monkeypatch, capsys) -> None:
    """sacct shows tasks that never started as one line (``2766_[1-3%2]``): they are
    there, ended, so nothing waits for them; they are named, not retried."""
    layout = _layout(tmp_path, [], KILL_LINE)
    calls = _replay(monkeypatch, ["2767|2766_0|OUT_OF_MEMORY\n2766|2766_[1-3%2]|CANCELLED by 0\n"])
    killed = escalation.killed_tasks(layout, "2766", STAMP, 4, datetime(2026, 12, 5))
    assert killed == {"OUT_OF_MEMORY": [f"{STAMP}-000000"]}
    assert "2766_1 CANCELLED, 2766_2 CANCELLED, 2766_3 CANCELLED" in capsys.readouterr().out
    assert len(calls) == 6  # once per look, not a long wait each time
