"""Every path inside an experiment directory, and the directory name of an experiment ID."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from metalab_smk.core.naming import experiment_dirname
from metalab_smk.errors import StoreError, StorePathError
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.safepath import join_inside


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

    @functools.cached_property  # a run's paths start here: made once
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
    def index_config(self) -> Path:
        """The PostgreSQL index this experiment keeps up to date (``run(index=URL)``)."""
        return self.meta_dir / "index.json"

    @property
    def run_table(self) -> Path:
        """One run ID per line; line i is global run index i (fixed width, 17 bytes)."""
        return self.meta_dir / "run_ids.txt"

    @property
    def run_table_key(self) -> Path:
        """What the run table was written for (compile/compiler.py: write_run_table)."""
        return self.meta_dir / "run_ids.key"

    @functools.cached_property  # a run's paths start here: made once
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @functools.cached_property  # a run's paths start here: made once
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
    def coverage_file(self) -> Path:
        """What the summary covers (see store/coverage.py)."""
        return self.summary_dir / "coverage.json"

    def resolve_inside(self, relpath: str | os.PathLike[str]) -> Path:
        """``relpath`` (read from a record) as a path inside this experiment directory,
        every symbolic link resolved (``store/safepath.py``). An absolute path is accepted
        only when it names a file in this directory; ``..`` steps, ``~`` and links that
        lead out raise StorePathError, so a crafted record never steers a reader elsewhere."""
        text = os.fspath(relpath)
        if isinstance(text, str) and os.path.isabs(text):
            inside = os.path.relpath(os.path.normpath(text), os.path.normpath(self.root))
            if inside == ".." or inside.startswith("../"):
                raise StorePathError(
                    f"{self.root}: refusing the absolute path {text!r} found in a record: it "
                    "is outside the experiment directory."
                )
            text = inside
        return join_inside(self.root, text)

    def record(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def failed_record(self, run_id: str) -> Path:
        return self.failed_dir / f"{run_id}.json"

    def artifacts(self, run_id: str) -> Path:
        return self.root / "artifacts" / run_id

    def log(self, run_id: str, name: str = "run") -> Path:
        """The log ``name`` of a run (``run``: everything the run printed and logged)."""
        return self.logs_dir / f"{run_id}_{name}.log"

    def results(self, run_id: str) -> Path:
        return self.root / "results" / run_id

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, run_id: str) -> Path:
        """The run's checkpoint directory: kept across its attempts."""
        return self.checkpoints_dir / run_id

    def run_root(self, run_id: str) -> Path:
        """The experiment directory holding ``run_id`` (relative URIs start here)."""
        return self.root

    def data_file(self, run_id: str, name: str) -> Path:
        """``results/<run_id>/<name>.json``: one captured data or stepped metric."""
        return self.results(run_id) / f"{name}.json"

    def artifact_manifest(self, run_id: str) -> Path:
        return self.artifacts(run_id) / "_manifest.json"

    @functools.cached_property  # a run's paths start here: made once
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def partial_log(self, run_id: str, pid: int) -> Path:
        """The log of a run in progress in process ``pid`` (left behind when the process
        is killed); one per process, so two attempts never share a file."""
        return self.logs_dir / f"{run_id}_run.log.{pid}.partial"

    def newest_partial_log(self, run_id: str) -> Path:
        """The newest partial log of ``run_id`` (a path that does not exist if none)."""
        found = sorted(
            self.logs_dir.glob(f"{run_id}_run.log.*.partial"),
            key=lambda path: path.stat().st_mtime_ns if path.exists() else 0,
        )
        return found[-1] if found else self.logs_dir / f"{run_id}_run.log.partial"

    def current_partial_log(self, run_id: str) -> Path | None:
        """The newest partial log of ``run_id`` (in flight, or left by a killed attempt),
        unless the run succeeded after it: then it is a killed attempt's before a success
        that printed nothing (and kept no log), not the run's log. None when none."""
        partial = self.newest_partial_log(run_id)
        try:
            written = partial.stat().st_mtime_ns
        except OSError:
            return None
        try:
            return partial if written > self.record(run_id).stat().st_mtime_ns else None
        except OSError:
            return partial

    def every_partial_log(self) -> list[tuple[str, Path]]:
        """Every partial log: ``[(run_id, path)]`` (several per run after kills)."""
        return self.run_logs()[0]

    def run_logs(self) -> tuple[list[tuple[str, Path]], set[str]]:
        """One scan of ``logs/``: every partial log (``every_partial_log``) and the run
        IDs that have a finished run log."""
        partials: list[tuple[str, Path]] = []
        finished: set[str] = set()
        missing = contextlib.suppress(FileNotFoundError, NotADirectoryError)
        with missing, os.scandir(self.logs_dir) as entries:
            for entry in entries:
                run_id, sep, rest = entry.name.partition("_run.log")
                if sep and not rest:
                    finished.add(run_id)
                elif sep and rest.startswith(".") and rest.endswith(".partial"):
                    partials.append((run_id, Path(entry.path)))
        return partials, finished

    def partial_logs(self) -> dict[str, Path]:
        """The newest partial log of each run that has one: ``{run_id: path}``."""
        return newest_by_run(self.every_partial_log())

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
    def derived_dir(self) -> Path:
        return self.root / "derived"

    def derived(self, run_id: str) -> Path:
        return self.derived_dir / f"{run_id}.json"

    def count_runs(self) -> int:
        """Runs in the run table, from its size (fixed-width lines)."""
        try:
            return self.run_table.stat().st_size // 17
        except FileNotFoundError:
            raise run_table_missing(self.run_table) from None

    @property
    def summary_runs(self) -> Path:
        return self.summary_dir / "runs.parquet"

    @property
    def summary_steps(self) -> Path:
        return self.summary_dir / "steps.parquet"

    @property
    def snapshot_dir(self) -> Path:
        """Copies of the experiment file as compiled; jobs import these."""
        return self.meta_dir / "snapshot"

    @property
    def resources_file(self) -> Path:
        return self.meta_dir / "resources.json"

    @property
    def executor_file(self) -> Path:
        """The executor a submitted head uses (written by ``metalab submit``)."""
        return self.meta_dir / "executor.json"

    @property
    def head_file(self) -> Path:
        """What ``metalab submit`` recorded about the detached head (pid or SLURM job)."""
        return self.meta_dir / "head.json"

    def head_log(self, on_slurm: bool) -> Path:
        """The head's log; on SLURM the name holds ``%j``, which sbatch fills in."""
        return self.meta_dir / ("head-%j.log" if on_slurm else "head.log")

    @property
    def scratch_dir(self) -> Path:
        """Where batch children write records before they are renamed into ``runs/`` or
        ``failed/``: one folder per child, so its files never contend for those folders'
        lock with the renames of the others."""
        return self.meta_dir / "scratch"

    def child_scratch(self, pid: int) -> Path:
        """The scratch folder of the batch child ``pid`` on this host."""
        return self.scratch_dir / f"{os.uname().nodename}-{pid}"

    @property
    def snakemake_log(self) -> Path:
        return self.meta_dir / "snakemake.log"

    @property
    def runner_lock(self) -> Path:
        """Held (flock) by the process driving Snakemake here; holds its pid."""
        return self.meta_dir / "runner.lock"

    @property
    def snakemake_locks_dir(self) -> Path:
        return self.root / ".snakemake" / "locks"

    @property
    def batches_dir(self) -> Path:
        return self.meta_dir / "batches"

    def batch_listing(self, key: str) -> Path:
        """The run indices of one packed job, one per line."""
        return self.batches_dir / f"{key}.txt"

    def batch_done(self, key: str) -> Path:
        """The Snakemake target a packed job writes when all its runs have a record."""
        return self.batches_dir / f"{key}.done"

    def batch_resources(self, key: str) -> Path:
        """The resources of one packed job (its runs' resource class), when per case."""
        return self.batches_dir / f"{key}.resources.json"

    @property
    def escalations(self) -> Path:
        """Array tasks retried with more memory or time (JSON lines; slurm/escalation.py)."""
        return self.meta_dir / "escalations.jsonl"

    @property
    def resource_classes(self) -> Path:
        """Per-case resources: the distinct classes and each param case's class."""
        return self.meta_dir / "resource_classes.json"

    @property
    def manifest(self) -> Path:
        """This project's description of the experiment, beside upstream's manifests."""
        return self.root / "experiments" / f"{self.root.name}.json"

    def run_manifest(self, stamp: str) -> Path:
        """Upstream's manifest of one ``run()``: ``{name}_{version}_{stamp}.json`` (the
        name and version %-escaped as in the directory name; cut to fit 255 bytes)."""
        tail = f"_{stamp}.json"
        head = self.root.name.replace("+", "_")[: 255 - len(tail.encode())]
        return self.root / "experiments" / f"{head}{tail}"

    @property
    def store_marker(self) -> Path:
        return self.root / "_meta.json"

    @property
    def workflow_profile(self) -> Path:
        """The workflow profile Snakemake applies by itself in this directory."""
        return self.root / "profiles" / "default" / "config.yaml"

    def done_ids(self) -> set[str]:
        """Run IDs that have a success record (one directory listing, no file read)."""
        return json_stems(self.runs_dir)

    def failed_ids(self) -> set[str]:
        """Run IDs that have a failed record."""
        return json_stems(self.failed_dir)

    def batch_end(self, name: str) -> Path:
        """Written when the batch's job ends, whatever its runs did (number of failures)."""
        return self.batches_dir / f"{name}.end"

    @property
    def array_log(self) -> Path:
        """Output of the process that submits and follows a SLURM job array."""
        return self.meta_dir / "slurm-array.log"

    @property
    def slurm_logs_dir(self) -> Path:
        """SLURM's own logs of the array tasks metalab submits."""
        return self.meta_dir / "slurm"

    def slurm_log(self, name: str) -> Path:
        """One SLURM log; ``name`` may hold sbatch's ``%a`` / ``%j`` patterns."""
        return self.slurm_logs_dir / f"{name}.log"

    def read_run_ids(self) -> list[str]:
        try:
            return self.run_table.read_text().split()
        except FileNotFoundError:
            raise run_table_missing(self.run_table) from None

    def read_meta(self, path: Path, fix: str) -> Any:
        """The JSON file ``path`` of ``.metalab/``; StoreError saying ``fix`` when it is
        damaged (FileNotFoundError when missing)."""
        try:
            return read_json(path)
        except ValueError as exc:
            raise StoreError(f"{path} is damaged ({exc}); {fix}.") from None

    def exists(self) -> bool:
        return self.compiled.is_file()


