"""One place that decides whether a run record counts, and what happens when it does not.

A record counts when its file parses as a JSON object whose ``run_id`` equals its file
name, whose ``status`` is known, which holds every field ``REQUIRED_FIELDS`` names and
whose every field of ``RunRecord`` (and of each artifact descriptor and the seed) has
its type. Anything else (empty, truncated, garbage, a record copied under the wrong
name, a field missing or of the wrong type) is moved to ``quarantine/`` by ``metalab
run`` and ``metalab collect`` with one warning line naming it, so its run is missing
again and is recomputed; readers and ``metalab status`` only name it and leave it out.
Temporary files of dead writers and empty ``.partial`` logs are removed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from metalab_smk.core.values import is_int
from metalab_smk.errors import RecordError, StorePathError
from metalab_smk.store.jsonio import from_strict_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import REQUIRED_FIELDS, ArtifactDescriptor, RunRecord
from metalab_smk.store.safepath import inside

__all__ = [
    "STALE_TEMP_SECONDS",
    "check_record",
    "checked_names",
    "clean_leftovers",
    "open_dir_inside",
    "process_alive",
    "quarantine",
    "read_record_file",
    "read_valid_record",
    "scan_records",
    "Scan",
    "skip_bad_record",
    "valid_names",
    "valid_record_exists",
    "without_valid_record",
]

_STATUSES = {"success", "failed", "running", "cancelled", "interrupted"}
# ".<name>.<pid>.<tid>.tmp" (jsonio) and ".<name>.<pid>.tmp" (summary writer)
_TEMP = re.compile(r"^\..+?\.(\d+)(?:\.\d+)?\.tmp$")
STALE_TEMP_SECONDS = 600.0  # a temp file this old whose writer is not alive here is removed
STALE_PARTIAL_SECONDS = 60.0  # an empty .partial log this old never got its header


def check_record(data: bytes, run_id: str, expect_success: bool | None = None) -> dict[str, Any]:
    """The record in ``data`` if it is valid for ``run_id``, else raise RecordError."""
    if not data.strip():
        raise RecordError("the file is empty")
    try:
        record = from_strict_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"it is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise RecordError(f"it holds a JSON {type(record).__name__}, not a record object")
    found = record.get("run_id")
    if found != run_id:
        raise RecordError(f"its run_id is {found!r}, not {run_id!r} as its file name says")
    status = record.get("status")
    if status not in _STATUSES:
        raise RecordError(f"its status {status!r} is not one of {sorted(_STATUSES)}")
    _check_fields(record)
    if expect_success is not None and (status == "success") != expect_success:
        where = "runs/" if expect_success else "failed/"
        raise RecordError(f"a record with status {status!r} does not belong in {where}")
    return record


_RECORD_TYPES = typing.get_type_hints(RunRecord)
_ARTIFACT_TYPES = typing.get_type_hints(ArtifactDescriptor)
_ARTIFACT_REQUIRED = ("artifact_id", "name", "kind", "format", "uri")
_JSON_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
_SEED_TYPES = {"root_seed": int, "replicate_index": int | None}


@functools.cache
def _checker(hint: Any) -> Callable[[Any], bool]:
    """Whether a JSON value has the type ``hint`` (an int is never a bool), as a function
    built once per hint: records are checked by the thousand."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return lambda value: True
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        plain = tuple(h for h in args if isinstance(h, type) and h not in (int, Any))
        rest = tuple(_checker(h) for h in args if h not in plain)
        if not rest:  # e.g. str | None: one isinstance
            return lambda value: isinstance(value, plain)
        return lambda value: isinstance(value, plain) or any(part(value) for part in rest)
    if hint is type(None):
        return lambda value: value is None
    if hint is int:
        return is_int
    if origin is list:
        (item,) = typing.get_args(hint)
        check = _checker(item)
        return lambda value: isinstance(value, list) and all(check(v) for v in value)
    kind = origin or hint
    return lambda value: isinstance(value, kind)


def _fields(hints: dict[str, Any]) -> tuple[tuple[str, Any, Callable[[Any], bool]], ...]:
    return tuple((name, hint, _checker(hint)) for name, hint in hints.items())


