"""GPU sweeps without a GPU: an experiment file whose top level records its PID and whose
operation fails in any other process behaves like CUDA initialised before a fork; GPU
slots are seen through CUDA_VISIBLE_DEVICES; the local SLURM cluster's GPUs are
placeholder devices (scripts/local-slurm-start.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from metalab_smk.errors import ExecutorError
from metalab_smk.job import gpus
from metalab_smk.sweep.executors import LocalExecutor, ProfileExecutor
from tests.process_env import run_metalab, subprocess_env

# The top level "initialises CUDA": the operation fails unless it runs in the process
# that imported the file (what `torch.cuda.is_available()` at the top does after a fork).
POISONED = textwrap.dedent(
    """
    import os, time
    import metalab

    IMPORTED_IN = os.getpid()
    DEVICES_AT_IMPORT = os.environ.get("CUDA_VISIBLE_DEVICES")

    @metalab.operation
    def train(params, seeds, capture):
        if os.getpid() != IMPORTED_IN:
            raise RuntimeError("Cannot re-initialize CUDA in forked subprocess")
        if params["x"] == {crash_at}:
            os._exit(3)  # a native crash: this run alone fails
        start = time.time()
        time.sleep(params["sleep"])
        capture.metric("device", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        capture.metric("device_at_import", DEVICES_AT_IMPORT or "")
        capture.metric("start", start)
        capture.metric("end", time.time())

    exp = metalab.Experiment(name="gpu", version="1", context={{}}, operation=train,
        params=metalab.grid(x=list(range({n})), sleep=[{sleep}]), seeds=metalab.seeds(1, 1),
        resources={resources})
    """
)


def _write(tmp_path: Path, n: int = 16, sleep: float = 0, crash_at: int = -1, **resources) -> Path:
    path = tmp_path / "exp.py"
    path.write_text(POISONED.format(n=n, sleep=sleep, crash_at=crash_at, resources=resources or {}))
    return path


def _metalab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return run_metalab(tmp_path, *args)


def _records(tmp_path: Path, folder: str = "runs") -> list[dict]:
    directory = tmp_path / "runs" / "gpu+1" / folder
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def _overlapping_on_one_device(records: list[dict], per_device: int) -> bool:
    """Whether more than ``per_device`` runs ran on one device at one moment."""
    for record in records:
        at = record["metrics"]["start"] + 1e-3
        device = record["metrics"]["device"]
        sharing = [
            r
            for r in records
            if r["metrics"]["device"] == device
            and r["metrics"]["start"] <= at < r["metrics"]["end"]
        ]
        if len(sharing) > per_device:
            return True
    return False


# -- pure logic ------------------------------------------------------------------------


def test_gpus_per_run_reads_either_name_and_experiment_stores_snakemakes() -> None:
    import metalab

    assert gpus.gpus_per_run({"gpus": 2}) == 2
    assert gpus.gpus_per_run({"gpu": "1"}) == 1
    assert gpus.gpus_per_run({"mem_mb": 100}) == 0

    def experiment(**resources):
        return metalab.Experiment(
            name="e",
            version="1",
            context={},
            operation=metalab.operation(lambda params: None),
            params=metalab.grid(x=[1]),
            seeds=metalab.seeds(1, 1),
            resources=resources,
        )

    from metalab_smk.core.resources import normalise

    assert normalise(experiment(gpus=1).resources) == {"gpu": 1}  # as compiled
    with pytest.raises(metalab.ExperimentError, match="not both"):
        experiment(gpus=1, gpu=1)


def test_slurm_devices_come_from_what_slurm_set() -> None:
    assert gpus.slurm_devices({}) is None
    assert gpus.slurm_devices({"SLURM_JOB_ID": "7"}) is None
    job = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "2,3"}
    assert gpus.slurm_devices(job) == ["2", "3"]
    assert gpus.slurm_devices({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "0,1"}) == ["0", "1"]
    assert gpus.slurm_devices({"SLURM_JOB_ID": "7", "SLURM_GPUS_ON_NODE": "2"}) == ["0", "1"]


def test_local_executor_gpus_forms_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LocalExecutor(gpus="0,1").gpu_devices() == ["0", "1"]
    assert LocalExecutor(gpus=3).gpu_devices() == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert LocalExecutor(gpus="auto").gpu_devices() == ["5", "7"]
    with pytest.raises(ExecutorError, match="device indices"):
        LocalExecutor(gpus="zero")
    with pytest.raises(ExecutorError, match="runs_per_gpu"):
        LocalExecutor(gpus="0", runs_per_gpu=0)
    plan = LocalExecutor(gpus="0,1", runs_per_gpu=2).gpu_plan({"gpu": 1})
    assert plan is not None and plan.concurrent == 4
    assert plan.snakemake_args() == ["--resources", "gpu=4"]
    assert plan.job_env() == {"METALAB_GPUS": "0,1", "METALAB_RUNS_PER_GPU": "2"}
    assert LocalExecutor(gpus="0").gpu_plan({}) is None
    with pytest.raises(ExecutorError, match="asks for 2 GPU"):
        LocalExecutor(gpus="0").gpu_plan({"gpu": 2})


def test_profile_gpus_from_gpu_or_gres(tmp_path: Path) -> None:
    def config(resources: str):
        (tmp_path / "config.yaml").write_text(f"executor: slurm\ndefault-resources:\n{resources}")
        return ProfileExecutor(str(tmp_path)).slurm_config()

    from metalab_smk.slurm.array import sbatch_options

    assert "--gpus=2" in sbatch_options(config("  gpu: 2\n").job_resources())
    typed = config("  gres: 'gpu:a100:2'\n").job_resources()
    assert "gpu" not in typed and "--gres=gpu:a100:2" in sbatch_options(typed)
    with pytest.raises(ExecutorError, match="twice"):
        sbatch_options(config("  gpu: 1\n  gres: gpu:1\n").job_resources())


def test_slot_leases_never_share_a_device_beyond_its_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpus.tempfile, "gettempdir", lambda: str(tmp_path))
    directory = gpus._slot_dir()
    first = gpus._try_lease(directory, ["0", "1"], 1, 1)
    second = gpus._try_lease(directory, ["0", "1"], 1, 1)
    assert first is not None and second is not None
    assert {first.devices[0], second.devices[0]} == {"0", "1"}
    assert gpus._try_lease(directory, ["0", "1"], 1, 1) is None  # every slot is held
    first.release()
    third = gpus._try_lease(directory, ["0", "1"], 1, 1)
    assert third is not None and third.devices == first.devices
    pair = gpus._try_lease(directory, ["0", "1"], 2, 2)  # a second slot on each device
    assert pair is not None and pair.devices == ["0", "1"]
    assert gpus.GpuLease(["0", "1", "2", "3"], [], 2).groups() == [["0", "1"], ["2", "3"]]


# -- real sweeps -----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("chunk", ["4", "1"])
def test_a_top_level_that_poisons_forks_runs_every_run(tmp_path: Path, chunk: str) -> None:
    _write(tmp_path, n=16)
    done = _metalab(tmp_path, "run", "exp.py", "--cores", "2", "--chunk-size", chunk)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(_records(tmp_path)) == 16
    assert not (tmp_path / "runs" / "gpu+1" / "failed").exists() or not _records(tmp_path, "failed")


@pytest.mark.integration
def test_crash_isolation_holds_with_a_poisoned_top_level(tmp_path: Path) -> None:
    _write(tmp_path, n=8, crash_at=3)
    done = _metalab(tmp_path, "run", "exp.py", "--cores", "1", "--chunk-size", "8")
    assert done.returncode == 1
    assert len(_records(tmp_path)) == 7  # the runs after the crash ran in a new child
    (failed,) = _records(tmp_path, "failed")
    assert failed["params_resolved"]["x"] == 3
    assert failed["error"]["type"] == "Crashed"
    assert "exited with code 3" in failed["error"]["message"]
    assert failed["seed"] and failed["run_index"] == 3  # a full record, from a new child


@pytest.mark.integration
def test_each_run_gets_its_own_device(tmp_path: Path) -> None:
    _write(tmp_path, n=8, sleep=0.4, gpus=1)
    done = _metalab(tmp_path, "run", "exp.py", "--gpus", "0,1", "--chunk-size", "1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = _records(tmp_path)
    assert len(records) == 8
    for record in records:
        metrics = record["metrics"]
        assert metrics["device"] in ("0", "1")
        assert metrics["device_at_import"] == metrics["device"]  # set before the import
        assert record["provenance"]["extra"]["gpus"] == [metrics["device"]]
    assert {r["metrics"]["device"] for r in records} == {"0", "1"}  # every slot used
    assert not _overlapping_on_one_device(records, 1)


@pytest.mark.integration
def test_runs_per_gpu_shares_a_device_up_to_its_slots(tmp_path: Path) -> None:
    _write(tmp_path, n=6, sleep=0.6, gpus=1)
    done = _metalab(
        tmp_path, "run", "exp.py", "--gpus", "0", "--runs-per-gpu", "2", "--chunk-size", "1"
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = _records(tmp_path)
    assert {r["metrics"]["device"] for r in records} == {"0"}
    assert not _overlapping_on_one_device(records, 2)
    assert _overlapping_on_one_device(records, 1)  # both slots were used at once


@pytest.mark.integration
def test_runs_asking_for_more_gpus_than_there_are_fail_with_one_line(tmp_path: Path) -> None:
    _write(tmp_path, n=2, gpus=2)
    done = _metalab(tmp_path, "run", "exp.py", "--gpus", "0")
    assert done.returncode == 2
    assert "each run asks for 2 GPU(s) but this machine has 1" in done.stderr
    assert "Traceback" not in done.stderr


# -- the local SLURM cluster -----------------------------------------------------------


def _cluster_reason() -> str | None:
    if shutil.which("sinfo") is None:
        return "no SLURM client tools; start a cluster with scripts/local-slurm-start.sh"
    shown = subprocess.run(
        ["sinfo", "-h", "-o", "%G"], capture_output=True, text=True, check=False
    ).stdout
    if "gpu" not in shown:
        return "the SLURM cluster declares no GPUs; restart scripts/local-slurm-start.sh"
    return None


def _slurm_sweep(tmp_path: Path, config: str) -> subprocess.CompletedProcess:
    (tmp_path / "go.py").write_text(
        textwrap.dedent(f"""
        import metalab
        from exp import exp

        config = metalab.SlurmConfig(partition="debug", time="00:05:00", memory="500M",
                                     status_interval=1, {config})
        metalab.run(exp, executor=metalab.SlurmExecutor(config)).result()
        """)
    )
    return subprocess.run(
        [sys.executable, "go.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(tmp_path),
    )


def _alloc_gpus(job_ids: set[str]) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        shown = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "AllocTRES", "-j", ",".join(sorted(job_ids))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        found = [t.split("gres/gpu=")[1].split(",")[0] for t in shown if "gres/gpu=" in t]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


@pytest.mark.slurm
@pytest.mark.skipif(_cluster_reason() is not None, reason=_cluster_reason() or "")
def test_slurm_array_runs_a_poisoned_top_level_on_the_gpus_it_asked_for(
    tmp_path: Path,
) -> None:
    _write(tmp_path, n=8, sleep=0.2, gpus=1)
    done = _slurm_sweep(tmp_path, "chunk_size=4")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    records = _records(tmp_path)
    assert len(records) == 8
    for record in records:
        assert record["metrics"]["device"] == record["metrics"]["device_at_import"] != ""
    jobs = {r["provenance"]["extra"]["slurm_job_id"] for r in records}
    assert _alloc_gpus(jobs) == ["1"] * len(jobs)  # --gpus=1 per task, in the accounting


@pytest.mark.slurm
@pytest.mark.skipif(_cluster_reason() is not None, reason=_cluster_reason() or "")
def test_a_slurm_task_holding_two_gpus_hands_one_to_each_run(tmp_path: Path) -> None:
    _write(tmp_path, n=8, sleep=0.5, gpus=1)
    done = _slurm_sweep(tmp_path, "chunk_size=8, gpus=2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    records = _records(tmp_path)
    assert len(records) == 8
    assert len({r["provenance"]["extra"]["slurm_job_id"] for r in records}) == 1
    assert {r["metrics"]["device"] for r in records} == {"0", "1"}
    assert not _overlapping_on_one_device(records, 1)
    assert _overlapping_on_one_device(
        [dict(r, metrics={**r["metrics"], "device": "any"}) for r in records], 1
    )  # the two ran side by side
    jobs = {r["provenance"]["extra"]["slurm_job_id"] for r in records}
    assert _alloc_gpus(jobs) == ["2"]
