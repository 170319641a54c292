"""Which layer each test file belongs to: the folder it lives in (``tests/store/...``) or,
while it still lies flat in ``tests/``, the table below. ``conftest.py`` turns the layer
into markers; ``scripts/move-tests-to-layers.py`` moves the files into their folders.

Layers are the package's (docs/architecture.md, "Layers") plus ``e2e`` (whole sweeps,
real browsers, upstream code run unchanged) and ``cluster`` (a real SLURM cluster).
``ROOT`` files test the tree as a whole and stay in ``tests/``."""

from __future__ import annotations

from pathlib import Path

ROOT = ""
LAYERS = ("core", "store", "compile", "job", "results", "slurm", "sweep", "ui", "cli")
FOLDERS = (*LAYERS, "e2e", "cluster")

# test file -> folder, for files not yet in a folder (empty once they all are)
LAYER_OF: dict[str, str] = {}

# files whose tests run real Snakemake sweeps without marking themselves ``integration``
RUN_SWEEPS = frozenset({"test_analysis_api.py", "test_packing.py"})


def layer_of(path: Path) -> str | None:
    """The folder of the test file at ``path``: the one it is in, else the table's; None
    for a flat file the table does not name."""
    if path.parent.name in FOLDERS and path.parent.parent.name == "tests":
        return path.parent.name
    return LAYER_OF.get(path.name)
