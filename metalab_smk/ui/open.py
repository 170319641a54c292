"""Which data source ``metalab ui`` serves: one store's files, several stores (given, or
found below a directory), or the PostgreSQL index (``--db``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from metalab_smk.errors import MetalabError
from metalab_smk.store.uri import is_postgres_url
from metalab_smk.ui.source import DataSource, FileSource

__all__ = ["open_source"]

Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None


def open_source(paths: Paths, db: str | None = None) -> DataSource:
    """The data source for ``paths`` (default: the default store ``./runs``).

    One store root or experiment directory: a ``FileSource`` (experiments keyed by
    ``name:version``). Several paths, or one that holds stores further down: a
    ``StoreSet`` (keys ``STORE@name:version``). With ``db``, or a PostgreSQL URL among
    ``paths`` (the locators ``load_results`` takes): the PostgreSQL index (only
    experiments under the path, when one is given)."""
    if paths is None:
        given: list[str | os.PathLike[str]] = []
    elif isinstance(paths, (str, os.PathLike)):
        given = [paths]
    else:
        given = list(paths)
    urls = [g for g in given if is_postgres_url(g)]  # the locators load_results takes
    if urls:
        if db or len(urls) > 1:
            raise MetalabError("give one PostgreSQL index URL (as PATH or as --db), not two")
        db = str(urls[0])
        given = [g for g in given if not is_postgres_url(g)]
    if db:
        if len(given) > 1:
            raise MetalabError(
                "--db serves the experiments of the index; give at most one PATH (it limits "
                "them to the directories under it)"
            )
        from metalab_smk.ui.index_source import IndexSource

        return IndexSource(db, given[0] if given else None)
    if not given:
        from metalab_smk.compile.compiler import DEFAULT_STORE

        return FileSource(DEFAULT_STORE)
    from metalab_smk.ui.stores import StoreSet, discover_stores, is_store

    if len(given) == 1:
        path = Path(given[0])
        if not path.is_dir() or is_store(path) or not discover_stores(path):
            return FileSource(given[0])  # one store (or an empty directory, served live)
    return StoreSet(given)
