"""The heartbeat of a Snakemake that submitted job arrays (``metalab-slurm`` executor).

Touches one file per array every 2 s in a daemon thread, so the file stops changing the
moment its process dies, even by SIGKILL; the array's tasks read it
(``metalab_smk/job/driver.py``) and end when it goes stale.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["HEARTBEAT_VARIABLE", "STALE_VARIABLE", "Heartbeat"]

HEARTBEAT_VARIABLE = "METALAB_HEARTBEAT"  # the file's path, in a task's environment
STALE_VARIABLE = "METALAB_HEARTBEAT_STALE"  # seconds without a beat: gone (default 60)
BEAT_SECONDS = 2.0


class Heartbeat:
    """Touches its files every 2 s while this process lives; ``stop`` removes them."""

    def __init__(self) -> None:
        self.paths: set[Path] = set()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, path: Path) -> dict[str, str]:
        """Start beating ``path``; the variables that name it to a task."""
        path.touch()
        self.paths.add(path)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")
            self._thread.start()
        env = {HEARTBEAT_VARIABLE: str(path)}
        if os.environ.get(STALE_VARIABLE):  # passed on as set here
            env[STALE_VARIABLE] = os.environ[STALE_VARIABLE]
        return env

    def _beat(self) -> None:
        while not self._stopped.wait(BEAT_SECONDS):
            for path in list(self.paths):
                try:
                    os.utime(path)
                except OSError:
                    continue

    def stop(self) -> None:
        """Stop beating and remove the files (a task still queued then starts no run)."""
        self._stopped.set()
        for path in self.paths:
            path.unlink(missing_ok=True)
