"""Locally, a run the OOM killer ends while its class asked for memory runs again in the
same `metalab run` asking for twice as much, so that it runs alone. `metalab run` runs
inside a memory cgroup of 1000 MB that the test makes; it skips, saying why, where this
process cannot make one (cgroup v1, or v2 with the memory controller delegated)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process_env import run_metalab, subprocess_env

LIMIT = 10**9  # bytes: 1000 MB as Snakemake counts them


def _own_cgroup() -> tuple[Path, str] | None:
    """This process's memory cgroup directory and the name of its limit file."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, relative = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory", relative.lstrip("/")), "memory.limit_in_bytes"
        if controllers == "":
            unified = Path("/sys/fs/cgroup", relative.lstrip("/"))
            if "memory" in (unified / "cgroup.subtree_control").read_text(errors="replace"):
                return unified, "memory.max"
    return None


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A child memory cgroup limited to LIMIT bytes (removed afterwards)."""
    try:
        found = _own_cgroup()
        if found is None:
            pytest.skip("no memory cgroup controller this process may use")
        parent, limit_file = found
        group = parent / f"metalab-test-{os.getpid()}"
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup here: {exc}")
    try:
        (group / limit_file).write_text(str(LIMIT))
        yield group
    finally:
        group.rmdir()


EXPERIMENT = """\
import time
import metalab

@metalab.operation
def op(params, capture):
    block = bytearray(450 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    time.sleep(3)
    capture.metric("y", params["x"])

exp = metalab.Experiment(name="oom", version="1", context={}, operation=op,
    params=metalab.grid(x=[0, 1]), seeds=metalab.seeds(1), resources={"mem": "400M"})
"""


def test_a_run_the_oom_killer_ended_runs_again_with_twice_the_memory(
    tmp_path: Path, memory_cgroup: Path
) -> None:
    (tmp_path / "oom.py").write_text(EXPERIMENT)
    procs = memory_cgroup / "cgroup.procs"
    done = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "run", "oom.py", "--cores", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(tmp_path),
        preexec_fn=lambda: procs.write_text(str(os.getpid())),
    )
    exp_dir = tmp_path / "runs" / "oom+1"
    log = (exp_dir / ".metalab" / "snakemake.log").read_text()
    assert done.returncode == 0, done.stderr[-3000:] + log[-3000:]
    # 400 MB each: both run at once (the cgroup's 999 MB); 2 x 472 MB do not fit, one or
    # both are killed and run again asking for 800 MB: alone
    assert "killed by OUT_OF_MEMORY: retried with mem_mb=800" in done.stdout, done.stdout
    records = [json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")]
    assert len(records) == 2
    retried = [r for r in records if "resource_attempts" in r["provenance"]["extra"]]
    assert retried
    assert retried[0]["provenance"]["extra"]["resource_attempts"] == [
        {"resources": {"mem_mb": 400}, "killed_by": "OUT_OF_MEMORY"},
        {"resources": {"mem_mb": 800}},
    ]
    status = run_metalab(tmp_path, "status", "runs/oom+1")
    assert "with 800 MB after OUT_OF_MEMORY" in status.stdout, status.stdout
    assert textwrap.dedent(status.stdout).startswith("oom:1: 2 runs: 2 done"), status.stdout


def test_only_the_oom_killer_counts_not_a_users_out_of_memory_error(tmp_path: Path) -> None:
    """A run that raised "CUDA out of memory" itself is not retried with more host memory;
    one the worker recorded as ended by the OOM killer is."""
    from metalab_smk.job.exits import OOM_KILLED
    from metalab_smk.store.layout import ExperimentDir
    from metalab_smk.sweep.local_retry import LocalEscalation

    layout = ExperimentDir(tmp_path)
    ids = ["a" * 16, "b" * 16, "c" * 16]
    layout.run_table.parent.mkdir(parents=True)
    layout.run_table.write_text("\n".join(ids) + "\n")
    errors = {
        ids[0]: {"type": "RuntimeError", "message": "CUDA out of memory. Tried to allocate"},
        ids[1]: {"type": "Crashed", "message": f"the run's process {OOM_KILLED} without"},
        ids[2]: {"type": "MemoryError", "message": "out of memory"},
    }
    for run_id, error in errors.items():
        path = layout.failed_record(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run_id": run_id, "status": "failed", "error": error}))
    assert LocalEscalation(layout, since=0.0)._out_of_memory() == [1]