def run_table_missing(path: Path) -> StoreError:
    """The error of a deleted run table, with what to do about it."""
    return StoreError(
        f"the run table {path} is missing; `metalab run FILE` (or `metalab compile FILE`) "
        "writes it again."
    )


def json_names(directory: Path) -> set[str]:
    """The names of the ``*.json`` files in ``directory`` (records, derived metrics; a
    hidden one is not), by one listing and no read; none when it is missing. The one
    listing of record directories."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {name for name in names if name.endswith(".json") and name[0] != "."}


def json_stems(directory: Path) -> set[str]:
    """``json_names`` without the suffix: the run IDs of a record directory."""
    return {name[:-5] for name in json_names(directory)}


@dataclass(frozen=True, eq=False)
class RunDirs(ExperimentDir):
    """Runs of several experiments side by side: each run's paths are those of its own
    experiment directory (``dirs``: run ID -> ExperimentDir)."""

    dirs: dict[str, ExperimentDir] | None = None

    def _of(self, run_id: str) -> ExperimentDir:
        return (self.dirs or {})[run_id]

    def run_root(self, run_id: str) -> Path:
        return self._of(run_id).root

    def record(self, run_id: str) -> Path:
        return self._of(run_id).record(run_id)

    def failed_record(self, run_id: str) -> Path:
        return self._of(run_id).failed_record(run_id)

    def artifacts(self, run_id: str) -> Path:
        return self._of(run_id).artifacts(run_id)

    def log(self, run_id: str, name: str = "run") -> Path:
        return self._of(run_id).log(run_id, name)

    def newest_partial_log(self, run_id: str) -> Path:
        return self._of(run_id).newest_partial_log(run_id)

    def results(self, run_id: str) -> Path:
        return self._of(run_id).results(run_id)

    def derived(self, run_id: str) -> Path:
        return self._of(run_id).derived(run_id)


def newest_by_run(found: Iterable[tuple[str, Path]]) -> dict[str, Path]:
    """``{run_id: its newest path}`` of ``(run_id, path)`` pairs (by modification time;
    paths gone meanwhile are left out)."""
    newest: dict[str, tuple[float, Path]] = {}
    for run_id, path in found:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if run_id not in newest or mtime > newest[run_id][0]:
            newest[run_id] = (mtime, path)
    return {run_id: path for run_id, (_, path) in newest.items()}
