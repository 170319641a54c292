"""Upstream's ``PostgresStore``: records queryable in PostgreSQL, files under ``file_root``.

Here the runs are always written as files under ``file_root`` (one directory per
experiment); the PostgreSQL index mirrors them (``metalab index``), so a
``PostgresStore`` is a ``FileStore`` on ``file_root`` that also knows its index URL.
``metalab.run(exp, store="postgresql://host/db?file_root=/shared")`` runs into
``/shared`` and keeps the index up to date (``metalab index DIR --db URL`` does it by
hand).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from metalab_smk.store.config import ConfigRegistry, StoreConfig
from metalab_smk.store.filestore import FileStore
from metalab_smk.store.uri import file_path, mask_url

__all__ = ["PostgresStore", "PostgresStoreConfig", "run_target", "split_postgres_locator"]

_OURS = ("file_root", "experiment_id", "schema")  # upstream's; never passed to libpq


def split_postgres_locator(locator: str, file_root: Any = None) -> tuple[str, str | None]:
    """(the connection URL without upstream's ``file_root``/``experiment_id``/``schema``,
    the file root from the argument or the URL's ``?file_root=``)."""
    from metalab_smk.errors import UsageError

    parts = urlsplit(locator)
    query = parse_qsl(parts.query)
    found = dict(query).get("file_root")
    if dict(query).get("schema", "public") != "public":
        raise UsageError(
            f"{mask_url(locator)}: the index keeps its tables in the schema 'metalab' of "
            "that database; drop ?schema= (or use another database)."
        )
    kept = urlencode([(k, v) for k, v in query if k not in _OURS])
    url = urlunsplit(parts._replace(query=kept))
    root = file_root if file_root is not None else found
    return url, None if root is None else os.fspath(file_path(root).absolute())


@ConfigRegistry.register
@dataclass(frozen=True)
class PostgresStoreConfig(StoreConfig):
    """A PostgreSQL index (``connection_string``) over the files under ``file_root``."""

    scheme: ClassVar[str] = "postgresql"
    connection_string: str
    file_root: str
    experiment_id: str | None = None

    def __post_init__(self) -> None:
        if not self.file_root:
            raise ValueError(
                f"{mask_url(self.connection_string)}: a PostgreSQL store needs file_root "
                "(?file_root=/shared/dir or file_root=...), where the runs' files live."
            )
        object.__setattr__(self, "file_root", os.fspath(file_path(self.file_root).absolute()))

    @classmethod
    def from_locator(
        cls, info: Any, experiment_id: str | None = None, file_root: Any = None
    ) -> PostgresStoreConfig:
        url, root = split_postgres_locator(info.raw, file_root)
        return cls(url, root or "", experiment_id or info.params.get("experiment_id"))

    def connect(self) -> PostgresStore:
        return PostgresStore(self)

    def __repr__(self) -> str:  # never the password
        return (
            f"PostgresStoreConfig({mask_url(self.connection_string)!r}, "
            f"file_root={self.file_root!r}, experiment_id={self.experiment_id!r})"
        )


ConfigRegistry._classes["postgres"] = PostgresStoreConfig


class PostgresStore(FileStore):
    """A ``FileStore`` on ``file_root`` whose PostgreSQL index is ``connection_string``."""

    def __init__(
        self,
        connection_string: str | PostgresStoreConfig,
        file_root: Any = None,
        experiment_id: str | None = None,
    ) -> None:
        if isinstance(connection_string, PostgresStoreConfig):
            config = connection_string
        else:
            url, root = split_postgres_locator(connection_string, file_root)
            config = PostgresStoreConfig(url, root or "", experiment_id)
        super().__init__(config.file_root, config.experiment_id)
        self.config = config  # type: ignore[assignment]

    @property
    def connection_string(self) -> str:
        return self.config.connection_string

    @property
    def file_store(self) -> FileStore:
        """The files alone (upstream's name)."""
        return FileStore(self.config.file_root, self.config.experiment_id)

    def close(self) -> None:
        """Nothing stays open: each index query opens its own connection."""

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({mask_url(self.connection_string)!r}, file_root={str(self.root)!r})"


def run_target(store: Any, file_root: Any, index: str | None) -> tuple[Any, str | None]:
    """``run()``'s (store, index) for upstream's PostgreSQL stores: the runs go to
    ``file_root`` and the URL becomes the index; other stores pass through."""
    from metalab_smk.errors import UsageError
    from metalab_smk.store.uri import is_postgres_url

    if isinstance(store, (PostgresStore, PostgresStoreConfig)):
        config = store.config if isinstance(store, PostgresStore) else store
        store, file_root = config.connection_string, file_root or config.file_root
    if not is_postgres_url(store):
        if file_root is not None:
            raise UsageError(
                "run(file_root=...) goes with a PostgreSQL store (store='postgresql://...'); "
                "for a file store pass the directory as store=."
            )
        return store, index
    url, root = split_postgres_locator(store, file_root)
    if root is None:
        raise UsageError(
            f"{mask_url(url)}: a PostgreSQL store needs file_root (store='...?file_root=DIR' "
            "or run(file_root=DIR)): the runs' files are written there."
        )
    return root, index or url
