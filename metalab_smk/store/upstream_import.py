"""Convert an upstream metalab store into this project's layout (``metalab import``).

Run IDs are kept, so ``metalab.run(exp, store=DEST)`` with the same experiment
definition finds every successful run done; failed runs land in ``failed/`` and are
retried.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from metalab_smk.core.naming import check_experiment_id
from metalab_smk.errors import ExperimentError, MetalabError, StorePathError
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.jsonio import atomic_write_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.merge import MergeReport, copy_inside, merge_run, write_provisional_compiled
from metalab_smk.store.safepath import is_run_id, read_json_inside
from metalab_smk.store.upstream import (
    UpstreamExperiment,
    artifact_manifest,
    convert_data,
    find_upstream,
)

__all__ = ["import_upstream"]


def _outputs(
    experiment: UpstreamExperiment, record: dict, target: ExperimentDir, report: MergeReport
) -> None:
    """Copy artifacts, data, derived metrics and logs of one run into ``target``; a path
    that leads out of the upstream store or of ``target`` is refused."""
    root, run_id = experiment.root, record["run_id"]
    for descriptor in record["artifacts"]:
        uri = descriptor.get("uri")
        if isinstance(uri, str) and not os.path.isabs(uri):  # absolute: another machine's
            copy_inside(root, uri, target.root, report)
    if record["artifacts"]:
        atomic_write_json(
            target.artifact_manifest(run_id), artifact_manifest(target.root, record["artifacts"])
        )
    for path in _files(root / "results" / run_id, "*.json"):
        target_path = target.data_file(run_id, path.stem)
        if not target_path.is_file():
            try:
                data = convert_data(read_json_inside(root, path), path.stem)
            except (StorePathError, ValueError) as exc:
                report.refuse(f"{root.name}/results/{run_id}/{path.name}", exc)
                continue
            atomic_write_json(target_path, data)
    copy_inside(root, f"derived/{run_id}.json", target.root, report)
    for log in _files(root / "logs", f"{run_id}_*.log"):
        copy_inside(root, f"logs/{log.name}", target.root, report)


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


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
        try:
            layout = store.experiment_dir(check_experiment_id(experiment.experiment_id))
        except ExperimentError as exc:
            report.refuse(f"experiment {experiment.experiment_id!r}", exc)
            continue
        records = list(experiment.records())
        order = [rid for rid in experiment.run_order if is_run_id(rid)]
        order = order or [r["run_id"] for r in records]
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
            merge_run(layout, record, partial(_outputs, experiment, record, report=report), report)
        report.refused.extend(experiment.refused)
        report.experiments.append(experiment.experiment_id)
    return report
