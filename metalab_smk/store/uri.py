"""Store locators: a path, ``file:///abs/path``, a FileStoreConfig, or a PostgreSQL URL."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from metalab_smk.errors import StoreURIError

__all__ = ["file_path", "is_postgres_url", "mask_url"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(locator: Any) -> bool:
    return isinstance(locator, str) and locator.split("://", 1)[0] in POSTGRES_SCHEMES


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return re.sub(r"^([a-z+]+://[^:/@]*):[^@/]*@", r"\1:***@", url)


def file_path(locator: str | os.PathLike[str] | Any) -> Path:
    """The directory a file-store locator names (a path, ``file://`` URI, or any object
    with a ``root`` attribute such as FileStoreConfig)."""
    root = getattr(locator, "root", None)
    if root is not None and not isinstance(locator, (str, os.PathLike)):
        return Path(root)
    if isinstance(locator, os.PathLike):
        return Path(locator)
    if not isinstance(locator, str):
        raise StoreURIError(
            f"store={locator!r}: expected a path, 'file:///abs/path' or a FileStoreConfig."
        )
    match = _SCHEME.match(locator)
    if match is None:
        return Path(locator)
    scheme = match.group(1).lower()
    if scheme == "file":
        parts = urlsplit(locator)
        if parts.netloc not in ("", "localhost"):
            raise StoreURIError(
                f"{locator}: file URIs name a local path; write file:///abs/path (three "
                "slashes) or a plain path."
            )
        return Path(unquote(parts.path))
    if scheme in POSTGRES_SCHEMES:
        raise StoreURIError(
            f"{mask_url(locator)} is a PostgreSQL index, not a file store: runs are stored "
            "as files; pass a path as store= and the URL as index= (or METALAB_INDEX_URL)."
        )
    raise StoreURIError(
        f"{mask_url(locator)}: unknown store scheme {scheme!r}; use a path, file:///abs/path "
        "or postgresql://... (for load_results)."
    )
