"""The PostgreSQL index: connection and schema (psycopg 3, the ``postgres`` extra).

The index is a mirror of the file store, rebuildable from the files at any time. All
tables live in the schema ``metalab``:

* ``experiments``: one row per indexed experiment: ``experiment_id`` (primary key),
  ``name``, ``version``, ``directory`` (the experiment directory the rows came from;
  artifacts, data and logs are read from there), ``columns`` (JSONB list: the summary
  table's column order), ``compiled`` (JSONB: ``.metalab/compiled.json``), ``n_runs``,
  ``indexed_at``, ``summary`` (the whole results table as Parquet, rewritten in the same
  transaction as the runs: the file store's ``summary/runs.parquet`` when it is current,
  else built from the rows; what an unfiltered ``load_results(URL, experiment_id=...)``
  reads).
* ``runs``: one row per run with a record: ``experiment_id``, ``run_id`` (primary key
  together), ``position`` (index in the run table), ``status``, ``run_index``,
  ``seed_root``, ``seed_replicate``, ``started_at``, ``finished_at`` (text, ISO 8601),
  ``duration_ms``, ``error_type``, ``error_message``, ``tags`` (JSONB list),
  ``params``, ``metrics`` (JSONB), ``row`` (JSON: the summary row, key order kept),
  ``record_mtime_ns``, ``derived_mtime_ns`` (what incremental indexing compares).
* ``steps``: stepped metrics: ``experiment_id``, ``run_id``, ``name``, ``step``, ``value``.
* ``derived``: ``experiment_id``, ``run_id``, ``values`` (JSONB) from ``derived/<id>.json``.
* ``artifacts``: ``experiment_id``, ``run_id``, ``name``, ``kind``, ``format``, ``uri``
  (relative to the experiment directory), ``content_hash``, ``size_bytes``, ``metadata``.

Indexes: ``runs(run_id)``, ``runs(status)``, ``runs(experiment_id, position)``, GIN on
``runs.params`` (``jsonb_path_ops``: ``params @> ...``); ``steps`` and ``artifacts`` on
``(experiment_id, run_id)``. Metrics and tags are filtered without an index of their
own (a GIN index on metrics doubled the indexing time and cannot serve range filters).
"""

from __future__ import annotations

from typing import Any

from metalab_smk.errors import IndexDatabaseError
from metalab_smk.store.uri import is_postgres_url, mask_url, one_line

__all__ = ["SCHEMA_SQL", "connect", "ensure_schema"]

SCHEMA_VERSION = 1

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS metalab;
CREATE TABLE IF NOT EXISTS metalab.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS metalab.experiments (
    experiment_id text PRIMARY KEY,
    name text NOT NULL,
    version text NOT NULL,
    directory text NOT NULL,
    columns jsonb NOT NULL,
    compiled jsonb,
    n_runs integer,
    indexed_at timestamptz NOT NULL DEFAULT now(),
    summary bytea
);
ALTER TABLE metalab.experiments ADD COLUMN IF NOT EXISTS summary bytea;
CREATE TABLE IF NOT EXISTS metalab.runs (
    experiment_id text NOT NULL,
    run_id text NOT NULL,
    position integer NOT NULL,
    status text NOT NULL,
    run_index integer,
    seed_root bigint,
    seed_replicate integer,
    started_at text,
    finished_at text,
    duration_ms bigint,
    error_type text,
    error_message text,
    tags jsonb NOT NULL,
    params jsonb NOT NULL,
    metrics jsonb NOT NULL,
    row json NOT NULL,
    record_mtime_ns bigint NOT NULL,
    derived_mtime_ns bigint NOT NULL,
    PRIMARY KEY (experiment_id, run_id)
);
CREATE INDEX IF NOT EXISTS runs_run_id ON metalab.runs (run_id);
CREATE INDEX IF NOT EXISTS runs_status ON metalab.runs (status);
CREATE INDEX IF NOT EXISTS runs_position ON metalab.runs (experiment_id, position);
CREATE INDEX IF NOT EXISTS runs_params ON metalab.runs USING gin (params jsonb_path_ops);
CREATE TABLE IF NOT EXISTS metalab.steps (
    experiment_id text NOT NULL,
    run_id text NOT NULL,
    name text NOT NULL,
    step bigint,
    value double precision
);
CREATE INDEX IF NOT EXISTS steps_run ON metalab.steps (experiment_id, run_id);
CREATE TABLE IF NOT EXISTS metalab.derived (
    experiment_id text NOT NULL,
    run_id text NOT NULL,
    "values" jsonb NOT NULL,
    PRIMARY KEY (experiment_id, run_id)
);
CREATE TABLE IF NOT EXISTS metalab.artifacts (
    experiment_id text NOT NULL,
    run_id text NOT NULL,
    name text NOT NULL,
    kind text,
    format text,
    uri text,
    content_hash text,
    size_bytes bigint,
    metadata jsonb
);
CREATE INDEX IF NOT EXISTS artifacts_run ON metalab.artifacts (experiment_id, run_id);
"""

RUN_TABLES = ("runs", "steps", "derived", "artifacts")


def connect(url: str, timeout: int = 5) -> Any:
    """A psycopg connection to ``url``; any failure is one IndexDatabaseError line that
    names the URL with its password masked."""
    if not is_postgres_url(url):
        raise IndexDatabaseError(
            f"{mask_url(str(url))} is not a PostgreSQL URL; write "
            "postgresql://user[:password]@host[:port]/database"
        )
    try:
        import psycopg
    except ImportError as exc:
        raise IndexDatabaseError(
            "the PostgreSQL index needs psycopg 3: pip install 'metalab-smk[postgres]'"
        ) from exc
    try:
        return psycopg.connect(url, connect_timeout=timeout)
    except (psycopg.Error, ValueError) as exc:
        raise IndexDatabaseError(
            f"cannot use the PostgreSQL index at {mask_url(url)}: {one_line(exc, url)}"
        ) from None


def ensure_schema(conn: Any) -> None:
    """Create the schema when missing (idempotent; serialised by an advisory lock)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('metalab.schema'))")
        cur.execute(SCHEMA_SQL)
        cur.execute(
            "INSERT INTO metalab.meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
            (str(SCHEMA_VERSION),),
        )
    conn.commit()
