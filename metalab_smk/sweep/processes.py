"""Starting Snakemake and other host-side processes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def snakemake_env() -> dict[str, str]:
    """Environment for Snakemake processes: PYTHONSAFEPATH keeps ``python -m snakemake``
    from putting the experiment directory on sys.path, where Snakemake's plugin discovery
    would list every file of runs/ and logs/ (seconds at 100,000 runs)."""
    return {**os.environ, "PYTHONSAFEPATH": "1"}


def start_detached(command: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (so it can be signalled as a group and outlive
    its parent), appending its output to ``log``."""
    with open(log, "ab") as handle:
        handle.write(f"\n$ {' '.join(command)}\n".encode())
        handle.flush()
        return subprocess.Popen(
            command,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=snakemake_env(),
        )
