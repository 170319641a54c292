"""Resources on the local SLURM cluster: a Snakemake profile's units reach sacct,
per-case memory classes become one array each, a run killed for its memory or time is
retried with twice as much in the same `metalab run` (OverMemoryKill enforces --mem)
and after a detached `metalab submit`,
`mem: auto` is learned from finished runs, and arrays split to fit MaxArraySize."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from metalab_smk.store.layout import ExperimentDir
from tests.cluster.test_slurm import _REASON
from tests.process_env import run_metalab, subprocess_env

pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

PROFILE = """\
executor: slurm
jobs: 10
default-resources:
  slurm_partition: "debug"
  runtime: 2h
  mem: 2G
  cpus_per_task: 1
"""


def _project(tmp_path: Path, name: str, body: str, resources: str) -> Path:
    """The profile (under Snakemake 8+'s file name) and ``name.py`` over x in 0..3."""
    (tmp_path / "prof").mkdir(exist_ok=True)
    (tmp_path / "prof" / "config.v8+.yaml").write_text(PROFILE)
    _write(tmp_path, name, [0, 1, 2, 3], body, resources)
    return tmp_path / "runs" / f"{name}+1"


def _accounting(exp_dir: Path, since: str) -> list[list[str]]:
    """Timelimit and ReqMem of the array tasks that ran the records, once sacct has them
    (the accounting database lags behind the controller, and keeps older jobs of the
    same IDs from before a controller restart: ``since`` leaves them out)."""
    records = [json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")]
    jobs = ",".join(sorted({r["provenance"]["extra"]["slurm_job_id"] for r in records}))
    fields = "JobIDRaw,Timelimit,ReqMem,State"
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", fields, "-S", since, "-j", jobs],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines() if line}
        settled = all(r[2] == "COMPLETED" and r[0] for r in rows.values())  # limits land late
        if (len(rows) == jobs.count(",") + 1 and settled) or time.monotonic() > deadline:
            return sorted(r[:2] for r in rows.values())
        time.sleep(1)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))


