"""Turn a path the user typed into an experiment directory or a store, or say what it is.

Every message names what the path is and what was expected, in one line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from metalab_smk.errors import NotAnExperimentError, StoreError
from metalab_smk.store.config import DEFAULT_STORE, FileStoreConfig
from metalab_smk.store.layout import ExperimentDir, safe_experiment_id
from metalab_smk.store.uri import file_path

__all__ = ["check_store", "experiment_dirs", "locate_experiment", "os_error_line", "shown"]


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working directory when that is shorter."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return relative if len(relative) < len(str(path)) else str(path)


def os_error_line(exc: OSError) -> str:
    """A file-system error as one line with what to do about it."""
    where = shown(exc.filename) if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return "no space left on device" + (f" (writing {where})" if where else "")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"cannot write {where or 'the store'}: {exc.strerror} (a read-only store? "
            "run where you may write, or copy the store)"
        )
    if exc.errno == errno.ENOENT and where:
        return (
            f"{where} is missing (deleted or moved while metalab used it?); run the "
            "command again, or recompile with `metalab run FILE`"
        )
    return f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc)


def experiment_dirs(store: str | os.PathLike[str]) -> list[str]:
    """Shown paths of the compiled experiment directories under ``store``."""
    config = FileStoreConfig(store)
    return [shown(config.experiment_dir(e).root) for e in config.list_experiments()]


def _listing(dirs: list[str], limit: int = 5) -> str:
    more = f", ... ({len(dirs)} in all)" if len(dirs) > limit else ""
    return ", ".join(dirs[:limit]) + more


def locate_experiment(
    path: str | os.PathLike[str], experiment: str | None = None, flag: str = "--experiment"
) -> ExperimentDir:
    """The experiment directory ``path`` (or ``experiment`` under the store ``path``).

    A store holding exactly one experiment resolves to it when ``experiment`` is None and
    ``flag`` is given; otherwise a store, a missing path, an experiment file or any other
    file raises ``NotAnExperimentError`` saying what the path is and what to pass instead.
    """
    target = Path(path)
    text = shown(target)
    layout = ExperimentDir.at(target)
    if layout.exists() and experiment is None:
        return layout
    if not target.exists():
        parent = experiment_dirs(target.parent) if target.parent.is_dir() else []
        hint = f"; {shown(target.parent)} holds: {_listing(parent)}" if parent else ""
        raise NotAnExperimentError(
            f"{text} does not exist; expected an experiment directory such as "
            f"{shown(DEFAULT_STORE)}/<name>+<version>, made by `metalab run exp.py`{hint}."
        )
    if target.is_file():
        if target.suffix == ".py":
            raise NotAnExperimentError(
                f"{text} is an experiment file; this command expects its experiment directory: "
                f"run it with `metalab run {text}` (which prints the directory), or pass "
                f"{shown(DEFAULT_STORE)}/<name>+<version>."
            )
        raise NotAnExperimentError(
            f"{text} is a file; expected an experiment directory "
            f"({shown(DEFAULT_STORE)}/<name>+<version>)."
        )
    found = FileStoreConfig(target).list_experiments()
    if experiment is not None:
        matches = [e for e in found if experiment in (e, e.rpartition(":")[0])]
        if len(matches) == 1:
            return FileStoreConfig(target).experiment_dir(matches[0])
        raise NotAnExperimentError(
            f"{text} has no experiment {experiment!r}"
            + (" (several versions match)" if matches else "")
            + f"; it holds: {', '.join(found) or 'none'}."
        )
    if len(found) == 1 and flag:
        return FileStoreConfig(target).experiment_dir(found[0])
    if found:
        dirs = experiment_dirs(target)
        pick = f", or add {flag} NAME:VERSION" if flag else ""
        raise NotAnExperimentError(
            f"{text} is a store holding {len(found)} experiments: {_listing(dirs)}; pass one "
            f"of these directories{pick}."
        )
    raise NotAnExperimentError(
        f"{text} is a directory but not an experiment directory (no .metalab/compiled.json) "
        "and holds none; create one with `metalab run exp.py` or `metalab compile exp.py`."
    )


def check_store(store: str | os.PathLike[str], experiment_id: str) -> None:
    """Refuse a store path that cannot hold the directory of ``experiment_id``."""
    root = file_path(store)  # a path, file:// URI or FileStoreConfig
    for parent in (root, *root.parents):
        if parent.exists():
            if not parent.is_dir():
                raise StoreError(
                    f"--store {shown(root)}: {shown(parent)} is a file; the store is a "
                    f"directory that holds one folder per experiment (default {DEFAULT_STORE})."
                )
            break
    name = safe_experiment_id(experiment_id)
    limit = _name_max(parent)
    if len(name.encode()) > limit:
        raise StoreError(
            f"experiment {experiment_id[:40]!r}... makes a directory name of "
            f"{len(name.encode())} bytes, more than this file system allows ({limit}); "
            "use a shorter name or version."
        )


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255
