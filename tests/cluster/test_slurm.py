"""Sweeps on a real SLURM cluster (scripts/local-slurm-start.sh starts one; .ci/run does)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from store_helpers import file_hashes, settled_hashes

from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.status import slurm_job_ids
from tests.compile.test_experiment_file import check_runs, write_project
from tests.process_env import run_metalab, subprocess_env

REPO = Path(__file__).resolve().parents[2]


def _cluster_ready() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return (
            "the Snakemake SLURM executor plugin is not installed; "
            'pip install -e ".[test,slurm]" to run the SLURM tests'
        )
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client tools; start a cluster with scripts/local-slurm-start.sh"
    done = subprocess.run(
        ["sinfo", "-h", "-o", "%a %t"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or "up" not in done.stdout:
        return "no SLURM cluster answers sinfo; start one with scripts/local-slurm-start.sh"
    return None


_REASON = _cluster_ready()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

FAST_POLLING = [
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
]

EXPERIMENT = textwrap.dedent(
    """
    import os, time
    import metalab

    @metalab.operation
    def op(params, seeds, capture):
        if os.path.exists(os.path.join({marker_dir!r}, f"fail-{{params['x']}}")):
            raise ValueError(f"x={{params['x']}} is marked to fail")
        time.sleep(params.get("sleep", 0))
        capture.metric("y", params["x"] * 10 + seeds.replicate_index)

    exp = metalab.Experiment(name={name!r}, version="1", context={{}}, operation=op,
        params=metalab.grid(x=list(range({n})), sleep=[{sleep}]), seeds=metalab.seeds(1))
    """
)


def _experiment(tmp_path: Path, name: str, n: int, sleep: float = 0) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(EXPERIMENT.format(marker_dir=str(tmp_path), name=name, n=n, sleep=sleep))
    return path


def _metalab(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return run_metalab(tmp_path, *args, timeout=timeout)


def _records(exp_dir: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")}


def _sacct(job_ids: set[str], fields: str) -> dict[str, list[str]]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", f"JobIDRaw,{fields}", "-j", ",".join(sorted(job_ids))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines() if line}


def _queued() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True)
    return {job.split("_")[0] for job in out.stdout.split()}


def _story(exp_dir: Path, log: Path) -> str:
    """What a failed check shows: Snakemake's log, the batches' files and the tasks' logs."""
    batches = exp_dir / ".metalab" / "batches"
    listing = sorted(p.name for p in batches.iterdir()) if batches.is_dir() else []
    markers = {p.name: p.read_text().strip() for p in sorted(batches.glob("*.end"))}
    logs = sorted((exp_dir / ".metalab" / "slurm").glob("*"))
    tasks = [f"== {p.name}\n{p.read_text()[-1500:]}" for p in logs]
    shown = [log.read_text()[-6000:], f"batches: {listing}", f"markers: {markers}", *tasks]
    return "\n".join(shown)


def _wait_until_gone(jobs: set[str], deadline: float) -> None:
    """Wait until none of ``jobs`` is queued or running any more."""
    while jobs & _queued():
        assert time.monotonic() < deadline
        time.sleep(1)


def _slurm_profile(tmp_path: Path) -> Path:
    """The repository's SLURM profile as a user would copy it (metalab's executor)."""
    profile = tmp_path / "my-slurm-profile"
    shutil.copytree(REPO / "profiles" / "slurm", profile)
    return profile


PROFILE_OPTIONS = ["--partition", "debug", "--time", "5", "--memory", "500M"]


def _snakemake_here(exp_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["timeout", "-k", "5", "240", sys.executable, "-m", "snakemake", *args],
        cwd=exp_dir,
        env={**env, "PYTHONSAFEPATH": "1"},
        capture_output=True,
        text=True,
    )


