"""``load_results`` on something other than one of this project's file stores: a store
written by the upstream metalab, or a PostgreSQL index URL."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from metalab_smk.errors import MetalabError
from metalab_smk.results.summary import RESERVED_COLUMNS, record_row
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.upstream import find_upstream
from metalab_smk.store.uri import file_path, is_postgres_url

__all__ = ["open_special"]


def _upstream_results(
    root: os.PathLike[str], experiment_id: str | None
) -> tuple[ExperimentDir, pd.DataFrame] | None:
    found = find_upstream(root)
    if not found:
        return None
    if experiment_id is None and len(found) > 1:
        raise MetalabError(
            f"{root} holds {len(found)} experiments written by the upstream metalab "
            f"({', '.join(e.experiment_id for e in found)}); pass experiment_id='name:version'."
        )
    chosen = [e for e in found if experiment_id in (None, e.experiment_id)]
    if not chosen:
        raise MetalabError(
            f"no experiment {experiment_id!r} under {root}; it holds: "
            f"{', '.join(e.experiment_id for e in found)}."
        )
    experiment = chosen[0]
    rows = [record_row(record) for record in experiment.records()]
    frame = pd.DataFrame(rows, columns=None if rows else list(RESERVED_COLUMNS))
    return ExperimentDir(experiment.root), frame


def open_special(
    locator: Any, experiment_id: str | None, query: dict[str, Any]
) -> tuple[ExperimentDir, pd.DataFrame] | None:
    """(layout, table) of a PostgreSQL index or an upstream store, for ``Results``; None
    for this project's file stores (``load_results`` reads those itself)."""
    if is_postgres_url(locator):
        from metalab_smk.results.index.query import load_from_index

        return load_from_index(locator, experiment_id, **query)
    if query:
        raise MetalabError(
            f"load_results({', '.join(query)}=...) queries a PostgreSQL index; a file store "
            "takes Results.filter(...) instead."
        )
    root = file_path(locator)
    if ExperimentDir.at(root).exists() or FileStoreConfig(root).list_experiments():
        return None
    return _upstream_results(root, experiment_id)
