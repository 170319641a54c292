"""The end of a sweep, one owner for every path: derived metrics, then the parquet
summary (bad records that landed are quarantined), then the PostgreSQL index when one is
configured. ``RunHandle`` calls ``end_of_sweep``; the summary rule of a plain
``snakemake`` run calls ``summary_rule`` (``python -m metalab_smk.reduce``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from metalab_smk.store.layout import ExperimentDir

if TYPE_CHECKING:
    from metalab_smk.results.rows import RecordRows

__all__ = ["end_of_sweep", "summary_rule"]


def end_of_sweep(
    layout: ExperimentDir,
    derived: Sequence[Any] = (),
    summary_checked: bool = False,
    read: RecordRows | None = None,
) -> int:
    """Write what a finished sweep leaves behind; the number of runs whose derived
    metrics were computed. ``summary_checked``: a no-op start has just ensured the
    summary; ``read``: rows of records read while the sweep ran."""
    from metalab_smk.results.index.upkeep import upkeep
    from metalab_smk.results.summary import ensure_summary

    computed = 0
    if derived:
        from metalab_smk.results.results import Results

        computed = len(Results(layout).compute_derived(list(derived)))
    if not summary_checked:
        ensure_summary(layout, read=read)  # also quarantines bad records that landed
    upkeep(layout)  # the PostgreSQL index, when one is configured
    return computed


def summary_rule(argv: Sequence[str] | None = None) -> int:
    """The summary rule's end of a sweep: the summary of the records, then the index."""
    from metalab_smk.results.index.upkeep import upkeep_after_reduce
    from metalab_smk.results.summary import main

    args = list(sys.argv[1:] if argv is None else argv)
    code = main(args)
    upkeep_after_reduce(args)  # the PostgreSQL index, when one is configured
    return code
