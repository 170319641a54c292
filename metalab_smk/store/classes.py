"""Per-case resources on disk: which resource class each run belongs to.

``Experiment(resources=callable)`` is evaluated once per param case when compiling;
``.metalab/resource_classes.json`` holds the distinct classes (normalised resource dicts)
and each case's class. Packed jobs never mix classes: a batch's resources are written
beside its listing (``<batch>.resources.json``), where the worker (its GPUs), the array
engine (its sbatch options) and plain Snakemake (the rule's resource functions) read
them. Without per-case resources every run has the experiment's one set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metalab_smk.store.jsonio import atomic_write_text, read_json, to_strict_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.learned import AUTO, observe, resolve_auto

__all__ = [
    "ResourceClasses",
    "batch_parts",
    "rule_resources",
    "write_batch_resources",
    "write_batches",
]


class ResourceClasses:
    """The resource classes of a compiled experiment (one class when not per case)."""

    def __init__(
        self,
        common: dict[str, Any],
        classes: list[dict[str, Any]],
        cases: list[int],
        replicates: int,
    ) -> None:
        self.common = common
        self.classes = classes or [common]
        self.cases = cases
        self.replicates = max(1, replicates)
        self._positions: dict[str, int] = {}

    @classmethod
    def read(cls, layout: ExperimentDir) -> ResourceClasses:
        common = read_json(layout.resources_file) if layout.resources_file.is_file() else {}
        if not layout.resource_classes.is_file():
            return cls(common, [], [], 1)
        table = read_json(layout.resource_classes)
        return cls(common, table["classes"], table["cases"], table["replicates"])

    @property
    def per_case(self) -> bool:
        return len(self.classes) > 1 or bool(self.cases)

    def of_run(self, index: int) -> int:
        """The class number of the run at ``index``."""
        return self.cases[index // self.replicates] if self.cases else 0

    def group(self, indices: Sequence[int]) -> dict[int, list[int]]:
        """``indices`` by class number, run order kept within each class."""
        groups: dict[int, list[int]] = {}
        for index in indices:
            groups.setdefault(self.of_run(index), []).append(index)
        return dict(sorted(groups.items()))

    def of_job(self, layout: ExperimentDir, wildcards: Any) -> dict[str, Any]:
        """The resources of a Snakemake job of the rule metalab_batch or metalab_run."""
        batch = getattr(wildcards, "batch", None)
        if batch is not None:
            path = layout.batch_resources(batch)
            return read_json(path) if path.is_file() else self.common
        if not self._positions:
            self._positions.update((rid, i) for i, rid in enumerate(layout.read_run_ids()))
        return self.classes[self.of_run(self._positions[wildcards.run_id])]

    def names(self) -> list[str]:
        """Every resource name some class sets."""
        return sorted({key for resources in self.classes for key in resources})


def batch_parts(indices: Sequence[int], chunk: int, strided: bool = False) -> list[Sequence[int]]:
    """``indices`` in batches of at most ``chunk``: consecutive slices, or ``strided``
    (batch k of n holds every n-th run from the k-th), so that run times that grow or
    shrink along the sweep (a model's size, a dataset's) are shared out evenly."""
    if not strided:
        return [indices[start : start + chunk] for start in range(0, len(indices), chunk)]
    count = math.ceil(len(indices) / chunk)
    return [indices[number::count] for number in range(count)]


def write_batches(
    layout: ExperimentDir,
    indices: Sequence[int],
    chunk: int,
    stamp: str | None = None,
    strided: bool = False,
) -> list[Path]:
    """Write batch listings ``<stamp>-<number>`` of up to ``chunk`` runs each (see
    ``batch_parts``); return their ``.done`` targets."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    targets = []
    for number, batch in enumerate(batch_parts(indices, chunk, strided)):
        name = f"{stamp}-{number:06d}"
        atomic_write_text(layout.batch_listing(name), "".join(f"{i}\n" for i in batch))
        targets.append(layout.batch_done(name))
    return targets


def write_batch_resources(layout: ExperimentDir, name: str, resources: dict[str, Any]) -> None:
    """Note the resources of the batch ``name`` beside its listing."""
    atomic_write_text(layout.batch_resources(name), to_strict_json(resources))


def rule_resources(root: str = ".") -> dict[str, Any]:
    """The ``resources:`` of the rules metalab_batch and metalab_run: the experiment's
    one set, or per case (or when some memory or time is ``"auto"``) one function per
    resource name that Snakemake calls with the job's wildcards (None: the job's class
    does not set it; "auto" learned from finished runs, store/learned.py)."""
    layout = ExperimentDir.at(root)
    table = ResourceClasses.read(layout)
    learning = any(AUTO in resources.values() for resources in table.classes)
    if not table.per_case and not learning:
        return table.common
    observed = observe(layout, table.of_run) if learning else {}

    def of_job(wildcards: Any) -> dict[str, Any]:
        resources = table.of_job(layout, wildcards)
        if AUTO not in resources.values():
            return resources
        number = table.classes.index(resources) if resources in table.classes else 0
        batch = getattr(wildcards, "batch", None)
        runs = len(layout.batch_listing(batch).read_text().split()) if batch else 1
        return resolve_auto(resources, observed.get(number), runs)

    def value_of(key: str) -> Any:
        def value(wildcards: Any) -> Any:
            return of_job(wildcards).get(key)

        return value

    return {key: value_of(key) for key in table.names()}
