"""The run plan: global run index <-> (param case, replicate, run ID), in O(1) per run.

Run order is param cases in source order with replicates fastest:
``index = case_index * replicates + replicate_index``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from metalab_smk.core.experiment import Experiment
from metalab_smk.core.identity import seed_fingerprint, sha16
from metalab_smk.core.params.source import ParamCase
from metalab_smk.core.seeds import SeedBundle
from metalab_smk.errors import DuplicateRunError

__all__ = ["Plan", "PlannedRun"]

TABLE_FORMAT = 1  # bump when the way run IDs are computed changes


@dataclass(frozen=True)
class PlannedRun:
    """One run of the sweep."""

    index: int
    case_index: int
    replicate_index: int
    case: ParamCase
    seed: SeedBundle
    params_fp: str
    run_id: str

    @property
    def params(self) -> dict:
        return self.case.params


class Plan:
    """Enumerates the runs of an experiment without materialising them.

    Building a Plan fingerprints the context (so a missing FilePath fails here, before
    any job starts); run IDs are computed per index on demand.
    """

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        self.experiment_id = experiment.experiment_id
        self.source = experiment.param_source
        self.replicates = experiment.seeds.replicates
        self.root_seed = experiment.seeds.base
        self.numpy_bits = experiment.seeds.numpy_bits
        self.n_cases = len(self.source)
        self.context_fp = experiment.context_fp
        self.code_fp = experiment.operation.code_fp
        self._seed_fps: dict[int, str] = {}
        # canonical() of the run-ID dict is this prefix + params_fp + middle + seed_fp + '"}'
        dumps = json.dumps
        self._id_prefix = (
            f'{{"code_fp":{dumps(self.code_fp)},"context_fp":{dumps(self.context_fp)},'
            f'"experiment_id":{dumps(self.experiment_id)},"params_fp":"'
        )

    def __len__(self) -> int:
        return self.n_cases * self.replicates

    def seed_fp(self, replicate_index: int) -> str:
        cached = self._seed_fps.get(replicate_index)
        if cached is None:
            cached = seed_fingerprint(self.root_seed, replicate_index, self.numpy_bits)
            self._seed_fps[replicate_index] = cached
        return cached

    def table_key(self) -> str | None:
        """A digest of everything the run table is computed from (None when the param
        source cannot give one cheaply): equal keys give equal run tables."""
        source_key = self.source.table_key()
        if source_key is None:
            return None
        seeds = ",".join(self.seed_fp(r) for r in range(self.replicates))
        return sha16(
            f"run table {TABLE_FORMAT}\n{self._id_prefix}\n{seeds}\n{self.n_cases}\n{source_key}"
        )

    def _id_tail(self, replicate_index: int) -> str:
        return f'","seed_fp":"{self.seed_fp(replicate_index)}"}}'

    def make_run_id(self, params_fp: str, replicate_index: int) -> str:
        """``identity.run_id`` of one run of this plan."""
        return sha16(f"{self._id_prefix}{params_fp}{self._id_tail(replicate_index)}")

    def run_ids_of(self, case_ids: Iterable[str]) -> Iterator[str]:
        """The run IDs of these cases, every replicate of each, in run order: the fast
        spelling of ``identity.run_id`` for many runs (the only other one)."""
        sha = hashlib.sha256  # sha16, inlined: this loop runs once per run
        tails = [self._id_tail(r) for r in range(self.replicates)]
        prefix = self._id_prefix
        for case_id in case_ids:
            head = prefix + case_id
            for tail in tails:
                yield sha(f"{head}{tail}".encode()).hexdigest()[:16]

    def _planned(
        self, case_index: int, replicate: int, case: ParamCase, params_fp: str
    ) -> PlannedRun:
        return PlannedRun(
            index=case_index * self.replicates + replicate,
            case_index=case_index,
            replicate_index=replicate,
            case=case,
            seed=SeedBundle(self.root_seed, replicate, self.numpy_bits),
            params_fp=params_fp,
            run_id=self.make_run_id(params_fp, replicate),
        )

    def run(self, index: int) -> PlannedRun:
        """The run at global ``index`` (negative indices count from the end)."""
        total = len(self)
        position = index + total if index < 0 else index
        if not 0 <= position < total:
            raise IndexError(f"run index {index} out of range for {total} runs")
        case_index, replicate = divmod(position, self.replicates)
        case = self.source[case_index]
        return self._planned(case_index, replicate, case, case.case_id)

    def __getitem__(self, index: int) -> PlannedRun:
        return self.run(index)

    def __iter__(self) -> Iterator[PlannedRun]:
        for case_index, case in enumerate(self.source):
            for replicate in range(self.replicates):
                yield self._planned(case_index, replicate, case, case.case_id)

    def run_ids(self) -> Iterator[str]:
        """Every run ID in run order (cheaper than iterating PlannedRuns)."""
        return self.run_ids_of(self.source.case_ids())

    def duplicates(self) -> list[list[int]]:
        """Groups of case indices whose params are identical (so their run IDs collide)."""
        return self._duplicates(self.source.case_ids())

    @staticmethod
    def _duplicates(case_ids) -> list[list[int]]:
        first_seen: dict[str, int] = {}
        groups: dict[str, list[int]] = {}
        for case_index, case_id in enumerate(case_ids):
            seen = first_seen.setdefault(case_id, case_index)
            if seen != case_index:
                groups.setdefault(case_id, [seen]).append(case_index)
        return list(groups.values())

    def run_table(self) -> list[str]:
        """All run IDs in run order, after checking that no two cases share them (one pass
        over the param source)."""
        case_ids = [case.case_id for case in self.source]
        self._raise_duplicates(self._duplicates(case_ids))
        return list(self.run_ids_of(case_ids))

    def check_unique(self) -> None:
        """Raise DuplicateRunError when two param cases would share run IDs."""
        self._raise_duplicates(self.duplicates())

    def _raise_duplicates(self, groups: list[list[int]]) -> None:
        if not groups:
            return
        shown = "; ".join(
            f"cases {', '.join(map(str, group))} have params {self.source[group[0]].params!r}"
            for group in groups[:5]
        )
        more = f" (and {len(groups) - 5} more groups)" if len(groups) > 5 else ""
        raise DuplicateRunError(
            f"experiment {self.experiment_id!r}: {len(groups)} group(s) of param cases would "
            f"produce the same run IDs: {shown}{more}. Remove the repeated cases, or add "
            "replicates with metalab.seeds(base, replicates=N) if you want repeats."
        )
