"""`--json` on status, plan and results (docs/cli-json.md), and `metalab run FILE -- ARGS`."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from process_env import run_metalab

from metalab_smk.cli import main
from metalab_smk.cli_json import dumps
from metalab_smk.store.layout import ExperimentDir

pytestmark = pytest.mark.integration

# An experiment file that parses its own arguments, as scripts run with `python exp.py ...`
EXPERIMENT = textwrap.dedent(
    """
    import argparse
    import sys

    import metalab

    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--fail", type=int, default=-1)
    args = parser.parse_args()
    print("argv:", sys.argv, file=sys.stderr)


    @metalab.operation
    def op(params, seeds, capture):
        if params["x"] == args.fail:
            raise ValueError("x is bad")
        capture.metric("y", params["x"] * args.scale)
        capture.metric("nothing", float("nan"))


    exp = metalab.Experiment(name="cli", version="1", context={}, operation=op,
        params=metalab.grid(x=[1, 2, 3]), seeds=metalab.seeds(base=1, replicates=1))
    """
)
STATUS_FIELDS = [
    "schema", "experiment_id", "directory", "total", "done", "failed", "running", "pending",
    "stale", "complete", "failed_runs", "head",
]  # fmt: skip
FAILED_RUN_FIELDS = [
    "run_id", "status", "error_type", "message", "params", "log", "slurm_state", "slurm_log",
]  # fmt: skip
PLAN_FIELDS = [
    "schema", "experiment_id", "directory", "total", "new", "failed", "done", "stale",
    "compiled_before", "other_versions", "changes", "warning", "learned_resources",
]  # fmt: skip
RESULTS_FIELDS = ["schema", "experiment_id", "directory", "params", "metrics", "runs"]
RUN_FIELDS = ["run_id", "status", "duration_ms", "started_at", "finished_at", "params", "metrics"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``metalab run exp.py --cores 2 -- --scale 3 --fail 2`` done in a fresh folder."""
    base = tmp_path_factory.mktemp("clijson")
    (base / "exp.py").write_text(EXPERIMENT)
    done = run_metalab(base, "run", "exp.py", "--cores", "2", "--", "--scale", "3", "--fail", "2")
    assert done.returncode == 1, done.stderr  # x=2 fails, as the arguments asked
    assert "argv: ['exp.py', '--scale', '3', '--fail', '2']" in done.stderr
    return base


def _json(cwd: Path, *args: str) -> dict:
    done = run_metalab(cwd, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_run_passes_the_arguments_after_double_dash_to_the_file_and_its_jobs(swept):
    results = _json(swept, "results", "runs/cli+1", "--json")
    by_x = {run["params"]["x"]: run for run in results["runs"]}
    assert {x: run["metrics"]["y"] for x, run in by_x.items()} == {1: 3.0, 2: None, 3: 9.0}
    assert by_x[2]["status"] == "failed"
    compiled = json.loads((swept / "runs" / "cli+1" / ".metalab" / "compiled.json").read_text())
    assert compiled["argv"] == ["exp.py", "--scale", "3", "--fail", "2"]


def test_status_json_has_the_documented_fields(swept):
    status = _json(swept, "status", "runs/cli+1", "--json")
    assert list(status) == STATUS_FIELDS
    assert (status["schema"], status["experiment_id"]) == (1, "cli:1")
    assert status["directory"] == str(swept / "runs" / "cli+1")
    counts = [status[k] for k in ("total", "done", "failed", "running", "pending", "stale")]
    assert counts == [3, 2, 1, 0, 0, 0] and status["complete"] is False
    (failed,) = status["failed_runs"]
    assert list(failed) == FAILED_RUN_FIELDS
    assert (failed["status"], failed["error_type"], failed["message"]) == (
        "failed",
        "ValueError",
        "x is bad",
    )
    assert failed["params"] == {"x": 2} and Path(failed["log"]).is_file()
    assert status["head"] is None


def test_results_json_has_the_documented_fields_and_strict_values(swept):
    done = run_metalab(swept, "results", "runs/cli+1", "--json")
    results = json.loads(done.stdout, parse_constant=pytest.fail)  # no NaN / Infinity
    assert list(results) == RESULTS_FIELDS
    assert (results["params"], results["metrics"]) == (["x"], ["y", "nothing"])
    assert len(results["runs"]) == 3
    for run in results["runs"]:
        assert list(run) == RUN_FIELDS and run["metrics"]["nothing"] is None
        assert datetime.fromisoformat(run["started_at"]).tzinfo is not None


def test_plan_json_before_and_after_a_compile(swept, tmp_path):
    plan = _json(swept, "plan", "exp.py", "--json", "--", "--scale", "3")
    assert list(plan) == PLAN_FIELDS
    assert [plan[k] for k in ("total", "new", "failed", "done", "stale")] == [3, 0, 1, 2, 0]
    assert plan["compiled_before"] is True and plan["changes"] == []
    (tmp_path / "exp.py").write_text(EXPERIMENT)
    fresh = _json(tmp_path, "plan", "exp.py", "--json", "--store", "elsewhere")
    assert (fresh["new"], fresh["compiled_before"]) == (3, False)
    assert fresh["directory"] == str(tmp_path / "elsewhere" / "cli+1")
    assert not (tmp_path / "elsewhere").exists()  # a plan writes nothing


def test_status_json_reports_the_submitted_head(swept, capsys, monkeypatch):
    monkeypatch.chdir(swept)
    layout = ExperimentDir.at(swept / "runs" / "cli+1")
    layout.head_file.write_text(json.dumps({"log": str(swept / "head.log")}))
    try:
        layout.head_state.write_text(json.dumps({"state": "failed", "error": "no profile"}))
        assert main(["status", "runs/cli+1", "--json"]) == 0
        head = json.loads(capsys.readouterr().out)["head"]
        assert head == {"state": "failed", "error": "no profile", "log": str(swept / "head.log")}
        layout.head_state.write_text(json.dumps({"state": "finished"}))
        assert main(["status", "runs/cli+1"]) == 0
        assert "submitted head process: finished (log: head.log)" in capsys.readouterr().out
    finally:
        layout.head_file.unlink()
        layout.head_state.unlink()


def test_an_argparse_file_sees_only_its_own_arguments(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.py").write_text(EXPERIMENT)
    before = list(sys.argv)
    assert main(["plan", "exp.py", "--store", "s"]) == 0  # argparse sees no metalab option
    assert "argv: ['exp.py']" in capsys.readouterr().err
    assert main(["plan", "exp.py", "--", "--scale", "2"]) == 0
    assert "argv: ['exp.py', '--scale', '2']" in capsys.readouterr().err
    assert sys.argv == before  # restored


def test_arguments_after_double_dash_are_refused_where_there_is_no_file(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["status", "runs/x", "--", "--scale", "2"])
    assert exit_.value.code == 2
    assert "`metalab status` takes no arguments after --" in capsys.readouterr().err


def test_json_values_are_plain():
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    document = {
        "a": np.float64("nan"),
        "b": [np.int64(3), math.inf, np.array([1.5, np.nan])],
        "c": pd.Timestamp(stamp),
        "d": stamp,
        "e": Path("p"),
    }
    assert json.loads(dumps(document)) == {
        "a": None,
        "b": [3, None, [1.5, None]],
        "c": "2026-01-02T03:04:05+00:00",
        "d": "2026-01-02T03:04:05+00:00",
        "e": "p",
    }
