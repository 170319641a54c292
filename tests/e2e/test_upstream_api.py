"""Code written against upstream metalab's public API runs unchanged.

Written from upstream's documented API (module paths, Results/Run, events, Progress,
derived metrics, executors, store): an upstream-style script runs one real sweep
(Snakemake subprocess); the rest reads it back with upstream's import paths."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from process_env import subprocess_env
from store_helpers import FIXTURES

import metalab
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.executors import as_executor

TIMEOUT = 300

UPSTREAM_SCRIPT = """\
    import json
    import sys
    import time

    import numpy as np

    import metalab
    from metalab.events import Event, EventKind
    from metalab.seeds import SeedBundle
    from metalab.types import Status


    @metalab.operation
    def train(params, seeds, capture, runtime):
        rng = seeds.numpy()
        capture.metric("score", params["lr"] * 10 + float(rng.random()) / 100)
        for step in range(3):
            capture.metric("loss", params["lr"] / (step + 1), step=step)
        capture.data("matrix", np.arange(6, dtype=np.int32).reshape(2, 3))
        capture.artifact("weights", np.ones(4) * params["lr"])
        capture.metric("group", runtime.metadata["group"])
        capture.log(f"training lr={params['lr']}")
        if params["lr"] < 0.15:
            time.sleep(2.5)  # long enough for the host to see it running (run_started)
        if params["lr"] > 0.25:
            raise ValueError("lr too large")


    def final_score(run):
        return {"final_score": run.metrics["score"] * 2}


    def weight_sum(run):
        return {"weight_sum": float(run.artifact("weights").sum())}


    exp = metalab.Experiment(
        name="upstream_style",
        version="0.1",
        context={},
        operation=train,
        params=metalab.grid(lr=[0.1, 0.2, 0.3]),
        seeds=metalab.seeds(base=42, replicates=2),
        metadata={"group": "alpha"},
    )

    if __name__ == "__main__":
        events = []
        handle = metalab.run(
            exp,
            store=sys.argv[1],
            executor=metalab.ThreadExecutor(max_workers=2),
            progress=metalab.Progress(title="Upstream", display_metrics=["score:.2f"]),
            on_event=events.append,
            derived_metrics=[final_score, weight_sum],
        )
        results = handle.result()  # two runs fail on purpose: in the Results
        status = handle.status
        assert isinstance(events[0], Event)
        print("OBSERVED " + json.dumps({
            "job_id": handle.job_id,
            "status": [status.total, status.completed, status.failed, status.running,
                       status.pending, status.skipped],
            "kinds": sorted({str(e.kind) for e in events}),
            "finished": sorted(e.run_id for e in events if e.kind == EventKind.RUN_FINISHED),
            "failed": sorted(e.run_id for e in events if e.kind == EventKind.RUN_FAILED),
            "started": sorted(e.run_id for e in events if e.kind == EventKind.RUN_STARTED),
            "statuses": sorted(str(r.status) for r in results),
            "is_enum": all(isinstance(r.status, Status) for r in results),
            "seeds_callable": callable(metalab.seeds),
            "summary": results.summary(),
            "root": str(handle.store.root),
        }))
"""


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=subprocess_env(cwd),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


class Sweep:
    def __init__(self, root: Path, observed: dict, stdout: str) -> None:
        self.root = root
        self.observed = observed
        self.stdout = stdout


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    base = tmp_path_factory.mktemp("upstream")
    script = base / "upstream_exp.py"
    script.write_text(textwrap.dedent(UPSTREAM_SCRIPT))
    done = _python(base, str(script), str(base / "runs"))
    line = next(x for x in done.stdout.splitlines() if x.startswith("OBSERVED "))
    observed = json.loads(line[len("OBSERVED ") :])
    return Sweep(Path(observed["root"]), observed, done.stdout)


# module paths ------------------------------------------------------------------------------
IMPORTS = """\
import sys, types
import metalab
from metalab.types import Status, Metric, RunRecord, Provenance
from metalab.result import Run, Results
from metalab.store import FileStore, FileStoreConfig, export_store
from metalab.store.file import FileStoreConfig as FileStoreConfig2
from metalab.store.layout import safe_experiment_id
from metalab.events import Event, EventKind
from metalab.seeds import SeedBundle
from metalab.operation import OperationWrapper, operation
from metalab.progress import Progress
from metalab.executor import ThreadExecutor, ProcessExecutor, SlurmExecutor
from metalab.derived import get_func_ref
from metalab.seeds.bundle import SeedBundle as SeedBundle2
from metalab.params.grid import GridSource
from metalab.executor.slurm import SlurmConfig
import metalab.seeds

