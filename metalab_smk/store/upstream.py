"""Stores written by the upstream metalab library: find, read and convert them.

An upstream experiment folder holds ``_meta.json`` (``created_by: metalab``),
``runs/<id>.json`` (successful and failed runs alike), ``artifacts/<id>/`` with
``_manifest.json``, ``results/<id>/<name>.json``, ``derived/<id>.json``,
``logs/<id>_<name>.log`` and ``experiments/<id>_<timestamp>.json`` manifests. Its
artifact URIs are absolute paths of the machine that wrote it; they are resolved
relative to the store when they do not exist. Field mapping: docs/stores.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metalab_smk.core.identity import seed_fingerprint
from metalab_smk.errors import MetalabError, StorePathError
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import SCHEMA_VERSION
from metalab_smk.store.safepath import check_run_id, read_json_inside

__all__ = [
    "UpstreamExperiment",
    "artifact_manifest",
    "convert_data",
    "convert_record",
    "find_upstream",
    "is_upstream_dir",
    "load_array",
    "load_foreign_artifact",
    "resolve_artifact_path",
]

FOREIGN_FORMATS = ("npz", "pkl")


def is_upstream_dir(path: Path) -> bool:
    """True for an experiment folder written by the upstream metalab."""
    if ExperimentDir(path).compiled.is_file():
        return False
    meta = path / "_meta.json"
    if meta.is_file():
        try:
            return read_json_inside(path, meta).get("created_by") == "metalab"
        except (OSError, ValueError):
            return False
    return (path / "runs").is_dir() and (path / "experiments").is_dir()


class UpstreamExperiment:
    """One experiment in an upstream folder (a folder may hold several experiment IDs)."""

    def __init__(self, root: Path, experiment_id: str) -> None:
        self.root = root
        self.experiment_id = experiment_id
        self.manifest = _latest_manifest(root, experiment_id)
        self.refused: list[str] = []  # record files left out, with why

    @property
    def run_order(self) -> list[str]:
        """Run IDs in the order the latest manifest lists them."""
        return list(self.manifest.get("run_ids") or [])

    def raw_records(self) -> list[dict[str, Any]]:
        """The upstream records of this experiment, in manifest order (then by start)."""
        self.refused.clear()
        found = _records(self.root, self.refused)
        records = [r for r in found if r.get("experiment_id") == self.experiment_id]
        position = {rid: i for i, rid in enumerate(self.run_order)}
        records.sort(
            key=lambda r: (position.get(r["run_id"], len(position)), r.get("started_at") or "")
        )
        return records

    def records(self) -> Iterator[dict[str, Any]]:
        """Records converted to this project's record format."""
        for raw in self.raw_records():
            yield convert_record(raw, self.root, self.manifest)


