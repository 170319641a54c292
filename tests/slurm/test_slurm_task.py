"""The job side of metalab's SLURM arrays, without a cluster: a task run by hand with
SLURM_ARRAY_TASK_ID set, the run-ID check, bytecode written once at submission."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path

from metalab_smk.slurm import bytecode
from metalab_smk.slurm.array import array_argv
from metalab_smk.slurm.config import SlurmConfig
from metalab_smk.store.layout import ExperimentDir

EXPERIMENT = textwrap.dedent(
    """
    import metalab

    @metalab.operation
    def op(params, capture):
        capture.metric("y", params["x"] * 2)

    exp = metalab.Experiment(name="tasks", version="1", context={}, operation=op,
        params=metalab.grid(x=list(range(6))), seeds=metalab.seeds(1))
    """
)


def _compiled(tmp_path: Path) -> ExperimentDir:
    (tmp_path / "exp.py").write_text(EXPERIMENT)
    done = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "compile", "exp.py", "--store", "S"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    layout = ExperimentDir.at(tmp_path / "S" / "tasks+1")
    layout.batches_dir.mkdir(parents=True, exist_ok=True)
    layout.batch_listing("STAMP-000000").write_text("0\n1\n2\n")
    layout.batch_listing("STAMP-000001").write_text("3\n4\n5\n")
    return layout


def _task(layout: ExperimentDir, task: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["SLURM_ARRAY_TASK_ID"] = str(task)
    return subprocess.run(
        [sys.executable, "-m", "metalab_smk.worker", "task", "STAMP"],
        cwd=layout.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_task_runs_its_own_batch_and_marks_its_end(tmp_path: Path) -> None:
    layout = _compiled(tmp_path)
    done = _task(layout, 1)
    assert done.returncode == 0, done.stderr
    ids = layout.read_run_ids()
    assert sorted(p.stem for p in layout.runs_dir.glob("*.json")) == sorted(ids[3:6])
    assert layout.batch_end("STAMP-000001").read_text() == "0\n"
    assert not layout.batch_end("STAMP-000000").exists()


def test_a_task_refuses_runs_whose_id_is_not_the_compiled_one(tmp_path: Path) -> None:
    layout = _compiled(tmp_path)
    table = bytearray(layout.run_table.read_bytes())
    table[17 * 4 : 17 * 4 + 16] = b"0123456789abcdef"  # run 4 compiled under another ID
    layout.run_table.write_bytes(bytes(table))
    done = _task(layout, 1)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "metalab worker: run 0123456789abcdef (index 4) no longer matches the experiment "
        "snapshot: its context files or code changed since compiling; run `metalab "
        "compile` again."
    )
    assert not layout.runs_dir.exists() or not list(layout.runs_dir.glob("*.json"))
    assert layout.batch_end("STAMP-000001").read_text() == "3\n"  # the head sees it failed
    assert _task(layout, 0).returncode == 0  # the batch without the changed run still runs


def test_bytecode_is_fresh_only_for_the_source_as_it_is(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("X = 1\n")
    cache = tmp_path / "mod.pyc"
    assert not bytecode._fresh(source, cache)
    py_compile.compile(str(source), cfile=str(cache), doraise=True)
    assert bytecode._fresh(source, cache)
    source.write_text("X = 22\n")  # another size
    assert not bytecode._fresh(source, cache)
    checked = py_compile.PycInvalidationMode.CHECKED_HASH
    py_compile.compile(str(source), cfile=str(cache), doraise=True, invalidation_mode=checked)
    assert bytecode._fresh(source, cache)  # an installer's hash-based pyc is left alone


def test_precompile_leaves_no_job_side_module_without_bytecode() -> None:
    bytecode.precompile()
    package = Path(bytecode.__file__).parent.parent
    sources = bytecode._sources()
    assert package / "job" / "worker.py" in sources
    assert package / "core" / "params" / "grid.py" in sources
    assert not any("results" in p.parts or "sweep" in p.parts for p in sources)
    if os.access(package / "job", os.W_OK):
        assert bytecode.stale_modules() == []


def test_array_is_throttled_only_when_the_limit_limits(tmp_path: Path) -> None:
    layout = ExperimentDir.at(tmp_path)
    few = array_argv(layout, "S", 20, SlurmConfig(max_concurrent=100))
    assert few[few.index("--array") + 1] == "0-19"
    many = array_argv(layout, "S", 200, SlurmConfig(max_concurrent=100))
    assert many[many.index("--array") + 1] == "0-199%100"
