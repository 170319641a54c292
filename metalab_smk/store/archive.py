"""``metalab export`` / ``metalab import``: one archive of a store for remote analysis.

An archive is a tar (gzip, or zstd when the name ends in ``.zst`` and the ``zstandard``
package is installed) whose members are ``<experiment dir>/<path>``, relative to the
store root, so it unpacks into any store root. Records hold only relative paths, so
the unpacked store loads and resumes wherever it lands. Importing merges run by run
(see ``merge.py``): a record is never replaced by a different one.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from metalab_smk.errors import MetalabError
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.merge import MergeReport, copy_file, merge_run
from metalab_smk.store.uri import file_path

__all__ = ["export_store", "import_archive", "import_store_dir"]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Machine-local state that never travels: Snakemake's cache, batches, locks, head info,
# the index kept up to date (its rows name this directory; a copy must not replace them).
_SKIP_TOP = {".snakemake"}
_SKIP_META = {"batches", "runner.lock", "head.json", "snakemake.log", "index.json"}


def _experiment_dirs(path: Path, experiment: str | None) -> list[ExperimentDir]:
    single = ExperimentDir.at(path)
    if single.exists():
        found = [single]
    else:
        store = FileStoreConfig(path)
        found = [store.experiment_dir(eid) for eid in store.list_experiments()]
    if experiment is not None:
        found = [d for d in found if read_json(d.compiled)["experiment_id"] == experiment]
    if not found:
        what = f"experiment {experiment!r}" if experiment else "experiments"
        raise MetalabError(f"no {what} under {path}; pass an experiment directory or store root.")
    return found


def _members(layout: ExperimentDir, artifacts: bool) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(layout.root):
        here = Path(directory)
        relative = here.relative_to(layout.root)
        parts = relative.parts
        if not parts:
            subdirs[:] = [d for d in subdirs if d not in _SKIP_TOP]
            if not artifacts:
                subdirs[:] = [d for d in subdirs if d != "artifacts"]
        elif parts == (".metalab",):
            subdirs[:] = [d for d in subdirs if d not in _SKIP_META]
            files = [f for f in files if f not in _SKIP_META]
        subdirs.sort()
        for name in sorted(files):
            if not (name.startswith(".") and name.endswith(".tmp")):
                yield here / name


@contextlib.contextmanager
def _open_write(archive: Path) -> Iterator[tarfile.TarFile]:
    if archive.name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as exc:
            raise MetalabError(
                f"{archive.name}: zstd archives need the zstandard package "
                "(pip install zstandard), or name the archive .tar.gz"
            ) from exc
        with (
            open(archive, "wb") as raw,
            zstandard.ZstdCompressor(level=3).stream_writer(raw) as stream,
            tarfile.open(fileobj=stream, mode="w|") as tar,
        ):
            yield tar
    else:
        with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
            yield tar


def export_store(
    path: str | os.PathLike[str],
    archive: str | os.PathLike[str],
    artifacts: bool = True,
    experiment: str | None = None,
) -> tuple[int, int]:
    """Write ``archive`` from an experiment directory or store root; returns
    (experiments, files)."""
    layouts = _experiment_dirs(file_path(path), experiment)
    target = Path(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    files = 0
    with _open_write(target) as tar:
        for layout in layouts:
            for member in _members(layout, artifacts):
                tar.add(member, arcname=f"{layout.root.name}/{member.relative_to(layout.root)}")
                files += 1
    return len(layouts), files


def _open_read(archive: Path) -> tarfile.TarFile:
    with open(archive, "rb") as handle:
        magic = handle.read(4)
    if magic == ZSTD_MAGIC:
        try:
            import zstandard
        except ImportError as exc:
            raise MetalabError(
                f"{archive.name} is a zstd archive; install the zstandard package to read it"
            ) from exc
        with open(archive, "rb") as raw:
            data = zstandard.ZstdDecompressor().stream_reader(raw).read()
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    try:
        return tarfile.open(archive, "r:*")
    except tarfile.TarError as exc:
        raise MetalabError(f"{archive} is not a metalab archive (tar.gz or tar.zst)") from exc


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                copy_file(path, target / path.relative_to(source))


def _merge_experiment(source: ExperimentDir, target: ExperimentDir, report: MergeReport) -> None:
    """Merge one unpacked experiment directory into ``target``, run by run."""
    if not target.root.exists():
        target.root.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source.root, target.root)
        n_runs = sum(len(os.listdir(d)) for d in (target.runs_dir, target.failed_dir) if d.is_dir())
        report.imported += n_runs
        return
    for path in sorted(source.meta_dir.rglob("*")):  # compiled.json etc. when missing
        if path.is_file():
            copy_file(path, target.meta_dir / path.relative_to(source.meta_dir))

    def outputs(run_id: str):
        def copy(layout: ExperimentDir) -> None:
            _copy_tree(source.artifacts(run_id), layout.artifacts(run_id))
            _copy_tree(source.results(run_id), layout.results(run_id))
            if source.derived(run_id).is_file():
                copy_file(source.derived(run_id), layout.derived(run_id))
            for log in source.logs_dir.glob(f"{run_id}_*.log"):
                copy_file(log, layout.logs_dir / log.name)

        return copy

    for folder in (source.runs_dir, source.failed_dir):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            record = read_json(path)
            merge_run(target, record, outputs(record["run_id"]), report)


def import_store_dir(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> MergeReport:
    """Merge the experiments of a store root or experiment directory into ``dest``."""
    report = MergeReport()
    store = FileStoreConfig(dest)
    for layout in _experiment_dirs(Path(source), None):
        experiment_id = read_json(layout.compiled)["experiment_id"]
        _merge_experiment(layout, store.experiment_dir(experiment_id), report)
        report.experiments.append(experiment_id)
    return report


def import_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> MergeReport:
    """Unpack ``archive`` into the store root ``dest``, merging with what is there."""
    root = file_path(dest).absolute()
    root.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=".import-", dir=root) as scratch,
        _open_read(Path(archive)) as tar,
    ):
        tar.extractall(scratch, filter="data")
        return import_store_dir(scratch, root)
