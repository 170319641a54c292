"""Crash safety, concurrent runs and bad input, with real metalab and snakemake processes."""

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

pytestmark = pytest.mark.integration

SLOW_SWEEP = textwrap.dedent(
    """
    import time
    import metalab

    @metalab.operation
    def slow(params, capture):
        time.sleep(0.3)
        capture.metric("y", params["x"] * 2)

    exp = metalab.Experiment(name="slow", version="1", context={}, operation=slow,
        params=metalab.grid(x=list(range(16))), seeds=metalab.seeds(0, 1))
    metalab.run(exp, store="store", executor=metalab.LocalExecutor(cores=2, chunk_size=2)
                ).result()
    """
)


def _mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.glob("*.json")}


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _snakemake_pids(directory: Path) -> list[int]:
    from metalab_smk.sweep.locks import live_snakemake_pids

    return live_snakemake_pids(directory)


def test_sigkill_of_snakemake_then_run_again_finishes_without_recomputing(tmp_path: Path):
    (tmp_path / "slow.py").write_text(SLOW_SWEEP)
    exp_dir = tmp_path / "store" / "slow+1"
    first = subprocess.Popen(
        [sys.executable, "slow.py"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(
            lambda: (
                len(list((exp_dir / "runs").glob("*.json"))) >= 4
                if (exp_dir / "runs").is_dir()
                else False
            )
        )
        for pid in _snakemake_pids(exp_dir):
            os.kill(pid, signal.SIGKILL)
        first.kill()
    finally:
        first.wait(30)
    assert any((exp_dir / ".snakemake" / "locks").iterdir()), "the kill left no lock behind"
    # the jobs notice that their Snakemake is gone and cancel their runs; wait for that
    _wait_for(
        lambda: (
            not [
                p
                for p in Path("/proc").iterdir()
                if p.name.isdigit()
                and any(
                    w in _cmdline(p) for w in (b"metalab_smk.job.worker", b"metalab_smk.worker")
                )
            ]
        ),
        60,
    )
    finished = _mtimes(exp_dir / "runs")
    assert 0 < len(finished) < 16

    again = subprocess.run(
        [sys.executable, "slow.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "removed the lock of an interrupted Snakemake run" in again.stdout
    assert f"running {16 - len(finished)} of 16 runs" in again.stdout
    after = _mtimes(exp_dir / "runs")
    assert len(after) == 16
    assert {name: after[name] for name in finished} == finished  # nothing recomputed
    leftovers = [p for p in exp_dir.rglob("*") if p.name.endswith((".tmp", ".partial"))]
    assert leftovers == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_second_concurrent_run_is_refused_and_first_completes(tmp_path: Path):
    (tmp_path / "slow.py").write_text(SLOW_SWEEP)
    exp_dir = tmp_path / "store" / "slow+1"
    first = subprocess.Popen(
        [sys.executable, "slow.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: (exp_dir / ".metalab" / "batches").is_dir())
    second = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "run", "slow.py", "--store", "store"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 2
    assert "another metalab run is active" in second.stderr
    assert len(list((exp_dir / "runs").glob("*.json"))) == 16


BAD_INPUTS = {
    "nan": ("metalab.grid(lr=[0.1, float('nan')])", "lr[1]"),
    "string": ("metalab.grid(model='resnet')", "got a string"),
    "empty": ("metalab.grid(lr=[])", "empty"),
    "duplicate": ("metalab.manual([{'a': 1}, {'a': 1}])", "same run IDs"),
    "missing_file": ("metalab.grid(x=[1])", "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path, case: str) -> None:
    params, message = BAD_INPUTS[case]
    context = "{'data': metalab.FilePath('absent.csv')}" if case == "missing_file" else "{}"
    (tmp_path / "exp.py").write_text(
        textwrap.dedent(f"""
        import metalab

        @metalab.operation
        def op(params):
            pass

        exp = metalab.Experiment(name="bad", version="1", context={context}, operation=op,
            params={params}, seeds=metalab.seeds(1))
    """)
    )
    for command in ("compile", "run"):
        done = subprocess.run(
            [sys.executable, "-m", "metalab_smk.cli", command, "exp.py", "--store", "store"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert f"metalab {command}: error:" in done.stderr
        assert message in done.stderr
        assert not (tmp_path / "store").exists()


def test_unknown_operation_argument_is_refused_by_compile(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(
        textwrap.dedent("""
        import metalab

        @metalab.operation
        def op(params, config):
            pass
    """)
    )
    done = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "compile", "exp.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "declares argument 'config'" in done.stderr


def test_sigterm_records_a_cancelled_run_even_when_signalled_twice(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(
        textwrap.dedent("""
        import time
        import metalab

        @metalab.operation
        def op(params, runtime):
            time.sleep(60)

        exp = metalab.Experiment(name="term", version="1", context={}, operation=op,
            params=metalab.grid(x=[1]), seeds=metalab.seeds(1))
    """)
    )
    compiled = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "compile", "exp.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert compiled.returncode == 0, compiled.stderr
    exp_dir = tmp_path / "runs" / "term+1"
    run_id = (exp_dir / ".metalab" / "run_ids.txt").read_text().split()[0]
    worker = subprocess.Popen(
        [sys.executable, "-m", "metalab_smk.job.worker", "run", run_id],
        cwd=exp_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(lambda: any((exp_dir / "logs").glob(f"{run_id}_run.log.*.partial")), 30)
    time.sleep(0.5)
    worker.send_signal(signal.SIGTERM)
    worker.send_signal(signal.SIGTERM)  # SLURM may signal more than once
    assert worker.wait(30) == 1
    record = json.loads((exp_dir / "failed" / f"{run_id}.json").read_text())
    assert record["status"] == "cancelled"
    assert record["error"]["type"] == "RunCancelled"
    assert "SIGTERM" in record["error"]["message"]
    status = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "status", str(exp_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "1 runs: 0 done, 0 running, 1 failed, 0 pending" in status
    assert "1 x cancelled RunCancelled: " in status and f"e.g. {run_id}" in status
