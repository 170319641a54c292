"""``load_results("postgresql://...")``: Results from the PostgreSQL index.

With ``experiment_id`` the table equals the file store's (same columns and values, run
order); artifacts, data and logs are read from the experiment directory recorded in the
index. Without it, runs of every indexed experiment matching the filters come back
together (``experiment_id`` may also be a list or a ``%`` pattern).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metalab_smk.errors import IndexDatabaseError, MetalabError
from metalab_smk.results.index.schema import connect
from metalab_smk.results.index.where_sql import compile_condition
from metalab_smk.results.summary import RESERVED_COLUMNS
from metalab_smk.results.where import Condition, parse_where
from metalab_smk.store.layout import ExperimentDir, RunDirs
from metalab_smk.store.uri import mask_url, one_line

__all__ = ["fetch_rows", "frame_of_rows", "indexed_experiments", "load_from_index"]

EXPERIMENTS_SQL = """
SELECT e.experiment_id, e.name, e.version, e.directory, e.n_runs,
       coalesce(e.compiled->>'description', ''),
       (extract(epoch FROM e.indexed_at) * 1e9)::bigint,
       count(r.run_id) FILTER (WHERE r.status = 'success'),
       count(r.run_id) FILTER (WHERE r.status <> 'success')
FROM metalab.experiments e LEFT JOIN metalab.runs r USING (experiment_id)
GROUP BY e.experiment_id ORDER BY e.experiment_id
"""


def _experiment_condition(
    experiment_id: str | Sequence[str] | None, known: Collection[str]
) -> tuple[str, Any] | None:
    """(SQL, value) selecting ``experiment_id``: one ID (an indexed ID always matches
    only itself), a list, or a pattern whose only wildcard is ``%``."""
    if experiment_id is None:
        return None
    if not isinstance(experiment_id, str):
        return "r.experiment_id = ANY({})", list(experiment_id)
    if _is_pattern(experiment_id, known):
        escaped = experiment_id.replace("\\", "\\\\").replace("_", "\\_")
        return "r.experiment_id LIKE {} ESCAPE '\\'", escaped
    return "r.experiment_id = {}", experiment_id


def _is_pattern(experiment_id: str | Sequence[str] | None, known: Collection[str]) -> bool:
    return isinstance(experiment_id, str) and "%" in experiment_id and experiment_id not in known


def _conditions(
    experiment_id: str | Sequence[str] | None,
    known: dict[str, tuple[str, list[str]]],
    filters: dict[str, Any],
    where: Condition | None,
    where_text: str,
) -> tuple[Any, list[Any]]:
    """(``psycopg.sql`` condition on ``metalab.runs r``, its parameters)."""
    from psycopg import sql

    status, tags = filters.get("status"), filters.get("tags")
    clauses: list[tuple[str, Any]] = []
    selected = _experiment_condition(experiment_id, known)
    if selected is not None:
        clauses.append(selected)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        clauses.append(("r.status = ANY({})", statuses))
    if tags is not None:
        tag_list = [tags] if isinstance(tags, str) else list(tags)
        clauses.append(("r.tags @> {}::jsonb", json.dumps(tag_list)))
    for column in ("params", "metrics"):
        if filters.get(column):
            clauses.append((f"r.{column} @> {{}}::jsonb", json.dumps(filters[column])))
    parts = [sql.SQL(text).format(sql.Placeholder()) for text, _ in clauses]
    values = [value for _, value in clauses]
    if where is not None:
        columns = {c for _, cols in known.values() for c in cols} | set(RESERVED_COLUMNS)
        compiled, where_values = compile_condition(where, columns, RESERVED_COLUMNS, where_text)
        parts.append(compiled)
        values.extend(where_values)
    return (sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")), values


def fetch_rows(cur: Any, condition: Any, values: list[Any]) -> str:
    """Summary rows matching ``condition`` (``psycopg.sql``) as newline-delimited JSON,
    in run order."""
    from psycopg import sql

    query = sql.SQL(
        "SELECT coalesce(string_agg(r.row::text, E'\\n' ORDER BY r.experiment_id,"
        " r.position), '') FROM metalab.runs r WHERE {}"
    ).format(condition)
    cur.execute(query, values)
    return cur.fetchone()[0]


def frame_of_rows(lines: str, columns: list[str]) -> pd.DataFrame:
    """The results table of one experiment from its rows, in its column order."""
    return _frame(lines).reindex(columns=columns or list(RESERVED_COLUMNS))


def _frame(lines: str) -> pd.DataFrame:
    """The summary rows (newline-delimited JSON) as a DataFrame, parsed by Arrow when the
    columns have one type each, else as pandas would build it from the dicts."""
    if not lines:
        return pd.DataFrame()
    import pyarrow as pa
    import pyarrow.json as pa_json

    try:
        table = pa_json.read_json(
            io.BytesIO(lines.encode()),
            parse_options=pa_json.ParseOptions(newlines_in_values=False),
            read_options=pa_json.ReadOptions(block_size=1 << 26),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.DataFrame([json.loads(line) for line in lines.split("\n")])
    return table.to_pandas()


def load_from_index(
    url: str,
    experiment_id: str | Sequence[str] | None = None,
    *,
    where: str | None = None,
    status: str | Sequence[str] | None = None,
    tags: str | Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> tuple[ExperimentDir, pd.DataFrame]:
    """(layout, table) of the runs in the index at ``url``, for ``Results``.

    Filters: ``status``, ``tags`` (all of them), ``params`` / ``metrics`` (equality on
    each key, JSONB containment), and ``where``, a condition on the results columns
    (``results/where.py``: ``"final_loss < 0.2 AND param_opt = 'adam'"``). Queries run
    in a read-only transaction."""
    condition = parse_where(where) if where is not None else None  # refused before connecting
    filters = {"status": status, "tags": tags, "params": params, "metrics": metrics}
    import psycopg

    with connect(url) as conn:
        conn.read_only = True
        try:
            with conn.cursor() as cur:
                known = _indexed(cur)
                single = experiment_id if isinstance(experiment_id, str) else None
                if _is_pattern(experiment_id, known):
                    single = None
                unfiltered = where is None and not any(v is not None for v in filters.values())
                summary = _stored_summary(cur, single) if single and unfiltered else None
                lines = None
                if summary is None:
                    query = _conditions(experiment_id, known, filters, condition, where or "")
                    lines = fetch_rows(cur, *query)
        except psycopg.errors.UndefinedTable:
            raise MetalabError(
                f"{mask_url(url)} holds no metalab index yet; build it with "
                "`metalab index STORE --db URL`."
            ) from None
        except psycopg.Error as exc:
            raise MetalabError(
                f"query on the index at {mask_url(url)} failed: {one_line(exc, url)}"
            ) from None
    if single is not None and single not in known:
        raise MetalabError(
            f"no experiment {experiment_id!r} in the index at {mask_url(url)}; it holds: "
            f"{', '.join(known) or 'none'}."
        )
    if summary is not None and single:  # the whole table, kept with the rows it was built from
        return ExperimentDir(Path(known[single][0])), pd.read_parquet(io.BytesIO(summary))
    return _table(lines or "", known, single)


def _indexed(cur: Any) -> dict[str, tuple[str, list[str]]]:
    """experiment ID -> (directory, column order) of every indexed experiment."""
    cur.execute(
        "SELECT e.experiment_id, e.directory, e.columns::text FROM metalab.experiments e"
        " ORDER BY e.experiment_id"
    )
    return {eid: (directory, json.loads(cols)) for eid, directory, cols in cur.fetchall()}


def _stored_summary(cur: Any, experiment_id: str) -> bytes | None:
    cur.execute(
        "SELECT summary FROM metalab.experiments WHERE experiment_id = %s", (experiment_id,)
    )
    found = cur.fetchone()
    return found[0] if found else None


def _table(
    lines: str, known: dict[str, tuple[str, list[str]]], single: str | None
) -> tuple[ExperimentDir, pd.DataFrame]:
    """(layout, table) of the fetched rows: one experiment's, or runs of several."""
    frame = _frame(lines)
    present = [single] if single else list(dict.fromkeys(frame.get("experiment_id", [])))
    columns: dict[str, None] = {}
    for eid in present:
        columns.update(dict.fromkeys(known[eid][1]))
    frame = frame.reindex(columns=list(columns) or list(RESERVED_COLUMNS))
    layouts = {eid: ExperimentDir(Path(known[eid][0])) for eid in present}
    if single:
        return layouts[single], frame
    pairs = zip(frame["run_id"], frame["experiment_id"], strict=True)
    by_run = {run_id: layouts[eid] for run_id, eid in pairs}
    common = os.path.commonpath([str(d.root) for d in layouts.values()]) if layouts else "."
    return RunDirs(Path(common), by_run), frame


def indexed_experiments(url: str) -> list[tuple[Any, ...]]:
    """One row per indexed experiment: (ID, name, version, directory, n_runs, description,
    indexed-at ns, successful, failed); an index not built yet or a failed query is one
    line (IndexDatabaseError)."""
    conn = connect(url)  # psycopg missing or server unreachable: one line
    import psycopg

    conn.read_only = True
    try:
        with conn, conn.cursor() as cur:
            cur.execute(EXPERIMENTS_SQL)
            return cur.fetchall()
    except psycopg.errors.UndefinedTable:
        raise IndexDatabaseError(
            f"{mask_url(url)} holds no metalab index yet; build it with "
            "`metalab index STORE --db URL`."
        ) from None
    except psycopg.Error as exc:
        raise IndexDatabaseError(
            f"query on the index at {mask_url(url)} failed: {one_line(exc, url)}"
        ) from None