assert callable(metalab.seeds) and not isinstance(metalab.seeds, types.ModuleType)
assert metalab.seeds(base=1, replicates=2).replicates == 2
assert callable(metalab.operation) and not isinstance(metalab.operation, types.ModuleType)

@metalab.operation
def op(params, capture):
    pass

assert isinstance(op, OperationWrapper) and op.name == "op"
assert FileStoreConfig2 is FileStoreConfig is metalab.FileStoreConfig
assert Results is metalab.Results and Status is metalab.Status and SeedBundle is metalab.SeedBundle
assert SeedBundle2 is SeedBundle and GridSource is metalab.GridSource
assert SlurmConfig is metalab.SlurmConfig
for alias, target in [
    ("metalab.types", "metalab_smk.store.records"),
    ("metalab.result", "metalab_smk.results.results"),
    ("metalab.seeds", "metalab_smk.core.seeds"),
    ("metalab.operation", "metalab_smk.core.operation"),
    ("metalab.store", "metalab_smk.store"),
    ("metalab.store.layout", "metalab_smk.store.layout"),
    ("metalab.events", "metalab_smk.sweep.events"),
]:
    assert sys.modules[alias] is sys.modules[target], alias
files = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path and "metalab" in path:
        files.setdefault(path, set()).add(id(module))