def _run(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    return run_metalab(tmp_path, "run", f"{name}.py", "--profile", "prof", timeout=400)


def test_profile_units_reach_sacct(tmp_path: Path) -> None:
    """`runtime: 2h` and `mem: 2G` of a config.v8+.yaml profile, in the foreground."""
    exp_dir = _project(tmp_path, "units", "pass", "None")
    since = _now()
    done = _run(tmp_path, "units")
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(map(tuple, _accounting(exp_dir, since))) == {("02:00:00", "2000M")}


def test_two_memory_classes_from_a_callable_are_two_arrays(tmp_path: Path) -> None:
    exp_dir = _project(
        tmp_path,
        "classes",
        "pass",
        'lambda p: {"mem": "600M" if p["x"] >= 2 else "300M", "runtime": "10m"}',
    )
    since = _now()
    done = _run(tmp_path, "classes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 SLURM arrays" in done.stdout
    assert set(map(tuple, _accounting(exp_dir, since))) == {
        ("00:10:00", "300M"),
        ("00:10:00", "600M"),
    }
    assert len(list((exp_dir / "runs").glob("*.json"))) == 4


def _allocating(megabytes: int, seconds: int) -> str:
    """The operation's body: the run x=0 holds ``megabytes`` of touched memory for
    ``seconds`` (lines at the body's indentation may follow)."""
    return textwrap.dedent(f"""
        if params["x"] == 0:
            block = bytearray({megabytes} * 1024 * 1024)
            block[::4096] = b"x" * len(block[::4096])  # touch every page
            time.sleep({seconds})
    """)


def test_a_run_killed_for_memory_succeeds_after_one_escalation(tmp_path: Path) -> None:
    """600 MB under a 300 MB request: killed, retried with 600 MB in the same run."""
    body = _allocating(450, 6)
    exp_dir = _project(tmp_path, "grow", body, '{"mem": "300M", "runtime": 5}')
    done = _run(tmp_path, "grow")
    assert done.returncode == 0, (
        done.stderr[-3000:] + ExperimentDir.at(exp_dir).array_log.read_text()
    )
    records = [json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")]
    assert len(records) == 4
    # the killed task's unfinished runs (x=0 and those queued behind it) were retried
    retried = {
        r["params_resolved"]["x"]: r
        for r in records
        if "resource_attempts" in r["provenance"]["extra"]
    }
    assert 0 in retried
    attempts = retried[0]["provenance"]["extra"]["resource_attempts"]
    assert attempts[0]["resources"]["mem_mb"] == 300
    assert attempts[0]["killed_by"] == "OUT_OF_MEMORY"
    assert attempts[-1]["resources"]["mem_mb"] == 600
    status = run_metalab(tmp_path, "status", "runs/grow+1")
    assert "retried" in status.stdout and "with 600 MB after OUT_OF_MEMORY" in status.stdout


def _squeue(job_id: str) -> list[str]:
    """The states squeue shows for the job (or array) ``job_id``."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%T", "-j", job_id], capture_output=True, text=True
    ).stdout
    return out.split()


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(1)


def _submit_and_wait(tmp_path: Path, name: str, exp_dir: Path, *options: str) -> str:
    """`metalab submit NAME.py --profile prof OPTIONS`, then `metalab status` once the
    submitted sweep no longer runs."""
    done = run_metalab(tmp_path, "submit", f"{name}.py", "--profile", "prof", *options)
    assert done.returncode == 0, done.stderr

    def status() -> str:
        return run_metalab(tmp_path, "status", str(exp_dir)).stdout

    _wait(lambda: "head process: running" not in status(), 300, "the submitted sweep to end")
    return status()


def test_a_run_killed_for_memory_after_submit_is_retried_and_stop_cancels_the_retry(
    tmp_path: Path,
) -> None:
    """`metalab submit`, no process waiting: the follower job retries the run killed
    under 300 MB with 600 MB; `metalab stop` cancels that retried array; submitted again,
    the run succeeds after one escalation, its record listing both attempts."""
    hold = tmp_path / "hold"
    body = _allocating(450, 6) + (  # the retried attempt waits while the test says so
        f'    while "METALAB_RESOURCE_ATTEMPTS" in os.environ and os.path.exists({str(hold)!r}):\n'
        "        time.sleep(0.5)\n"
    )
    exp_dir = _project(tmp_path, "later", body, '{"mem": "300M", "runtime": 5}')
    head_file = exp_dir / ".metalab" / "head.json"
    hold.touch()
    first = run_metalab(tmp_path, "submit", "later.py", "--profile", "prof")
    assert first.returncode == 0, first.stderr

    def head() -> dict:
        return json.loads(head_file.read_text())

    _wait(lambda: len(head()["arrays"]) == 2, 240, "the retry's array in head.json")
    retry = head()["arrays"][1]
    assert retry["resources"]["mem_mb"] == 600 and retry["stamp"].endswith("m1")
    _wait(lambda: "RUNNING" in _squeue(retry["job_id"]), 120, "the retried task to run")
    assert "submitted head process: running" in run_metalab(tmp_path, "status", str(exp_dir)).stdout
    stopped = run_metalab(tmp_path, "stop", str(exp_dir))
    assert retry["job_id"] in stopped.stdout and head()["job_id"] in stopped.stdout, stopped.stdout
    _wait(lambda: not _squeue(retry["job_id"]) and not _squeue(head()["job_id"]), 60, "stop")
    status = run_metalab(tmp_path, "status", str(exp_dir)).stdout
    assert "submitted head process: stopped" in status, status

    hold.unlink()  # submitted again: killed under 300 MB again, retried, succeeds
    status = _submit_and_wait(tmp_path, "later", exp_dir)
    assert "4 runs: 4 done" in status and "submitted head process: finished" in status, status
    assert "with 600 MB after OUT_OF_MEMORY" in status, status
    assert len(head()["arrays"]) == 2 and head()["arrays"][0]["retried"], head()
    records = [json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")]
    (zero,) = [r for r in records if r["params_resolved"]["x"] == 0]
    attempts = zero["provenance"]["extra"]["resource_attempts"]
    assert [a["resources"]["mem_mb"] for a in attempts] == [300, 600]
    assert attempts[0]["killed_by"] == "OUT_OF_MEMORY" and "killed_by" not in attempts[1]
    _wait(lambda: not _squeue(head()["job_id"]), 60, "the follower job to write the summary")
    assert (exp_dir / "summary" / "runs.parquet").is_file()


def test_a_run_still_killed_after_two_escalations_fails_with_one_line_after_submit(
    tmp_path: Path,
) -> None:
    """1600 MB under 300, 600 and 1200 MB: the last follower retries no more; the head
    fails with the line naming what was asked for and what killed it."""
    body = _allocating(1600, 8)
    exp_dir = _project(tmp_path, "hog", body, '{"mem": "300M", "runtime": 5}')
    status = _submit_and_wait(tmp_path, "hog", exp_dir, "--chunk-size", "1")
    assert "4 runs: 3 done, 0 running, 1 failed, 0 pending" in status, status
    assert "with 1200 MB after OUT_OF_MEMORY" in status and "out of memory" in status, status
    assert (
        "submitted head process: failed: 1 array task(s) killed by OUT_OF_MEMORY asking for "
        "mem_mb=300, then mem_mb=600, then mem_mb=1200; not retried: already retried 2 times"
    ) in status, status


def _write(tmp_path: Path, name: str, values: list[int], body: str, resources: str) -> None:
    """``name.py``: the experiment over ``x`` in ``values`` (rewritten to grow a sweep)."""
    operation = textwrap.indent(textwrap.dedent(body).strip(), " " * 4)
    (tmp_path / f"{name}.py").write_text(
        "import os\nimport time\nimport metalab\n\n@metalab.operation\n"
        f"def op(params, capture):\n{operation}\n"
        '    capture.metric("y", params["x"])\n\n'
        f'exp = metalab.Experiment(name="{name}", version="1", context={{}}, operation=op,\n'
        f"    params=metalab.grid(x={values!r}), seeds=metalab.seeds(1),\n"
        f"    resources={resources})\n"
    )


def test_auto_memory_is_learned_from_finished_runs(tmp_path: Path) -> None:
    """`mem: auto`: the first runs ask for the profile's 2G, the rest for 1.3 x the
    largest peak the finished runs recorded."""
    body = """
        block = bytearray(100 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
    """
    exp_dir = _project(tmp_path, "learn", body, '{"mem": "auto"}')
    _write(tmp_path, "learn", [0, 1], body, '{"mem": "auto"}')  # two runs first
    since = _now()
    first = _run(tmp_path, "learn")
    assert first.returncode == 0, first.stderr[-3000:]
    assert set(map(tuple, _accounting(exp_dir, since))) == {("02:00:00", "2000M")}
    records = [json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")]
    peak = max(r["provenance"]["extra"]["peak_mem_mb"] for r in records)
    assert 105 <= peak < 400  # 100 MiB touched, plus the interpreter
    before = {p.name for p in (exp_dir / "runs").glob("*.json")}
    _write(tmp_path, "learn", [0, 1, 2, 3], body, '{"mem": "auto"}')
    plan = json.loads(run_metalab(tmp_path, "plan", "learn.py", "--json").stdout)
    asks = -(-13 * peak // 10)
    assert plan["learned_resources"][0]["asks"] == {"mem_mb": asks}
    since = _now()
    second = _run(tmp_path, "learn")
    assert second.returncode == 0, second.stderr[-3000:]
    for path in set((exp_dir / "runs").glob("*.json")):
        if path.name in before:
            path.unlink()  # only the new runs' jobs in the accounting
    assert set(map(tuple, _accounting(exp_dir, since))) == {("02:00:00", f"{asks}M")}


def test_arrays_split_to_fit_the_array_size_limit(tmp_path: Path) -> None:
    """Five one-run batches under an array size limit of 2: three arrays, every run done."""
    _write(tmp_path, "split", [0, 1, 2, 3, 4], "pass", "None")
    (tmp_path / "go.py").write_text(
        "import metalab\nfrom split import exp\n\n"
        'config = metalab.SlurmConfig(partition="debug", time="5m", memory="300M", '
        "chunk_size=1, max_array_size=2)\n"
        "metalab.run(exp, executor=metalab.SlurmExecutor(config)).result(check=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "go.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
        env=subprocess_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 SLURM arrays of 5 tasks of up to 1 runs" in done.stdout
    log = ExperimentDir.at(tmp_path / "runs" / "split+1").array_log.read_text()
    assert [line.endswith("tasks)") for line in log.splitlines() if "submitted" in line] == [
        True
    ] * 3
    assert len(list((tmp_path / "runs" / "split+1" / "runs").glob("*.json"))) == 5


def test_a_run_past_its_time_limit_succeeds_after_one_escalation(tmp_path: Path) -> None:
    """A run still working at its 1-minute limit: SLURM ends the task (TIMEOUT), the run is
    retried with 2 minutes in the same `metalab run` and succeeds (about 90 s: SLURM
    enforces limits every 30 s or so, so the retried attempt, which the environment tells
    it is one, finishes at once)."""
    body = 'time.sleep(5 if "METALAB_RESOURCE_ATTEMPTS" in os.environ else 600)'
    exp_dir = _project(tmp_path, "slowpoke", body, '{"runtime": 1, "mem": "300M"}')
    _write(tmp_path, "slowpoke", [0], body, '{"runtime": 1, "mem": "300M"}')  # one run
    done = _run(tmp_path, "slowpoke")
    assert done.returncode == 0, (
        done.stderr[-3000:] + ExperimentDir.at(exp_dir).array_log.read_text()
    )
    (record,) = [json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")]
    attempts = record["provenance"]["extra"]["resource_attempts"]
    assert attempts[0] == {"resources": attempts[0]["resources"], "killed_by": "TIMEOUT"}
    assert attempts[0]["resources"]["runtime"] == 1 and attempts[-1]["resources"]["runtime"] == 2
    status = run_metalab(tmp_path, "status", "runs/slowpoke+1")
    assert "retried 1 run(s) with 2 min after TIMEOUT" in status.stdout
