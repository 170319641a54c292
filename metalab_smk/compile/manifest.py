"""Upstream's experiment manifest: one ``experiments/{name}_{version}_{timestamp}.json``
per ``metalab.run()``, in upstream's schema, so upstream tools reading a store find what
each submission was (``.metalab/compiled.json`` is this project's own description)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

from metalab_smk.core.experiment import Experiment
from metalab_smk.store.jsonio import atomic_write_json
from metalab_smk.store.layout import ExperimentDir

__all__ = [
    "deserialize_param_source",
    "deserialize_seed_plan",
    "experiment_header",
    "run_manifest",
    "write_run_manifest",
]


def _serialized(source: Any) -> dict[str, Any]:
    """A param source's manifest, or upstream's fallback (type, repr, total_cases)."""
    try:
        return source.to_manifest()
    except Exception:  # a custom source without a manifest form
        fallback: dict[str, Any] = {"type": type(source).__name__, "repr": repr(source)}
        with contextlib.suppress(TypeError):
            fallback["total_cases"] = len(source)
        return fallback


def deserialize_param_source(data: dict[str, Any]) -> Any:
    """Upstream's name: the param source a manifest's ``params`` describes."""
    from metalab_smk.core.params.source import source_from_manifest

    return source_from_manifest(data)


def deserialize_seed_plan(data: dict[str, Any]) -> Any:
    """Upstream's name: the seed plan a manifest's ``seeds`` describes."""
    from metalab_smk.core.seeds import SeedPlan

    return SeedPlan.from_manifest(data)


def experiment_header(experiment: Experiment) -> dict[str, Any]:
    """What every description of ``experiment`` starts with: its ID and declared facts."""
    return {
        "experiment_id": experiment.experiment_id,
        "name": experiment.name,
        "version": experiment.version,
        "description": experiment.description,
        "tags": experiment.tags,
        "metadata": experiment.metadata,
    }


def run_manifest(experiment: Experiment, run_ids: list[str], now: datetime) -> dict[str, Any]:
    """The manifest of one submission of ``experiment`` (upstream's keys and values)."""
    operation = experiment.operation
    return {
        **experiment_header(experiment),
        "operation": {"ref": operation.ref, "name": operation.name, "code_hash": operation.code_fp},
        "params": _serialized(experiment.params),
        "seeds": experiment.seeds.to_manifest(),
        "context_fingerprint": experiment.context_fp,
        "total_runs": len(run_ids),
        "run_ids": run_ids,
        "submitted_at": now.isoformat(),  # local time, as upstream writes it
    }


def write_run_manifest(layout: ExperimentDir, experiment: Experiment) -> Path:
    """Write this submission's manifest (a new file each call; never overwrites one)."""
    now = datetime.now()
    manifest = run_manifest(experiment, layout.read_run_ids(), now)
    stamp = now.strftime("%Y%m%d_%H%M%S")
    path, n = layout.run_manifest(stamp), 1
    while path.exists():
        n += 1
        path = layout.run_manifest(f"{stamp}_{n}")
    atomic_write_json(path, manifest)
    return path