copies = {path: ids for path, ids in files.items() if len(ids) > 1}
assert not copies, copies
print("IMPORTS OK")
"""


def test_upstream_module_paths_are_aliases_not_copies(tmp_path: Path) -> None:
    done = _python(tmp_path, "-c", IMPORTS)
    assert "IMPORTS OK" in done.stdout


def test_an_unknown_submodule_is_a_plain_import_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import metalab.no_such_module"],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "No module named 'metalab.no_such_module'" in done.stderr


def test_import_metalab_is_fast_and_light(tmp_path: Path) -> None:
    code = (
        "import time, sys; t = time.perf_counter(); import metalab; "
        "elapsed = time.perf_counter() - t; "
        "import metalab.types, metalab.seeds, metalab.operation, metalab.events, metalab.store; "
        "print(elapsed, 'pandas' in sys.modules, 'snakemake' in sys.modules)"
    )
    elapsed, pandas, snakemake = _python(tmp_path, "-c", code).stdout.split()
    assert (pandas, snakemake) == ("False", "False")
    assert float(elapsed) < 0.5  # about 40 ms measured; generous for a loaded machine


# the sweep ---------------------------------------------------------------------------------
def test_upstream_script_runs_with_events_progress_and_status(sweep: Sweep) -> None:
    observed = sweep.observed
    assert observed["seeds_callable"] and observed["is_enum"]
    assert observed["job_id"].startswith("local-")
    # total, completed, failed, running, pending, skipped
    assert observed["status"] == [6, 4, 2, 0, 0, 0]
    assert {"run_started", "run_finished", "run_failed", "progress"} <= set(observed["kinds"])
    assert len(observed["finished"]) == 4 and len(observed["failed"]) == 2
    assert set(observed["started"]) <= set(observed["finished"]) | set(observed["failed"])
    assert observed["statuses"] == ["failed"] * 2 + ["success"] * 4
    assert observed["summary"]["total_runs"] == 6
    assert observed["summary"]["by_status"] == {"success": 4, "failed": 2}
    # Progress shows done/total and the chosen metric (latest and mean)
    assert "Upstream: 6/6 done (4 succeeded, 2 failed, 0 skipped)" in sweep.stdout
    assert "score=" in sweep.stdout and "(mean " in sweep.stdout


def test_results_and_runs_like_upstream(sweep: Sweep) -> None:
    from metalab.result import Results, Run
    from metalab.store import FileStore
    from metalab.types import ArtifactDescriptor, RunRecord, Status

    results = Results.from_store(FileStore(sweep.root))
    assert len(results) == 6 and all(isinstance(r, Run) for r in results.runs)
    assert all(isinstance(r, RunRecord) for r in results.records)
    rows = results.table()
    assert isinstance(rows, list) and isinstance(rows[0], dict)
    assert {"run_id", "status", "duration_ms", "params_fingerprint", "score"} <= set(rows[0])
    assert len(results.successful) == 4 and len(results.failed) == 2
    assert len(results.filter(status="failed")) == 2
    assert len(results.filter(group="alpha")) == 6  # a metric
    with pytest.raises(KeyError, match="no_such_metric"):
        results.filter(no_such_metric=1)

    run = results.successful[0]
    assert run.status is Status.SUCCESS
    assert isinstance(run.started_at, datetime) and run.finished_at >= run.started_at
    assert set(run.metrics) == {"score", "group"}  # the stepped "loss" is a curve, not here
    lr = run.params["lr"]
    assert run.data("loss") == [[0, lr], [1, lr / 2], [2, pytest.approx(lr / 3)]]
    matrix = run.data("matrix")
    assert isinstance(matrix, np.ndarray) and matrix.dtype == np.int32 and matrix.shape == (2, 3)
    descriptors = run.artifacts()
    assert [d.name for d in descriptors] == ["weights"]
    assert isinstance(descriptors[0], ArtifactDescriptor) and descriptors[0].format == "numpy"
    np.testing.assert_array_equal(run.artifact("weights"), np.ones(4) * run.params["lr"])
    with pytest.raises(FileNotFoundError):
        run.artifact("missing")
    assert run.experiment.metadata == {"group": "alpha"} and run.experiment.name == "upstream_style"
    assert run.experiment_id == "upstream_style:0.1"

    frame = results.to_dataframe(include_record=False)
    assert "run_id" not in frame.columns and "status" not in frame.columns
    assert {"param_lr", "score"} <= set(frame.columns)
    derived = results.to_dataframe(include_derived=True)
    ok = derived[derived["status"] == "success"]
    assert (ok["derived_final_score"] == ok["score"] * 2).all()
    assert (ok["derived_weight_sum"] == ok["param_lr"] * 4).all()

    def on_the_fly(run):
        return {"accuracy_pct": run.metrics["score"] * 100}

    fly = results.successful.to_dataframe(derived_metrics=[on_the_fly])
    assert (fly["accuracy_pct"] == fly["score"] * 100).all()
    assert "accuracy_pct" not in str(results.store.get_derived(run.run_id))  # not stored
    assert results.store.derived_exists(run.run_id)
    assert not results.store.derived_exists("0" * 16)

    store = FileStore(sweep.root)  # upstream's constructor: Results(store, records)
    rebuilt = Results(store, store.list_run_records()[:2])
    assert [r.run_id for r in rebuilt] == [r.run_id for r in results.records[:2]]
    assert len(Results(store=store, records=[])) == 0

    reduced = results.to_dataframe(artifact_reducers={"weights": lambda a: {"w0": float(a[0])}})
    assert (reduced.loc[reduced["status"] == "success", "w0"] == ok["param_lr"]).all()


def test_derived_metrics_are_in_the_parquet_summary(sweep: Sweep) -> None:
    import pandas as pd

    summary = pd.read_parquet(sweep.root / "summary" / "runs.parquet")
    ok = summary[summary["status"] == "success"]
    assert (ok["derived_final_score"] == ok["score"] * 2).all()
    assert sorted(p.stem for p in (sweep.root / "derived").glob("*.json")) == sorted(ok["run_id"])


def test_compute_derived_skips_done_runs_unless_overwrite(sweep: Sweep) -> None:
    results = metalab.load_results(sweep.root)
    calls = []

    def extra(run):
        calls.append(run.run_id)
        return {"final_score": -1.0}

    assert results.compute_derived([extra]) == {}  # every successful run has derived metrics
    assert calls == []
    first = results.successful[0]
    path = sweep.root / "derived" / f"{first.run_id}.json"
    before = path.read_bytes()
    try:
        path.unlink()
        computed = results.compute_derived([extra])
        assert list(computed) == [first.run_id] and calls == [first.run_id]
        assert metalab.load_results(sweep.root).successful[0].derived == {"final_score": -1.0}
    finally:
        path.write_bytes(before)


def test_handle_store_logs_csv_and_display(sweep: Sweep, tmp_path: Path, capsys) -> None:
    from metalab.store import FileStore

    store = FileStore(sweep.root)
    assert store.root == sweep.root and store.get_working_directory() == sweep.root
    records = store.list_run_records()
    assert len(records) == 6
    log = store.get_log(records[0].run_id, "run")
    assert "training lr=" in log
    assert store.get_log(records[0].run_id, "nope") is None

    results = metalab.load_results(sweep.root)
    written = results.to_csv(tmp_path / "out")
    assert written.parent == tmp_path / "out" and written.suffix == ".csv"
    header = written.read_text().splitlines()[0].split(",")
    assert "score" in header and not any(h.endswith("_fingerprint") for h in header)
    results.display(group_by=["lr"])
    shown = capsys.readouterr().out
    assert "Total runs: 6" in shown and "lr=0.3: 0 success, 2 failed, 2 total" in shown


def test_reconnect_with_progress_and_events_on_a_finished_sweep(sweep: Sweep) -> None:
    events = []
    handle = metalab.reconnect(sweep.root, progress=False, on_event=events.append)
    results = handle.result(timeout=60, check=False)  # two runs failed on purpose
    assert len(results) == 6
    kinds = [str(e.kind) for e in events]
    assert kinds.count("run_skipped") == 4 and kinds[-1] == "finished"
    assert events[-1]["done"] == 4 and events[-1]["failed"] == 2  # dict-style access
    assert handle.status.skipped == 4 and handle.status.completed == 0


# definitions -------------------------------------------------------------------------------
def test_operation_wrapper_seed_plan_and_file_hashes(tmp_path: Path) -> None:
    from metalab.operation import OperationWrapper
    from metalab.seeds import SeedBundle

    @metalab.operation(name="custom")
    def op(params, seeds):
        return {"x": params["x"], "seed": seeds.derive("a")}

    assert isinstance(op, OperationWrapper) and op.name == "custom"
    assert repr(op) == "Operation(custom)"
    with pytest.raises(ValueError, match="invalid parameter"):

        @metalab.operation(name="bad")
        def bad(params, unknown_param, capture):
            pass

    assert len(op.code_hash) == 16 and op.code_hash == op.code_fp
    bundle = SeedBundle(3, 0)
    assert op.run(params={"x": 1}, seeds=bundle) == {"x": 1, "seed": bundle.derive("a")}

    plan = metalab.seeds(base=42, replicates=3)
    assert plan.base_seed == 42
    assert plan.to_manifest_dict() == {"type": "SeedPlan", "base": 42, "replicates": 3}

    data = tmp_path / "data.txt"
    data.write_text("hello")
    assert len(metalab.file_hash(data)) == 16
    assert len(metalab.dir_hash(tmp_path)) == 16
    with pytest.raises(FileNotFoundError):
        metalab.dir_hash(tmp_path / "missing")
    assert str(metalab.FilePath(str(data))) == str(data)
    assert str(metalab.DirPath(str(tmp_path))) == str(tmp_path)


def test_executors_map_to_local_cores_and_slurm_setup_lines() -> None:
    assert metalab.ThreadExecutor(max_workers=3).snakemake_args() == ["--cores", "3"]
    assert metalab.ProcessExecutor(max_workers=2).total_cores() == 2
    config = metalab.SlurmConfig(
        partition="debug",
        modules=["gcc/12", "cuda"],
        conda_env="exp",
        setup=["export OMP_NUM_THREADS=1"],
        extra_sbatch={"qos": "short", "exclusive": ""},
        max_array_size=500,
        chunk_size=1,
    )
    args = metalab.SlurmExecutor(config).snakemake_args()
    pre = args[args.index("--precommand") + 1]
    assert pre == (
        'module load gcc/12 && module load cuda && eval "$(conda shell.bash hook)" && '
        "conda activate exp && export OMP_NUM_THREADS=1"
    )
    assert "slurm_extra='--qos=short --exclusive'" in args
    with pytest.raises(metalab.MetalabError, match="executor='threads' is not supported"):
        as_executor("threads")


# SLURM: setup lines run in every job -------------------------------------------------------
def _slurm_missing() -> str | None:
    import shutil

    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client tools; start a cluster with scripts/local-slurm-start.sh"
    done = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True)
    if done.returncode != 0 or "up" not in done.stdout:
        return "no SLURM cluster answers sinfo; start one with scripts/local-slurm-start.sh"
    return None


SLURM_SCRIPT = """\
    import os
    import metalab

    @metalab.operation
    def op(params, capture):
        capture.metric("mark", os.environ.get("METALAB_SETUP_MARK", "unset"))
        capture.metric("sbatch", os.environ.get("SLURM_DISTRIBUTION", "unset"))

    exp = metalab.Experiment(name="setup_lines", version="1", context={}, operation=op,
        params=metalab.grid(x=[1, 2, 3, 4]), seeds=metalab.seeds(base=1))

    if __name__ == "__main__":
        config = metalab.SlurmConfig(partition="debug", time="00:05:00", memory="500M",
            setup=["export METALAB_SETUP_MARK=from-setup"], extra_sbatch={"distribution": "cyclic"},
            chunk_size=2, status_interval=1)
        results = metalab.run(exp, executor=metalab.SlurmExecutor(config)).result()
        print("MARKS", sorted(r.metrics["mark"] for r in results))
        print("SBATCH", sorted({r.metrics["sbatch"] for r in results}))
        print("JOBS", sorted({r.record.provenance["extra"]["slurm_job_id"] for r in results}))
