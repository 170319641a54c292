"""The first hour: one-line errors, bounded status, the closing table, `metalab plan`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from metalab_smk.cli import build_parser, main
from metalab_smk.compile.compiler import compile_experiment
from metalab_smk.compile.loader import load_experiment_file
from metalab_smk.compile.reader import CompiledExperiment
from metalab_smk.results.display import case_table
from metalab_smk.store.layout import ExperimentDir

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = """\
import metalab
{imports}

def helper(x):
    return x + 1


@metalab.operation
def op(params, seeds, capture):
    if params["x"] == {fail}:
        raise ValueError("x is bad")
    capture.metric("y", helper(params["x"]) + seeds.replicate_index)


exp = metalab.Experiment(name={name!r}, version="1", context={{}}, operation=op,
    params=metalab.grid(x={xs}), seeds=metalab.seeds(base=1, replicates={reps}))
"""


def _write(path: Path, name: str = "demo", xs=(1, 2), reps: int = 2, fail=-1, imports=""):
    path.write_text(
        EXPERIMENT.format(name=name, xs=list(xs), reps=reps, fail=fail, imports=imports)
    )
    return path


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _compile(path: Path, store: str = "runs") -> ExperimentDir:
    return compile_experiment(load_experiment_file(path).select(None, path), store)


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    assert "Traceback" not in err and "importlib" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


# errors in one line -------------------------------------------------------------------
def test_syntax_error_names_the_users_file_and_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.py").write_text("import metalab\nx = = 1\n")
    for command in ("run", "compile", "plan", "submit"):
        err = _one_line_error(*_cli(capsys, command, "exp.py")[::2])
        assert "exp.py, line 2: SyntaxError: invalid syntax: `x = = 1`" in err


def test_import_error_in_a_local_module_names_both_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "helpers_bad.py").write_text("def f():\n    return 1\nundefined_name\n")
    (tmp_path / "exp.py").write_text("import metalab\n\nimport helpers_bad\n")
    err = _one_line_error(*_cli(capsys, "run", "exp.py")[::2])
    assert (
        "helpers_bad.py, line 3 (imported from exp.py, line 3): NameError: "
        "name 'undefined_name' is not defined"
    ) in err
    assert "metalab_smk" not in err
    (tmp_path / "exp2.py").write_text("import no_such_module_here\n")
    err = _one_line_error(*_cli(capsys, "compile", "exp2.py")[::2])
    assert "exp2.py, line 1: ModuleNotFoundError: No module named 'no_such_module_here'" in err


def test_every_wrong_path_says_what_it_is(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _compile(_write(tmp_path / "a.py", name="alpha"))
    _compile(_write(tmp_path / "b.py", name="beta"))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    cases = {
        ("status", "runs"): "runs is a store holding 2 experiments: runs/alpha+1, runs/beta+1",
        ("status", "runs/typo"): "runs/typo does not exist; expected an experiment directory",
        ("status", "a.py"): "a.py is an experiment file; this command expects its experiment "
        "directory: run it with `metalab run a.py`",
        ("status", "notes.txt"): "notes.txt is a file; expected an experiment directory",
        ("status", "empty"): "empty is a directory but not an experiment directory",
        ("collect", "runs/nope"): "runs/nope does not exist",
        ("results", "runs/nope"): "runs holds: runs/alpha+1, runs/beta+1",
        ("results", "runs"): "or add --experiment NAME:VERSION",
        ("results", "runs", "--experiment", "gamma"): "runs has no experiment 'gamma'; it "
        "holds: alpha:1, beta:1",
        ("run", "a.py", "--store", "a.py"): "--store a.py: a.py is a file; the store is a "
        "directory",
        ("run", "runs"): "runs is a directory; this command expects the experiment's Python",
        ("run", "missing.py"): "experiment file missing.py does not exist",
        ("results", "runs/alpha+1", "--csv", "no/such/dir/out.csv"): "cannot write "
        "no/such/dir/out.csv",
    }
    for args, expected in cases.items():
        code, _out, err = _cli(capsys, *args)
        assert expected in _one_line_error(code, err), (args, err)
    # a store holding one experiment is that experiment
    code, out, _ = _cli(capsys, "status", "runs", "--experiment", "alpha")
    assert code == 0 and out.startswith("alpha:1: 4 runs: 0 done")


def test_too_long_name_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "long.py", name="n" * 300)
    err = _one_line_error(*_cli(capsys, "run", "long.py")[::2])
    assert "use a shorter name or version" in err


# the parser ---------------------------------------------------------------------------
def test_bare_metalab_shows_help_and_exits_2(capsys):
    code, out, err = _cli(capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: metalab") and "metalab run exp.py" in err


def test_every_option_has_help_and_show_is_gone(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "show" not in subparsers.choices
    assert set(subparsers.choices) >= {"run", "plan", "status", "results", "profile"}
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"metalab {name} {action.dest} has no help"
    with pytest.raises(SystemExit) as raised:
        main(["show", "runs"])
    assert raised.value.code == 2


def test_profile_slurm_writes_the_shipped_template(tmp_path, capsys):
    code, out, _ = _cli(capsys, "profile", "slurm", str(tmp_path / "prof"))
    assert code == 0 and "metalab submit exp.py --profile" in out
    written = (tmp_path / "prof" / "config.yaml").read_text()
    shipped = REPO / "metalab_smk" / "workflow" / "profiles" / "slurm" / "config.yaml"
    assert written == shipped.read_text()
    assert "executor: metalab-slurm" in written
    assert (REPO / "profiles" / "slurm" / "config.yaml").read_text() == written
    code, _, err = _cli(capsys, "profile", "slurm", str(tmp_path / "prof"))
    assert "exists; pass --force" in _one_line_error(code, err)
    assert _cli(capsys, "profile", "slurm", str(tmp_path / "prof"), "--force")[0] == 0


# status -------------------------------------------------------------------------------
def test_status_groups_200_failures_in_at_most_40_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    layout = _compile(_write(tmp_path / "many.py", name="many", xs=range(100), reps=2))
    layout.failed_dir.mkdir()
    for index, run_id in enumerate(layout.read_run_ids()):
        x = index // 2
        error = (
            {"type": "ValueError", "message": "x is bad"}
            if x % 4
            else {"type": "KeyError", "message": f"'missing key {x}'"}
        )
        record = {"run_id": run_id, "experiment_id": "many:1", "status": "failed", "error": error}
        record["params_resolved"] = {"x": x}
        layout.failed_record(run_id).write_text(json.dumps(record))
    code, out, _ = _cli(capsys, "status", "runs/many+1")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) <= 40, out
    assert all(len(line) <= 80 for line in lines if "log:" not in line), out
    assert lines[0] == "many:1: 200 runs: 0 done, 0 running, 200 failed, 0 pending"
    assert "  150 x failed ValueError: x is bad" in lines
    assert "  50 x failed KeyError: 'missing key 0' (and similar)" in lines
    assert any(line.startswith("    e.g. ") and "  x=1" in line for line in lines)
    assert "    ... and 147 more" in lines
    code, out, _ = _cli(capsys, "status", "runs/many+1", "--all")
    assert out.count("failed ") >= 200 and out.count("params: x=") == 200


# the closing table --------------------------------------------------------------------
def test_case_table_params_first_mean_std_fits_80_columns():
    rows = []
    for lr in (0.1, 0.01):
        for rep in range(3):
            metrics = {f"metric_number_{i}": lr * (rep + 1) + i for i in range(12)}
            rows.append({"run_id": f"{lr}{rep}", "status": "success", "param_lr": lr, **metrics})
    rows.append({"run_id": "f", "status": "failed", "param_lr": 0.5})
    text = case_table(pd.DataFrame(rows))
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert lines[0].split()[:3] == ["lr", "ok", "metric_number_0"]
    assert lines[1].split()[:5] == ["0.1", "3/3", "0.2", "±", "0.1"]
    assert lines[3].split() == ["0.5", "0/1"] + ["-"] * (len(lines[0].split()) - 2)
    assert lines[-1].startswith("not shown: ")


def test_metalab_run_ends_with_table_and_next_steps(tmp_path):
    _write(tmp_path / "exp.py", name="closing", xs=(1, 2, 3), reps=2, fail=3)
    done = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "run", "exp.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # x=3 fails
    out = done.stdout
    report = out[out.index("failures by error:") :].splitlines()
    assert all(len(line) <= 80 for line in report), out
    assert "  2 x failed ValueError: x is bad" in report
    assert "6 runs: 4 done, 2 failed" in report
    header = report.index("6 runs: 4 done, 2 failed") + 1
    assert report[header].split() == ["x", "ok", "y"]
    assert report[header + 1].split() == ["1", "2/2", "2.5", "±", "0.71"]
    assert report[header + 3].split() == ["3", "0/2", "-"]
    assert "results: runs/closing+1/  (summary/runs.parquet, runs/, logs/)" in report
    for command in ("status", "results", "ui"):
        assert any(line.startswith(f"  metalab {command} runs/closing+1") for line in report)
    assert "Traceback" not in out
    # the run log's traceback names the user's file, not the snapshot
    layout = ExperimentDir.at(tmp_path / "runs" / "closing+1")
    failed = next(layout.failed_dir.glob("*.json"))
    traceback = json.loads(failed.read_text())["error"]["traceback"]
    assert f'File "{tmp_path / "exp.py"}", line 11, in op' in traceback
    assert 'raise ValueError("x is bad")' in traceback and "snapshot" not in traceback


def test_compile_names_the_packed_path_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "exp.py")
    code, out, _ = _cli(capsys, "compile", "exp.py")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "compiled 'demo:1': 4 runs in runs/demo+1"
    assert lines[2].startswith("  metalab run exp.py")
    assert lines[3].startswith("  metalab submit exp.py --profile DIR")
    assert "packs them alike" in lines[4] and "--profile slurm" in lines[5]
    assert lines[6] == "  cd runs/demo+1 && snakemake"  # the workflow profile: all cores


# snapshot traceback and fingerprint ---------------------------------------------------
def test_snapshot_is_compiled_under_the_users_file_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / "snap.py", name="snap")
    layout = _compile(path)
    run_ids = layout.read_run_ids()
    path.write_text("# edited after compile\n" + path.read_text())
    experiment = CompiledExperiment.read(layout).load_experiment()
    assert experiment.operation.fn.__code__.co_filename == str(path)
    from metalab_smk.core.plan import Plan

    assert Plan(experiment).run_table() == run_ids  # the snapshot's source, not the edit


# metalab plan -------------------------------------------------------------------------
def test_plan_counts_and_explains_reuse_and_reruns(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "localmod.py").write_text("SCALE = 2\n")
    path = _write(tmp_path / "exp.py", name="why", xs=(1, 2), imports="import localmod")
    code, out, _ = _cli(capsys, "plan", "exp.py")
    assert code == 0 and "4 new (would run), 0 failed (would rerun), 0 done" in out
    assert "first compile of this name:version here." in out
    layout = _compile(path)
    ids = layout.read_run_ids()
    layout.runs_dir.mkdir()
    layout.failed_dir.mkdir()
    layout.record(ids[0]).write_text("{}")
    layout.failed_record(ids[1]).write_text("{}")
    code, out, _ = _cli(capsys, "plan", "exp.py")
    assert "  2 new (would run), 1 failed (would rerun), 1 done (reused)" in out
    assert "run IDs are the same as at the last compile." in out
    assert "warning" not in out

    # code outside the operation changes: a warning, run IDs unchanged
    (tmp_path / "localmod.py").write_text("SCALE = 3\n")
    path.write_text(path.read_text().replace("return x + 1", "return x + 2"))
    code, out, _ = _cli(capsys, "plan", "exp.py")
    assert "1 done (reused)" in out
    assert (
        "warning: code outside the operation changed since the last compile (exp.py, "
        "localmod.py) but the run IDs did not: results are reused; bump the version or set "
        "@metalab.operation(code_version=...) to recompute."
    ) in " ".join(out.split())
    assert all(len(line) <= 80 for line in out.splitlines())
    code, out, err = _cli(capsys, "compile", "exp.py")  # run/compile warn too, once
    assert "metalab: warning: code outside the operation changed" in " ".join(err.split())
    assert "warning" not in _cli(capsys, "plan", "exp.py")[1]

    # identity parts change: named, with a short diff
    text = path.read_text().replace("x=[1, 2]", "x=[1, 3]").replace("base=1", "base=5")
    path.write_text(text.replace('capture.metric("y"', 'capture.metric("z"'))
    code, out, _ = _cli(capsys, "plan", "exp.py")
    assert "run IDs changed since the last compile: operation code, params, seeds" in out
    assert '-    capture.metric("y", helper' in out and '+    capture.metric("z"' in out
    assert "-   2" in out and "+   3" in out
    assert "base 1 -> 5, replicates 2 -> 2" in out
    assert "4 new (would run)" in out and "2 records of runs no longer in the plan" in out


# a killed driver does not leave Snakemake behind -----------------------------------------
DRIVER = """\
import sys, time
from pathlib import Path
from metalab_smk.sweep.processes import start_detached
child = start_detached(
    [sys.executable, "-c", "import time; time.sleep(120)", "snakemake"],
    Path(sys.argv[1]), Path(sys.argv[1]) / "driver.log", tie_to_parent=sys.argv[2] == "tie",
)
print(child.pid, flush=True)
time.sleep(120)
"""


def _start_driver(directory: Path, mode: str) -> tuple[subprocess.Popen, int]:
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(directory), mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return driver, int(driver.stdout.readline())


def _gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]:
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")
def test_snakemake_tied_to_its_driver_ends_when_the_driver_is_killed(tmp_path):
    driver, child = _start_driver(tmp_path, "tie")
    driver.kill()
    driver.wait()
    assert _gone(child)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")
def test_next_driver_ends_snakemake_left_by_a_killed_driver(tmp_path):
    from metalab_smk.sweep.locks import end_orphaned_snakemake, live_snakemake_pids

    driver, child = _start_driver(tmp_path, "free")
    assert end_orphaned_snakemake(tmp_path, grace=5) == []  # its driver is alive
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert live_snakemake_pids(tmp_path) == [child]
    assert end_orphaned_snakemake(tmp_path, grace=5) == [child]
    assert _gone(child)


# the README's set-up, in a fresh clone and virtual environment ---------------------------
@pytest.mark.slow
def test_readme_setup_in_a_fresh_venv_runs_the_quickstart(tmp_path):
    readme = (REPO / "README.md").read_text()
    setup = 'pip install -e ".[dev]" && python examples/quickstart.py'
    assert setup in readme
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    bin_dir = tmp_path / "venv" / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-c", setup.replace("pip install", "pip install -q")],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "18 runs: 18 done" in out
    assert "epochs  learning_rate   ok" in out
    assert "  metalab status runs/hyperparameter_sweep+1.0" in out
    assert all(len(line) <= 80 for line in out[out.index("18 runs: 18 done") :].splitlines())
    again = subprocess.run(
        [str(bin_dir / "python"), "examples/quickstart.py"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "nothing to run (results: runs/hyperparameter_sweep+1.0)" in again.stdout
    status = subprocess.run(
        [str(bin_dir / "metalab"), "status", "runs"], cwd=clone, env=env, capture_output=True
    )
    assert status.returncode == 0
    assert b"18 runs: 18 done" in status.stdout
    optional = "import zstandard, starlette, uvicorn, psycopg, rich, playwright, httpx, hypothesis"
    optional += "; import snakemake_executor_plugin_slurm"
    imported = subprocess.run([str(bin_dir / "python"), "-c", optional], capture_output=True)
    assert imported.returncode == 0, imported.stderr  # the dev extra holds what tests use
    git_status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True
    )
    assert git_status.stdout == ""  # generated folders are ignored


def test_the_dev_extra_is_the_tests_plus_every_optional_extra():
    """The README's install command (also `.ci/run`'s) installs what the test command needs."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    (dev,) = extras.pop("dev")
    name, _, listed = dev.rstrip("]").partition("[")
    assert name == project["name"] and sorted(listed.split(",")) == sorted(extras)
    assert 'pip install -e ".[dev]"' in (REPO / "README.md").read_text()
    assert 'pip install --quiet -e ".[dev]"' in (REPO / ".ci" / "run").read_text()