def _records(root: Path, refused: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The records in ``runs/``; one named ``<run ID>.json`` whose ``run_id`` differs, or
    a link out of ``root``, is left out (with why in ``refused``)."""
    runs = root / "runs"
    if not runs.is_dir():
        return
    for entry in sorted(os.scandir(runs), key=lambda e: e.name):
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            try:
                data = read_json_inside(root, entry.path)
                if isinstance(data, dict) and "run_id" in data:
                    yield _checked(data, entry.name)
            except (StorePathError, ValueError, OSError) as exc:
                if refused is not None:
                    refused.append(f"refused {root.name}/runs/{entry.name}: {exc}")


def _checked(record: dict[str, Any], name: str) -> dict[str, Any]:
    """``record`` when its ``run_id`` is a run ID and names its file, else StorePathError."""
    if check_run_id(record["run_id"]) + ".json" != name:
        raise StorePathError(f"its run_id {record['run_id']!r} does not match its file name")
    return record


def _manifests(root: Path) -> list[dict[str, Any]]:
    folder = root / "experiments"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        with contextlib.suppress(StorePathError):  # a link out of the store is not read
            manifest = read_json_inside(root, path)
            if isinstance(manifest, dict):
                found.append(manifest)
    return found


def _latest_manifest(root: Path, experiment_id: str) -> dict[str, Any]:
    found = [m for m in _manifests(root) if m.get("experiment_id") == experiment_id]
    found.sort(key=lambda m: m.get("submitted_at") or "")
    return found[-1] if found else {}


def _experiment_ids(root: Path) -> list[str]:
    ids = {m.get("experiment_id") for m in _manifests(root)}
    meta = root / "_meta.json"
    if meta.is_file():
        ids.add(read_json_inside(root, meta).get("experiment_id"))
    ids |= {r.get("experiment_id") for r in _records(root)}
    return sorted(i for i in ids if isinstance(i, str) and i)


def find_upstream(path: str | os.PathLike[str]) -> list[UpstreamExperiment]:
    """The upstream experiments in ``path`` (an experiment folder or a collection root)."""
    root = Path(path).absolute()
    folders = [root] if is_upstream_dir(root) else []
    if not folders and root.is_dir():
        folders = [c for c in sorted(root.iterdir()) if c.is_dir() and is_upstream_dir(c)]
    return [UpstreamExperiment(f, eid) for f in folders for eid in _experiment_ids(f)]


def resolve_artifact_path(root: Path, run_id: str, uri: str) -> Path:
    """The file of an artifact: ``uri`` relative to ``root``, or as written when it
    exists, else the same file name under ``root/artifacts/<run_id>/`` (upstream records
    hold absolute paths of the machine that wrote them)."""
    path = root / uri  # an absolute uri replaces root
    if path.exists():
        return path
    parts = Path(uri).parts
    if "artifacts" in parts:  # .../<store>/artifacts/<run_id>/<file>
        tail = parts[len(parts) - 1 - parts[::-1].index("artifacts") :]
        candidate = root.joinpath(*tail)
        if candidate.exists():
            return candidate
    return root / "artifacts" / run_id / Path(uri).name


def relative_artifact_uri(root: Path, run_id: str, uri: str) -> str:
    """``uri`` rewritten relative to ``root`` (a POSIX path) when the file is in the store."""
    path = resolve_artifact_path(root, run_id, uri)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return uri


def artifact_manifest(root: Path, artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    """``artifacts/<id>/_manifest.json`` as upstream reads it: ``{"artifacts": [...]}``
    with absolute URIs (records keep them relative to the experiment directory)."""
    return {"artifacts": [{**a, "uri": str(root / a["uri"])} for a in artifacts]}


def load_array(path: Path, mmap_mode: Any = None) -> Any:
    """A numpy artifact: ``.npz`` as upstream writes it (one array saved as ``arr`` comes
    back as that array, else a dict of arrays) or a plain ``.npy``."""
    import numpy as np

    loaded = np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded
    with loaded as data:
        keys = list(data.keys())
        return data["arr"] if keys == ["arr"] else {k: data[k] for k in keys}


def load_foreign_artifact(path: Path, fmt: str, allow_pickle: bool) -> Any:
    """Load an artifact in an upstream format: ``npz`` (a single array saved as ``arr``
    comes back as that array, else a dict of arrays) or ``pkl``."""
    if fmt == "npz":
        return load_array(path)
    if not allow_pickle:
        raise MetalabError(
            f"{path.name} is a pickle; loading runs arbitrary code, so pass "
            "allow_pickle=True if you trust it."
        )
    import pickle

    return pickle.loads(path.read_bytes())


def _seed(raw: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The seed bundle whose fingerprint matches the record's (upstream omits it)."""
    seeds = manifest.get("seeds") or {}
    base, replicates = seeds.get("base"), seeds.get("replicates") or 1
    if not isinstance(base, int):
        return {}
    for index in range(int(replicates)):
        if seed_fingerprint(base, index) == raw.get("seed_fingerprint"):
            return {"root_seed": base, "replicate_index": index}
    return {}


def _stepped(root: Path, run_id: str) -> dict[str, Any]:
    """Last value of each stepped metric in ``results/<run_id>/``, by name."""
    folder = root / "results" / run_id
    found: dict[str, Any] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            data = read_json_inside(root, path)
            if (data.get("metadata") or {}).get("type") == "stepped_metric":
                rows = data.get("data") or []
                found[path.stem] = rows[-1][1] if rows else None
    return found


def convert_record(raw: dict[str, Any], root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """An upstream run record in this project's format (see docs/stores.md for the mapping)."""
    run_id = raw["run_id"]
    stepped = _stepped(root, run_id)
    artifacts = []
    for descriptor in raw.get("artifacts") or []:
        item = dict(descriptor)
        item["uri"] = relative_artifact_uri(root, run_id, str(descriptor.get("uri", "")))
        item["metadata"] = {
            k: v for k, v in (descriptor.get("metadata") or {}).items() if not k.startswith("_")
        }
        artifacts.append(item)
    order = list(manifest.get("run_ids") or [])
    provenance = dict(raw.get("provenance") or {})
    provenance["extra"] = {
        **(provenance.get("extra") or {}),
        "converted_from": f"metalab schema {raw.get('_schema_version', '?')}",
    }
    return {
        "run_id": run_id,
        "experiment_id": raw.get("experiment_id"),
        "status": raw.get("status") or "failed",
        "context_fingerprint": raw.get("context_fingerprint") or "",
        "params_fingerprint": raw.get("params_fingerprint") or "",
        "seed_fingerprint": raw.get("seed_fingerprint") or "",
        "started_at": raw.get("started_at") or "",
        "finished_at": raw.get("finished_at") or "",
        "duration_ms": raw.get("duration_ms") or 0,
        "metrics": {**stepped, **(raw.get("metrics") or {})},
        "provenance": provenance,
        "error": raw.get("error"),
        "params_resolved": raw.get("params_resolved") or {},
        "tags": list(raw.get("tags") or []),
        "warnings": list(raw.get("warnings") or []),
        "notes": raw.get("notes"),
        "artifacts": artifacts,
        "seed": _seed(raw, manifest),
        "run_index": order.index(run_id) if run_id in order else None,
        "stepped_metrics": sorted(stepped),
        "_schema_version": SCHEMA_VERSION,
    }


def convert_data(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """An upstream ``results/<id>/<name>.json`` in this project's format."""
    metadata = dict(raw.get("metadata") or {})
    kind = "stepped_metric" if metadata.pop("type", None) == "stepped_metric" else "data"
    if kind == "stepped_metric":
        metadata["columns"] = ["step", "value"]
    for key in ("dtype", "shape"):
        if raw.get(key) is not None:
            metadata[key] = raw[key]
    return {"name": name, "type": kind, "data": raw.get("data"), "metadata": metadata}
