"""How much the runs' checkpoint directories hold (``metalab status``)."""

from __future__ import annotations

import os

from metalab_smk.store.layout import ExperimentDir

__all__ = ["checkpoint_usage", "run_checkpoint"]


def _files_and_bytes(directory: str) -> tuple[int, int]:
    """Files below ``directory`` and their bytes (links are counted, not followed)."""
    files = size = 0
    for folder, _, names in os.walk(directory):
        for name in names:
            try:
                size += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
            files += 1
    return files, size


def checkpoint_usage(layout: ExperimentDir) -> tuple[int, int]:
    """How many runs keep a checkpoint directory, and their bytes (links not followed)."""
    root = layout.checkpoints_dir
    if not root.is_dir():
        return 0, 0
    runs = size = 0
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                runs += 1
                size += _files_and_bytes(entry.path)[1]
    return runs, size


def run_checkpoint(layout: ExperimentDir, run_id: str) -> dict[str, int] | None:
    """``{"files", "bytes"}`` of one run's checkpoint directory, or None when it keeps
    none (a link in its place is not followed)."""
    path = layout.checkpoint(run_id)
    if path.is_symlink() or not path.is_dir():
        return None
    files, size = _files_and_bytes(str(path))
    return {"files": files, "bytes": size}