def test_slurm_tests_skip_without_the_executor_plugin(monkeypatch):
    import importlib.util

    monkeypatch.syspath_prepend(str(REPO / "tests"))
    import tests.cluster.test_slurm as test_slurm

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    reason = test_slurm._cluster_ready()
    assert reason is not None and "SLURM executor plugin is not installed" in reason


# damaged stores: one line with the fix, exit 2, nothing written --------------------------
def _metalab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METALAB_HASH_CACHE": str(cwd / "hash.sqlite")}
    command = [sys.executable, "-m", "metalab_smk.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _one_error_line(done: subprocess.CompletedProcess[str], command: str, text: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"metalab {command}: error: ") and text in done.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A store whose sweep finished (copied by each test that damages it)."""
    cwd = tmp_path_factory.mktemp("finished")
    _write(cwd / "demo.py")
    assert _metalab(cwd, "run", "demo.py", "--store", "runs").returncode == 0
    return cwd


@pytest.mark.integration
def test_damaged_store_files_are_one_line_each_and_nothing_is_written(finished, tmp_path):
    import shutil

    from store_helpers import file_hashes

    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    layout = ExperimentDir.at(tmp_path / "runs" / "demo+1")
    layout.run_table.unlink()
    before = file_hashes(tmp_path / "runs")
    for command in ("status", "results", "collect"):
        done = _metalab(tmp_path, command, "runs/demo+1")
        _one_error_line(done, command, "run_ids.txt is missing; `metalab run FILE`")
    assert file_hashes(tmp_path / "runs") == before
    assert _metalab(tmp_path, "run", "demo.py", "--store", "runs").returncode == 0  # rewrites it

    layout.head_file.write_text('{"kind": "loc')
    before = file_hashes(tmp_path / "runs")
    _one_error_line(_metalab(tmp_path, "status", "runs/demo+1"), "status", "head.json is damaged")
    assert file_hashes(tmp_path / "runs") == before
    done = _metalab(tmp_path, "stop", "runs/demo+1")  # still stops what runs here
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "metalab stop: " in done.stdout and "head.json is damaged" in done.stdout
    layout.head_file.unlink()

    layout.compiled.write_text("garbage")
    before = file_hashes(tmp_path / "runs")
    _one_error_line(_metalab(tmp_path, "status", "runs/demo+1"), "status", "compiled.json is")
    assert file_hashes(tmp_path / "runs") == before
    done = _metalab(tmp_path, "run", "demo.py", "--store", "runs")  # compiling rewrites it
    assert done.returncode == 0 and "compiled.json is damaged" in done.stderr, done.stderr
    assert json.loads(layout.compiled.read_text())["experiment_id"] == "demo:1"


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (PermissionError(13, "Permission denied", "runs/x/.metalab/runner.lock"), "cannot write"),
        (OSError(30, "Read-only file system", "runs/x/summary"), "a read-only store?"),
        (OSError(28, "No space left on device"), "error: no space left on device\n"),
        (FileNotFoundError(2, "No such file", "runs/x/.metalab"), "deleted or moved while"),
    ],
)
def test_file_system_errors_are_one_line(capsys, monkeypatch, tmp_path, error, line) -> None:
    import metalab_smk.results.summary as summary

    def fail(argv):
        raise error

    layout = _compile(_write(tmp_path / "e.py", name="e"), str(tmp_path / "runs"))
    monkeypatch.setattr(summary, "main", fail)
    code, _, err = _cli(capsys, "collect", str(layout.root))
    assert code == 2 and err.count("\n") == 1 and line in err and ": : " not in err, err


