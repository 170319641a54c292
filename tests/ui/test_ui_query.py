"""Table views and plot data on small hand-made tables (no store, no server)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from metalab_smk.ui import plots
from metalab_smk.ui.query import BadQuery, SortCache, TableQuery, jsonable, run_query


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": ["aa01", "ab02", "b003", "c004", "c005"],
            "status": ["success", "success", "failed", "success", "success"],
            "param_kind": ["x", "y", "x", None, "y"],
            "param_mixed": [1, "two", 3.5, None, 0],
            "score": [0.5, np.nan, None, 2.0, -1.0],
            "tags": ["a,b", "", "b", "", "a"],
        }
    )


def _ids(result: dict) -> list[str]:
    return [row[0] for row in result["rows"]]


def test_sort_puts_missing_values_last_both_ways() -> None:
    frame = _frame()
    up = run_query(frame, TableQuery(sort="score"))
    assert _ids(up)[:3] == ["c005", "aa01", "c004"] and set(_ids(up)[3:]) == {"ab02", "b003"}
    down = run_query(frame, TableQuery(sort="score", desc=True))
    assert _ids(down)[:3] == ["c004", "aa01", "c005"]
    mixed = run_query(frame, TableQuery(sort="param_mixed"))  # ints, strings, floats
    assert _ids(mixed)[-1] == "c004" and len(mixed["rows"]) == 5


def test_sort_cache_returns_the_same_order() -> None:
    frame, cache = _frame(), SortCache()
    first = run_query(frame, TableQuery(sort="score", limit=2), cache)
    again = run_query(frame, TableQuery(sort="score", limit=2, offset=2), cache)
    assert _ids(first) + _ids(again) == _ids(run_query(frame, TableQuery(sort="score")))[:4]


def test_filters_search_status_and_paging() -> None:
    frame = _frame()
    q = TableQuery(filters=[("score", ">", "0")], search="a")
    assert _ids(run_query(frame, q)) == ["aa01"]
    assert run_query(frame, TableQuery(status="failed"))["total"] == 1
    tagged = run_query(frame, TableQuery(filters=[("tags", "~", "B")]))
    assert _ids(tagged) == ["aa01", "b003"]
    other = run_query(frame, TableQuery(filters=[("param_kind", "!=", "x")]))
    assert _ids(other) == ["ab02", "c004", "c005"]
    page = run_query(frame, TableQuery(offset=4, limit=2, columns=["score"]))
    assert page["columns"] == ["run_id", "score"] and page["rows"] == [["c005", -1.0]]
    assert page["total"] == 5
    with pytest.raises(BadQuery, match="not a number"):
        run_query(frame, TableQuery(filters=[("score", "<", "x")]))


def test_query_from_url_parameters() -> None:
    q = TableQuery.from_params(
        {"q": " AB ", "filter": '[["score", ">=", 1]]', "limit": "5000", "desc": "1"}
    )
    assert (q.search, q.filters, q.limit, q.desc) == ("ab", [("score", ">=", "1")], 1000, True)
    with pytest.raises(BadQuery):
        TableQuery.from_params({"filter": '[["score"]]'})


def test_jsonable() -> None:
    value = {"a": np.float64(1.5), "b": [np.int64(2), math.nan, -math.inf], "c": pd.NA}
    assert jsonable(value) == {"a": 1.5, "b": [2, None, None], "c": None}


def test_xy_every_run_and_categorical_x() -> None:
    frame = _frame()
    data = plots.xy(frame, "param_kind", "score", agg="none")
    (panel,) = data["panels"]
    assert data["categorical"] and panel["series"][0]["points"] == [
        ["x", 0.5, None, None, 1],
        [None, 2.0, None, None, 1],
        ["y", -1.0, None, None, 1],
    ]  # table order; a missing x is None (drawn as "(none)")
    with pytest.raises(BadQuery):
        plots.xy(frame, "param_kind", "score", agg="mode")


def test_histogram_counts_per_group() -> None:
    frame = pd.DataFrame({"v": [0.0, 1.0, 2.0, 3.0, 4.0], "param_g": ["a", "a", "b", "b", "b"]})
    data = plots.histogram(frame, "v", group="param_g", bins=2)
    assert data["edges"] == [0.0, 2.0, 4.0]
    assert [(s["name"], s["counts"]) for s in data["series"]] == [("a", [2, 0]), ("b", [0, 3])]


def test_nan_and_inf_of_successful_runs_are_shown_as_values() -> None:
    frame = _frame().assign(score=[math.inf, np.nan, np.nan, -math.inf, 1.0])
    rows = {r[0]: r for r in run_query(frame, TableQuery(columns=["run_id", "score"]))["rows"]}
    assert rows["aa01"][1] == "inf" and rows["c004"][1] == "-inf"
    assert rows["ab02"][1] == "NaN"  # recorded by a successful run
    assert rows["b003"][1] is None  # a failed run has no value