"""


@pytest.mark.slurm
@pytest.mark.skipif(_slurm_missing() is not None, reason=_slurm_missing() or "")
def test_slurm_config_setup_lines_and_extra_sbatch_reach_every_job(tmp_path: Path) -> None:
    script = tmp_path / "setup_lines.py"
    script.write_text(textwrap.dedent(SLURM_SCRIPT))
    done = _python(tmp_path, str(script))
    assert "MARKS ['from-setup', 'from-setup', 'from-setup', 'from-setup']" in done.stdout
    assert "SBATCH ['cyclic']" in done.stdout  # sbatch --distribution=cyclic
    jobs = json.loads(done.stdout.split("JOBS ", 1)[1].splitlines()[0].replace("'", '"'))
    assert len(jobs) == 2  # chunk_size=2


RETRY_SCRIPT = """\
    import json
    import os
    import sys

    import metalab
    from metalab.events import EventKind


    @metalab.operation
    def op(params, capture):
        if params["x"] == 2 and os.path.exists("fail-marker"):
            raise RuntimeError("marked to fail")
        capture.metric("y", params["x"])


    exp = metalab.Experiment(name="retry", version="1", context={}, operation=op,
        params=metalab.grid(x=[1, 2, 3]), seeds=metalab.seeds(base=1))

    if __name__ == "__main__":
        events = []
        handle = metalab.run(exp, store="runs", progress=False, on_event=events.append)
        handle.result(check=False)  # the first attempt fails on purpose
        print("EVENTS " + json.dumps([[str(e.kind), e.run_id] for e in events
                                      if e.kind != EventKind.PROGRESS]))
