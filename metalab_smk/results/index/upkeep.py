"""Build and update the PostgreSQL index from the record files (``metalab index``).

Incremental: a run is re-read only when its record or derived-metrics file changed
(modification time or success/failed) since it was indexed; runs whose records are
gone are removed. Changed rows are replaced with COPY in one transaction per
experiment, so the index never shows half an update.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalab_smk.errors import IndexDatabaseError, MetalabError, StoreURIError
from metalab_smk.results.index.query import fetch_rows, frame_of_rows
from metalab_smk.results.index.schema import RUN_TABLES, connect, ensure_schema
from metalab_smk.results.summary import record_row
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.uri import (
    file_path,
    has_password,
    is_postgres_url,
    mask_url,
    one_line,
    strip_password,
)

__all__ = [
    "IndexReport",
    "index_experiment",
    "index_store",
    "remember_index",
    "upkeep",
    "upkeep_after_reduce",
]

INDEX_URL_ENV = "METALAB_INDEX_URL"
_GIVEN: dict[Path, str] = {}  # run(index=URL) in this process: the URL as given
RUN_COLUMNS = (
    "experiment_id, run_id, position, status, run_index, seed_root, seed_replicate, "
    "started_at, finished_at, duration_ms, error_type, error_message, tags, params, "
    "metrics, row, record_mtime_ns, derived_mtime_ns"
)


@dataclass
class IndexReport:
    """What one ``metalab index`` did, per experiment: (id, runs written, runs removed,
    runs in the index)."""

    url: str
    experiments: list[tuple[str, int, int, int]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"{eid}: {written} runs indexed, {removed} removed, {total} in the index"
            for eid, written, removed, total in self.experiments
        ]
        return [*out, f"index: {mask_url(self.url)}"]


_ENCODER = json.JSONEncoder(allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    """JSON text for PostgreSQL, which has no NaN/Infinity: those become null."""
    try:
        return _ENCODER.encode(value)
    except ValueError:
        return _ENCODER.encode(_finite(value))


def _on_disk(layout: ExperimentDir) -> dict[str, tuple[int, str, int, int]]:
    """run ID -> (position, record path, record mtime_ns, derived mtime_ns); a success
    record wins over a failed one."""
    found: dict[str, tuple[int, str, int, int]] = {}
    runs_dir, failed_dir, derived_dir = layout.runs_dir, layout.failed_dir, layout.derived_dir

    def stats(folder: Path) -> dict[str, int]:
        if not folder.is_dir():
            return {}
        return {
            e.name[:-5]: e.stat().st_mtime_ns
            for e in os.scandir(folder)
            if e.name.endswith(".json")
        }

    done, failed, derived = stats(runs_dir), stats(failed_dir), stats(derived_dir)
    for position, run_id in enumerate(layout.read_run_ids()):
        if run_id in done:
            path, mtime = str(layout.record(run_id)), done[run_id]
        elif run_id in failed:
            path, mtime = str(layout.failed_record(run_id)), -failed[run_id]  # sign: kind
        else:
            continue
        found[run_id] = (position, path, mtime, derived.get(run_id, 0))
    return found


def _rows(
    layout: ExperimentDir, eid: str, run_id: str, entry: tuple[int, str, int, int]
) -> dict[str, Any]:
    position, path, mtime, derived_mtime = entry
    record = read_json(path)
    row = record_row(record)
    seed = record.get("seed") or {}
    error = record.get("error") or {}
    steps = []
    for name in record.get("stepped_metrics") or []:
        data_path = layout.data_file(run_id, name)
        if data_path.is_file():
            for step, value in read_json(data_path)["data"]:
                number = value if isinstance(value, (int, float)) else None
                steps.append((eid, run_id, name, step, number))
    run = (
        eid,
        run_id,
        position,
        str(record.get("status")),
        record.get("run_index"),
        seed.get("root_seed"),
        seed.get("replicate_index"),
        record.get("started_at") or None,
        record.get("finished_at") or None,
        record.get("duration_ms"),
        error.get("type"),
        error.get("message"),
        _dumps(record.get("tags") or []),
        _dumps(record.get("params_resolved") or {}),
        _dumps(record.get("metrics") or {}),
        _dumps(row),
        mtime,
        derived_mtime,
    )
    derived = []
    if derived_mtime:
        derived.append((eid, run_id, _dumps(read_json(layout.derived(run_id)))))
    artifacts = [
        (
            eid,
            run_id,
            a.get("name"),
            a.get("kind"),
            a.get("format"),
            a.get("uri"),
            a.get("content_hash"),
            a.get("size_bytes"),
            _dumps(a.get("metadata") or {}),
        )
        for a in record.get("artifacts") or []
    ]
    return {"row": row, "runs": run, "steps": steps, "derived": derived, "artifacts": artifacts}


def _columns(layout: ExperimentDir, previous: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The summary table's column order: the parquet summary's when it is current,
    else the previous order extended by new keys in order of appearance."""
    from metalab_smk.results.summary import summary_is_current

    if summary_is_current(layout):
        import pyarrow.parquet as pq

        return list(pq.read_schema(layout.summary_runs).names)
    columns = dict.fromkeys(previous)
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _copy(cur: Any, table: str, columns: str, rows: list[tuple]) -> None:
    if rows:
        with cur.copy(f"COPY metalab.{table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def index_experiment(conn: Any, layout: ExperimentDir, rebuild: bool = False) -> tuple:
    """Bring the index of one experiment directory up to date; (id, written, removed,
    total)."""
    compiled = read_json(layout.compiled)
    experiment_id = compiled["experiment_id"]
    disk = _on_disk(layout)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (experiment_id,))
        cur.execute(
            "SELECT columns, directory FROM metalab.experiments WHERE experiment_id = %s",
            (experiment_id,),
        )
        found = cur.fetchone()
        if rebuild or (found is not None and found[1] != str(layout.root)):
            found = None  # rebuilt, or the same experiment ID indexed from another directory
            for table in (*RUN_TABLES, "experiments"):
                cur.execute(
                    f"DELETE FROM metalab.{table} WHERE experiment_id = %s", (experiment_id,)
                )
        previous = found[0] if found else []
        cur.execute(
            "SELECT run_id, position, record_mtime_ns, derived_mtime_ns FROM metalab.runs "
            "WHERE experiment_id = %s",
            (experiment_id,),
        )
        indexed = {r[0]: (r[1], r[2], r[3]) for r in cur.fetchall()}
        changed = [
            rid
            for rid, (pos, _, mtime, dmtime) in disk.items()
            if indexed.get(rid) != (pos, mtime, dmtime)
        ]
        removed = [rid for rid in indexed if rid not in disk]
        built = [_rows(layout, experiment_id, rid, disk[rid]) for rid in changed]
        stale = changed + removed
        if stale:
            for table in RUN_TABLES:
                cur.execute(
                    f"DELETE FROM metalab.{table} WHERE experiment_id = %s AND run_id = ANY(%s)",
                    (experiment_id, [rid for rid in stale if rid in indexed]),
                )
        _copy(cur, "runs", RUN_COLUMNS, [b["runs"] for b in built])
        _copy(
            cur,
            "steps",
            "experiment_id, run_id, name, step, value",
            [s for b in built for s in b["steps"]],
        )
        _copy(
            cur,
            "derived",
            'experiment_id, run_id, "values"',
            [d for b in built for d in b["derived"]],
        )
        _copy(
            cur,
            "artifacts",
            "experiment_id, run_id, name, kind, format, uri, content_hash, size_bytes, metadata",
            [a for b in built for a in b["artifacts"]],
        )
        columns = _columns(layout, previous, [b["row"] for b in built])
        name, _, version = experiment_id.rpartition(":")
        cur.execute(
            "INSERT INTO metalab.experiments (experiment_id, name, version, directory, columns,"
            " compiled, n_runs, indexed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now())"
            " ON CONFLICT (experiment_id) DO UPDATE SET directory = EXCLUDED.directory,"
            " columns = EXCLUDED.columns, compiled = EXCLUDED.compiled,"
            " n_runs = EXCLUDED.n_runs, indexed_at = now()",
            (
                experiment_id,
                name,
                version,
                str(layout.root),
                _dumps(columns),
                _dumps(compiled),
                len(layout.read_run_ids()),
            ),
        )
        if stale or found is None:
            cur.execute(
                "UPDATE metalab.experiments SET summary = %s WHERE experiment_id = %s",
                (_summary_bytes(cur, layout, experiment_id, columns), experiment_id),
            )
    conn.commit()
    return experiment_id, len(changed), len(removed), len(disk)


