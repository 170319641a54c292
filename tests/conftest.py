"""Shared test setup: a private file-hash cache per test session; a fresh PostgreSQL
database per test (``db``) on the server of scripts/local-postgres-start.sh; markers by
layer (tests/layers.py: ``e2e``, ``cluster``, and ``unit`` for the rest that needs no
process, server or cluster)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from layers import RUN_SWEEPS, layer_of

PG_SERVER_URL = os.environ.get(
    "METALAB_TEST_DB_URL", "postgresql://postgres@127.0.0.1:55432/metalab"
)


# a test marked with one of these is not a unit test
_NOT_UNIT = ("e2e", "cluster", "integration", "slurm", "postgres", "slow")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``e2e`` / ``cluster`` by the test file's layer, ``integration`` for the files that
    run sweeps, ``cluster`` for every ``slurm`` test, ``unit`` for the rest."""
    for item in items:
        layer = layer_of(item.path)
        if layer in ("e2e", "cluster"):
            item.add_marker(layer)
        if item.path.name in RUN_SWEEPS:
            item.add_marker("integration")
        if item.get_closest_marker("slurm") is not None:
            item.add_marker("cluster")
        if not any(item.get_closest_marker(name) for name in _NOT_UNIT):
            item.add_marker("unit")


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path_factory.getbasetemp() / "hash-cache.sqlite"
    monkeypatch.setenv("METALAB_HASH_CACHE", str(cache))


@pytest.fixture(scope="module")
def pg_server() -> str:
    """The test PostgreSQL server's URL; skips when psycopg or the server is missing."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (postgres extra)")
    try:
        psycopg.connect(PG_SERVER_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(
            f"no PostgreSQL at {PG_SERVER_URL} ({str(exc).splitlines()[0]}); start one with "
            "scripts/local-postgres-start.sh or set METALAB_TEST_DB_URL"
        )
    return PG_SERVER_URL


@pytest.fixture
def db(pg_server: str) -> Iterator[str]:
    """A fresh database per test on the test server."""
    import psycopg

    name = f"metalab_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