"""


def test_a_retried_failed_run_gets_fresh_events(tmp_path: Path) -> None:
    script = tmp_path / "retry.py"
    script.write_text(textwrap.dedent(RETRY_SCRIPT))
    (tmp_path / "fail-marker").write_text("")

    def events() -> list[list[str]]:
        done = _python(tmp_path, str(script))
        return json.loads(done.stdout.split("EVENTS ", 1)[1].splitlines()[0])

    first = events()
    failed = [rid for kind, rid in first if kind == "run_failed"]
    assert len(failed) == 1 and [k for k, _ in first].count("run_finished") == 2
    (tmp_path / "fail-marker").unlink()
    second = events()  # the old failed record is not news: only the retry's outcome is
    assert [k for k, rid in second if rid == failed[0]] in (
        ["run_finished"],
        ["run_started", "run_finished"],
    )
    assert [k for k, _ in second].count("run_skipped") == 2 and second[-1][0] == "finished"


@metalab.operation
def doubled(params, capture):
    capture.metric("result", params["x"] * 2)


def test_each_run_writes_upstreams_manifest(tmp_path: Path) -> None:
    """One ``experiments/{name}_{version}_{timestamp}.json`` per run(), upstream's schema."""
    exp = metalab.Experiment(
        name="test",
        version="1.0",
        description="Test experiment",
        context={},
        operation=doubled,
        params=metalab.grid(x=[1, 2, 3]),
        seeds=metalab.seeds(base=42, replicates=2),
        tags=["test"],
    )
    options = {"verbose": False, "executor": metalab.LocalExecutor(cores=1)}
    results = metalab.run(exp, store=tmp_path, **options).result()
    folder = tmp_path / "test+1.0" / "experiments"
    (path,) = folder.glob("test_1.0_*.json")
    manifest = json.loads(path.read_text())
    assert {k: manifest[k] for k in ("experiment_id", "name", "version", "description")} == {
        "experiment_id": "test:1.0",
        "name": "test",
        "version": "1.0",
        "description": "Test experiment",
    }
    assert manifest["tags"] == ["test"] and manifest["total_runs"] == 6
    assert manifest["params"] == {"type": "GridSource", "spec": {"x": [1, 2, 3]}, "total_cases": 3}
    assert manifest["seeds"] == {"type": "SeedPlan", "base": 42, "replicates": 2}
    assert manifest["operation"] == {
        "ref": f"{__name__}:doubled",
        "name": "doubled",
        "code_hash": doubled.code_hash,
    }
    assert manifest["context_fingerprint"] == exp.context_fp
    assert manifest["run_ids"] == [run.run_id for run in metalab.Plan(exp)]
    assert set(manifest["run_ids"]) == {run.run_id for run in results}
    stamp = datetime.fromisoformat(manifest["submitted_at"]).strftime("%Y%m%d_%H%M%S")
    assert path.name == f"test_1.0_{stamp}.json"
    metalab.run(exp, store=tmp_path, **options).result()  # nothing to run: still a manifest
    assert len(list(folder.glob("test_1.0_*.json"))) == 2
    assert (folder / "test+1.0.json").is_file()  # this project's description, beside them
    longest = ExperimentDir(tmp_path / f"{'n' * 246}+1").run_manifest("20260101_000000_2")
    assert len(longest.name) == 255 and longest.name.endswith("_20260101_000000_2.json")


