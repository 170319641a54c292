"""End-to-end: `metalab compile`, real `snakemake` and `metalab.run` subprocesses.

Nothing here is mocked: every sweep is compiled into a temporary directory and executed by
Snakemake (or by ``metalab.run`` from a script); the tests read back the files it leaves.
Sweeps shared by several tests run once per module (``scope="module"`` fixtures).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from process_env import subprocess_env

import metalab
from metalab_smk.core.seeds import SeedBundle
from metalab_smk.results.results import Results
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.sweep.batches import choose_chunk_size

pytestmark = pytest.mark.integration

TIMEOUT = 180  # seconds for any one subprocess
RECORD_FIELDS = {
    "run_id",
    "experiment_id",
    "status",
    "context_fingerprint",
    "params_fingerprint",
    "seed_fingerprint",
    "started_at",
    "finished_at",
    "duration_ms",
    "metrics",
    "provenance",
    "error",
    "params_resolved",
    "tags",
    "warnings",
    "notes",
    "artifacts",
    "_schema_version",
    "seed",
}
LEADING_COLUMNS = ["run_id", "experiment_id", "status", "duration_ms", "started_at", "finished_at"]


# helpers ---------------------------------------------------------------------------------
def _metalab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", *args],
        cwd=cwd,
        env=subprocess_env(cwd),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _snakemake(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``snakemake --cores 2`` in ``directory``; stderr folded into stdout."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=directory,
        env=subprocess_env(directory.parent.parent),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _script(cwd: Path, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=cwd,
        env=subprocess_env(cwd, **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def _mtimes(directory: Path) -> dict[str, int]:
    if not directory.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in sorted(directory.glob("*.json"))}


def _job_count(output: str, rule: str) -> int:
    """Jobs of ``rule`` in Snakemake's job-stats table (0 when the rule is not listed)."""
    match = re.search(rf"^{rule}\s+(\d+)\s*$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _records_by(layout: ExperimentDir, param: str) -> dict[object, dict]:
    """Every record (success or failed) keyed by the value of ``param``."""
    found = {}
    for directory in (layout.runs_dir, layout.failed_dir):
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            record = read_json(path)
            found[record["params_resolved"][param]] = record
    return found


# the main sweep: capture features, compile, two snakemake invocations --------------------
ENGINE_EXPERIMENT = """\
    import logging
    import sys
    import warnings

    import numpy as np

    import metalab


    @metalab.operation
    def train(params, seeds, capture, runtime):
        lr, depth = params["lr"], params["depth"]
        for step in range(3):
            capture.metric("loss", lr * depth * (step + 1), step=step)
        capture.metric("score", lr * 10 + depth)
        capture.metric("draw", float(seeds.numpy("init").random()))
        capture.data("table", {"lr": lr, "depth": depth, "values": np.arange(3)})
        capture.artifact("weights", np.arange(depth * 2, dtype=float) * lr)
        capture.artifact("config", {"lr": lr, "depth": depth, "layers": [depth] * depth})
        notes = runtime.scratch_dir / "notes.txt"
        notes.write_text(f"notes for lr={lr} depth={depth}\\n")
        capture.file("notes", notes)
        capture.subscribe_logger("mylib")
        logging.getLogger("mylib").info("mylib says hello")
        capture.log("capture log line", level="warning")
        print(f"printed to stdout lr={lr}")
        print("printed to stderr", file=sys.stderr)
        warnings.warn("deprecated knob", UserWarning)


    experiment = metalab.Experiment(
        name="engine",
        version="1",
        context={},
        operation=train,
        params=metalab.grid(lr=[0.1, 0.2], depth=[1, 2]),
        seeds=metalab.seeds(base=7, replicates=2),
        tags=["smoke"],
    )

    # top level and unguarded (as in the original README): compiling and jobs must import
    # this file without starting a sweep
    metalab.run(experiment, store="started-a-sweep")
"""


@dataclass
class Sweep:
    base: Path
    layout: ExperimentDir
    compile: subprocess.CompletedProcess[str]
    after_compile: list[str]
    dry_run: subprocess.CompletedProcess[str]
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    mtimes_first: dict[str, int] = field(default_factory=dict)
    mtimes_second: dict[str, int] = field(default_factory=dict)
    summary_first: int = 0
    summary_second: int = 0

    @property
    def root(self) -> Path:
        return self.layout.root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    base = tmp_path_factory.mktemp("engine")
    _write(base / "exp.py", ENGINE_EXPERIMENT)
    compiled = _metalab(base, "compile", "exp.py", "--store", "S")
    layout = ExperimentDir.at(base / "S" / "engine+1")
    after_compile = sorted(p.name for p in base.rglob("*"))
    command = compiled.stdout.strip().splitlines()[-1].strip()
    dry_run = subprocess.run(
        ["bash", "-c", f"{command} --dry-run"],
        cwd=base,
        env=subprocess_env(base),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    first = _snakemake(layout.root)
    mtimes_first = _mtimes(layout.runs_dir)
    summary_first = (layout.summary_dir / "runs.parquet").stat().st_mtime_ns
    second = _snakemake(layout.root)
    return Sweep(
        base=base,
        layout=layout,
        compile=compiled,
        after_compile=after_compile,
        dry_run=dry_run,
        first=first,
        second=second,
        mtimes_first=mtimes_first,
        mtimes_second=_mtimes(layout.runs_dir),
        summary_first=summary_first,
        summary_second=(layout.summary_dir / "runs.parquet").stat().st_mtime_ns,
    )


def test_compile_prints_directory_and_snakemake_command(sweep: Sweep) -> None:
    _ok(sweep.compile)
    lines = sweep.compile.stdout.strip().splitlines()
    assert lines[0] == "compiled 'engine:1': 8 runs in S/engine+1"
    # the packed path first, then plain Snakemake with its cost named
    assert lines[2].split("#")[0].strip() == "metalab run exp.py"
    assert "packs them alike" in lines[-3] and "--profile slurm" in lines[-2]
    assert lines[-1].strip() == "cd S/engine+1 && snakemake"  # no options: all cores
    # the printed command works as printed (from the directory compile ran in)
    assert sweep.dry_run.returncode == 0, sweep.dry_run.stdout
    assert "Using workflow specific profile profiles/default" in sweep.dry_run.stdout
    # missing runs are packed: one job per core (--cores all: this machine's)
    chunk = choose_chunk_size(8, os.cpu_count() or 1, local=True)
    rule = "metalab_run" if chunk == 1 else "metalab_batch"
    assert _job_count(sweep.dry_run.stdout, rule) == math.ceil(8 / chunk)
    assert _job_count(sweep.dry_run.stdout, "metalab_summary") == 1


def test_compile_writes_snakefile_profile_and_run_table(sweep: Sweep) -> None:
    snakefile = sweep.layout.snakefile.read_text()
    assert re.search(r"^rule all:", snakefile, re.MULTILINE)
    assert re.search(r"^include: ", snakefile, re.MULTILINE)
    profile = (sweep.root / "profiles" / "default" / "config.yaml").read_text()
    assert re.search(r"^scheduler-subsample: \d+", profile, re.MULTILINE)
    assert re.search(r"^rerun-triggers: mtime\b", profile, re.MULTILINE)
    assert re.search(r"^drop-metadata: true\b", profile, re.MULTILINE)
    assert re.search(r"^cores: all\b", profile, re.MULTILINE)  # plain `snakemake` works
    lines = sweep.layout.run_table.read_text().splitlines()
    assert len(lines) == 8
    assert all(re.fullmatch(r"[0-9a-f]{16}", line) for line in lines)
    assert len(set(lines)) == 8
    compiled = json.loads(sweep.layout.compiled.read_text())
    assert compiled["experiment_id"] == "engine:1"
    assert compiled["n_runs"] == 8
    assert compiled["replicates"] == 2


def test_compile_of_file_calling_run_at_top_level_starts_no_sweep(sweep: Sweep) -> None:
    source = (sweep.base / "exp.py").read_text()
    assert "\nmetalab.run(experiment" in source and "__main__" not in source
    _ok(sweep.compile)
    assert "metalab: running" not in sweep.compile.stdout + sweep.compile.stderr
    # right after compiling: no records, logs, Snakemake state or store of the run() call
    for name in ("runs", "failed", "logs", ".snakemake", "snakemake.log", "started-a-sweep"):
        assert name not in sweep.after_compile
    assert not (sweep.base / "started-a-sweep").exists()


def test_snakemake_runs_every_run_and_writes_summary(sweep: Sweep) -> None:
    assert sweep.first.returncode == 0, sweep.first.stdout
    assert _job_count(sweep.first.stdout, "metalab_batch") == 2  # 8 runs, 2 cores: 4 per job
    # jobs import the unguarded file too: none of them started a nested sweep
    assert not (sweep.base / "started-a-sweep").exists()
    assert "metalab: running" not in sweep.first.stdout
    run_ids = sweep.layout.read_run_ids()
    assert sorted(sweep.mtimes_first) == sorted(f"{rid}.json" for rid in run_ids)
    assert not sweep.layout.failed_dir.exists() or not any(sweep.layout.failed_dir.iterdir())
    frame = pd.read_parquet(sweep.root / "summary" / "runs.parquet")
    assert len(frame) == 8
    assert list(frame["run_id"]) == run_ids  # run order
    assert set(frame["status"]) == {"success"}
    assert {"param_lr", "param_depth"} <= set(frame.columns)
    assert sorted(zip(frame["param_depth"], frame["param_lr"], strict=True)) == sorted(
        [(d, lr) for d in (1, 2) for lr in (0.1, 0.2)] * 2
    )
    expected = frame["param_lr"] * 10 + frame["param_depth"]
    assert frame["score"].tolist() == pytest.approx(expected.tolist())
    assert frame["loss"].tolist() == pytest.approx(
        (frame["param_lr"] * frame["param_depth"] * 3).tolist()
    )
    assert list(frame["seed_replicate"]) == [0, 1] * 4
    # a metric drawn from the run's seeds can be reproduced from its record
    for row in frame.itertuples():
        seed = SeedBundle.from_dict(read_json(sweep.layout.record(row.run_id))["seed"])
        assert row.draw == float(seed.numpy("init").random())
    # seeds depend on the replicate only: every case sees the same two draws
    assert frame.groupby("seed_replicate")["draw"].nunique().tolist() == [1, 1]
    assert frame["draw"].nunique() == 2


def test_second_snakemake_has_nothing_to_do(sweep: Sweep) -> None:
    assert sweep.second.returncode == 0, sweep.second.stdout
    assert "Nothing to be done" in sweep.second.stdout
    assert _job_count(sweep.second.stdout, "metalab_run") == 0
    assert _job_count(sweep.second.stdout, "metalab_batch") == 0
    assert sweep.mtimes_second == sweep.mtimes_first
    assert sweep.summary_second == sweep.summary_first


def test_record_json_has_design_fields(sweep: Sweep) -> None:
    run_id = sweep.layout.read_run_ids()[3]
    record = json.loads(sweep.layout.record(run_id).read_text())
    assert set(record) >= RECORD_FIELDS
    assert record["run_id"] == run_id
    assert record["experiment_id"] == "engine:1"
    assert record["status"] == "success"
    assert record["error"] is None
    assert record["_schema_version"] == 1
    # index 3 = case 1 (depth=1, lr=0.2), replicate 1
    assert record["params_resolved"] == {"depth": 1, "lr": 0.2}
    assert record["seed"] == {"root_seed": 7, "replicate_index": 1}
    assert record["tags"] == []
    for key in ("context_fingerprint", "params_fingerprint", "seed_fingerprint"):
        assert re.fullmatch(r"[0-9a-f]{16}", record[key]), key
    assert set(record["metrics"]) == {"loss", "score", "draw"}
    provenance = record["provenance"]
    assert provenance["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert provenance["metalab_version"] == metalab.__version__
    assert re.match(r"\d+\.\d+", provenance["snakemake_version"])
    assert provenance["host"]
    assert isinstance(record["duration_ms"], int) and record["duration_ms"] >= 0
    assert record["started_at"] <= record["finished_at"]


def test_stepped_metrics_in_steps_parquet_and_run_data(sweep: Sweep) -> None:
    steps = pd.read_parquet(sweep.root / "summary" / "steps.parquet")
    assert list(steps.columns) == ["run_id", "name", "step", "value"]
    assert len(steps) == 8 * 3
    assert set(steps["name"]) == {"loss"}
    results = Results(sweep.layout)
    for run in results:
        mine = steps[steps["run_id"] == run.run_id].sort_values("step")
        scale = run.params["lr"] * run.params["depth"]
        assert mine["step"].tolist() == [0, 1, 2]
        assert mine["value"].tolist() == pytest.approx([scale, 2 * scale, 3 * scale])
        curve = run.data("loss")
        assert [step for step, _ in curve] == [0, 1, 2]
        assert [value for _, value in curve] == pytest.approx([scale, 2 * scale, 3 * scale])
        assert run.list_data() == ["loss", "table"]


def test_data_artifacts_and_files_load_through_results(sweep: Sweep) -> None:
    results = Results(sweep.layout)
    assert len(results) == 8
    for run in results:
        lr, depth = run.params["lr"], run.params["depth"]
        assert run.data("table") == {"lr": lr, "depth": depth, "values": [0, 1, 2]}
        weights = run.artifact("weights")
        np.testing.assert_array_equal(weights, np.arange(depth * 2, dtype=float) * lr)
        assert run.artifact("config") == {"lr": lr, "depth": depth, "layers": [depth] * depth}
        notes = run.artifact("notes")
        assert notes == f"notes for lr={lr} depth={depth}\n".encode()  # bytes, as upstream
        names = {a["name"]: a for a in run.artifacts()}
        assert set(names) == {"weights", "config", "notes"}
        assert names["weights"]["format"] == "numpy"
        assert names["config"]["format"] == "json"
        for descriptor in names.values():
            stored = sweep.root / descriptor["uri"]
            assert stored.parent == sweep.layout.artifacts(run.run_id)
            assert descriptor["size_bytes"] == stored.stat().st_size
        manifest = json.loads((sweep.layout.artifacts(run.run_id) / "_manifest.json").read_text())
        assert {entry["name"] for entry in manifest["artifacts"]} == set(names)  # upstream's shape
        with pytest.raises(FileNotFoundError, match="no artifact 'nope'"):
            run.artifact("nope")
    first = results[0]
    np.testing.assert_array_equal(results.load(first.run_id, "weights"), first.artifact("weights"))


def test_run_log_holds_prints_logs_and_warnings(sweep: Sweep) -> None:
    for run_id in sweep.layout.read_run_ids():
        log = sweep.layout.log(run_id).read_text()
        assert re.search(r"^printed to stdout lr=0\.[12]$", log, re.MULTILINE)
        assert "printed to stderr" in log
        assert "capture log line" in log
        assert "mylib says hello" in log
        assert "UserWarning: deprecated knob" in log
        record = read_json(sweep.layout.record(run_id))
        assert [(w["category"], w["message"]) for w in record["warnings"]] == [
            ("UserWarning", "deprecated knob")
        ]
    # the output of the runs went to their logs, not to Snakemake's
    assert "printed to stdout" not in sweep.first.stdout


def test_no_partial_or_temporary_files_remain(sweep: Sweep) -> None:
    leftovers = [
        p
        for p in sweep.root.rglob("*")
        if p.name.endswith((".partial", ".tmp")) or ".tmp" in p.name
    ]
    assert leftovers == []
    assert len(list(sweep.root.glob("logs/*_run.log"))) == 8


def test_results_cli_writes_csv(sweep: Sweep, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    done = _ok(_metalab(sweep.base, "results", str(sweep.root), "--csv", str(out)))
    assert f"wrote 8 rows to {out}" in done.stdout
    table = pd.read_csv(out)
    assert list(table.columns[:6]) == LEADING_COLUMNS
    assert len(table) == 8
    assert list(table["run_id"]) == sweep.layout.read_run_ids()
    assert table["score"].tolist() == pytest.approx(
        (table["param_lr"] * 10 + table["param_depth"]).tolist()
    )


def test_status_cli_counts_a_finished_sweep(sweep: Sweep) -> None:
    done = _ok(_metalab(sweep.base, "status", str(sweep.root)))
    assert done.stdout.strip() == "engine:1: 8 runs: 8 done, 0 running, 0 failed, 0 pending"


def test_load_results_from_collection_root_and_list_experiments(sweep: Sweep) -> None:
    store = sweep.base / "S"
    assert metalab.FileStoreConfig(store).list_experiments() == ["engine:1"]
    results = metalab.load_results(store, experiment_id="engine:1")
    assert len(results) == 8
    assert results.layout.root == sweep.root
    assert len(metalab.load_results(metalab.FileStoreConfig(store))) == 8
    with pytest.raises(metalab.MetalabError, match="no experiment 'other:1'"):
        metalab.load_results(store, experiment_id="other:1")


def test_results_filter_summary_and_dataframe(sweep: Sweep) -> None:
    results = metalab.load_results(sweep.root)
    frame = results.to_dataframe()
    assert list(frame.columns[:6]) == LEADING_COLUMNS
    assert sorted(frame.columns[6:8]) == ["param_depth", "param_lr"]
    assert {"score", "loss", "draw"} <= set(frame.columns[8:])
    picked = results.filter(lr=0.2)
    assert len(picked) == 4
    assert {run.params["lr"] for run in picked} == {0.2}
    assert len(results.filter(lr=0.2, depth=2)) == 2
    assert len(results.filter(depth=[1, 2])) == 8
    assert len(results.filter(score=lambda s: s > 3.5)) == 2  # only lr=0.2, depth=2
    assert len(results.successful) == 8 and len(results.failed) == 0
    with pytest.raises(metalab.MetalabError, match=r"'lrr' is neither.*params: depth, lr"):
        results.filter(lrr=0.1)  # a typo is an error, not 0 runs
    summary = results.summary()
    assert summary["total_runs"] == 8 and summary["by_status"] == {"success": 8}
    assert results[1:3].to_dataframe()["run_id"].tolist() == sweep.layout.read_run_ids()[1:3]
    first = results[0]
    assert first.status == "success"
    assert first.seed == SeedBundle(7, 0)


# failing runs: records, onerror summary, status, retry -----------------------------------
FAILING_EXPERIMENT = """\
    from pathlib import Path

    import metalab

    FIXED = Path({marker!r})


    @metalab.operation
    def fit(params, capture):
        if params["lr"] == 0.5 and not FIXED.exists():
            raise ValueError("bad lr")
        capture.metric("score", params["lr"] * 2)


    experiment = metalab.Experiment(
        name="failing",
        version="1",
        context={{}},
        operation=fit,
        params=metalab.grid(lr=[0.1, 0.5, 1.0]),
        seeds=metalab.seeds(base=1),
    )
"""


def test_failed_run_is_recorded_summarised_reported_and_retried(tmp_path: Path) -> None:
    marker = tmp_path / "fixed.marker"
    _write(tmp_path / "exp.py", FAILING_EXPERIMENT.format(marker=str(marker)))
    _ok(_metalab(tmp_path, "compile", "exp.py", "--store", "S"))
    layout = ExperimentDir.at(tmp_path / "S" / "failing+1")
    run_ids = layout.read_run_ids()
    bad = run_ids[1]  # lr=0.5 is the second case

    first = _snakemake(layout.root)
    assert first.returncode != 0
    assert f"metalab: run {bad} failed: ValueError: bad lr" in first.stdout
    failed_record = read_json(layout.failed_record(bad))
    assert failed_record["status"] == "failed"
    assert failed_record["error"]["type"] == "ValueError"
    assert failed_record["error"]["message"] == "bad lr"
    assert 'raise ValueError("bad lr")' in failed_record["error"]["traceback"]
    assert failed_record["error"]["traceback"].rstrip().endswith("ValueError: bad lr")
    assert not layout.record(bad).exists()
    assert sorted(_mtimes(layout.runs_dir)) == sorted(f"{r}.json" for r in run_ids if r != bad)
    assert "ValueError: bad lr" in layout.log(bad).read_text()

    # the onerror hook still wrote the summary, failed row included
    frame = pd.read_parquet(layout.summary_dir / "runs.parquet")
    assert list(frame["run_id"]) == run_ids
    assert list(frame["status"]) == ["success", "failed", "success"]
    assert frame.loc[1, "error_type"] == "ValueError"
    assert frame.loc[1, "error_message"] == "bad lr"
    assert frame.loc[2, "score"] == pytest.approx(2.0)

    status = _ok(_metalab(tmp_path, "status", str(layout.root)))
    assert "failing:1: 3 runs: 2 done, 0 running, 1 failed, 0 pending" in status.stdout
    assert "  1 x failed ValueError: bad lr" in status.stdout
    assert f"    e.g. {bad}  lr=0.5" in status.stdout
    assert f"log: {os.path.relpath(layout.log(bad), tmp_path)}" in status.stdout
    every = _ok(_metalab(tmp_path, "status", str(layout.root), "--all")).stdout
    assert f"failed {bad}: ValueError: bad lr" in every
    assert "params: lr=0.5" in every and str(layout.log(bad)) in every

    results = Results(layout)
    assert len(results) == 3
    assert [run.run_id for run in results.failed] == [bad]
    assert sorted(run.run_id for run in results.successful) == sorted({*run_ids} - {bad})
    assert len(results.filter(status="failed")) == 1
    failed_run = results.failed[0]
    assert failed_run.status == "failed"
    assert failed_run.error["message"] == "bad lr"
    assert failed_run.params == {"lr": 0.5}
    assert results.summary()["by_status"] == {"success": 2, "failed": 1}

    # fix the cause without touching the code (run IDs stay), then run Snakemake again
    marker.write_text("fixed\n")
    before = _mtimes(layout.runs_dir)
    second = _snakemake(layout.root)
    assert second.returncode == 0, second.stdout
    assert _job_count(second.stdout, "metalab_run") == 1
    assert f"run_id={bad}" in second.stdout
    assert all(f"run_id={rid}" not in second.stdout for rid in run_ids if rid != bad)
    after = _mtimes(layout.runs_dir)
    assert {k: after[k] for k in before} == before
    assert read_json(layout.record(bad))["status"] == "success"
    assert not layout.failed_record(bad).exists()
    frame = pd.read_parquet(layout.summary_dir / "runs.parquet")
    assert list(frame["status"]) == ["success"] * 3
    assert frame["score"].tolist() == pytest.approx([0.2, 1.0, 2.0])
    status = _ok(_metalab(tmp_path, "status", str(layout.root)))
    assert status.stdout.strip() == "failing:1: 3 runs: 3 done, 0 running, 0 failed, 0 pending"
    assert len(Results(layout).failed) == 0


# refusals at run time ------------------------------------------------------------------
REFUSING_EXPERIMENT = """\
    import numpy as np

    import metalab


    @metalab.operation
    def misuse(params, capture):
        mode = params["mode"]
        if mode == "escape":
            capture.artifact("../x", 1)
        elif mode == "metric_list":
            capture.metric("m", [1, 2])
        elif mode == "data_set":
            capture.data("d", {"handle": object()})
        elif mode == "data_np_nan":
            capture.data("stats", {"mean": np.float64("nan"), "n": np.int64(3)})
        capture.metric("value", 1.0)


    experiment = metalab.Experiment(
        name="refusals",
        version="1",
        context={},
        operation=misuse,
        params=metalab.grid(mode=["ok", "escape", "metric_list", "data_set", "data_np_nan"]),
        seeds=metalab.seeds(base=3),
    )
"""


@dataclass
class Refusals:
    layout: ExperimentDir
    snakemake: subprocess.CompletedProcess[str]
    records: dict[object, dict]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Refusals:
    base = tmp_path_factory.mktemp("refusals")
    _write(base / "exp.py", REFUSING_EXPERIMENT)
    _ok(_metalab(base, "compile", "exp.py", "--store", "S"))
    layout = ExperimentDir.at(base / "S" / "refusals+1")
    done = _snakemake(layout.root)
    return Refusals(layout, done, _records_by(layout, "mode"))


def test_refusing_sweep_exits_nonzero_and_keeps_good_run(refusals: Refusals) -> None:
    assert refusals.snakemake.returncode != 0
    assert set(refusals.records) == {"ok", "escape", "metric_list", "data_set", "data_np_nan"}
    ok = refusals.records["ok"]
    assert ok["status"] == "success"
    assert ok["metrics"] == {"value": 1.0}
    assert refusals.layout.record(ok["run_id"]).is_file()


def test_artifact_name_escaping_the_run_directory_fails_the_run(refusals: Refusals) -> None:
    record = refusals.records["escape"]
    assert record["status"] == "failed"
    assert refusals.layout.failed_record(record["run_id"]).is_file()
    assert record["error"]["type"] == "CaptureError"
    assert "artifact name '../x' is not allowed" in record["error"]["message"]
    root = refusals.layout.root
    assert not list(root.glob("artifacts/x*")) and not list(root.glob("x*"))


def test_non_scalar_metric_fails_the_run(refusals: Refusals) -> None:
    record = refusals.records["metric_list"]
    assert record["status"] == "failed"
    assert record["error"]["type"] == "CaptureError"
    assert "metric 'm' must be a scalar" in record["error"]["message"]
    assert "got list" in record["error"]["message"]
    assert "value" not in record["metrics"]  # the run stopped at the refusal


def test_non_serialisable_data_fails_the_run(refusals: Refusals) -> None:
    record = refusals.records["data_set"]
    assert record["status"] == "failed"
    assert "not JSON-serialisable" in record["error"]["message"]


def test_data_with_numpy_nan_reads_back(refusals: Refusals) -> None:
    record = refusals.records["data_np_nan"]
    assert record["status"] == "success"
    run = next(r for r in Results(refusals.layout) if r.run_id == record["run_id"])
    stats = run.data("stats")
    assert math.isnan(stats["mean"]) and stats["n"] == 3


# recompiling: unchanged touches nothing; a new grid value runs only the new runs ----------
GROWING_EXPERIMENT = """\
    import metalab


    @metalab.operation
    def square(params, capture):
        capture.metric("square", params["x"] ** 2)


    experiment = metalab.Experiment(
        name="growing",
        version="1",
        context={{}},
        operation=square,
        params=metalab.grid(x={values}),
        seeds=metalab.seeds(base=5),
    )
"""


def test_recompile_unchanged_then_added_grid_value_runs_only_new_runs(tmp_path: Path) -> None:
    exp = _write(tmp_path / "exp.py", GROWING_EXPERIMENT.format(values=[1, 2]))
    _ok(_metalab(tmp_path, "compile", "exp.py", "--store", "S"))
    layout = ExperimentDir.at(tmp_path / "S" / "growing+1")
    _ok(_snakemake(layout.root))
    old = _mtimes(layout.runs_dir)
    assert len(old) == 2
    watched = [layout.snakefile, layout.run_table, layout.compiled]
    stamps = [p.stat().st_mtime_ns for p in watched]

    _ok(_metalab(tmp_path, "compile", "exp.py", "--store", "S"))
    assert [p.stat().st_mtime_ns for p in watched] == stamps
    again = _ok(_snakemake(layout.root))
    assert "Nothing to be done" in again.stdout
    assert _mtimes(layout.runs_dir) == old

    exp.write_text(textwrap.dedent(GROWING_EXPERIMENT.format(values=[1, 3, 2])))
    _ok(_metalab(tmp_path, "compile", "exp.py", "--store", "S"))
    run_ids = layout.read_run_ids()
    assert len(run_ids) == 3
    new = run_ids[1]
    assert f"{new}.json" not in old
    grown = _ok(_snakemake(layout.root))
    assert _job_count(grown.stdout, "metalab_run") == 1
    assert f"run_id={new}" in grown.stdout
    after = _mtimes(layout.runs_dir)
    assert {k: after[k] for k in old} == old
    assert set(after) == {f"{rid}.json" for rid in run_ids}
    frame = pd.read_parquet(layout.summary_dir / "runs.parquet")
    assert list(frame["run_id"]) == run_ids
    assert frame["param_x"].tolist() == [1, 3, 2]
    assert frame["square"].tolist() == [1, 9, 4]

    # dropping a value leaves its record on disk, reported as stale and left out of Results
    exp.write_text(textwrap.dedent(GROWING_EXPERIMENT.format(values=[1, 3])))
    _ok(_metalab(tmp_path, "compile", "exp.py", "--store", "S"))
    status = _ok(_metalab(tmp_path, "status", str(layout.root)))
    assert status.stdout.strip() == (
        "growing:1: 2 runs: 2 done, 0 running, 0 failed, 0 pending (1 stale records)"
    )
    assert layout.record(run_ids[2]).is_file()
    assert [run.params["x"] for run in Results(layout)] == [1, 3]


# metalab.run from a script ---------------------------------------------------------------
SCRIPT_EXPERIMENT = """\
    import os

    import metalab


    @metalab.operation
    def double(params, seeds, capture):
        capture.metric("double", params["x"] * 2)
        capture.metric("replicate", seeds.replicate_index)


    experiment = metalab.Experiment(
        name="scripted",
        version="2",
        context={},
        operation=double,
        params=metalab.grid(x=[1, 2]),
        seeds=metalab.seeds(base=11, replicates=2),
    )

    handle = metalab.run(
        experiment,
        store="S",
        executor=metalab.LocalExecutor(cores=2, chunk_size=2),
        resume=os.environ.get("RESUME", "1") == "1",
        progress=False,
    )
    results = handle.result(timeout=120)
    print("RESULTS", len(results), sorted(str(run.status) for run in results))
    print("DOUBLES", sorted(results.to_dataframe()["double"].tolist()))
"""


def _command_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("$ ")]


def test_metalab_run_script_resumes_and_reruns_without_resume(tmp_path: Path) -> None:
    script = _write(tmp_path / "sweep.py", SCRIPT_EXPERIMENT)
    layout = ExperimentDir.at(tmp_path / "S" / "scripted+2")
    snakemake_log = layout.meta_dir / "snakemake.log"

    first = _ok(_script(tmp_path, script))
    assert "RESULTS 4 ['success', 'success', 'success', 'success']" in first.stdout
    assert "DOUBLES [2, 2, 4, 4]" in first.stdout
    started = r"metalab: running 4 of 4 runs in S/scripted\+2\n  \(2 Snakemake jobs\b.*, 2 at once"
    assert re.search(started, first.stdout)
    assert len(_command_lines(snakemake_log)) == 1
    records = _mtimes(layout.runs_dir)
    assert sorted(records) == sorted(f"{rid}.json" for rid in layout.read_run_ids())
    assert len(records) == 4
    replicates = {
        read_json(layout.record(rid))["metrics"]["replicate"] for rid in layout.read_run_ids()
    }
    assert replicates == {0, 1}

    second = _ok(_script(tmp_path, script))
    assert "nothing to run" in second.stdout
    assert "RESULTS 4 " in second.stdout
    assert len(_command_lines(snakemake_log)) == 1  # no Snakemake started
    assert _mtimes(layout.runs_dir) == records

    third = _ok(_script(tmp_path, script, RESUME="0"))
    assert "RESULTS 4 " in third.stdout
    assert "metalab: running 4 of 4 runs" in third.stdout
    assert len(_command_lines(snakemake_log)) == 2
    rerun = _mtimes(layout.runs_dir)
    assert set(rerun) == set(records)
    assert all(rerun[name] > records[name] for name in records)