_RECORD_FIELDS = _fields({k: v for k, v in _RECORD_TYPES.items() if k != "status"})
_ARTIFACT_FIELDS = _fields(_ARTIFACT_TYPES)
_SEED_FIELDS = _fields(_SEED_TYPES)


def _check_types(
    data: dict[str, Any], fields: tuple[tuple[str, Any, Callable[[Any], bool]], ...], what: str
) -> None:
    for name, hint, fits in fields:
        if name in data and not fits(data[name]):
            plain = typing.get_origin(hint) is None and isinstance(hint, type)
            shown = hint.__name__ if plain else str(hint).replace("typing.", "")
            got = _JSON_NAMES.get(type(data[name]), type(data[name]).__name__)
            raise RecordError(f"its {what}{name!r} is {got}, not {shown}")


def _check_fields(record: dict[str, Any]) -> None:
    """RecordError unless ``record`` holds the required fields and each known field
    (of the record, its artifact descriptors and its seed) has its type."""
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise RecordError(f"it lacks the field{'s' * (len(missing) > 1)} {', '.join(missing)}")
    _check_types(record, _RECORD_FIELDS, "field ")
    for artifact in record.get("artifacts") or ():
        lacking = [name for name in _ARTIFACT_REQUIRED if name not in artifact]
        if lacking:
            raise RecordError(f"an artifact lacks {', '.join(lacking)}")
        _check_types(artifact, _ARTIFACT_FIELDS, "artifact field ")
    seed = record.get("seed")
    if seed:
        if "root_seed" not in seed:
            raise RecordError("its seed lacks root_seed")
        _check_types(seed, _SEED_FIELDS, "seed field ")


def quarantine(layout: ExperimentDir, path: Path, reason: str) -> Path | None:
    """Move the bad record ``path`` to ``quarantine/`` and print one warning line."""
    target_dir = layout.quarantine_dir / path.parent.name
    target = target_dir / f"{path.name}.{time.time_ns()}"
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    except FileNotFoundError:  # another reader moved it first
        return None
    except OSError as exc:  # e.g. a read-only store: skip it, leave it where it is
        print(
            f"metalab: warning: {path} is not a valid record ({reason}); skipped it (could "
            f"not move it to quarantine: {exc}).",
            file=sys.stderr,
        )
        return None
    print(
        f"metalab: warning: {path} is not a valid record ({reason}); moved it to "
        f"{os.path.relpath(target, layout.root)}: run {path.stem} is recomputed by the next run.",
        file=sys.stderr,
    )
    return target


def skip_bad_record(path: Path, reason: str) -> None:
    """One warning line for a bad record a reader leaves where it is."""
    print(
        f"metalab: warning: {path} is not a valid record ({reason}); skipped it (`metalab "
        "collect` or the next `metalab run` moves it to quarantine).",
        file=sys.stderr,
    )


def read_record_file(
    layout: ExperimentDir, path: Path, run_id: str, dir_fd: int | None = None
) -> dict[str, Any]:
    """The valid record of ``run_id`` at ``path``; RecordError when it is not one or a
    symbolic link leads it out of the experiment directory (FileNotFoundError if none).
    ``dir_fd``: an open descriptor of ``path``'s directory, already found to lie inside
    the experiment directory; a file that is no symbolic link is then read through it
    without resolving every component of its path again (a link is checked in full)."""
    if dir_fd is not None:
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        else:
            try:
                return check_record(_read_all(fd), run_id)
            finally:
                os.close(fd)
    try:
        inside(layout.root, path)
    except StorePathError:
        raise RecordError("it is a symbolic link that leads outside the store") from None
    return check_record(path.read_bytes(), run_id)


def _read_all(fd: int) -> bytes:
    """The rest of the file open at ``fd`` (os.read: a file object costs as much again
    as reading a record)."""
    parts = []
    while chunk := os.read(fd, 1 << 16):  # a network filesystem may return short reads
        parts.append(chunk)
    return b"".join(parts)