def test_a_killed_snakemake_is_named_by_its_signal(tmp_path) -> None:
    from metalab_smk.sweep.outcome import failure_cause

    layout = _compile(_write(tmp_path / "k.py", name="k"), str(tmp_path / "runs"))
    layout.snakemake_log.write_text("Select jobs to execute...\n")
    cause = failure_cause(layout, -signal.SIGKILL)
    assert cause.startswith("snakemake was killed by SIGKILL (0 of 4 runs done"), cause
    assert "Select jobs" not in cause


ODD_RUNS = """\
import metalab

@metalab.operation(code_version="1")
def op(params, seeds, capture):
    if params["x"] == 2:
        raise KeyboardInterrupt("raised by the run")
    if params["x"] == 3:
        return 42
    capture.metric("y", params["x"])

exp = metalab.Experiment(name="odd", version="1", context={}, operation=op,
    params=metalab.grid(x=[1, 2, 3, 4]), seeds=metalab.seeds(1))
"""


@pytest.mark.integration
def test_a_run_raising_keyboardinterrupt_fails_alone_and_a_non_dict_return_warns(tmp_path):
    (tmp_path / "odd.py").write_text(ODD_RUNS)
    done = _metalab(tmp_path, "run", "odd.py", "--store", "runs", "--chunk-size", "4")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "KeyboardInterrupt: raised by the run" in done.stderr
    layout = ExperimentDir.at(tmp_path / "runs" / "odd+1")
    records = {rid: json.loads(layout.record(rid).read_text()) for rid in layout.done_ids()}
    (failed_id,) = layout.failed_ids()
    failed = json.loads(layout.failed_record(failed_id).read_text())
    assert failed["error"]["type"] == "KeyboardInterrupt" and failed["params_resolved"]["x"] == 2
    assert len(records) == 3  # the batch went on
    warned = [r for r in records.values() if r["warnings"]]
    assert [r["params_resolved"]["x"] for r in warned] == [3]
    message = "the operation returned a value of type int, not a dict of metrics or None"
    assert warned[0]["warnings"][0]["message"].startswith(message)
    assert message in layout.log(warned[0]["run_id"]).read_text()


