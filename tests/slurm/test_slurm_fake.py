"""The SLURM array engine against a fake SLURM on PATH (tests/fakes/slurm.py): submission,
status, stop, time limit and out-of-memory handling, in every test run, without a cluster.
The real end-to-end tests on a local cluster are in tests/cluster/test_slurm.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import slurm as fake
from process_env import run_metalab, subprocess_env

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="the fake SLURM reads Linux /proc"),
]

# x = 0 hangs (after touching started-0) when the file hang-0 exists
EXPERIMENT = textwrap.dedent(
    """
    import os, sys, time
    import metalab

    MARKERS = {markers!r}

    @metalab.operation
    def op(params, capture):
        x = params["x"]
        if os.path.exists(os.path.join(MARKERS, f"hang-{{x}}")):
            open(os.path.join(MARKERS, f"started-{{x}}"), "w").close()
            time.sleep(120)
        capture.metric("y", x * 10)

    exp = metalab.Experiment(name={name!r}, version="1", context={{}}, operation=op,
        params=metalab.grid(x=list(range({n}))), seeds=metalab.seeds(1))

    if __name__ == "__main__":
        config = metalab.SlurmConfig(partition="debug", time="00:05:00", memory="600M",
                                     chunk_size={chunk}, status_interval=1,
                                     max_escalations=0)  # killed tasks are reported
        handle = metalab.run(exp, executor=metalab.SlurmExecutor(config), verbose=False)
        handle.wait()
        print("STATUS", handle.status.done, handle.status.failed)
    """
)


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fake SLURM first on PATH; its state directory. Every job still running at the
    end is cancelled."""
    state = tmp_path / "fake-slurm"
    fake.install(tmp_path / "fake-bin", state)
    monkeypatch.setenv("PATH", f"{tmp_path / 'fake-bin'}{os.pathsep}{os.environ['PATH']}")
    yield state
    for job_id in fake.jobs(state):
        (state / "jobs" / f"{job_id}.cancel").write_text("KILL")
    _wait(lambda: not _alive_tasks(state), 30)


def _alive_tasks(state: Path) -> list[str]:
    return [
        task["shown"]
        for job in fake.jobs(state).values()
        for task in job["tasks"]
        if task["state"] in fake.ALIVE
    ]


