"""Every path inside an experiment directory, and the directory name of an experiment ID."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

_SAFE = "-._"  # besides letters and digits; everything else is %-escaped


def safe_experiment_id(experiment_id: str) -> str:
    """Directory name for ``name:version``: both parts %-escaped, joined by ``+``."""
    name, _, version = experiment_id.rpartition(":")
    return f"{quote(name, safe=_SAFE)}+{quote(version, safe=_SAFE)}"


def experiment_id_from_dir(dirname: str) -> str:
    name, _, version = dirname.rpartition("+")
    return f"{unquote(name)}:{unquote(version)}"


@dataclass(frozen=True)
class ExperimentDir:
    """Paths inside one experiment directory."""

    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> ExperimentDir:
        return cls(Path(path).absolute())

    @property
    def snakefile(self) -> Path:
        return self.root / "Snakefile"

    @property
    def meta_dir(self) -> Path:
        return self.root / ".metalab"

    @property
    def compiled(self) -> Path:
        return self.meta_dir / "compiled.json"

    @property
    def run_table(self) -> Path:
        """One run ID per line; line i is global run index i (fixed width, 17 bytes)."""
        return self.meta_dir / "run_ids.txt"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def failed_dir(self) -> Path:
        return self.root / "failed"

    @property
    def summary_dir(self) -> Path:
        return self.root / "summary"

    def record(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def failed_record(self, run_id: str) -> Path:
        return self.failed_dir / f"{run_id}.json"

    def artifacts(self, run_id: str) -> Path:
        return self.root / "artifacts" / run_id

    def log(self, run_id: str) -> Path:
        return self.logs_dir / f"{run_id}_run.log"

    def results(self, run_id: str) -> Path:
        return self.root / "results" / run_id

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def partial_log(self, run_id: str, pid: int) -> Path:
        """The log of a run in progress in process ``pid`` (left behind when the process
        is killed); one per process, so two attempts never share a file."""
        return self.logs_dir / f"{run_id}_run.log.{pid}.partial"

    def partial_logs(self) -> dict[str, Path]:
        """The newest partial log of each run that has one: ``{run_id: path}``."""
        if not self.logs_dir.is_dir():
            return {}
        newest: dict[str, tuple[float, Path]] = {}
        with os.scandir(self.logs_dir) as entries:
            for entry in entries:
                run_id, sep, rest = entry.name.partition("_run.log.")
                if not sep or not rest.endswith(".partial"):
                    continue
                try:
                    mtime = entry.stat().st_mtime
                except OSError:
                    continue
                if run_id not in newest or mtime > newest[run_id][0]:
                    newest[run_id] = (mtime, Path(entry.path))
        return {run_id: path for run_id, (_, path) in newest.items()}

    @property
    def snakemake_log(self) -> Path:
        return self.meta_dir / "snakemake.log"

    @property
    def runner_lock(self) -> Path:
        """Held (flock) by the process driving Snakemake here; holds its pid."""
        return self.meta_dir / "runner.lock"

    @property
    def head_file(self) -> Path:
        """Where a submitted head process runs (``metalab submit``)."""
        return self.meta_dir / "head.json"

    @property
    def head_state(self) -> Path:
        """What the submitted head reports: started, finished, failed (with the error)."""
        return self.meta_dir / "head-state.json"

    @property
    def stop_request(self) -> Path:
        """Written by ``metalab stop``: the runner starts no further Snakemake round."""
        return self.meta_dir / "stop-requested"

    @property
    def experiment_pickle(self) -> Path:
        """The Experiment by value (cloudpickle) when jobs cannot re-import it by name."""
        return self.meta_dir / "experiment.pkl"

    @property
    def workers_dir(self) -> Path:
        """One file per live job worker: ``<pid>@<host>`` (removed when it ends)."""
        return self.meta_dir / "workers"

    def worker_file(self, pid: int, host: str) -> Path:
        return self.workers_dir / f"{pid}@{host}"

    @property
    def batches_dir(self) -> Path:
        return self.meta_dir / "batches"

    def derived(self, run_id: str) -> Path:
        return self.root / "derived" / f"{run_id}.json"

    def read_run_ids(self) -> list[str]:
        return self.run_table.read_text().split()

    def exists(self) -> bool:
        return self.compiled.is_file()


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` for messages: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return str(Path(path).absolute()) if relative.startswith("..") else relative