def _summary_bytes(cur: Any, layout: ExperimentDir, experiment_id: str, columns: list) -> bytes:
    """The whole results table as Parquet: the file store's own summary when current
    (so loads match it exactly), else built from the indexed rows."""
    from metalab_smk.results.summary import summary_is_current

    if summary_is_current(layout):
        return (layout.summary_runs).read_bytes()
    from psycopg import sql

    lines = fetch_rows(cur, sql.SQL("r.experiment_id = %s"), [experiment_id])
    buffer = io.BytesIO()
    frame_of_rows(lines, columns).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _layouts(path: str | os.PathLike[str]) -> list[ExperimentDir]:
    root = file_path(path).absolute()
    if ExperimentDir.at(root).exists():
        return [ExperimentDir.at(root)]
    store = FileStoreConfig(root)
    found = [store.experiment_dir(eid) for eid in store.list_experiments()]
    if not found:
        raise MetalabError(
            f"{root} holds no compiled experiments to index (a store of the upstream metalab "
            "is indexed after `metalab import SRC DEST`)."
        )
    return found


def index_store(path: str | os.PathLike[str], url: str, rebuild: bool = False) -> IndexReport:
    """Index every experiment under ``path`` (an experiment directory or store root)."""
    layouts = _layouts(path)
    report = IndexReport(url)
    try:
        import psycopg

        db_error: Any = psycopg.Error
    except ImportError:
        db_error = ()  # connect() names the missing package
    try:
        with connect(url) as conn:
            ensure_schema(conn)
            for layout in layouts:
                report.experiments.append(index_experiment(conn, layout, rebuild))
    except db_error as exc:
        raise IndexDatabaseError(
            f"indexing into {mask_url(url)} failed: {one_line(exc, url)}"
        ) from None
    return report


