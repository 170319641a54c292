"""Shared test setup: a private file-hash cache per test session; a fresh PostgreSQL
database per test (``db``) on the server of scripts/local-postgres-start.sh."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_SERVER_URL = os.environ.get(
    "METALAB_TEST_DB_URL", "postgresql://postgres@127.0.0.1:55432/metalab"
)


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
