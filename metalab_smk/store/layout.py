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

    def partial_log(self, run_id: str) -> Path:
        """The log of a run in progress (left behind when its process is killed)."""
        return self.logs_dir / f"{run_id}_run.log.partial"

    def derived(self, run_id: str) -> Path:
        return self.root / "derived" / f"{run_id}.json"

    @property
    def batches_dir(self) -> Path:
        """Batch listings ``<name>.txt`` (run indices) and their job's markers."""
        return self.meta_dir / "batches"

    def batch_listing(self, name: str) -> Path:
        return self.batches_dir / f"{name}.txt"

    def batch_done(self, name: str) -> Path:
        """Written when every run of the batch succeeded (the Snakemake target)."""
        return self.batches_dir / f"{name}.done"

    def batch_end(self, name: str) -> Path:
        """Written when the batch's job ends, whatever its runs did (number of failures)."""
        return self.batches_dir / f"{name}.end"

    @property
    def snakemake_log(self) -> Path:
        """Output of the Snakemake process ``metalab run`` starts."""
        return self.meta_dir / "snakemake.log"

    @property
    def array_log(self) -> Path:
        """Output of the process that submits and follows a SLURM job array."""
        return self.meta_dir / "slurm-array.log"

    @property
    def slurm_logs_dir(self) -> Path:
        """SLURM's own logs of the array tasks metalab submits."""
        return self.meta_dir / "slurm"

    def read_run_ids(self) -> list[str]:
        return self.run_table.read_text().split()

    def exists(self) -> bool:
        return self.compiled.is_file()
