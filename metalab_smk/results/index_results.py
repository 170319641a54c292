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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metalab_smk.errors import MetalabError
from metalab_smk.results.summary import RESERVED_COLUMNS
from metalab_smk.store.layout import ExperimentDir, RunDirs
from metalab_smk.store.pg import connect
from metalab_smk.store.uri import mask_url

__all__ = ["fetch_rows", "frame_of_rows", "load_from_index"]


def _conditions(
    experiment_id: str | Sequence[str] | None,
    status: str | Sequence[str] | None,
    tags: str | Sequence[str] | None,
    params: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    where: str | None,
) -> tuple[str, list[Any]]:
    clauses, values = [], []
    if isinstance(experiment_id, str) and "%" in experiment_id:
        clauses.append("r.experiment_id LIKE %s")
        values.append(experiment_id)
    elif isinstance(experiment_id, str):
        clauses.append("r.experiment_id = %s")
        values.append(experiment_id)
    elif experiment_id is not None:
        clauses.append("r.experiment_id = ANY(%s)")
        values.append(list(experiment_id))
    if status is not None:
        clauses.append("r.status = ANY(%s)")
        values.append([status] if isinstance(status, str) else list(status))
    if tags is not None:
        clauses.append("r.tags @> %s::jsonb")
        values.append(json.dumps([tags] if isinstance(tags, str) else list(tags)))
    for column, wanted in (("params", params), ("metrics", metrics)):
        if wanted:
            clauses.append(f"r.{column} @> %s::jsonb")
            values.append(json.dumps(wanted))
    if where:
        clauses.append(f"({where})")
    return (" AND ".join(clauses) or "TRUE"), values


def fetch_rows(cur: Any, condition: str, values: list[Any]) -> str:
    """Summary rows matching ``condition`` as newline-delimited JSON, in run order."""
    cur.execute(
        "SELECT coalesce(string_agg(r.row::text, E'\\n' ORDER BY r.experiment_id,"
        f" r.position), '') FROM metalab.runs r WHERE {condition}",
        values,
    )
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
    each key, JSONB containment), and ``where``, an SQL condition on ``metalab.runs``
    aliased ``r`` (e.g. ``"(r.metrics->>'loss')::float < 0.2"``)."""
    condition, values = _conditions(experiment_id, status, tags, params, metrics, where)
    single = isinstance(experiment_id, str) and "%" not in experiment_id
    summary = None
    import psycopg

    with connect(url) as conn, conn.cursor() as cur:
        try:
            cur.execute(
                "SELECT e.experiment_id, e.directory, e.columns::text FROM metalab.experiments e"
                " ORDER BY e.experiment_id"
            )
            experiments = cur.fetchall()
            if single and (status, tags, params, metrics, where) == (None,) * 5:
                cur.execute(
                    "SELECT summary FROM metalab.experiments WHERE experiment_id = %s",
                    (experiment_id,),
                )
                found = cur.fetchone()
                summary = found[0] if found else None
            lines = None if summary is not None else fetch_rows(cur, condition, values)
        except psycopg.errors.UndefinedTable:
            raise MetalabError(
                f"{mask_url(url)} holds no metalab index yet; build it with "
                "`metalab index STORE --db URL`."
            ) from None
        except psycopg.Error as exc:
            raise MetalabError(
                f"query on the index at {mask_url(url)} failed: {' '.join(str(exc).split())}"
            ) from None
    known = {eid: (directory, json.loads(cols)) for eid, directory, cols in experiments}
    if isinstance(experiment_id, str) and "%" not in experiment_id and experiment_id not in known:
        raise MetalabError(
            f"no experiment {experiment_id!r} in the index at {mask_url(url)}; it holds: "
            f"{', '.join(known) or 'none'}."
        )
    if summary is not None:  # the whole table, kept with the rows it was built from
        return ExperimentDir(Path(known[experiment_id][0])), pd.read_parquet(io.BytesIO(summary))
    frame = _frame(lines or "")
    present = [experiment_id] if single else list(dict.fromkeys(frame.get("experiment_id", [])))
    columns: dict[str, None] = {}
    for eid in present:
        columns.update(dict.fromkeys(known[eid][1]))
    frame = frame.reindex(columns=list(columns) or list(RESERVED_COLUMNS))
    layouts = {eid: ExperimentDir(Path(known[eid][0])) for eid in present}
    if single:
        return layouts[experiment_id], frame
    pairs = zip(frame["run_id"], frame["experiment_id"], strict=True)
    by_run = {run_id: layouts[eid] for run_id, eid in pairs}
    common = os.path.commonpath([str(d.root) for d in layouts.values()]) if layouts else "."
    return RunDirs(Path(common), by_run), frame
