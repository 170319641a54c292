"""Every path inside an experiment directory, and the directory name of an experiment ID."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from metalab_smk.core.naming import experiment_dirname
from metalab_smk.errors import StorePathError


def safe_experiment_id(experiment_id: str) -> str:
    """Directory name for ``name:version``: both parts %-escaped, joined by ``+``
    (names cannot contain ``:``, so the first ``:`` separates them)."""
    name, _, version = experiment_id.partition(":")
    return experiment_dirname(name, version)


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
    def params_manifest(self) -> Path:
        """The param source's manifest (every grid value), kept out of compiled.json."""
        return self.meta_dir / "params.json"

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

    @property
    def quarantine_dir(self) -> Path:
        """Where records that do not validate are moved (their runs then count as missing)."""
        return self.root / "quarantine"

    @property
    def summary(self) -> Path:
        return self.summary_dir / "runs.parquet"

    @property
    def steps_summary(self) -> Path:
        return self.summary_dir / "steps.parquet"

    @property
    def coverage_file(self) -> Path:
        """What the summary covers (see store/coverage.py)."""
        return self.summary_dir / "coverage.json"

    def resolve_inside(self, relpath: str | os.PathLike[str]) -> Path:
        """``relpath`` (read from a record) as a path inside this experiment directory.

        Absolute paths and ``..`` steps that leave the directory are refused, so a crafted
        record can never steer a reader elsewhere (checked on the path text; symlinks
        placed inside the store by its owner are followed as usual)."""
        text = os.fspath(relpath)
        if not isinstance(text, str) or not text or "\0" in text:
            raise StorePathError(f"{self.root}: {relpath!r} is not a path inside the store.")
        if os.path.isabs(text) or text.startswith("~"):
            raise StorePathError(
                f"{self.root}: refusing the absolute path {text!r} found in a record; paths "
                "in records must be relative to the experiment directory."
            )
        normal = os.path.normpath(text)
        if normal == ".." or normal.startswith("../") or normal == ".":
            raise StorePathError(
                f"{self.root}: refusing {text!r} found in a record: it leads outside the "
                "experiment directory."
            )
        return self.root / normal

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

    def count_runs(self) -> int:
        """Runs in the run table, from its size (fixed-width lines)."""
        return self.run_table.stat().st_size // 17

    def read_run_ids(self) -> list[str]:
        return self.run_table.read_text().split()

    def exists(self) -> bool:
        return self.compiled.is_file()
