"""Store locators: a path, ``file:///abs/path``, a FileStoreConfig, or a PostgreSQL URL."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from metalab_smk.errors import StoreURIError

__all__ = ["file_path", "has_password", "is_postgres_url", "mask_url", "one_line", "strip_password"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^?#]*)(@[^@?#]*(?:[?#].*)?)$", re.S)
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#]*)", re.I)


def is_postgres_url(locator: Any) -> bool:
    return isinstance(locator, str) and locator.split("://", 1)[0] in POSTGRES_SCHEMES


def _split_credentials(url: str) -> tuple[str, str, str | None, str] | None:
    """(scheme://, user, password or None, @host...) of a URL with credentials; the
    credentials run to the last ``@`` before any ``?`` (so a password with a stray ``/``
    or ``@`` is still found)."""
    match = _CREDENTIALS.match(url)
    if match is None:
        return None
    prefix, userinfo, rest = match.groups()
    user, colon, password = userinfo.partition(":")
    return prefix, user, password if colon else None, rest


def _keyword_passwords(text: str) -> list[str]:
    return [value.strip("'") for _, value in _KEYWORD_PASSWORD.findall(text)]


def mask_url(url: str) -> str:
    """``url`` (a URL or a ``key=value`` connection string) with its password replaced
    by ``***``."""
    parts = _split_credentials(url)
    if parts is not None and parts[2] is not None:
        url = f"{parts[0]}{parts[1]}:***{parts[3]}"
    return _KEYWORD_PASSWORD.sub(r"\1***", url)


def strip_password(url: str) -> str:
    """``url`` without its password (what may be written to disk); libpq then takes it
    from ``PGPASSWORD``, ``~/.pgpass`` or a service file."""
    parts = _split_credentials(url)
    if parts is not None and parts[2] is not None:
        url = f"{parts[0]}{parts[1]}{parts[3]}"
    if parts is None and "://" not in url:  # key=value
        return " ".join(_KEYWORD_PASSWORD.sub("", url).split())
    return re.sub(r"([?&])password=[^&#]*&?", r"\1", url).rstrip("?&")


def has_password(url: str) -> bool:
    return strip_password(url) != url


def one_line(message: object, url: str) -> str:
    """``message`` (an exception's text) on one line with every trace of ``url``'s
    password masked."""
    text = " ".join(str(message).split()).replace(url, mask_url(url))
    parts = _split_credentials(url)
    secrets = [*_keyword_passwords(url), *([parts[2]] if parts and parts[2] else [])]
    for secret in {s for p in secrets for s in (p, unquote(p)) if s}:
        text = text.replace(secret, "***")
    return mask_url(text)


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
