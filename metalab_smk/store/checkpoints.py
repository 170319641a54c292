"""How much the runs' checkpoint directories hold (``metalab status``)."""

from __future__ import annotations

import os

from metalab_smk.store.layout import ExperimentDir

__all__ = ["checkpoint_usage"]


def checkpoint_usage(layout: ExperimentDir) -> tuple[int, int]:
    """How many runs keep a checkpoint directory, and their bytes (links not followed)."""
    root = layout.checkpoints_dir
    if not root.is_dir():
        return 0, 0
    runs = size = 0
    with os.scandir(root) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            runs += 1
            for folder, _, names in os.walk(entry.path):
                for name in names:
                    try:
                        size += os.lstat(os.path.join(folder, name)).st_size
                    except OSError:
                        continue
    return runs, size
