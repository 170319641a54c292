"""Plain ``snakemake`` in a compiled experiment directory packs missing runs into batch
jobs at DAG time, with every guarantee of ``metalab run``: each run its own record, a
failing or crashing run never stops the others of its batch, nothing finished runs again."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
from process_env import subprocess_env

from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir

TIMEOUT = 240

EXPERIMENT = textwrap.dedent(
    """
    import os, signal
    import metalab

    @metalab.operation
    def op(params, capture):
        x = params["x"]
        if os.path.exists(os.path.join({base!r}, f"fail-{{x}}")):
            raise ValueError(f"x={{x}} is marked to fail")
        if os.path.exists(os.path.join({base!r}, f"crash-{{x}}")):
            os.kill(os.getpid(), signal.SIGKILL)
        capture.metric("y", x * 2)

    exp = metalab.Experiment(name="packed", version="1", context={{}}, operation=op,
        params=metalab.grid(x=list(range(30))), seeds=metalab.seeds(1))
    """
)


def _run(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env=subprocess_env(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _jobs(output: str, rule: str) -> int:
    match = re.search(rf"^{rule}\s+(\d+)\s*$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _compile(tmp_path: Path) -> ExperimentDir:
    (tmp_path / "exp.py").write_text(EXPERIMENT.format(base=str(tmp_path)))
    done = _run(tmp_path, "-m", "metalab_smk.cli", "compile", "exp.py", "--store", "S")
    assert done.returncode == 0, done.stdout
    return ExperimentDir.at(tmp_path / "S" / "packed+1")


def test_plain_snakemake_packs_isolates_failures_and_resumes(tmp_path: Path) -> None:
    layout = _compile(tmp_path)
    run_ids = layout.read_run_ids()
    (tmp_path / "fail-7").touch()
    (tmp_path / "crash-12").touch()  # SIGKILLs its own process

    first = _run(layout.root, "-m", "snakemake", "--cores", "2")
    assert first.returncode != 0
    # 30 runs on 2 cores: one job per core of 15 runs (every other run), not 30 jobs
    assert _jobs(first.stdout, "metalab_batch") == 2, first.stdout
    assert _jobs(first.stdout, "metalab_run") == 0
    done = {p.stem for p in layout.runs_dir.glob("*.json")}
    assert done == set(run_ids) - {run_ids[7], run_ids[12]}  # the rest of both batches ran
    failed = read_json(layout.failed_record(run_ids[7]))
    assert failed["error"]["type"] == "ValueError"
    crashed = read_json(layout.failed_record(run_ids[12]))
    assert crashed["error"]["type"] == "Crashed"
    assert "killed by signal SIGKILL" in crashed["error"]["message"]
    assert "killed by signal SIGKILL" in layout.log(run_ids[12]).read_text()
    assert not layout.newest_partial_log(run_ids[12]).exists()

    status = _run(tmp_path, "-m", "metalab_smk.cli", "status", str(layout.root))
    assert "30 runs: 28 done, 0 running, 2 failed, 0 pending" in status.stdout, status.stdout
    assert "Crashed" in status.stdout and "ValueError" in status.stdout

    (tmp_path / "fail-7").unlink()
    (tmp_path / "crash-12").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in layout.runs_dir.glob("*.json")}
    second = _run(layout.root, "-m", "snakemake", "--cores", "2")
    assert second.returncode == 0, second.stdout
    assert _jobs(second.stdout, "metalab_run") == 2  # 2 runs on 2 cores: a job each
    after = {p.name: p.stat().st_mtime_ns for p in layout.runs_dir.glob("*.json")}
    assert {k: after[k] for k in before} == before  # nothing finished ran again
    assert len(after) == 30
    frame = pd.read_parquet(layout.summary_dir / "runs.parquet")
    assert list(frame["run_id"]) == run_ids and set(frame["status"]) == {"success"}

    third = _run(layout.root, "-m", "snakemake", "--cores", "2")
    assert third.returncode == 0 and "Nothing to be done" in third.stdout, third.stdout


def test_chunk_config_sets_runs_per_job(tmp_path: Path) -> None:
    layout = _compile(tmp_path)
    packed = _run(layout.root, "-m", "snakemake", "--cores", "2", "--config", "chunk=12", "-n")
    assert packed.returncode == 0, packed.stdout
    assert _jobs(packed.stdout, "metalab_batch") == 3  # 12 + 12 + 6
    single = _run(layout.root, "-m", "snakemake", "--cores", "2", "--config", "chunk=1", "-n")
    assert single.returncode == 0, single.stdout
    assert _jobs(single.stdout, "metalab_run") == 30
    assert _jobs(single.stdout, "metalab_batch") == 0


def test_example_pipeline_uses_the_sweep_as_a_module(tmp_path: Path) -> None:
    """examples/pipeline: a downstream rule consumes the sweep's summary/runs.parquet."""
    pipeline = tmp_path / "pipeline"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "pipeline", pipeline)
    first = _run(pipeline, "-m", "snakemake", "--cores", "2")
    assert first.returncode == 0, first.stdout
    assert _jobs(first.stdout, "sweep_metalab_batch") == 2  # 12 runs packed on 2 cores
    assert _jobs(first.stdout, "sweep_metalab_summary") == 1
    report = pd.read_csv(pipeline / "report" / "pi_by_size.csv")
    assert list(report["param_n_samples"]) == [100, 1000, 10000]
    assert list(report["count"]) == [4, 4, 4]
    assert abs(report["mean"].iloc[-1] - 3.14159) < 0.05
    layout = ExperimentDir.at(pipeline / "runs" / "pipeline_pi+1")
    assert len(list(layout.runs_dir.glob("*.json"))) == 12
    status = _run(pipeline, "-m", "metalab_smk.cli", "status", str(layout.root))
    assert "12 runs: 12 done, 0 running, 0 failed, 0 pending" in status.stdout, status.stdout

    before = {p.name: p.stat().st_mtime_ns for p in layout.runs_dir.glob("*.json")}
    (layout.record(layout.read_run_ids()[5])).unlink()  # one run is missing again
    second = _run(pipeline, "-m", "snakemake", "--cores", "2")
    assert second.returncode == 0, second.stdout
    assert _jobs(second.stdout, "sweep_metalab_run") == 1
    after = {p.name: p.stat().st_mtime_ns for p in layout.runs_dir.glob("*.json")}
    assert len(after) == 12
    redone = f"{layout.read_run_ids()[5]}.json"
    assert {k: after[k] for k in before if k != redone} == {
        k: v for k, v in before.items() if k != redone
    }