@pytest.mark.parametrize(
    ("definition", "line"),
    [
        ('name="a\\x00b", version="1", params=metalab.grid(x=[1])', "name='a\\x00b') contains"),
        ('name="a", version="1", params=metalab.grid(**{"x\\x00": [1]})', "grid(): the param"),
        ('name="a", version="1", params=metalab.manual([{"x\\n": 1}])', "control character"),
    ],
)
def test_a_control_character_in_a_name_is_refused_at_definition(tmp_path, definition, line):
    source = EXPERIMENT.split("exp = ")[0].format(fail=-1, imports="")
    source += f"exp = metalab.Experiment({definition}, context={{}}, operation=op,\n"
    source += "    seeds=metalab.seeds(1))\n"
    (tmp_path / "bad.py").write_text(source)
    done = _metalab(tmp_path, "run", "bad.py", "--store", "runs")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert line in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.integration
def test_metalab_deleted_mid_sweep_is_one_line(tmp_path) -> None:
    import shutil

    source = EXPERIMENT.replace(
        "def op(params, seeds, capture):",
        "def op(params, seeds, capture):\n    import time; time.sleep(0.5)",
    )
    (tmp_path / "slow.py").write_text(
        source.format(name="slow", xs=list(range(8)), reps=2, fail=-1, imports="")
    )
    env = {**os.environ, "METALAB_HASH_CACHE": str(tmp_path / "hash.sqlite")}
    command = [sys.executable, "-m", "metalab_smk.cli", "run", "slow.py", "--store", "runs"]
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    meta = tmp_path / "runs" / "slow+1" / ".metalab"
    deadline = time.monotonic() + 60
    while not list((tmp_path / "runs" / "slow+1" / "runs").glob("*.json")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    shutil.rmtree(meta)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err and "Exception in" not in err, err
    assert err.count("\n") == 1 and "run_ids.txt is missing; `metalab run FILE`" in err, err
