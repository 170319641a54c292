"""Learned resources (store/learned.py): each record holds its run's peak memory beside
its duration, `metalab plan` shows per resource class what finished runs used and what
`"auto"` asks for the rest, and batches are sized to fit a job's time limit; arrays are
split to fit MaxArraySize. Local runs, no cluster needed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import metalab_smk as metalab
from metalab_smk.compile.compiler import compile_experiment
from metalab_smk.core.resources import AUTO, normalise
from metalab_smk.errors import ExecutorError
from metalab_smk.slurm.array import array_resources, sbatch_options
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.store.learned import Observed, fitting_chunk, request, resolve_auto
from metalab_smk.sweep.batches import plan_batches
from tests.process_env import run_metalab

EXPERIMENT = """\
import time
import metalab

@metalab.operation
def op(params, capture):
    block = bytearray(params["mb"] * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    time.sleep(0.1)
    capture.metric("y", params["mb"])

exp = metalab.Experiment(name="learn", version="1", context={}, operation=op,
    params=metalab.grid(mb=[20, 150]), seeds=metalab.seeds(1, replicates=2),
    resources=lambda p: {"mem": "auto", "runtime": "auto",
                         "cpus_per_task": 1 if p["mb"] < 100 else 2})
"""


def test_records_hold_peak_memory_and_plan_shows_what_auto_asks(tmp_path: Path) -> None:
    (tmp_path / "learn.py").write_text(EXPERIMENT)
    done = run_metalab(tmp_path, "run", "learn.py")
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs/learn+1/runs").glob("*.json")]
    by_size: dict[int, list[int]] = {}  # two runs (seeds) of each size
    for r in records:
        by_size.setdefault(r["params_resolved"]["mb"], []).append(
            r["provenance"]["extra"]["peak_mem_mb"]
        )
    assert len(records) == 4 and sorted(map(len, by_size.values())) == [2, 2]
    mb = 1024 * 1024 / 10**6  # a MiB in MB
    assert 150 * mb <= min(by_size[150]) and max(by_size[150]) < 150 * mb + 150  # + Python
    assert 20 * mb <= min(by_size[20]) and max(by_size[20]) < min(by_size[150]) - 100
    plan = json.loads(run_metalab(tmp_path, "plan", "learn.py", "--json").stdout)
    small, large = plan["learned_resources"]
    assert large["resources"] == "cpus_per_task=2 mem_mb=auto runtime=auto"
    assert large["runs"] == 2 and large["max_mem_mb"] == max(by_size[150])
    assert large["asks"]["mem_mb"] == -(-13 * large["max_mem_mb"] // 10)  # 1.3x, rounded up
    assert large["max_seconds"] >= 0.1 and large["asks"]["seconds_per_run"] >= 0.1
    assert small["max_mem_mb"] == max(by_size[20])
    text = run_metalab(tmp_path, "plan", "learn.py").stdout
    assert "resources learned from finished runs" in text
    assert f"peak {large['max_mem_mb']} MB" in text and f"mem_mb={large['asks']['mem_mb']}" in text


def test_auto_is_learned_with_a_first_guess_and_never_reaches_sbatch() -> None:
    assert normalise({"mem": "auto", "runtime": "auto"}) == {"mem_mb": AUTO, "runtime": AUTO}
    with pytest.raises(ExecutorError, match="give memory once"):
        normalise({"mem": "auto", "mem_mb": 100})
    seen = Observed(runs=3, max_mem_mb=1000, max_seconds=100.0)
    assert request(seen, runs_per_job=6) == {"mem_mb": 1300, "runtime": 14}  # 780 s + 60 s
    assert resolve_auto({"mem_mb": AUTO, "runtime": 60}, seen, 6) == {"mem_mb": 1300, "runtime": 60}
    assert resolve_auto({"mem_mb": AUTO}, None, 6) == {"mem_mb": 1000}  # the first guess
    assert fitting_chunk(60, seen) == 27  # (3600 - 60) s / 130 s
    assert fitting_chunk(60, None) is None
    config = SlurmConfig(memory="4G", resources={"runtime": "auto"})
    assert array_resources(config, {"mem_mb": AUTO}, None, 5) == {
        "cpus_per_task": 1,
        "mem_mb": 4000,  # nothing learned yet: the config's own value
        "runtime": 30,
    }
    assert array_resources(config, {}, seen, 5)["runtime"] == 12  # 650 s + 60 s
    with pytest.raises(ExecutorError, match="'auto' reached sbatch unresolved"):
        sbatch_options({"mem_mb": AUTO})
    with pytest.raises(ExecutorError, match="learned by the array engine"):
        SlurmConfig(time="auto", engine="snakemake")


def _sleeper(params, capture):
    capture.metric("x", params["x"])


def test_batches_fit_the_time_limit_and_arrays_split_to_fit(tmp_path: Path) -> None:
    experiment = metalab.Experiment(
        name="fit",
        version="1",
        context={},
        operation=_sleeper,
        params=metalab.grid(x=list(range(40))),
        seeds=metalab.seeds(1),
    )
    layout = compile_experiment(experiment, tmp_path, verbose=False)
    layout.runs_dir.mkdir(exist_ok=True)
    for index, run_id in enumerate(layout.read_run_ids()[:4]):  # four finished runs of 10 s
        record = {"run_index": index, "duration_ms": 10_000, "provenance": {"extra": {}}}
        layout.record(run_id).write_text(json.dumps(record))
    missing = list(range(4, 40))
    groups, chunk = plan_batches(layout, missing, 1, None, 10)  # two jobs for one slot
    assert chunk == 18 and len(groups) == 1
    groups, chunk = plan_batches(layout, missing, 1, None, 10, time_limit=lambda r: 2)
    assert chunk == 4  # (2 min - 1 min for the start) / (1.3 x 10 s)
    groups, _ = plan_batches(layout, missing, 1, None, 10, time_limit=lambda r: 2, max_group=2)
    assert [len(g.targets) for g in groups] == [2, 2, 2, 2, 1]  # 9 batches, arrays of <= 2
    assert len({g.stamp for g in groups}) == 5 and groups[0].observed.max_seconds == 10
    groups, chunk = plan_batches(layout, missing, 1, 3, 1, time_limit=lambda r: 30)
    assert chunk == 3  # a chunk size the user gave is kept
    groups, chunk = plan_batches(layout, missing, 1, 3, 1, max_jobs=4)
    assert sum(len(g.targets) for g in groups) <= 4  # MaxSubmitJobs: fewer, larger batches


def test_profile_auto_reaches_the_array_engine(tmp_path: Path) -> None:
    from metalab_smk.slurm.executors import ProfileExecutor

    (tmp_path / "config.yaml").write_text(
        textwrap.dedent("""\
            executor: slurm
            default-resources:
              mem: auto
              runtime: 2h
        """)
    )
    config = ProfileExecutor(str(tmp_path)).slurm_config()
    assert config.job_resources()["mem_mb"] == AUTO
    seen = Observed(runs=1, max_mem_mb=500, max_seconds=1.0)
    assert array_resources(config, {}, seen, 10) == {
        "cpus_per_task": 1,
        "mem_mb": 650,
        "runtime": 120,
    }