def test_plain_snakemake_with_the_installed_profile_runs_one_array_and_reruns_nothing(
    tmp_path: Path,
) -> None:
    """Issue 23: `snakemake --profile slurm` (metalab's executor) packs the runs into one
    job array running the worker; a failing run fails alone, the summary holds every run,
    a rerun runs only that run, and a third run submits nothing."""
    import pandas as pd

    _experiment(tmp_path, "viaprofile", 25)
    (tmp_path / "fail-7").touch()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    installed = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "profile", "slurm", *PROFILE_OPTIONS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    profile = tmp_path / "config" / "snakemake" / "slurm" / "config.yaml"
    assert "executor: metalab-slurm" in profile.read_text()
    assert _metalab(tmp_path, "compile", "viaprofile.py").returncode == 0
    exp_dir = tmp_path / "runs" / "viaprofile+1"

    first = _snakemake_here(exp_dir, env, "--profile", "slurm")
    assert first.returncode == 1, first.stderr[-3000:]  # one run failed
    assert first.stderr.count("submitted SLURM array job") == 1  # 10 + 10 + 5 runs: 3 tasks
    records = _records(exp_dir)
    assert len(records) == 24 and len(list((exp_dir / "failed").glob("*.json"))) == 1
    jobs = {r["provenance"]["extra"]["slurm_job_id"] for r in records.values()}
    assert len(jobs) == 3  # packed: 3 array tasks, not 25 jobs
    assert {r["provenance"]["executor_id"] for r in records.values()} == {"slurm"}
    assert all(r["provenance"]["extra"]["slurm_node"] for r in records.values())
    summary = pd.read_parquet(exp_dir / "summary" / "runs.parquet")  # written on error too
    assert len(summary) == 25 and (summary["status"] == "success").sum() == 24
    status = _metalab(tmp_path, "status", str(exp_dir)).stdout
    assert "25 runs: 24 done, 0 running, 1 failed, 0 pending" in status, status
    assert "x=7 is marked to fail" in status

    (tmp_path / "fail-7").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}
    second = _snakemake_here(exp_dir, env, "--profile", "slurm")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "submitted SLURM array job" in second.stderr and "(1 tasks)" in second.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}
    assert len(after) == 25 and all(after[name] == mtime for name, mtime in kept.items())
    summary_file = exp_dir / "summary" / "runs.parquet"
    assert summary_file.stat().st_mtime_ns >= max(after.values())  # the reduce ran last
    summary = pd.read_parquet(summary_file)
    assert len(summary) == 25 and (summary["status"] == "success").all()

    third = _snakemake_here(exp_dir, env, "--profile", "slurm")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "submitted" not in third.stderr and "Nothing to be done" in third.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")} == after


def test_plain_snakemake_profile_after_ctrl_c_and_a_killed_array_recomputes_nothing(
    tmp_path: Path,
) -> None:
    """Issue 23: Ctrl-C of `snakemake --profile slurm` cancels its array (running runs
    record themselves as cancelled); the tasks of the rerun, killed with `scancel
    --signal=KILL`, fail their batches and Snakemake exits 1; a third run then runs only
    what is missing."""
    import re
    import signal

    import pandas as pd

    _experiment(tmp_path, "faults", 8, sleep=3)
    profile = _slurm_profile(tmp_path)
    assert _metalab(tmp_path, "compile", "faults.py").returncode == 0
    exp_dir = tmp_path / "runs" / "faults+1"
    log = tmp_path / "snakemake.log"

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--profile", str(profile), "--config", "chunk=2"],
            cwd=exp_dir,
            env={**os.environ, "PYTHONSAFEPATH": "1"},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def records() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}

    deadline = time.monotonic() + 240
    process = start()
    while not records():
        assert time.monotonic() < deadline and process.poll() is None, log.read_text()
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) != 0
    (array,) = re.findall(r"submitted SLURM array job (\d+)", log.read_text())
    _wait_until_gone({array}, deadline)
    cancelled = [json.loads(p.read_text()) for p in (exp_dir / "failed").glob("*.json")]
    assert cancelled and {r["status"] for r in cancelled} == {"cancelled"}

    kept = records()
    process = start()
    while not re.findall(r"submitted SLURM array job (\d+)", log.read_text()):
        assert time.monotonic() < deadline and process.poll() is None, log.read_text()
        time.sleep(0.2)
    (array,) = re.findall(r"submitted SLURM array job (\d+)", log.read_text())
    subprocess.run(["scancel", "--signal=KILL", "--full", array], check=True)
    assert process.wait(timeout=90) == 1, _story(exp_dir, log)  # noticed, not hung
    # its batches fail. A task still starting dies without an end marker and is named
    # from the queue; SLURM cancels a task already running as usual (SIGTERM first), so
    # its runs record themselves cancelled and its end marker names them. Which of the
    # two happens depends on how fast the tasks start.
    failed = r"ended without finishing|run\(s\) of batch \S+ failed or did not start"
    assert re.search(failed, log.read_text()), _story(exp_dir, log)
    assert all(records()[name] == mtime for name, mtime in kept.items())

    kept = records()
    third = _snakemake_here(exp_dir, dict(os.environ), "--profile", str(profile))
    assert third.returncode == 0, third.stderr[-3000:]
    assert len(records()) == 8 and all(records()[n] == m for n, m in kept.items())
    summary = pd.read_parquet(exp_dir / "summary" / "runs.parquet")
    assert len(summary) == 8 and (summary["status"] == "success").all()


