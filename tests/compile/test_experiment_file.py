"""Jobs import a snapshot of the experiment file, but ``__file__``, ``sys.path[0]`` and
relative imports behave as when the user runs the file (issue 24)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import metalab
from metalab_smk.compile.compiler import compile_experiment
from metalab_smk.compile.reader import CompiledExperiment
from metalab_smk.store.layout import ExperimentDir
from tests.process_env import run_metalab, subprocess_env

NEXT_TO_IT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import metalab
    from helpers import SCALE  # a module next to the file (sys.path[0])

    DATA = Path(__file__).parent / "train.csv"


    @metalab.operation
    def op(params, capture):
        rows = DATA.read_text().split()
        capture.metric("total", sum(int(r) for r in rows) * SCALE * params["x"])
        capture.data("where", {{"file": __file__, "path0": sys.path[0]}})


    exp = metalab.Experiment(name={name!r}, version="1", context={{"data": metalab.FilePath(DATA)}},
        operation=op, params=metalab.grid(x=[1, 2, 3]), seeds=metalab.seeds(1))
    """
)


def write_project(folder: Path, name: str) -> Path:
    """An experiment file reading ``train.csv`` next to it via ``__file__``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text("1\n2\n3\n")
    (folder / "helpers.py").write_text("SCALE = 10\n")
    path = folder / "exp.py"
    path.write_text(NEXT_TO_IT.format(name=name))
    return path


def check_runs(exp_dir: Path, project: Path, path0: Path | None = None) -> None:
    """Every run read the data next to the original file, saw it as ``__file__`` and
    ``path0`` (default: its folder) as ``sys.path[0]``."""
    layout = ExperimentDir.at(exp_dir)
    records = [json.loads(p.read_text()) for p in layout.runs_dir.glob("*.json")]
    assert sorted(r["metrics"]["total"] for r in records) == [60, 120, 180]
    assert sorted(r["run_id"] for r in records) == sorted(layout.read_run_ids())
    for record in records:
        where = json.loads(layout.data_file(record["run_id"], "where").read_text())
        assert Path(where["data"]["file"]).resolve() == project / "exp.py"
        assert where["data"]["path0"] == str(path0 or project)


def test_snapshot_loads_under_the_original_path(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "project"
    path = write_project(project, "nextto")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setattr(sys, "path", list(sys.path))
    from metalab_smk.compile.loader import load_experiment_file

    layout = compile_experiment(load_experiment_file(path).select(None, path), tmp_path / "s")
    run_ids = layout.read_run_ids()
    path.write_text(path.read_text().replace("sum(int(r)", "max(int(r)"))  # edited later
    experiment = CompiledExperiment.read(layout).load_experiment()
    module = sys.modules[experiment.operation.fn.__module__]
    assert module.__file__ == str(path)
    assert str(module.DATA) == str(project / "train.csv")
    assert sys.path[0] == str(project)
    assert metalab.Plan(experiment).run_table() == run_ids
    assert "sum(int(r)" in inspect.getsource(experiment.operation.fn)  # the snapshot's code


@pytest.mark.integration
def test_data_next_to_the_file_local_packed_run(tmp_path: Path) -> None:
    """``metalab run`` from another directory: packed jobs read ``train.csv`` next to
    the original file, and import its sibling module."""
    project = tmp_path / "project"
    write_project(project, "nextto")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_metalab(elsewhere, "run", "../project/exp.py", "--chunk-size", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    check_runs(elsewhere / "runs" / "nextto+1", project)


@pytest.mark.integration
def test_relative_imports_of_python_dash_m(tmp_path: Path) -> None:
    """``python -m pkg.exp`` with ``from .helpers import ...``: jobs resolve the relative
    import as the user's run did."""
    package = tmp_path / "pkg"
    path = write_project(package, "relative")
    (package / "__init__.py").write_text("")
    text = path.read_text().replace("from helpers import", "from .helpers import")
    path.write_text(text + "\nmetalab.run(exp, progress=False).result()\n")
    done = subprocess.run(
        [sys.executable, "-m", "pkg.exp"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    check_runs(tmp_path / "runs" / "relative+1", package, path0=tmp_path)