def read_valid_record(
    layout: ExperimentDir,
    path: Path,
    run_id: str | None = None,
    move_bad: bool = True,
    dir_fd: int | None = None,
) -> dict[str, Any] | None:
    """The record at ``path`` (``runs/`` or ``failed/``), or None when it is missing or
    invalid: an invalid one is quarantined, or only named with ``move_bad=False`` (what
    readers use: they never write into the store). ``dir_fd``: see read_record_file."""
    run_id = run_id or path.stem
    try:  # any known status: stores of the upstream metalab keep every record in runs/
        return read_record_file(layout, path, run_id, dir_fd)
    except FileNotFoundError:
        return None
    except RecordError as exc:
        if move_bad:
            quarantine(layout, path, str(exc))
        else:
            skip_bad_record(path, str(exc))
        return None


def valid_record_exists(layout: ExperimentDir, run_id: str) -> bool:
    """Whether ``runs/<run_id>.json`` is a valid success record (a bad one is quarantined)."""
    return read_valid_record(layout, layout.record(run_id), run_id) is not None


def open_dir_inside(layout: ExperimentDir, directory: Path) -> int | None:
    """A descriptor of ``directory`` when it lies inside the experiment directory (links
    resolved), else None."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        inside(layout.root, directory)
        opened, named = os.fstat(fd), os.stat(directory)
        if (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino):
            return fd
    except (OSError, StorePathError):
        pass
    os.close(fd)
    return None


def without_valid_record(layout: ExperimentDir, run_ids: Sequence[str]) -> list[bool]:
    """For each of ``run_ids``: True when it has no valid success record (a bad one is
    quarantined). A run without a record file costs one ``stat`` relative to ``runs/``
    instead of resolving the record's whole path."""
    if not layout.runs_dir.is_dir():
        return [True] * len(run_ids)
    fd = open_dir_inside(layout, layout.runs_dir)
    try:
        missing = []
        for run_id in run_ids:
            if fd is not None:
                try:
                    os.stat(f"{run_id}.json", dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    missing.append(True)
                    continue
            path = layout.record(run_id)
            missing.append(read_valid_record(layout, path, run_id, dir_fd=fd) is None)
        return missing
    finally:
        if fd is not None:
            os.close(fd)


def _horizon(validated_before_ns: int | None) -> int | None:
    return None if validated_before_ns is None else validated_before_ns - 2_000_000_000


class Scan(NamedTuple):
    """What a scan of a record directory found."""

    found: set[str]  # run IDs with a usable record file
    clean: bool  # every file read was good and none vanished during the scan
    reads: int  # files read
    overflow: bool  # more than max_reads changed: the rest counted unread


def scan_records(
    layout: ExperimentDir,
    directory: Path,
    validated_before_ns: int | None,
    max_reads: int | None = None,
    move_bad: bool = True,
) -> Scan:
    """One scan of ``directory``, one stat per file: a file is read and validated when it
    is empty (a crash without fsync) or changed after the horizon (when the records were
    last validated, less a margin for coarse file times); others count unread, and so do
    changed ones past ``max_reads``. Bad ones are quarantined, or with ``move_bad=False``
    only named (readers never write into the store)."""
    found: set[str] = set()
    horizon = _horizon(validated_before_ns)
    reads, clean, overflow = 0, True, False
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return Scan(found, True, 0, False)
    try:  # scandir on a descriptor: each stat is relative to it (about twice as fast)
        for entry in os.scandir(fd):
            name = entry.name
            if not name.endswith(".json") or name.startswith("."):
                continue
            run_id = name[:-5]
            try:
                info = entry.stat()
            except OSError:  # removed since the listing
                clean = False
                continue
            changed = not (  # empty, or changed since validated: read it
                info.st_size
                and horizon is not None
                and info.st_mtime_ns < horizon
                and info.st_ctime_ns < horizon
            )
            if changed and reads == max_reads:
                overflow = True  # past max_reads: counted unread
            if not changed or overflow:
                if info.st_size:
                    found.add(run_id)
                continue
            reads += 1
            if read_valid_record(layout, directory / name, run_id, move_bad):
                found.add(run_id)
            else:
                clean = False
    finally:
        os.close(fd)
    return Scan(found, clean, reads, overflow)


def checked_names(
    layout: ExperimentDir, directory: Path, validated_before_ns: int, max_reads: int = 10_000
) -> tuple[set[str], int] | None:
    """(the run IDs of ``directory``'s records as ``valid_names`` finds them, how many
    files were read), or None when the directory did not hold only good records (a file
    vanished or was quarantined) or ``max_reads`` files changed since
    ``validated_before_ns`` (reading them is the summary rebuild's job)."""
    scan = scan_records(layout, directory, validated_before_ns, max_reads)
    return (scan.found, scan.reads) if scan.clean and not scan.overflow else None


def valid_names(
    layout: ExperimentDir, directory: Path, validated_before_ns: int | None = None
) -> set[str]:
    """Run IDs with a usable record file in ``directory`` (``scan_records``; bad ones are
    quarantined): with ``validated_before_ns`` (when the summary last listed and
    validated the records), files changed since then are read and validated too, so a
    record damaged in place after the summary was built does not count either."""
    return scan_records(layout, directory, validated_before_ns).found


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host, also when it belongs to someone else
    (EPERM); a zombie (ended, not yet reaped) does not. The one liveness check of a pid."""
    if pid <= 0:  # 0 and negative numbers name process groups, not a process
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):  # gone, or no /proc
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _stale_temp(entry: os.DirEntry[str], now: float) -> bool:
    match = _TEMP.match(entry.name)
    if match is None:
        return False
    try:
        age = now - entry.stat().st_mtime
    except OSError:
        return False
    return age > STALE_TEMP_SECONDS and not process_alive(int(match.group(1)))


def _clean_scratch(layout: ExperimentDir, now: float) -> list[Path]:
    """Remove what dead batch children left in their scratch folders (temporary records
    of a run that crashed while writing): stale temporary files, then the folder of a
    child that is not alive on this host (a live child's folder is in use)."""
    removed: list[Path] = []
    host = os.uname().nodename
    with contextlib.suppress(OSError), os.scandir(layout.scratch_dir) as folders:
        for folder in folders:
            gone = False
            with contextlib.suppress(OSError), os.scandir(folder.path) as entries:
                for entry in entries:
                    if _stale_temp(entry, now):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                            removed.append(Path(entry.path))
            owner, _, pid = folder.name.rpartition("-")
            if owner == host and pid.isdigit():
                gone = not process_alive(int(pid))
            else:  # another host's child: gone when its folder has long been unused
                with contextlib.suppress(OSError):
                    gone = now - folder.stat().st_mtime > STALE_TEMP_SECONDS
            if gone:
                with contextlib.suppress(OSError):  # only when empty
                    os.rmdir(folder.path)
    return removed


def clean_leftovers(layout: ExperimentDir, logs: dict[str, Any] | None = None) -> list[Path]:
    """Remove temporary files of dead writers (older than STALE_TEMP_SECONDS, whose pid
    is not alive on this host) and empty ``.partial`` logs; return what was removed.

    ``logs`` receives what the scan of ``logs/`` saw, for the summary's coverage:
    ``mtime_ns`` (the directory's time before the scan; None when the scan removed a
    file), ``partials`` (the names of the ``.partial`` logs kept) and ``listed_at_ns``
    (when the scan began)."""
    now = time.time()
    removed: list[Path] = []
    for directory in (
        layout.runs_dir,
        layout.failed_dir,
        layout.summary_dir,
        layout.meta_dir,
        layout.derived_dir,
    ):
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(".") and _stale_temp(entry, now):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
    removed += _clean_scratch(layout, now)
    listed_at = time.time_ns()
    try:
        mtime: int | None = os.stat(layout.logs_dir).st_mtime_ns
    except OSError:
        mtime = None
    partials: list[str] = []
    removed_logs = len(removed)
    with contextlib.suppress(OSError), os.scandir(layout.logs_dir) as entries:
        for entry in entries:
            if not entry.name.endswith(".partial"):
                continue
            partials.append(entry.name)
            with contextlib.suppress(OSError):
                info = entry.stat()
                if info.st_size == 0 and now - info.st_mtime > STALE_PARTIAL_SECONDS:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
                    partials.pop()
    if logs is not None:
        logs["mtime_ns"] = mtime if len(removed) == removed_logs else None
        logs["partials"] = partials
        logs["listed_at_ns"] = listed_at
    return removed
