"""Upstream's store locators: ``parse_locator`` splits a path or URL, ``parse_to_config``
turns it into a store config (``FileStoreConfig`` or ``PostgresStoreConfig``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from metalab_smk.store.config import ConfigRegistry, StoreConfig

__all__ = ["LocatorInfo", "create_store", "parse_locator", "parse_to_config"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class LocatorInfo:
    """The parts of a store locator (``params``: its query string)."""

    scheme: str
    path: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    params: dict[str, str] = field(default_factory=dict)
    raw: str = field(default="", repr=False)  # may hold a password


def parse_locator(locator: str | os.PathLike[str]) -> LocatorInfo:
    """Split ``locator``: a plain path (made absolute) or ``file:///abs``, or a URL such
    as ``postgresql://user@host:5432/db?file_root=/shared``."""
    raw = os.fspath(locator)
    match = _SCHEME.match(raw)
    if match is None:
        return LocatorInfo(scheme="file", path=str(Path(raw).absolute()), raw=raw)
    parts = urlsplit(raw)
    params = dict(parse_qsl(parts.query))
    scheme = match.group(1).lower()
    if scheme == "file":
        return LocatorInfo(scheme="file", path=unquote(parts.path), params=params, raw=raw)
    return LocatorInfo(
        scheme=scheme,
        path=unquote(parts.path),
        host=parts.hostname,
        port=parts.port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        params=params,
        raw=raw,
    )


def parse_to_config(locator: str | os.PathLike[str], **kwargs: Any) -> StoreConfig:
    """The store config ``locator`` names; ``kwargs`` (``experiment_id``, ``file_root``)
    override what its query string says."""
    info = parse_locator(locator)
    config_class = ConfigRegistry.get(info.scheme)
    if config_class is None:
        raise ValueError(
            f"Unknown store scheme {info.scheme!r} in {locator}; use a path, file:///abs/path "
            "or postgresql://...?file_root=DIR."
        )
    return config_class.from_locator(info, **kwargs)  # type: ignore[attr-defined]


def create_store(locator: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Upstream's ``create_store``: the store at ``locator`` (a path, ``file://`` URI or
    ``postgresql://...?file_root=DIR``; ``experiment_id=`` scopes it)."""
    return parse_to_config(locator, **kwargs).connect()
