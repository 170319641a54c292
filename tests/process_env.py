"""The environment of the metalab subprocesses tests start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def subprocess_env(base: Path, **extra: str) -> dict[str, str]:
    """This environment with the test's Python first on PATH (Snakemake's jobs find it),
    a hash cache under ``base``, outside any SLURM job, plus ``extra``."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["METALAB_HASH_CACHE"] = str(base / "hash-cache.sqlite")
    env.pop("SLURM_JOB_ID", None)
    env.update(extra)
    return env


def run_metalab(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``metalab ARGS`` in ``cwd`` (its output captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(cwd),
    )
