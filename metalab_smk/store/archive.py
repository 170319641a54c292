"""``metalab export`` / ``metalab import``: one archive of a store for remote analysis.

An archive is a tar (gzip, or zstd when the name ends in ``.zst`` and the ``zstandard``
package is installed) whose members are ``<experiment dir>/<path>``, relative to the
store root, so it unpacks into any store root. Records hold only relative paths, so
the unpacked store loads and resumes wherever it lands. Importing streams the archive
(bounded memory), extracts only plain files and directories inside it, up to a size per
member, then merges run by run (see ``merge.py``): a record is never replaced by a
different one, and every entry refused is named in one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from metalab_smk.core.naming import check_experiment_id
from metalab_smk.errors import MetalabError, RecordError, StorePathError
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.merge import MergeReport, copy_inside, merge_run
from metalab_smk.store.safepath import (
    check_run_id,
    inside,
    join_inside,
    read_json_inside,
    relative_parts,
)
from metalab_smk.store.uri import file_path
from metalab_smk.store.validate import read_record_file

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


DEFAULT_MAX_MEMBER = 4 * 2**30  # an archive member larger than this is refused
_CHUNK = 1 << 20
# Left out of an import: rebuilt here (summary), machine-local (quarantine, Snakemake's
# cache, heads, locks, the index URL) or code run when loaded (the pickled experiment:
# recompile with metalab run).
_NOT_IMPORTED = {"summary", "quarantine", ".snakemake"} | {
    f".metalab/{name}"
    for name in _SKIP_META
    | {"experiment.pkl", "index.json", "workers", "executor.json", "head-state.json"}
}
_RUN_DIRS = {"runs", "failed", "artifacts", "results", "derived", "logs"}


@contextlib.contextmanager
def _open_read(archive: Path) -> Iterator[tarfile.TarFile]:
    """The archive as a tar stream (gzip or zstd): read once, front to back, so memory
    stays bounded whatever it decompresses to."""
    with open(archive, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        try:
            if magic == ZSTD_MAGIC:
                with (
                    _zstd_reader(archive, raw) as stream,
                    tarfile.open(fileobj=stream, mode="r|") as tar,
                ):
                    yield tar
            else:
                with tarfile.open(fileobj=raw, mode="r|*") as tar:
                    yield tar
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise MetalabError(
                f"{archive} is not a complete metalab archive (tar.gz or tar.zst): {exc}"
            ) from None


@contextlib.contextmanager
def _zstd_reader(archive: Path, raw: BinaryIO) -> Iterator[BinaryIO]:
    try:
        import zstandard
    except ImportError as exc:
        raise MetalabError(
            f"{archive.name} is a zstd archive; install the zstandard package to read it"
        ) from exc
    try:
        with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as stream:
            yield stream
    except zstandard.ZstdError as exc:
        raise MetalabError(f"{archive} is not a complete zstd archive: {exc}") from None


def _refusal(info: tarfile.TarInfo, max_member: int) -> str | None:
    """Why the member ``info`` is not extracted (None: it is): only plain files and
    directories with relative names inside the archive, up to ``max_member`` bytes
    (stricter than tarfile's ``data`` filter, which also takes links)."""
    try:
        relative_parts(info.name)
    except StorePathError as exc:
        return str(exc)
    if not (info.isfile() or info.isdir()) or info.issparse():
        kind = "link" if info.issym() or info.islnk() else "special file"
        return f"it is a {kind}; only plain files and directories are imported"
    if info.size > max_member:
        return (
            f"it is {info.size:,} bytes, above the limit of {max_member:,} per member "
            "(--max-member-size)"
        )
    return None


def _stream_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members one by one, forgetting each (tarfile would keep every header)."""
    while (info := tar.next()) is not None:
        yield info
        tar.members.clear()  # type: ignore[attr-defined]  # an attribute typeshed omits


def _extract_member(tar: tarfile.TarFile, info: tarfile.TarInfo, scratch: Path) -> None:
    target = join_inside(scratch, info.name)
    if info.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(info)
    assert source is not None  # a plain file
    with source, open(target, "xb") as out:  # "x": a repeated name never replaces a file
        shutil.copyfileobj(source, out, _CHUNK)


def _extract(archive: Path, scratch: Path, max_member: int, report: MergeReport) -> None:
    """Unpack the plain files and directories of ``archive`` into ``scratch``, refusing
    every other member with one line."""
    with _open_read(archive) as tar:
        for info in _stream_members(tar):
            reason = _refusal(info, max_member)
            if reason is None:
                try:
                    _extract_member(tar, info, scratch)
                except (StorePathError, FileExistsError, NotADirectoryError) as exc:
                    reason = f"it clashes with another member ({exc.__class__.__name__})"
            if reason is not None:
                report.refuse(f"archive member {info.name!r}", reason)


def _walk_files(top: Path) -> Iterator[Path]:
    """Files under ``top`` (links included, never followed into), sorted."""
    for directory, subdirs, files in os.walk(top):
        subdirs.sort()
        for name in sorted(files):
            yield Path(directory) / name


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _source_records(source: ExperimentDir, report: MergeReport) -> Iterator[dict[str, Any]]:
    """The valid records of ``source``; each other file in ``runs/`` or ``failed/`` is
    refused with one line (a name that is no run ID, a record of another run, a link out)."""
    for folder in (source.runs_dir, source.failed_dir):
        for path in _walk_files(folder) if folder.is_dir() else []:
            entry = f"{source.root.name}/{_relative(path, source.root)}"
            if path.parent != folder or not path.name.endswith(".json"):
                report.refuse(entry, "not a record (runs/<run ID>.json)")
                continue
            try:
                yield read_record_file(source, path, check_run_id(path.stem))
            except (RecordError, StorePathError, OSError) as exc:
                report.refuse(entry, exc)


def _run_files(source: ExperimentDir, run_id: str) -> list[str]:
    """Relative paths of the output files of ``run_id`` in ``source``."""
    found = [
        path
        for folder in (source.artifacts(run_id), source.results(run_id))
        for path in _walk_files(folder)
    ]
    found.append(source.derived(run_id))
    if source.logs_dir.is_dir():
        found.extend(sorted(source.logs_dir.glob(f"{run_id}_*.log")))
    return [_relative(path, source.root) for path in found if os.path.lexists(path)]


def _imported(relpath: str) -> bool:
    """Whether a file outside the run directories travels (``compiled.json`` etc.)."""
    top = relpath.split("/", 1)[0]
    return top not in _RUN_DIRS and not any(
        relpath == skip or relpath.startswith(skip + "/") for skip in _NOT_IMPORTED
    )


def _merge_experiment(
    source: ExperimentDir, target: ExperimentDir, report: MergeReport, move: bool
) -> None:
    """Merge one experiment directory into ``target``, run by run (``move``: the source
    is a scratch copy, so its files are renamed, not copied)."""
    for path in _walk_files(source.root):  # compiled.json, the run table etc. when missing
        relpath = _relative(path, source.root)
        if _imported(relpath):
            copy_inside(source.root, relpath, target.root, report, move)

    def outputs(run_id: str) -> Callable[[ExperimentDir], None]:
        def copy(layout: ExperimentDir) -> None:
            for relpath in _run_files(source, run_id):
                copy_inside(source.root, relpath, layout.root, report, move)

        return copy

    for record in _source_records(source, report):
        merge_run(target, record, outputs(record["run_id"]), report)


def _experiment_id(layout: ExperimentDir, report: MergeReport) -> str | None:
    """The experiment ID in ``compiled.json``, or None (refused) when it is not a valid
    ``name:version`` or the file leads out of the directory."""
    try:
        compiled = read_json_inside(layout.root, layout.compiled)
        return check_experiment_id(compiled.get("experiment_id"))
    except (OSError, ValueError, AttributeError, MetalabError) as exc:
        report.refuse(f"experiment {layout.root.name}", exc)
        return None


def _source_dirs(path: Path, report: MergeReport) -> list[ExperimentDir]:
    """The experiment directories of a store root or experiment directory; a child
    that leads out of the root through a link is refused."""
    single = ExperimentDir.at(path)
    if single.exists():
        return [single]
    found = []
    for child in sorted(path.iterdir()) if path.is_dir() else []:
        layout = ExperimentDir.at(child)
        if layout.exists():
            try:
                found.append(ExperimentDir.at(inside(path, child)))
            except StorePathError as exc:
                report.refuse(f"experiment {child.name}", exc)
    return found


def _import_dirs(
    source: Path, dest: str | os.PathLike[str], report: MergeReport, move: bool
) -> MergeReport:
    store = FileStoreConfig(dest)
    for layout in _source_dirs(source, report):
        experiment_id = _experiment_id(layout, report)
        if experiment_id is not None:
            _merge_experiment(layout, store.experiment_dir(experiment_id), report, move)
            report.experiments.append(experiment_id)
    return report


def import_store_dir(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> MergeReport:
    """Merge (copy) the experiments of a store root or experiment directory into ``dest``."""
    return _import_dirs(Path(source).absolute(), dest, MergeReport(), move=False)


def import_archive(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    max_member: int = DEFAULT_MAX_MEMBER,
) -> MergeReport:
    """Unpack ``archive`` into the store root ``dest`` (streamed: memory stays bounded),
    merging with what is there; members that are not plain files or directories inside
    the archive, or larger than ``max_member`` bytes, are refused (``report.refused``)."""
    root = file_path(dest).absolute()
    root.mkdir(parents=True, exist_ok=True)
    report = MergeReport()
    with tempfile.TemporaryDirectory(prefix=".import-", dir=root) as scratch:
        _extract(Path(archive), Path(scratch), max_member, report)
        return _import_dirs(Path(scratch), root, report, move=True)
