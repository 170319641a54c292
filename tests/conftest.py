"""Shared test setup: a private file-hash cache per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path_factory.getbasetemp() / "hash-cache.sqlite"
    monkeypatch.setenv("METALAB_HASH_CACHE", str(cache))
