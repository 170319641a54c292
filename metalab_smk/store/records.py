"""RunRecord and friends: what a run leaves behind, as strict JSON with the original's fields."""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

__all__ = [
    "REQUIRED_FIELDS",
    "SCHEMA_VERSION",
    "ArtifactDescriptor",
    "Metric",
    "Provenance",
    "RunRecord",
    "Status",
]

SCHEMA_VERSION = 1

Metric = float | int | str | bool  # a scalar metric value (upstream's metalab.types.Metric)


class Status(enum.StrEnum):
    """A run's state. Records hold SUCCESS, FAILED or CANCELLED; ``metalab status`` also
    reports KILLED (the process died without a record, only a ``.partial`` log is left).
    RUNNING is the original metalab's in-flight state: metalab-smk never writes a record
    for a run in flight (its ``.partial`` log shows it), so records never hold it."""

    SUCCESS = "success"
    FAILED = "failed"
    RUNNING = "running"
    CANCELLED = "cancelled"
    KILLED = "killed"
    INTERRUPTED = "interrupted"  # stopped by a warning (time limit, preemption, stop)


@dataclass(frozen=True)
class ArtifactDescriptor:
    """One stored artifact; ``uri`` is relative to the experiment directory."""

    artifact_id: str
    name: str
    kind: str
    format: str
    uri: str
    content_hash: str | None = None
    size_bytes: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """Dict-style access (``descriptor["name"]``) as in earlier metalab-smk versions."""
        return getattr(self, key)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactDescriptor:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class Provenance:
    """Where and with what a run executed."""

    code_hash: str = ""
    python_version: str = ""
    metalab_version: str = ""
    snakemake_version: str = ""
    executor_id: str = "snakemake"
    host: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """The durable result of one run (``runs/<id>.json`` or ``failed/<id>.json``)."""

    run_id: str
    experiment_id: str
    status: Status
    context_fingerprint: str
    params_fingerprint: str
    seed_fingerprint: str
    started_at: str
    finished_at: str
    duration_ms: int
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    params_resolved: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    notes: str | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    seed: dict[str, Any] = field(default_factory=dict)
    run_index: int | None = None
    stepped_metrics: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["status"] = str(self.status)
        data["_schema_version"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Load a record of any schema version (unknown keys are ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["status"] = Status(known.get("status", "failed"))
        return cls(**{**_LENIENT, **known})


# fields without a dataclass default that records of older writers may lack
_LENIENT: dict[str, Any] = {
    "context_fingerprint": "",
    "params_fingerprint": "",
    "seed_fingerprint": "",
    "started_at": "",
    "finished_at": "",
    "duration_ms": 0,
}
# what a record must hold (store/validate.py checks the types of every field present)
REQUIRED_FIELDS = tuple(
    f.name
    for f in fields(RunRecord)
    if f.default is MISSING and f.default_factory is MISSING and f.name not in _LENIENT
)
