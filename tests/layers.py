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
LAYER_OF: dict[str, str] = {
    "test_architecture.py": ROOT,
    "test_packaging.py": ROOT,
    "test_filehash.py": "core",
    "test_identity.py": "core",
    "test_operation.py": "core",
    "test_params.py": "core",
    "test_plan.py": "core",
    "test_resources.py": "core",
    "test_seeds.py": "core",
    "test_import_safety.py": "store",
    "test_paths.py": "store",
    "test_store.py": "store",
    "test_stores.py": "store",
    "test_trust.py": "store",
    "test_experiment_file.py": "compile",
    "test_scale.py": "compile",
    "test_isolation.py": "job",
    "test_aggregate.py": "results",
    "test_analysis_api.py": "results",
    "test_pgindex.py": "results",
    "test_reduce.py": "results",
    "test_stats.py": "results",
    "test_slurm_fake.py": "slurm",
    "test_slurm_parsers.py": "slurm",
    "test_slurm_task.py": "slurm",
    "test_control.py": "sweep",
    "test_gpus.py": "sweep",
    "test_long_runs.py": "sweep",
    "test_packing.py": "sweep",
    "test_resilience.py": "sweep",
    "test_script_exit.py": "sweep",
    "test_ui_api.py": "ui",
    "test_ui_cli.py": "ui",
    "test_ui_db.py": "ui",
    "test_ui_query.py": "ui",
    "test_ui_stores.py": "ui",
    "test_cli_completion.py": "cli",
    "test_cli_json.py": "cli",
    "test_cli_ux.py": "cli",
    "test_engine.py": "e2e",
    "test_ui_analysis_browser.py": "e2e",
    "test_ui_browser.py": "e2e",
    "test_ui_browser_stores.py": "e2e",
    "test_upstream_api.py": "e2e",
    "test_slurm.py": "cluster",
    "test_slurm_resources.py": "cluster",
    "test_plain_snakemake_faults.py": "cluster",
    "test_learned.py": "store",
    "test_local_oom.py": "sweep",
    "test_ui_axes.py": "ui",
    "test_upstream_compat.py": "e2e",
}

# files whose tests run real Snakemake sweeps without marking themselves ``integration``
RUN_SWEEPS = frozenset({"test_analysis_api.py", "test_packing.py"})


def layer_of(path: Path) -> str | None:
    """The folder of the test file at ``path``: the one it is in, else the table's; None
    for a flat file the table does not name."""
    if path.parent.name in FOLDERS and path.parent.parent.name == "tests":
        return path.parent.name
    return LAYER_OF.get(path.name)