def configured_url(layout: ExperimentDir) -> str | None:
    """The index URL of automatic upkeep: ``METALAB_INDEX_URL``, else the one given to
    ``metalab.run(..., index=URL)`` (in this process as given; in others as kept in
    ``.metalab/index.json``, without a password)."""
    url = os.environ.get(INDEX_URL_ENV) or _GIVEN.get(layout.root)
    if url:
        return url
    path = layout.index_config
    return read_json(path).get("url") if path.is_file() else None


def upkeep(layout: ExperimentDir, url: str | None = None) -> bool:
    """Update the index of ``layout`` after its summary (when an index is configured).
    A database that is down costs one warning line, never the sweep."""
    url = url or configured_url(layout)
    if not url:
        return False
    try:
        with connect(url) as conn:
            ensure_schema(conn)
            index_experiment(conn, layout)
        return True
    except Exception as exc:  # the records are safe on disk; `metalab index` catches up
        print(
            f"metalab: warning: the index was not updated ({one_line(exc, url)}); the records "
            "are safe; "
            f"run `metalab index {layout.root} --db URL` later.",
            file=sys.stderr,
        )
        return False


def remember_index(layout: ExperimentDir, url: str) -> None:
    """Keep ``url`` as this experiment's index (``metalab.run(..., index=URL)``): with its
    password in this process only, without it in ``.metalab/index.json``."""
    if not is_postgres_url(url):
        raise StoreURIError(
            f"index={mask_url(str(url))}: expected a URL postgresql://user@host:port/database"
        )
    _GIVEN[layout.root] = url
    stored = strip_password(url)
    if not layout.index_config.is_file() or read_json(layout.index_config).get("url") != stored:
        atomic_write_json(layout.index_config, {"url": stored})
    if has_password(url):
        print(
            f"metalab: note: the password of {mask_url(url)} is not written to disk; "
            "processes started later (a submitted head, plain snakemake, the next run) "
            "take it from PGPASSWORD, ~/.pgpass or a service file.",
            file=sys.stderr,
        )


def upkeep_after_reduce(argv: list[str]) -> None:
    """The index update of ``python -m metalab_smk.reduce DIR`` (not on ``--quiet``, the
    error path, where the runner's own summary updates it)."""
    if "--quiet" in argv:
        return
    paths = [a for a in argv if not a.startswith("--")] or ["."]
    layout = ExperimentDir.at(paths[0])
    if layout.exists():
        upkeep(layout)
