"""Resources on the local SLURM cluster: a Snakemake profile's units reach sacct,
per-case memory classes become one array each, and a run killed for its memory is
retried with twice as much in the same `metalab run` (OverMemoryKill enforces --mem)."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from metalab_smk.store.layout import ExperimentDir
from tests.process_env import run_metalab
from tests.test_slurm import _REASON

pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

PROFILE = """\
executor: slurm
jobs: 10
default-resources:
  slurm_partition: "debug"
  runtime: 2h
  mem: 2G
  cpus_per_task: 1
"""


def _project(tmp_path: Path, name: str, body: str, resources: str) -> Path:
    (tmp_path / "prof").mkdir(exist_ok=True)
    (tmp_path / "prof" / "config.v8+.yaml").write_text(PROFILE)  # Snakemake 8+'s file name
    operation = textwrap.indent(textwrap.dedent(body).strip(), " " * 4)
    (tmp_path / f"{name}.py").write_text(
        "import time\nimport metalab\n\n@metalab.operation\ndef op(params, capture):\n"
        f"{operation}\n"
        '    capture.metric("y", params["x"])\n\n'
        f'exp = metalab.Experiment(name="{name}", version="1", context={{}}, operation=op,\n'
        f"    params=metalab.grid(x=[0, 1, 2, 3]), seeds=metalab.seeds(1),\n"
        f"    resources={resources})\n"
    )
    return tmp_path / "runs" / f"{name}+1"


def _accounting(exp_dir: Path, since: str) -> list[list[str]]:
    """Timelimit and ReqMem of the array tasks that ran the records, once sacct has them
    (the accounting database lags behind the controller, and keeps older jobs of the
    same IDs from before a controller restart: ``since`` leaves them out)."""
    records = [json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")]
    jobs = ",".join(sorted({r["provenance"]["extra"]["slurm_job_id"] for r in records}))
    fields = "JobIDRaw,Timelimit,ReqMem,State"
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", fields, "-S", since, "-j", jobs],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines() if line}
        settled = all(r[2] == "COMPLETED" and r[0] for r in rows.values())  # limits land late
        if (len(rows) == jobs.count(",") + 1 and settled) or time.monotonic() > deadline:
            return sorted(r[:2] for r in rows.values())
        time.sleep(1)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))


def _run(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    return run_metalab(tmp_path, "run", f"{name}.py", "--profile", "prof", timeout=400)


def test_profile_units_reach_sacct(tmp_path: Path) -> None:
    """`runtime: 2h` and `mem: 2G` of a config.v8+.yaml profile, in the foreground."""
    exp_dir = _project(tmp_path, "units", "pass", "None")
    since = _now()
    done = _run(tmp_path, "units")
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(map(tuple, _accounting(exp_dir, since))) == {("02:00:00", "2000M")}


def test_two_memory_classes_from_a_callable_are_two_arrays(tmp_path: Path) -> None:
    exp_dir = _project(
        tmp_path,
        "classes",
        "pass",
        'lambda p: {"mem": "600M" if p["x"] >= 2 else "300M", "runtime": "10m"}',
    )
    since = _now()
    done = _run(tmp_path, "classes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 SLURM arrays" in done.stdout
    assert set(map(tuple, _accounting(exp_dir, since))) == {
        ("00:10:00", "300M"),
        ("00:10:00", "600M"),
    }
    assert len(list((exp_dir / "runs").glob("*.json"))) == 4


def test_a_run_killed_for_memory_succeeds_after_one_escalation(tmp_path: Path) -> None:
    """600 MB under a 300 MB request: killed, retried with 600 MB in the same run."""
    body = """
        if params["x"] == 0:
            block = bytearray(450 * 1024 * 1024)
            block[::4096] = b"x" * len(block[::4096])  # touch every page
            time.sleep(6)
    """
    exp_dir = _project(tmp_path, "grow", body, '{"mem": "300M", "runtime": 5}')
    done = _run(tmp_path, "grow")
    assert done.returncode == 0, (
        done.stderr[-3000:] + ExperimentDir.at(exp_dir).array_log.read_text()
    )
    records = [json.loads(p.read_text()) for p in (exp_dir / "runs").glob("*.json")]
    assert len(records) == 4
    # the killed task's unfinished runs (x=0 and those queued behind it) were retried
    retried = {
        r["params_resolved"]["x"]: r
        for r in records
        if "resource_attempts" in r["provenance"]["extra"]
    }
    assert 0 in retried
    attempts = retried[0]["provenance"]["extra"]["resource_attempts"]
    assert attempts[0]["resources"]["mem_mb"] == 300
    assert attempts[0]["killed_by"] == "OUT_OF_MEMORY"
    assert attempts[-1]["resources"]["mem_mb"] == 600
    status = run_metalab(tmp_path, "status", "runs/grow+1")
    assert "retried" in status.stdout and "with 600 MB after OUT_OF_MEMORY" in status.stdout