def _wait(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _experiment(
    tmp_path: Path, name: str, n: int, hang: tuple[int, ...] = (), chunk: int = 2
) -> Path:
    """``NAME.py``: x = 0 .. n-1, ``chunk`` runs per array task under ``python NAME.py``."""
    path = tmp_path / f"{name}.py"
    path.write_text(EXPERIMENT.format(markers=str(tmp_path), name=name, n=n, chunk=chunk))
    for x in hang:
        (tmp_path / f"hang-{x}").touch()
    return path


def _sweep(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    """``python NAME.py``: metalab.run with a SlurmExecutor (the array engine)."""
    return subprocess.run(
        [sys.executable, f"{name}.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=subprocess_env(tmp_path),
    )


def _status(tmp_path: Path, name: str) -> dict:
    done = run_metalab(tmp_path, "status", f"runs/{name}+1", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _profile(tmp_path: Path) -> Path:
    profile = tmp_path / "profile"
    shutil.copytree(REPO / "profiles" / "slurm", profile)
    return profile


def test_a_sweep_submits_one_array_with_its_resources_and_records_each_task(slurm, tmp_path):
    _experiment(tmp_path, "packed", 6)
    done = _sweep(tmp_path, "packed")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "STATUS 6 0" in done.stdout
    (sbatch,) = fake.calls(slurm, "sbatch")
    for option, value in (("--array", "0-2"), ("--time", "5"), ("--mem", "600")):
        assert fake._option(sbatch, option) == value
    assert fake._option(sbatch, "--partition") == "debug"
    assert "metalab_smk.worker task" in sbatch[-1]
    (job,) = fake.jobs(slurm).values()
    assert [t["state"] for t in job["tasks"]] == ["COMPLETED"] * 3
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs/packed+1/runs").glob("*.json")]
    extras = [r["provenance"]["extra"] for r in records]
    assert {e["slurm_job_id"] for e in extras} == {t["raw"] for t in job["tasks"]}
    assert all(Path(e["slurm_log"]).is_file() for e in extras)
    status = _status(tmp_path, "packed")
    assert (status["done"], status["failed"], status["complete"]) == (6, 0, True)


def test_submit_runs_the_array_then_the_summary_job_after_it(slurm, tmp_path):
    _experiment(tmp_path, "detached", 4)
    done = run_metalab(
        tmp_path, "submit", "detached.py", "--profile", str(_profile(tmp_path)),
        "--chunk-size", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    array, summary = fake.calls(slurm, "sbatch")
    head = json.loads((tmp_path / "runs/detached+1/.metalab/head.json").read_text())
    assert array[array.index("--array") + 1] == "0-1"
    assert f"--dependency=afterany:{head['array_job_id']}" in summary
    assert "metalab_smk.sweep.follow" in summary[-1]  # follows, then the summary
    _wait(lambda: not _alive_tasks(slurm), 60)
    assert json.loads((tmp_path / "runs/detached+1/.metalab/head.json").read_text()) == head
    status = _status(tmp_path, "detached")
    assert (status["done"], status["complete"]) == (4, True)
    assert (tmp_path / "runs/detached+1/summary/runs.parquet").is_file()
    assert status["head"]["state"] == "finished", status["head"]


def test_a_refused_submission_is_one_line_and_starts_nothing(slurm, tmp_path):
    (slurm / "scenario.json").write_text(json.dumps({"refuse": "invalid partition specified"}))
    _experiment(tmp_path, "refused", 2)
    done = run_metalab(tmp_path, "submit", "refused.py", "--profile", str(_profile(tmp_path)))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "metalab submit: error: the sweep was not submitted: sbatch refused the request: "
        "sbatch: error: invalid partition specified"
    ]
    assert not fake.jobs(slurm)


def _end_task_zero(slurm: Path, tmp_path: Path, state: str) -> None:
    scenario = {"end": {"0": {"state": state, "when": str(tmp_path / "started-0")}}}
    (slurm / "scenario.json").write_text(json.dumps(scenario))


def test_a_time_limit_fails_its_run_only_naming_the_slurm_state(slurm, tmp_path):
    _experiment(tmp_path, "limited", 4, hang=(0,), chunk=4)  # one task: x=1..3 wait behind
    _end_task_zero(slurm, tmp_path, "TIMEOUT")
    done = _sweep(tmp_path, "limited")
    assert "STATUS 3 1" in done.stdout, done.stderr[-3000:]
    status = _status(tmp_path, "limited")
    (failed,) = status["failed_runs"]  # x=0: cancelled by SIGTERM, or killed before a record
    assert failed["params"] in ({"x": 0}, None) and failed["slurm_state"] == "TIMEOUT"
    assert "DUE TO TIME LIMIT" in Path(failed["slurm_log"]).read_text()
    text = run_metalab(tmp_path, "status", "runs/limited+1").stdout
    assert "(SLURM TIMEOUT)" in text and "SLURM log:" in text


def test_a_task_killed_for_its_memory_reports_its_run_out_of_memory(slurm, tmp_path):
    _experiment(tmp_path, "hog", 4, hang=(0,), chunk=4)
    _end_task_zero(slurm, tmp_path, "OUT_OF_MEMORY")
    done = _sweep(tmp_path, "hog")
    assert "STATUS 3 1" in done.stdout, done.stderr[-3000:]
    status = _status(tmp_path, "hog")
    (failed,) = status["failed_runs"]
    assert failed["params"] in ({"x": 0}, None) and failed["slurm_state"] == "OUT_OF_MEMORY"
    assert failed["message"].startswith("out of memory"), failed


# x = 0 touches started-0 and waits, except in an attempt retried with more
GROW = textwrap.dedent(
    """
    import os, time
    import metalab

    @metalab.operation
    def op(params, capture):
        if params["x"] == 0 and "METALAB_RESOURCE_ATTEMPTS" not in os.environ:
            open(os.path.join({markers!r}, "started-0"), "w").close()
            time.sleep(120)
        capture.metric("y", params["x"])

    exp = metalab.Experiment(name="grow", version="1", context={{}}, operation=op,
        params=metalab.grid(x=list(range(4))), seeds=metalab.seeds(1))
    """
)


@pytest.mark.parametrize(
    ("cause", "key", "option", "shown"),
    [
        ("OUT_OF_MEMORY", "mem_mb", "--mem=2000", "2000 MB"),
        ("TIMEOUT", "runtime", "--time=60", "60 min"),
    ],
)
def test_submit_retries_a_task_killed_for_its_memory_or_time_with_twice_as_much(
    slurm, tmp_path, cause, key, option, shown
):
    """No process waits after `metalab submit`: the follower job retries the killed
    task's runs asking for twice the profile's memory (1000 MB) or time (30 min), lists
    the new array and follower in head.json; the last follower writes the summary."""
    (tmp_path / "grow.py").write_text(GROW.format(markers=str(tmp_path)))
    _end_task_zero(slurm, tmp_path, cause)
    done = run_metalab(
        tmp_path, "submit", "grow.py", "--profile", str(_profile(tmp_path)), "--chunk-size", "2"
    )
    assert done.returncode == 0, done.stderr
    _wait(lambda: (tmp_path / "runs/grow+1/summary/runs.parquet").is_file(), 90)
    head = json.loads((tmp_path / "runs/grow+1/.metalab/head.json").read_text())
    first, grown = (a["resources"][key] for a in head["arrays"])
    assert (first * 2, head["arrays"][0]["retried"]) == (grown, [f"{head['stamp']}-000000"])
    _, _, retry, follower = fake.calls(slurm, "sbatch")
    assert option in retry and f"{head['arrays'][1]['job_id']}" in " ".join(follower)
    assert head["job_id"] == max(fake.jobs(slurm), key=int)
    status = _status(tmp_path, "grow")
    assert (status["done"], status["complete"], status["head"]["state"]) == (4, True, "finished")
    text = run_metalab(tmp_path, "status", "runs/grow+1").stdout
    assert f"retried 2 run(s) with {shown} after {cause}" in text, text


def test_stop_cancels_the_array_and_the_summary_job(slurm, tmp_path):
    _experiment(tmp_path, "stopme", 4, hang=(0,))
    done = run_metalab(
        tmp_path, "submit", "stopme.py", "--profile", str(_profile(tmp_path)),
        "--chunk-size", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _wait(lambda: (tmp_path / "started-0").exists(), 60)
    stopped = run_metalab(tmp_path, "stop", "runs/stopme+1")
    assert stopped.returncode == 0, stopped.stderr
    head = json.loads((tmp_path / "runs/stopme+1/.metalab/head.json").read_text())
    assert f"stopped SLURM jobs {head['array_job_id']}, {head['job_id']}" in stopped.stdout
    (scancel,) = fake.calls(slurm, "scancel")
    assert {head["array_job_id"], head["job_id"]} <= set(scancel)
    _wait(lambda: not _alive_tasks(slurm), 30)
    states = {t["state"] for job in fake.jobs(slurm).values() for t in job["tasks"]}
    assert "CANCELLED by 0" in states
    status = _status(tmp_path, "stopme")
    assert status["running"] == 0 and status["head"]["state"] == "stopped", status["head"]
