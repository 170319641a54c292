"""Convert an upstream metalab store into this project's layout (``metalab import``).

Run IDs are kept, so ``metalab.run(exp, store=DEST)`` with the same experiment
definition finds every successful run done; failed runs land in ``failed/`` and are
retried.
"""

from __future__ import annotations

import os
from pathlib import Path

from metalab_smk.errors import MetalabError
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.merge import MergeReport, copy_file, merge_run, write_provisional_compiled
from metalab_smk.store.upstream import UpstreamExperiment, convert_data, find_upstream

__all__ = ["import_upstream"]


def _log_files(root: Path, run_id: str) -> list[Path]:
    folder = root / "logs"
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"{run_id}_*.log"))


def _outputs(experiment: UpstreamExperiment, record: dict, target: ExperimentDir) -> None:
    """Copy artifacts, data, derived metrics and logs of one run into ``target``."""
    root, run_id = experiment.root, record["run_id"]
    for descriptor in record["artifacts"]:
        source = root / descriptor["uri"]
        if not os.path.isabs(descriptor["uri"]) and source.is_file():
            copy_file(source, target.root / descriptor["uri"])
    if record["artifacts"]:
        atomic_write_json(target.artifact_manifest(run_id), record["artifacts"])
    data_dir = root / "results" / run_id
    if data_dir.is_dir():
        for path in sorted(data_dir.glob("*.json")):
            target_path = target.data_file(run_id, path.stem)
            if not target_path.is_file():
                atomic_write_json(target_path, convert_data(read_json(path), path.stem))
    derived = root / "derived" / f"{run_id}.json"
    if derived.is_file():
        copy_file(derived, target.derived(run_id))
    for log in _log_files(root, run_id):
        copy_file(log, target.logs_dir / log.name)


def import_upstream(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> MergeReport:
    """Convert every upstream experiment under ``source`` into the store root ``dest``."""
    experiments = find_upstream(source)
    if not experiments:
        raise MetalabError(
            f"{source} is not a store written by the upstream metalab (no _meta.json with "
            "created_by 'metalab' and no runs/); pass an experiment folder or its root."
        )
    store = FileStoreConfig(dest)
    report = MergeReport()
    for experiment in experiments:
        layout = store.experiment_dir(experiment.experiment_id)
        records = list(experiment.records())
        order = experiment.run_order or [r["run_id"] for r in records]
        manifest = experiment.manifest
        write_provisional_compiled(
            layout,
            experiment.experiment_id,
            order,
            {
                "tags": manifest.get("tags") or [],
                "description": manifest.get("description"),
                "context_fp": manifest.get("context_fingerprint"),
                "code_fp": (manifest.get("operation") or {}).get("code_hash"),
                "params": manifest.get("params"),
            },
        )
        for record in records:
            merge_run(layout, record, lambda t, r=record, e=experiment: _outputs(e, r, t), report)
        report.experiments.append(experiment.experiment_id)
    return report