def test_store_configs_executors_and_progress_like_upstream(tmp_path: Path) -> None:
    """StoreConfig / FileStoreConfig(root=).connect() / scoped / to_dict, create_store,
    load_results(store=), executors as context managers, Progress(style=)."""
    from metalab.store import StoreConfig, create_store

    config = metalab.FileStoreConfig(root=str(FIXTURES / "upstream-store"))
    assert isinstance(config, metalab.StoreConfig) and StoreConfig is metalab.StoreConfig
    scoped = config.scoped("upsmall:1.0")
    assert scoped.is_scoped and not config.is_scoped and scoped.for_experiment("upsmall:1.0")
    assert scoped.to_dict() == {
        "root": str(FIXTURES / "upstream-store"),
        "experiment_id": "upsmall:1.0",
        "_type": "file",
    }
    assert StoreConfig.from_dict(scoped.to_dict()) == scoped
    with pytest.raises(ValueError, match="already scoped"):
        scoped.scoped("other:1")
    store = scoped.connect()
    assert isinstance(store, metalab.FileStore)
    assert store.root == config.experiment_dir("upsmall:1.0").root
    assert create_store(config.root, experiment_id="upsmall:1.0").root == store.root
    store = metalab.FileStore(FIXTURES / "upstream-store" / "upsmall_1.0")
    assert len(metalab.load_results(store=store)) == 4
    assert len(metalab.load_results(store=scoped)) == 4
    with pytest.raises(TypeError, match="exactly one"):
        metalab.load_results()
    for executor in (metalab.ThreadExecutor(max_workers=2), metalab.SlurmExecutor()):
        with executor as entered:
            assert entered is executor
        executor.shutdown(wait=True)
    assert metalab.Progress(style="simple").style == "simple"
    with pytest.raises(ValueError, match="style"):
        metalab.Progress(style="fancy")
