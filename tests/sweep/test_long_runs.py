"""Runs that outlive a stop, a time limit or a preemption continue from their checkpoint
(real processes; the SLURM test uses the local cluster and a one-minute time limit)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.process_env import run_metalab, subprocess_env

pytestmark = pytest.mark.integration

LONG_RUN = textwrap.dedent(
    """
    import time
    import metalab

    @metalab.operation
    def train(params, capture):
        state = capture.checkpoint_dir / "step.txt"
        step = int(state.read_text()) if state.exists() else 0
        while step < params["steps"]:
            if capture.should_stop():
                return  # saved below at every step: the next attempt goes on from here
            time.sleep(params["seconds"])
            with open({trail!r}, "a") as handle:
                handle.write(f"{{step}}\\n")
            capture.metric("loss", 1.0 / (step + 1), step=step)
            step += 1
            state.write_text(str(step))
        capture.metric("attempt", capture.attempt)

    exp = metalab.Experiment(name="long", version="1", context={{}}, operation=train,
        params=metalab.grid(steps=[{steps}], seconds=[{seconds}]), seeds=metalab.seeds(0, 1))
    """
)


def _write(tmp_path: Path, steps: int, seconds: float) -> Path:
    trail = tmp_path / "trail.txt"
    (tmp_path / "exp.py").write_text(
        LONG_RUN.format(trail=str(trail), steps=steps, seconds=seconds)
    )
    return trail


def _only(directory: Path) -> dict:
    (path,) = directory.glob("*.json")
    return json.loads(path.read_text())


def _check_finished(tmp_path: Path, trail: Path, steps: int, min_attempts: int) -> None:
    exp_dir = tmp_path / "runs" / "long+1"
    record = _only(exp_dir / "runs")
    attempts = record["provenance"]["extra"]["attempts"]
    assert len(attempts) >= min_attempts
    assert [a["status"] for a in attempts[:-1]] == ["interrupted"] * (len(attempts) - 1)
    assert record["metrics"]["attempt"] == len(attempts)
    assert sorted(map(int, trail.read_text().split())) == list(range(steps))  # once each
    curve = _only(exp_dir / "results" / record["run_id"])
    assert [point[0] for point in curve["data"]] == list(range(steps))  # one curve
    assert not (exp_dir / "checkpoints" / record["run_id"]).exists()  # removed on success


@pytest.mark.parametrize("group", [False, True], ids=["ctrl-c", "sigterm-to-the-group"])
def test_ctrl_c_keeps_the_checkpoint_and_the_next_run_continues(
    tmp_path: Path, group: bool
) -> None:
    """Ctrl-C of `metalab run`, or SIGTERM to its whole process group (Snakemake, the
    job, the run), keeps the checkpoint; the next `metalab run` continues it."""
    trail = _write(tmp_path, steps=12, seconds=0.3)
    first = subprocess.Popen(
        [sys.executable, "-m", "metalab_smk.cli", "run", "exp.py"],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
        # default SIGINT, as a terminal's job (a shell's background jobs ignore it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not (trail.exists() and len(trail.read_text().split()) >= 4):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    if group:
        os.killpg(first.pid, signal.SIGTERM)
    else:
        first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    assert first.returncode != 0
    exp_dir = tmp_path / "runs" / "long+1"
    while not list((exp_dir / "failed").glob("*.json")):  # the job, outliving its driver
        assert time.monotonic() < deadline, "the run recorded nothing"  # by a second
        time.sleep(0.1)
    interrupted = _only(exp_dir / "failed")
    assert interrupted["status"] == "interrupted"
    saved = int((exp_dir / "checkpoints" / interrupted["run_id"] / "step.txt").read_text())
    assert 4 <= saved < 12
    shown = run_metalab(tmp_path, "status", "runs/long+1")
    assert "checkpoints: 1 run(s) keep 0.0 MB in runs/long+1/checkpoints" in shown.stdout
    done = run_metalab(tmp_path, "run", "exp.py")
    assert done.returncode == 0, done.stderr[-2000:]
    _check_finished(tmp_path, trail, 12, min_attempts=2)
    assert "checkpoints" not in run_metalab(tmp_path, "status", "runs/long+1").stdout


CRASHING = textwrap.dedent(
    """
    import os
    import signal
    import metalab

    @metalab.operation
    def flaky(capture):
        tries = capture.checkpoint_dir / "tries.txt"
        seen = int(tries.read_text()) if tries.exists() else 0
        tries.write_text(str(seen + 1))
        capture.metric("attempt", capture.attempt)
        if seen == 0:
            os.kill(os.getppid(), signal.SIGKILL)  # the whole job dies: no record at all
            signal.pause()
        if seen == 1:
            os._exit(3)  # the run's process crashes: a failed record

    exp = metalab.Experiment(name="flaky", version="1", context={}, operation=flaky,
        params=metalab.grid(x=[1]), seeds=metalab.seeds(0, 1))
    """
)


def test_attempts_count_across_kills_and_crashes(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(CRASHING)
    assert run_metalab(tmp_path, "run", "exp.py").returncode == 1  # killed, no record
    exp_dir = tmp_path / "runs" / "flaky+1"
    assert not list((exp_dir / "failed").glob("*.json"))
    assert run_metalab(tmp_path, "run", "exp.py").returncode == 1  # crashed
    crashed = _only(exp_dir / "failed")
    assert [a["status"] for a in crashed["provenance"]["extra"]["attempts"]] == [
        "killed",
        "failed",
    ]
    done = run_metalab(tmp_path, "run", "exp.py")
    assert done.returncode == 0, done.stderr[-2000:]
    record = _only(exp_dir / "runs")
    attempts = record["provenance"]["extra"]["attempts"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [
        (1, "killed"),
        (2, "failed"),
        (3, "success"),
    ]
    assert record["metrics"]["attempt"] == 3  # capture.attempt counted every restart


def _cluster_reason() -> str | None:
    if shutil.which("sinfo") is None:
        return "no SLURM client tools; start a cluster with scripts/local-slurm-start.sh"
    shown = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True)
    return None if "up" in shown.stdout else "no SLURM cluster answers sinfo"


def _slurm_sweep(tmp_path: Path, time_limit: int) -> subprocess.Popen[str]:
    (tmp_path / "go.py").write_text(
        textwrap.dedent(f"""
        import metalab
        from exp import exp

        config = metalab.SlurmConfig(partition="debug", time={time_limit}, memory="500M",
                                     status_interval=1, warn_before=20)
        metalab.run(exp, executor=metalab.SlurmExecutor(config)).result(check=True)
        """)
    )
    return subprocess.Popen(
        [sys.executable, "go.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(tmp_path),
    )


def _finished_ok(sweep: subprocess.Popen[str]) -> None:
    out, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, out[-2000:] + err[-3000:]
    # an interrupted attempt is not counted as a failure: the run is done in the end
    assert "1/1 done (1 succeeded, 0 failed, 0 skipped)" in out, out[-2000:]


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.skipif(_cluster_reason() is not None, reason=_cluster_reason() or "")
def test_a_run_longer_than_its_time_limit_finishes_in_one_sweep_on_slurm(
    tmp_path: Path,
) -> None:
    trail = _write(tmp_path, steps=40, seconds=2)
    _finished_ok(_slurm_sweep(tmp_path, time_limit=1))
    _check_finished(tmp_path, trail, 40, min_attempts=2)


@pytest.mark.slurm
@pytest.mark.skipif(_cluster_reason() is not None, reason=_cluster_reason() or "")
def test_a_preempted_run_is_requeued_and_continues_on_slurm(tmp_path: Path) -> None:
    trail = _write(tmp_path, steps=16, seconds=0.5)
    sweep = _slurm_sweep(tmp_path, time_limit=10)
    deadline = time.monotonic() + 120
    while not (trail.exists() and len(trail.read_text().split()) >= 4):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    queued = subprocess.run(  # this test's task: the job whose working directory is ours
        ["squeue", "-h", "-n", "metalab-long+1", "-o", "%i %Z"], capture_output=True, text=True
    ).stdout.splitlines()
    (task,) = [line.split()[0] for line in queued if line.split()[1].startswith(str(tmp_path))]
    # what preemption does: SIGTERM to the job's processes (here its batch shell, the worker)
    subprocess.run(["scancel", "--batch", "--signal=TERM", task], check=True)
    _finished_ok(sweep)
    _check_finished(tmp_path, trail, 16, min_attempts=2)


def _one_minute_profile(tmp_path: Path) -> Path:
    """`metalab profile slurm` with a one-minute time limit: runs are warned 30 s
    before it (the default warning, at most half the limit)."""
    profile = tmp_path / "profile"
    made = run_metalab(
        tmp_path,
        "profile",
        "slurm",
        str(profile),
        "--partition",
        "debug",
        "--time",
        "1",
        "--memory",
        "500M",
    )
    assert made.returncode == 0, made.stderr
    return profile


def _wait_for_summary(exp_dir: Path, timeout: float) -> None:
    import pandas as pd

    deadline = time.monotonic() + timeout
    summary = exp_dir / "summary" / "runs.parquet"
    while not (summary.exists() and (pd.read_parquet(summary)["status"] == "success").all()):
        assert time.monotonic() < deadline, "the summary job did not write a complete summary"
        time.sleep(1)


@pytest.mark.slurm
@pytest.mark.skipif(_cluster_reason() is not None, reason=_cluster_reason() or "")
def test_a_detached_submit_continues_a_run_past_its_time_limit(tmp_path: Path) -> None:
    """`metalab submit` has no head process: the interrupted task requeues itself (same
    job ID) and the summary job, waiting for the array, sees the run finished."""
    trail = _write(tmp_path, steps=40, seconds=1)
    profile = _one_minute_profile(tmp_path)
    submitted = run_metalab(tmp_path, "submit", "exp.py", "--profile", str(profile))
    assert submitted.returncode == 0, submitted.stderr
    exp_dir = tmp_path / "runs" / "long+1"
    _wait_for_summary(exp_dir, timeout=240)
    _check_finished(tmp_path, trail, 40, min_attempts=2)
    status = run_metalab(tmp_path, "status", "runs/long+1").stdout
    assert "1 runs: 1 done" in status and "submitted head process: finished" in status, status
    head = json.loads((exp_dir / ".metalab" / "head.json").read_text())
    restarts = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", head["array_job_id"]],
        capture_output=True,
        text=True,
    ).stdout
    assert "COMPLETED" in restarts, restarts  # one job ID, requeued, then completed


def test_a_requeue_listing_applies_to_its_own_job_only(tmp_path: Path, monkeypatch) -> None:
    """A listing left by a task that never restarted must not narrow a later job's batch
    of the same name (plain Snakemake's batch names repeat)."""
    from metalab_smk.job.requeue import resumed_runs
    from metalab_smk.store.layout import ExperimentDir

    layout = ExperimentDir.at(tmp_path)
    layout.batches_dir.mkdir(parents=True)
    (layout.batches_dir / "b-000000.requeue").write_text("41\nrunB\n")
    pending = [(0, "runA"), (1, "runB")]
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert resumed_runs(layout, "b-000000", pending) == [(1, "runB")]
    monkeypatch.setenv("SLURM_JOB_ID", "57")
    assert resumed_runs(layout, "b-000000", pending) == pending
