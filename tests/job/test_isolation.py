"""Runs packed into one job stay apart (real processes): working directory and
environment restored, processes a run leaves behind ended, a per-run timeout, a killed
worker loses no record and runs nothing twice, and a process per run on request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.process_env import run_metalab, subprocess_env

pytestmark = pytest.mark.integration

EXPERIMENT = textwrap.dedent(
    """
    import os, subprocess, time
    import metalab

    CALLS = []  # a module global: shared by the runs of one process

    @metalab.operation
    def op(params, capture):
        CALLS.append(params["x"])
        capture.metric("cwd", os.getcwd())
        capture.metric("leak", os.environ.get("LEAK", ""))
        capture.metric("calls", len(CALLS))
        action = params["x"] % 4 if {act} else -1
        if action == 0:
            os.chdir("/")
            os.environ["LEAK"] = "1"
        if action == 1:  # a daemon that outlives the run, holding our pipes
            subprocess.Popen(["sleep", "300"], start_new_session=True)
        if action == 2:
            os.system("sleep 300 &")
        time.sleep(params["x"] == {slow} and 60 or {sleep})
        with open({trail!r}, "a") as handle:
            handle.write(f"{{params['x']}}\\n")

    exp = metalab.Experiment(name="iso", version="1", context={{}}, operation=op,
        params=metalab.grid(x=list(range({n}))), seeds=metalab.seeds(0, 1), {extra})
    """
)


def _write(
    tmp_path: Path, n: int, act: bool = False, slow: int = -1, sleep: float = 0, extra: str = ""
) -> Path:
    trail = tmp_path / "trail.txt"
    (tmp_path / "exp.py").write_text(
        EXPERIMENT.format(n=n, act=act, slow=slow, sleep=sleep, trail=str(trail), extra=extra)
    )
    return trail


def _records(tmp_path: Path, folder: str = "runs") -> dict[int, dict]:
    directory = tmp_path / "runs" / "iso+1" / folder
    records = [json.loads(p.read_text()) for p in directory.glob("*.json")]
    return {r["params_resolved"]["x"]: r for r in records}


def _sleeps_of(marker: Path) -> list[int]:
    """Live `sleep 300` processes whose working directory is under ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or not os.readlink(entry / "cwd").startswith(str(marker)):
                continue
            if (entry / "cmdline").read_bytes().startswith(b"sleep\x00300"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_cwd_environment_and_leftover_processes_do_not_reach_the_next_run(
    tmp_path: Path,
) -> None:
    _write(tmp_path, 8, act=True)
    started = time.monotonic()
    done = run_metalab(tmp_path, "run", "exp.py", "--cores", "1", "--chunk-size", "8")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert time.monotonic() - started < 60  # no daemon kept the batch waiting
    records = _records(tmp_path)
    assert len(records) == 8
    for x, record in records.items():
        assert record["metrics"]["cwd"] != "/", x  # run 0 and 4 chdir to / ...
        assert record["metrics"]["leak"] == "", x  # ... and set LEAK: the next run sees none
    assert records[7]["metrics"]["calls"] == 8  # module globals do leak (documented)
    assert _sleeps_of(tmp_path) == []  # every `sleep 300` a run started was ended
    log = (tmp_path / "runs" / "iso+1" / ".metalab" / "snakemake.log").read_text()
    assert "left 1 process(es) running; ended them" in log


def test_a_run_over_its_timeout_fails_alone(tmp_path: Path) -> None:
    _write(tmp_path, 4, slow=1, extra="timeout=2")
    started = time.monotonic()
    done = run_metalab(tmp_path, "run", "exp.py", "--cores", "1", "--chunk-size", "4")
    assert done.returncode == 1
    assert time.monotonic() - started < 40
    assert sorted(_records(tmp_path)) == [0, 2, 3]
    failed = _records(tmp_path, "failed")[1]
    assert failed["error"]["type"] == "TimeoutError"
    assert failed["error"]["message"].startswith("timed out after 2 s")


def test_isolation_run_gives_every_run_a_fresh_process(tmp_path: Path) -> None:
    _write(tmp_path, 4, extra="isolation='run'")
    done = run_metalab(tmp_path, "run", "exp.py", "--cores", "1", "--chunk-size", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["metrics"]["calls"] for r in _records(tmp_path).values()] == [1, 1, 1, 1]


def _worker_pids(directory: Path) -> list[int]:
    """The batch workers of ``directory`` (not the children and guards they fork)."""
    pids = {}
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"metalab_smk.worker\0batch" in cmdline:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                pids[int(entry.name)] = (parent, os.readlink(entry / "cwd"))
        except (OSError, ValueError):
            continue
    return [
        pid for pid, (parent, cwd) in pids.items() if parent not in pids and cwd == str(directory)
    ]


def test_kill_9_of_a_worker_loses_no_record_and_runs_nothing_twice(tmp_path: Path) -> None:
    trail = _write(tmp_path, 6, sleep=1.0)
    exp_dir = tmp_path / "runs" / "iso+1"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "metalab_smk.cli",
            "run",
            "exp.py",
            "--cores",
            "1",
            "--chunk-size",
            "6",
        ],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (trail.exists() and len(trail.read_text().split()) >= 2):
        assert time.monotonic() < deadline, "the runs did not start"
        time.sleep(0.05)
    (worker,) = _worker_pids(exp_dir)
    os.kill(worker, signal.SIGKILL)
    first.wait(timeout=60)
    time.sleep(1.5)  # an orphaned child would finish its run in this time
    finished = trail.read_text().split()
    assert len(_records(tmp_path)) == len(finished)  # every finished run has its record
    done = run_metalab(tmp_path, "run", "exp.py", "--cores", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(map(int, trail.read_text().split())) == list(range(6))  # once each


OS_SYSTEM_RUN = textwrap.dedent(
    """
    import os
    import metalab

    @metalab.operation
    def op(params, capture):
        os.system("sleep 300")

    exp = metalab.Experiment(name="iso", version="1", context={}, operation=op,
        params=metalab.grid(x=[0]), seeds=metalab.seeds(0, 1))
    """
)


def _run_inside_os_system(tmp_path: Path) -> subprocess.Popen[bytes]:
    """`metalab run` of a run blocked in ``os.system("sleep 300")``, once it is there."""
    (tmp_path / "exp.py").write_text(OS_SYSTEM_RUN)
    driver = subprocess.Popen(
        [sys.executable, "-m", "metalab_smk.cli", "run", "exp.py"],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not _sleeps_of(tmp_path):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    return driver


def _until_no_sleeps(tmp_path: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while _sleeps_of(tmp_path):
        assert time.monotonic() < deadline, f"the run's `sleep 300` outlived {what}"
        time.sleep(0.2)


def test_kill_9_of_metalab_run_ends_a_run_inside_os_system(tmp_path: Path) -> None:
    driver = _run_inside_os_system(tmp_path)
    driver.kill()
    driver.wait()
    _until_no_sleeps(tmp_path, "metalab run")


def test_kill_9_of_a_worker_ends_the_run_and_what_it_started(tmp_path: Path) -> None:
    driver = _run_inside_os_system(tmp_path)
    (worker,) = _worker_pids(tmp_path / "runs" / "iso+1")
    os.kill(worker, signal.SIGKILL)
    _until_no_sleeps(tmp_path, "its worker")
    driver.wait(timeout=60)