def test_plain_snakemake_profile_with_one_run_per_job(tmp_path: Path) -> None:
    """Jobs other than batches (here `--config chunk=1`) go to SLURM one by one, each
    running Snakemake on its job."""
    _experiment(tmp_path, "single", 2)
    profile = _slurm_profile(tmp_path)
    assert _metalab(tmp_path, "compile", "single.py").returncode == 0
    exp_dir = tmp_path / "runs" / "single+1"
    done = _snakemake_here(exp_dir, dict(os.environ), "--profile", str(profile), "--config",
                           "chunk=1")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("metalab_run submitted with SLURM jobid") == 2
    assert len(_records(exp_dir)) == 2 and (exp_dir / "summary" / "runs.parquet").is_file()


def test_metalab_run_with_slurm_executor_packs_runs_and_requests_resources(
    tmp_path: Path,
) -> None:
    script = tmp_path / "packed_run.py"
    _experiment(tmp_path, "packed", 20)
    script.write_text(
        textwrap.dedent("""
        import metalab
        from packed import exp

        config = metalab.SlurmConfig(partition="debug", time="00:05:00", memory="600M",
                                     chunk_size=5, status_interval=1)
        results = metalab.run(exp, executor=metalab.SlurmExecutor(config)).result()
        frame = results.to_dataframe()
        print("ROWS", len(frame), "OK", (frame["status"] == "success").sum(),
              "SUM", int(frame["y"].sum()))
    """)
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ROWS 20 OK 20 SUM 1900" in done.stdout
    records = _records(tmp_path / "runs" / "packed+1")
    jobs = {r["provenance"]["extra"]["slurm_job_id"] for r in records.values()}
    assert len(jobs) == 4  # 20 runs / chunk_size 5 = 4 array tasks
    deadline = time.monotonic() + 30  # the accounting database lags behind the controller
    while True:
        accounting = _sacct(jobs, "JobID,ReqMem,Timelimit,State")
        settled = all(
            row[0].count("_") == 1 and row[3] == "COMPLETED" for row in accounting.values()
        )
        if (len(accounting) == 4 and settled) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(accounting) == 4
    assert len({shown.split("_")[0] for shown, *_ in accounting.values()}) == 1  # one array
    for _, req_mem, limit, state in accounting.values():
        assert req_mem == "600M" and limit == "00:05:00" and state == "COMPLETED"
    log = records[next(iter(records))]["provenance"]["extra"]["slurm_log"]
    assert log.endswith(".log")


TAIL_SECONDS = 3.0  # issue 15: the result within 3 s of the last job's end


def test_result_arrives_within_3_s_of_the_last_array_task_end(tmp_path: Path) -> None:
    _experiment(tmp_path, "tail", 6, sleep=1)
    script = tmp_path / "tail_run.py"
    script.write_text(
        textwrap.dedent("""
        import time
        import metalab
        from tail import exp

        config = metalab.SlurmConfig(partition="debug", time="00:05:00", memory="500M",
                                     chunk_size=2)
        results = metalab.run(exp, executor=metalab.SlurmExecutor(config),
                              verbose=False).result()
        print("RESULT_AT", repr(time.time()), "OK", len(results.successful))
    """)
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    words = done.stdout.split()
    result_at, ok = float(words[words.index("RESULT_AT") + 1]), words[words.index("OK") + 1]
    assert ok == "6"
    exp_dir = tmp_path / "runs" / "tail+1"
    ends = list((exp_dir / ".metalab" / "batches").glob("*.end"))
    assert len(ends) == 3  # one per array task, each written as its task's last act
    assert all(p.read_text().strip() == "0" for p in ends)
    last_end = max(p.stat().st_mtime for p in ends)
    records = _records(exp_dir)
    assert last_end <= result_at, "the result came before the last task ended"
    assert result_at - last_end < TAIL_SECONDS, (
        f"the result came {result_at - last_end:.2f} s after the last task's end marker"
    )
    jobs = {r["provenance"]["extra"]["slurm_job_id"] for r in records.values()}
    assert len(jobs) == 3


def test_failed_run_on_slurm_is_reported_and_retried(tmp_path: Path) -> None:
    _experiment(tmp_path, "flaky", 3)
    (tmp_path / "fail-1").touch()
    profile = str(_slurm_profile(tmp_path))
    first = _metalab(tmp_path, "submit", "flaky.py", "--profile", profile, "--local")
    assert first.returncode == 0, first.stderr
    exp_dir = tmp_path / "runs" / "flaky+1"
    deadline = time.monotonic() + 240
    while "submitted head process: running" in _metalab(tmp_path, "status", str(exp_dir)).stdout:
        assert time.monotonic() < deadline
        time.sleep(1)
    status = _metalab(tmp_path, "status", str(exp_dir)).stdout
    assert "3 runs: 2 done, 0 running, 1 failed, 0 pending" in status
    assert "x=1 is marked to fail" in status and "ValueError" in status
    (tmp_path / "fail-1").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}
    second = _metalab(tmp_path, "run", "flaky.py")  # retried (locally this time)
    assert second.returncode == 0, second.stderr
    assert "running 1 of 3 runs" in second.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}
    assert len(after) == 3 and all(after[name] == mtime for name, mtime in before.items())
    assert not list((exp_dir / "failed").glob("*.json"))


