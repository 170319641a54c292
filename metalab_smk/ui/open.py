"""Which data source ``metalab ui`` serves: the files, or the PostgreSQL index (``--db``)."""

from __future__ import annotations

import os

from metalab_smk.ui.source import DataSource, FileSource

__all__ = ["open_source"]


def open_source(path: str | os.PathLike[str] | None, db: str | None = None) -> DataSource:
    """The data source for a path (default: the default store ``./runs``), or the
    PostgreSQL index at ``db`` (then only experiments under ``path``, when given)."""
    if db:
        from metalab_smk.ui.index_source import IndexSource

        return IndexSource(db, path)
    from metalab_smk.compile.compiler import DEFAULT_STORE

    return FileSource(path if path is not None else DEFAULT_STORE)
