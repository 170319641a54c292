"""A compact text table of a sweep for a terminal: one row per param case, params first,
metrics as mean ± std over replicates; and the closing report of ``metalab run``."""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from metalab_smk.store.locate import shown

__all__ = ["case_table", "closing_report", "display_results", "next_commands"]

RECORD_COLUMNS = {"run_id", "experiment_id", "status", "duration_ms", "started_at", "finished_at"}
PLUS_MINUS = "±"


def _number(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _cell(mean: float, std: float, count: int, nan: int = 0) -> str:
    """``mean ± std`` of the finite-or-infinite values, then how many were NaN (a NaN is
    a value a run recorded, never shown as missing)."""
    nans = f"{nan} NaN" if nan else ""
    if count == 0:
        return nans or "-"
    if count == 1 or std is None or math.isnan(std):
        text = _number(mean)
    else:
        text = f"{_number(mean)} {PLUS_MINUS} {_number(std, 2)}"
    return f"{text} ({nans})" if nans else text


def _value(value: Any, limit: int = 16) -> str:
    text = _number(value) if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if c not in RECORD_COLUMNS
        and not c.startswith("param_")
        and c not in ("error_type", "error_message", "tags", "seed")
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]


def _aggregate(frame: pd.DataFrame, params: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per param case (in first-seen order): ``n`` ok runs of ``runs``, and the
    mean, std and count of each metric over the successful replicates."""
    work = frame.copy()
    keys = [f"_key_{i}" for i in range(len(params))]
    for key, param in zip(keys, params, strict=True):
        work[key] = work[param].map(repr)  # lists/dicts are unhashable; repr groups them
    if not keys:
        work["_key_all"] = ""
        keys = ["_key_all"]
    work["_ok"] = work["status"] == "success" if "status" in work else True
    grouped = work.groupby(keys, sort=False, dropna=False)
    rows = grouped.first()[params] if params else pd.DataFrame(index=grouped.size().index)
    rows["_runs"] = grouped.size()
    rows["_ok"] = grouped["_ok"].sum()
    good = work[work["_ok"]]
    ok = good.groupby(keys, sort=False, dropna=False)
    for metric in metrics:
        stats = ok[metric].agg(["mean", "std", "count"])
        for stat in ("mean", "std", "count"):
            rows[f"{metric}.{stat}"] = stats[stat]
        rows[f"{metric}.count"] = rows[f"{metric}.count"].fillna(0)
        nans = good[metric].isna().groupby([good[k] for k in keys], sort=False, dropna=False)
        rows[f"{metric}.nan"] = nans.sum()
        rows[f"{metric}.nan"] = rows[f"{metric}.nan"].fillna(0)
    return rows.reset_index(drop=True)


def _any_nan(table: pd.DataFrame, metrics: list[str]) -> bool:
    return any(table[f"{m}.nan"].head(len(table)).any() for m in metrics)


def _render(header: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return [line(header), *(line(r) for r in rows)]


def case_table(frame: pd.DataFrame, width: int = 80, max_rows: int = 20) -> str:
    """The runs of ``frame`` (as ``Results.to_dataframe()`` returns them) as one line per
    param case: params, ``ok`` (successful of all replicates), then as many metrics as
    fit in ``width`` columns as mean ± std over the successful replicates."""
    if frame.empty:
        return "(no finished runs yet)"
    params = [c for c in frame.columns if c.startswith("param_")]
    metrics = _metric_columns(frame)
    table = _aggregate(frame, params, metrics)
    fixed = [p for p in params if len(table) > 1 and table[p].map(repr).nunique() == 1]
    params = [p for p in params if p not in fixed]
    shown = table.head(max_rows)
    header = [p[len("param_") :] for p in params] + ["ok"]
    rows = [
        [_value(row[p]) for p in params] + [f"{int(row['_ok'])}/{int(row['_runs'])}"]
        for _, row in shown.iterrows()
    ]
    numeric = [pd.api.types.is_numeric_dtype(frame[p]) for p in params] + [True]
    left_out: list[str] = []
    for metric in metrics:
        cells = [
            _cell(
                row[f"{metric}.mean"],
                row[f"{metric}.std"],
                int(row[f"{metric}.count"]),
                int(row[f"{metric}.nan"]),
            )
            for _, row in shown.iterrows()
        ]
        candidate = _render(
            [*header, metric],
            [[*r, c] for r, c in zip(rows, cells, strict=True)],
            [*numeric, True],
        )
        if left_out or max(len(line) for line in candidate) > width:
            left_out.append(metric)
            continue
        header.append(metric)
        rows = [[*r, c] for r, c in zip(rows, cells, strict=True)]
        numeric.append(True)
    lines = _render(header, rows, numeric)
    if fixed:
        same = ", ".join(f"{p[len('param_') :]}={_value(table[p].iloc[0])}" for p in fixed)
        lines.insert(0, f"every case has {same if len(same) < 60 else same[:57] + '...'}")
    if len(table) > max_rows:
        lines.append(f"... {len(table) - max_rows} more cases")
    if metrics and len(left_out) < len(metrics):
        lines.append(
            f"metrics: mean {PLUS_MINUS} std over successful replicates"
            + ("; (n NaN): replicates whose value is NaN" if _any_nan(table, metrics) else "")
        )
    if left_out:
        names = ", ".join(left_out)
        lines.append(f"not shown: {names if len(names) < 60 else names[:57] + '...'}")
    return "\n".join(lines)


def next_commands(directory: str | os.PathLike[str], width: int = 80) -> list[str]:
    """Where the results are and what to run next, as lines (comments dropped when a
    line would not fit in ``width``)."""
    path = shown(directory)
    commands = [
        (f"metalab status {path}", "failures grouped by error"),
        (f"metalab results {path}", "--csv FILE exports every run"),
        (f"metalab ui {path}", "browse the runs"),
    ]
    pad = max(len(c) for c, _ in commands)
    lines = [f"results: {path}/  (summary/runs.parquet, runs/, logs/)", "next steps:"]
    for command, comment in commands:
        line = f"  {command.ljust(pad)}  # {comment}"
        lines.append(line if len(line) <= width else f"  {command}")
    return lines


def closing_report(
    frame: pd.DataFrame,
    directory: str | os.PathLike[str],
    total: int,
    width: int = 80,
    max_rows: int = 20,
) -> str:
    """What ``metalab run`` and the quickstart end with: counts, the case table, where the
    results are and the next commands."""
    counts = frame["status"].value_counts().to_dict() if "status" in frame else {}
    done = int(counts.pop("success", 0))
    other = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    missing = total - len(frame)
    head = f"{total} runs: {done} done" + (f", {other}" if other else "")
    head += f", {missing} not run" if missing > 0 else ""
    table = case_table(frame, width, max_rows)
    return "\n".join([head, table, "", *next_commands(directory, width)])


def display_results(
    result: Any, console: Any | None = None, show_by_group: list[str] | None = None
) -> None:
    """Upstream's ``display_results``: the summary of ``result`` (a Results) and, with
    ``show_by_group`` (param or metric names), counts per group; printed, or through
    ``console.print`` when a console (e.g. rich's) is given."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        if len(result) == 0:
            print("No results to display.")
        else:
            result.display(group_by=show_by_group)
    text = buffer.getvalue().rstrip("\n")
    if console is not None:
        console.print(text)
    else:
        print(text)
