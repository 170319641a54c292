"""A script that ends after ``metalab.run(exp)`` without ``.result()`` finishes its sweep
before the interpreter exits, as upstream does (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.process_env import subprocess_env

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import time
    import metalab

    @metalab.operation
    def op(params, capture):
        time.sleep({sleep})
        capture.metric("y", params["x"])

    exp = metalab.Experiment(name="nr", version="1", context={{}}, operation=op,
        params=metalab.grid(x=list(range(10))), seeds=metalab.seeds(0, 1))
    metalab.run(exp, executor=metalab.LocalExecutor(cores=2))
    """
)


def _start(tmp_path: Path, sleep: float) -> subprocess.Popen[str]:
    (tmp_path / "s.py").write_text(SCRIPT.format(sleep=sleep))
    return subprocess.Popen(
        [sys.executable, "s.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(tmp_path),
        # default SIGINT, as a terminal's job (a shell's background jobs ignore it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_a_script_without_result_finishes_its_sweep_before_exiting(tmp_path: Path) -> None:
    process = _start(tmp_path, 0.2)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    assert "waiting for the sweep in runs/nr+1 to finish before exiting" in err
    assert len(list((tmp_path / "runs" / "nr+1" / "runs").glob("*.json"))) == 10


def test_ctrl_c_while_the_script_waits_at_exit_stops_the_sweep(tmp_path: Path) -> None:
    process = _start(tmp_path, 3)
    deadline = time.monotonic() + 60
    logs = tmp_path / "runs" / "nr+1" / "logs"
    while not list(logs.glob("*.partial")):  # runs are in flight
        assert time.monotonic() < deadline, "no run started"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=90)
    assert process.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert _processes_in(tmp_path) == []  # Snakemake and its jobs are gone


def _processes_in(directory: Path) -> list[str]:
    """Command lines of the processes whose working directory is under ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(str(directory)):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found
