"""Plain `snakemake --profile` (the metalab-slurm executor) under faults, on the local
cluster: a run outliving its time limit continues, one cancelled array task fails its
runs alone, a SIGKILLed Snakemake leaves no task running on (issues 22 and 23)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.process_env import run_metalab
from tests.sweep.test_long_runs import _check_finished, _cluster_reason, _one_minute_profile, _write

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.integration,
    pytest.mark.skipif(_cluster_reason() is not None, reason=_cluster_reason() or ""),
]

SLEEPY = textwrap.dedent(
    """
    import time
    import metalab

    @metalab.operation
    def nap(params, capture):
        time.sleep(params["seconds"])
        capture.metric("x", params["x"])

    exp = metalab.Experiment(name="sleepy", version="1", context=dict(), operation=nap,
        params=metalab.grid(x=list(range(6)), seconds=[{seconds}]), seeds=metalab.seeds(0, 1))
    """
)


def _snakemake(exp_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=exp_dir,
        env={**os.environ, "PYTHONSAFEPATH": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _sleepy(tmp_path: Path, seconds: float) -> Path:
    (tmp_path / "exp.py").write_text(SLEEPY.format(seconds=seconds))
    assert run_metalab(tmp_path, "compile", "exp.py").returncode == 0
    return tmp_path / "runs" / "sleepy+1"


def test_a_run_past_its_time_limit_continues_under_plain_snakemake(tmp_path: Path) -> None:
    """The task warns its run 30 s before the one-minute limit, the run saves and
    returns, the task requeues itself; Snakemake waits for the same job and exits 0."""
    trail = _write(tmp_path, steps=40, seconds=1)
    profile = _one_minute_profile(tmp_path)
    assert run_metalab(tmp_path, "compile", "exp.py").returncode == 0
    started = time.monotonic()
    snakemake = _snakemake(tmp_path / "runs" / "long+1", "--profile", str(profile))
    out, _ = snakemake.communicate(timeout=300)
    assert snakemake.returncode == 0, out[-3000:]
    assert out.count("submitted SLURM array job") == 1, out[-3000:]  # requeued, not resubmitted
    _check_finished(tmp_path, trail, 40, min_attempts=2)
    print(f"plain snakemake, 40 x 1 s under a 1-minute limit: {time.monotonic() - started:.1f} s")


def test_one_cancelled_task_fails_its_runs_alone_under_plain_snakemake(tmp_path: Path) -> None:
    """scancel of one task of the array: its runs fail (SLURM state CANCELLED), the
    other tasks finish theirs, Snakemake exits 1 naming the batch; a rerun runs only the
    cancelled task's runs."""
    exp_dir = _sleepy(tmp_path, seconds=4)
    profile = _one_minute_profile(tmp_path)
    snakemake = _snakemake(exp_dir, "--profile", str(profile), "--config", "chunk=2")
    deadline = time.monotonic() + 120
    running: list[str] = []
    while not running:  # 3 tasks of 2 runs each
        assert time.monotonic() < deadline and snakemake.poll() is None
        for log in (exp_dir / "logs").glob("*.partial"):
            header = log.read_text().split("\n", 1)[0].removeprefix("# metalab run ")
            running += [json.loads(header)["slurm_job_id"]] if header.endswith("}") else []
        time.sleep(0.1)
    shown = subprocess.run(["squeue", "-h", "-r", "-o", "%A %i"], capture_output=True, text=True)
    # `<array>_<index>`: scancel of the raw ID of an array task does nothing here
    (task,) = [
        line.split()[1] for line in shown.stdout.splitlines() if line.split()[0] == running[0]
    ]
    subprocess.run(["scancel", task], check=True)
    out, _ = snakemake.communicate(timeout=240)
    assert snakemake.returncode == 1, out[-3000:]
    named = r"run\(s\) of batch \S+ failed or did not start \(SLURM job \d+_\d\)"
    assert len(re.findall(named, out)) == 1, out[-3000:]  # that batch alone
    assert len(list((exp_dir / "runs").glob("*.json"))) == 4  # the other tasks finished
    status = run_metalab(tmp_path, "status", str(exp_dir)).stdout
    assert "6 runs: 4 done, 0 running" in status and "CANCELLED" in status, status
    again = _snakemake(exp_dir, "--profile", str(profile), "--config", "chunk=2")
    out, _ = again.communicate(timeout=240)
    assert again.returncode == 0, out[-3000:]
    assert "(1 tasks)" in out, out[-3000:]
    assert len(list((exp_dir / "runs").glob("*.json"))) == 6


def test_a_sigkilled_snakemake_leaves_no_task_running(tmp_path: Path) -> None:
    """`kill -9` of the user's `snakemake --profile`: its executor's heartbeat stops, the
    running tasks cancel their runs and the pending ones start none, within the
    heartbeat's staleness (10 s here, 60 s by default); Snakemake's lock stays behind
    (`snakemake --unlock` removes it; `metalab run` does it itself)."""
    exp_dir = _sleepy(tmp_path, seconds=30)
    profile = _one_minute_profile(tmp_path)
    stale = {"METALAB_HEARTBEAT_STALE": "10"}
    snakemake = _snakemake(exp_dir, "--profile", str(profile), "--config", "chunk=2", env=stale)
    deadline = time.monotonic() + 120
    while not list((exp_dir / "logs").glob("*.partial")):
        assert time.monotonic() < deadline and snakemake.poll() is None
        time.sleep(0.1)
    os.killpg(snakemake.pid, signal.SIGKILL)
    out, _ = snakemake.communicate()
    (array,) = re.findall(r"submitted SLURM array job (\d+)", out)
    killed = time.monotonic()
    while subprocess.run(["squeue", "-h", "-j", array], capture_output=True).stdout.strip():
        assert time.monotonic() - killed < 45, "array tasks outlived their Snakemake"
        time.sleep(0.5)
    print(f"tasks ended {time.monotonic() - killed:.1f} s after SIGKILL of snakemake")
    assert not list((exp_dir / "runs").glob("*.json"))  # 30 s runs: none finished
    cancelled = [json.loads(p.read_text()) for p in (exp_dir / "failed").glob("*.json")]
    assert cancelled and {r["status"] for r in cancelled} == {"cancelled"}
    status = run_metalab(tmp_path, "status", str(exp_dir)).stdout
    assert "6 runs: 0 done, 0 running" in status, status
    rerun = _snakemake(exp_dir, "--profile", str(profile))
    out, _ = rerun.communicate(timeout=120)  # Snakemake's own lock stays behind: it says so
    assert rerun.returncode == 1 and "--unlock" in out, out[-2000:]
    unlocked = _snakemake(exp_dir, "--unlock")
    assert unlocked.wait(timeout=120) == 0