ENGINES = pytest.mark.parametrize("engine", ["array", "snakemake"])


def _run_four(
    tmp_path: Path, name: str, operation: str, resources: str, engine: str
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run x = 0..3 on SLURM in one batch of 4, where ``operation`` (Python lines, with
    ``params``) may fail some; expect exit 1; return stderr and `metalab status`."""
    body = textwrap.indent(textwrap.dedent(operation).strip(), " " * 4)
    (tmp_path / f"{name}.py").write_text(
        "import time\nimport metalab\n\n@metalab.operation\ndef op(params, capture):\n"
        f"{body}\n"
        '    capture.metric("y", params["x"])\n\n'
        f'exp = metalab.Experiment(name="{name}", version="1", context={{}}, operation=op,\n'
        "    params=metalab.grid(x=[0, 1, 2, 3]), seeds=metalab.seeds(1))\n\n"
        'if __name__ == "__main__":\n'
        f'    config = metalab.SlurmConfig(partition="debug", {resources}, status_interval=1,\n'
        f'                                 chunk_size=4, engine="{engine}")\n'
        "    metalab.run(exp, executor=metalab.SlurmExecutor(config)).result(check=True)\n"
    )
    done = subprocess.run(
        [sys.executable, f"{name}.py"], cwd=tmp_path, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 1, done.stderr[-3000:]
    return done.stderr, _metalab(tmp_path, "status", f"runs/{name}+1")


@ENGINES
def test_time_limit_and_crash_fail_their_runs_only_and_the_rest_run_at_once(
    tmp_path: Path, engine: str
) -> None:
    operation = """
        import ctypes
        if params["x"] == 0:
            time.sleep(600)  # beyond the 1-minute limit
        if params["x"] == 1:
            ctypes.string_at(0)
    """
    config = 'time=1, memory="500M", max_escalations=0'  # a TIMEOUT is not retried
    stderr, status = _run_four(tmp_path, "limited", operation, config, engine)
    assert "SweepError: 2 of 4 runs done, 2 failed, 0 missing" in stderr
    assert "4 runs: 2 done, 0 running, 2 failed, 0 pending" in status.stdout
    assert "SLURM TIMEOUT" in status.stdout
    assert "killed by signal SIGSEGV" in status.stdout
    assert "SLURM log:" in status.stdout and "log: " in status.stdout


def test_a_run_above_its_memory_request_fails_alone_as_out_of_memory(tmp_path: Path) -> None:
    """SLURM kills the job (here by accounting, OverMemoryKill; with cgroups the kernel);
    retried with 600 and 1200 MB (slurm/escalation.py) it is still killed: the run is
    reported out of memory, and the runs queued behind it run in the same invocation."""
    operation = """
        if params["x"] == 0:
            block = bytearray(1600 * 1024 * 1024)
            block[::4096] = b"x" * len(block[::4096])  # touch every page
            time.sleep(8)
    """
    stderr, status = _run_four(tmp_path, "hog", operation, 'time=5, memory="300M"', "array")
    assert "SweepError: 3 of 4 runs done, 1 failed, 0 missing" in stderr
    assert "4 runs: 3 done, 0 running, 1 failed, 0 pending" in status.stdout
    assert "out of memory" in status.stdout, status.stdout
    assert "with 1200 MB after OUT_OF_MEMORY" in status.stdout, status.stdout


@ENGINES
def test_metalab_stop_cancels_the_head_and_every_job_on_slurm(tmp_path: Path, engine: str) -> None:
    _experiment(tmp_path, "stopme", 8, sleep=3)
    profile = str(_slurm_profile(tmp_path))
    exp_dir = tmp_path / "runs" / "stopme+1"
    first = _metalab(
        tmp_path,
        "submit",
        "stopme.py",
        "--profile",
        profile,
        "--chunk-size",
        "2",
        "--engine",
        engine,
    )
    assert first.returncode == 0, first.stderr
    deadline = time.monotonic() + 240
    while not list((exp_dir / "runs").glob("*.json")):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    stopped = _metalab(tmp_path, "stop", str(exp_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped SLURM jobs" in stopped.stdout
    head = json.loads((exp_dir / ".metalab" / "head.json").read_text())
    jobs = {head["job_id"], *slurm_job_ids(ExperimentDir.at(exp_dir))}
    if engine == "array":  # the array and the summary job that depends on it
        jobs.add(head["array_job_id"])
    assert len(jobs) >= 2
    _wait_until_gone(jobs, deadline)  # every job of the sweep leaves the queue
    status = _metalab(tmp_path, "status", str(exp_dir)).stdout
    assert "submitted head process: stopped" in status or "died" in status, status
    finished = {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}
    again = _metalab(tmp_path, "run", "stopme.py", "--cores", "2")  # resumes, locally
    assert again.returncode == 0, again.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}
    assert len(after) == 8 and all(after[n] == m for n, m in finished.items())


def test_head_dying_at_start_makes_submit_fail_with_its_error(tmp_path: Path) -> None:
    _experiment(tmp_path, "deadhead", 2)
    profile = _slurm_profile(tmp_path)
    config = profile / "config.yaml"
    config.write_text(config.read_text() + "\nno-such-option: 1\n")
    done = _metalab(
        tmp_path, "submit", "deadhead.py", "--profile", str(profile), "--engine", "snakemake"
    )
    assert done.returncode == 2
    assert "the sweep's head failed at start" in done.stderr
    assert "unrecognized arguments: --no-such-option" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    status = _metalab(tmp_path, "status", "runs/deadhead+1").stdout
    assert "submitted head process: failed: snakemake failed" in status


def test_killed_array_then_resubmit_finishes_without_recomputing(tmp_path: Path) -> None:
    _experiment(tmp_path, "resubmit", 12, sleep=1)
    profile = str(_slurm_profile(tmp_path))
    exp_dir = tmp_path / "runs" / "resubmit+1"
    first = _metalab(tmp_path, "submit", "resubmit.py", "--profile", profile, "--chunk-size", "3")
    assert first.returncode == 0, first.stderr
    head = json.loads((exp_dir / ".metalab" / "head.json").read_text())
    assert head["kind"] == "slurm" and head["tasks"] == 4
    deadline = time.monotonic() + 240
    while len(list((exp_dir / "runs").glob("*.json"))) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    subprocess.run(["scancel", "--signal=KILL", "--full", head["array_job_id"]], check=True)
    while "submitted head process: running" in _metalab(tmp_path, "status", str(exp_dir)).stdout:
        assert time.monotonic() < deadline
        time.sleep(1)
    jobs = {head["job_id"], *slurm_job_ids(ExperimentDir.at(exp_dir))}
    _wait_until_gone(jobs, deadline)
    finished = {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}
    second = _metalab(tmp_path, "submit", "resubmit.py", "--profile", profile, "--chunk-size", "3")
    assert second.returncode == 0, second.stderr
    while "submitted head process: running" in _metalab(tmp_path, "status", str(exp_dir)).stdout:
        assert time.monotonic() < deadline + 120
        time.sleep(1)
    status = _metalab(tmp_path, "status", str(exp_dir)).stdout
    assert "12 runs: 12 done" in status, status
    after = {p.name: p.stat().st_mtime_ns for p in (exp_dir / "runs").glob("*.json")}
    assert all(after[name] == mtime for name, mtime in finished.items())
    assert os.path.isfile(exp_dir / "summary" / "runs.parquet")


def test_status_after_a_finished_submit_and_a_submit_with_nothing_missing(
    tmp_path: Path,
) -> None:
    """Issue 23: a finished array submit is "finished" in `metalab status` and on the
    dashboard (never "died"); submitting again with every run done submits nothing."""
    from metalab_smk.ui.source import FileSource

    _experiment(tmp_path, "finished", 6)
    profile = str(_slurm_profile(tmp_path))
    exp_dir = tmp_path / "runs" / "finished+1"
    first = _metalab(tmp_path, "submit", "finished.py", "--profile", profile, "--chunk-size", "3")
    assert first.returncode == 0, first.stderr
    head = json.loads((exp_dir / ".metalab" / "head.json").read_text())
    deadline = time.monotonic() + 240
    while "submitted head process: running" in (
        status := _metalab(tmp_path, "status", str(exp_dir)).stdout
    ):
        assert time.monotonic() < deadline
        time.sleep(1)
    assert "6 runs: 6 done" in status, status
    assert "submitted head process: finished" in status, status
    _wait_until_gone({head["job_id"]}, deadline)  # the summary job ended too
    status = _metalab(tmp_path, "status", str(exp_dir)).stdout
    assert "submitted head process: finished" in status and "died" not in status, status
    shown = FileSource(tmp_path / "runs").experiments()[0]["head"]
    assert shown == f"SLURM job {head['job_id']}: finished"

    started = time.monotonic()
    again = _metalab(tmp_path, "submit", "finished.py", "--profile", profile)
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < 15  # no head job waited for
    assert again.stdout.startswith("all 6 runs are done; nothing to submit"), again.stdout
    assert json.loads((exp_dir / ".metalab" / "head.json").read_text()) == head
    assert not (_queued() & {head["job_id"], head["array_job_id"]})


@ENGINES
def test_ctrl_c_of_a_slurm_sweep_cancels_its_jobs(tmp_path: Path, engine: str) -> None:
    import signal

    _experiment(tmp_path, "interrupt", 8, sleep=3)
    (tmp_path / "interrupt_run.py").write_text(
        textwrap.dedent("""
        import metalab
        from interrupt import exp

        config = metalab.SlurmConfig(partition="debug", time=5, memory="500M",
                                     status_interval=1, chunk_size=2, engine="ENGINE")
        metalab.run(exp, executor=metalab.SlurmExecutor(config)).result()
    """).replace("ENGINE", engine)
    )
    exp_dir = tmp_path / "runs" / "interrupt+1"
    process = subprocess.Popen(
        [sys.executable, "interrupt_run.py"],
        cwd=tmp_path,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not list((exp_dir / "runs").glob("*.json")):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted:" in err and "Traceback" not in err
    jobs = slurm_job_ids(ExperimentDir.at(exp_dir))
    assert jobs
    _wait_until_gone(jobs, deadline)


def test_snakemake_engine_still_runs_through_the_plugin(tmp_path: Path) -> None:
    """SlurmConfig(engine="snakemake"): Snakemake's SLURM executor, one job per batch."""
    _experiment(tmp_path, "viaplugin", 6)
    script = tmp_path / "plugin_run.py"
    script.write_text(
        textwrap.dedent("""
        import metalab
        from viaplugin import exp

        config = metalab.SlurmConfig(partition="debug", time=5, memory="500M", chunk_size=3,
                                     status_interval=1, engine="snakemake")
        results = metalab.run(exp, executor=metalab.SlurmExecutor(config)).result()
        print("OK", len(results.successful))
    """)
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OK 6" in done.stdout
    records = _records(tmp_path / "runs" / "viaplugin+1")
    jobs = {r["provenance"]["extra"]["slurm_job_id"] for r in records.values()}
    assert len(jobs) == 2
    accounting = _sacct(jobs, "JobID,State")
    assert all("_" not in shown for shown, _ in accounting.values())  # not array tasks
    assert (tmp_path / "runs" / "viaplugin+1" / ".metalab" / "snakemake.log").is_file()


def test_a_run_refused_under_a_slurm_array_changes_nothing(tmp_path: Path) -> None:
    """A submitted job array holds no lock; a second run on the edited file still refuses
    before writing: every file of the experiment directory stays as it was."""
    path = _experiment(tmp_path, "busy", 2, sleep=30)
    profile = str(_slurm_profile(tmp_path))
    exp_dir = tmp_path / "runs" / "busy+1"
    first = _metalab(tmp_path, "submit", "busy.py", "--profile", profile, "--chunk-size", "1")
    assert first.returncode == 0, first.stderr
    head = json.loads((exp_dir / ".metalab" / "head.json").read_text())
    try:
        assert "array_job_id" in head
        deadline = time.monotonic() + 120
        while not list(exp_dir.glob("logs/*.partial")):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        path.write_text(path.read_text().replace('"y"', '"z"'))
        before = settled_hashes(exp_dir)
        for command in (["run", "busy.py"], ["submit", "busy.py", "--profile", profile]):
            refused = _metalab(tmp_path, *command)
            assert file_hashes(exp_dir) == before
            assert refused.returncode == 2, refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1
            assert "a submitted sweep is still running" in refused.stderr
    finally:
        _metalab(tmp_path, "stop", str(exp_dir))
        _wait_until_gone({head["job_id"], head.get("array_job_id", "")}, time.monotonic() + 120)


def test_data_next_to_the_file_on_the_slurm_array(tmp_path: Path) -> None:
    """Array tasks import the snapshot under the original path: ``Path(__file__).parent
    / "train.csv"`` and the sibling module resolve next to the user's file."""
    project = tmp_path / "project"
    path = write_project(project, "slurmdata")
    path.write_text(
        path.read_text()
        + textwrap.dedent("""
        config = metalab.SlurmConfig(partition="debug", time="00:05:00", memory="500M",
                                     chunk_size=2, status_interval=1)
        metalab.run(exp, executor=metalab.SlurmExecutor(config), progress=False).result()
        """)
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "../project/exp.py"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(elsewhere),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    exp_dir = elsewhere / "runs" / "slurmdata+1"
    check_runs(exp_dir, project)
    jobs = {r["provenance"]["extra"]["slurm_job_id"] for r in _records(exp_dir).values()}
    assert len(jobs) == 2  # 3 runs, 2 per array task
