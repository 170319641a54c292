"""Replicate statistics: values checked against hand computations and scipy's t."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from metalab_smk.results.aggregate import _T975, aggregate, aggregate_steps, t_quantile_975


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(7)],
            "status": ["success"] * 6 + ["failed"],
            "duration_ms": [1, 2, 3, 4, 5, 6, 7],
            "param_lr": [0.1, 0.1, 0.1, 0.2, 0.2, 0.3, 0.1],
            "param_opt": ["a", "a", "a", "a", "a", "b", "a"],
            "score": [1.0, 2.0, 3.0, 10.0, 14.0, 5.0, 1000.0],
            "label": ["x"] * 7,
        }
    )


def test_one_row_per_case_with_student_t_interval() -> None:
    out = aggregate(_table())
    assert list(out.columns) == [
        "param_lr",
        "param_opt",
        "score_mean",
        "score_std",
        "score_sem",
        "score_ci95",
        "score_count",
        "score_nan",
    ]
    assert len(out) == 3
    first = out.iloc[0]  # lr 0.1: 1, 2, 3 (the failed run's 1000 is left out)
    assert first["score_mean"] == pytest.approx(2.0)
    assert first["score_std"] == pytest.approx(1.0)
    assert first["score_sem"] == pytest.approx(1 / math.sqrt(3))
    assert first["score_ci95"] == pytest.approx(4.302652730 / math.sqrt(3))
    assert first["score_count"] == 3
    second = out.iloc[1]  # 10, 14: sd = 2.828..., t(1) = 12.706
    assert second["score_ci95"] == pytest.approx(12.706204736 * math.sqrt(8) / math.sqrt(2))
    single = out.iloc[2]  # one replicate: no spread
    assert single["score_count"] == 1
    assert math.isnan(single["score_std"]) and math.isnan(single["score_ci95"])


def test_by_metrics_and_bounds() -> None:
    out = aggregate(
        _table(),
        metrics=["score"],
        by=["param_opt"],
        stats=("mean", "median", "min", "max", "ci95_low", "ci95_high"),
    )
    assert out["param_opt"].tolist() == ["a", "b"]
    row = out.iloc[0]  # 1, 2, 3, 10, 14
    assert row["score_median"] == 3.0 and row["score_min"] == 1.0 and row["score_max"] == 14.0
    sd = pd.Series([1.0, 2, 3, 10, 14]).std()
    half = 2.776445105 * sd / math.sqrt(5)
    assert row["score_ci95_low"] == pytest.approx(6.0 - half)
    assert row["score_ci95_high"] == pytest.approx(6.0 + half)


def test_default_metrics_skip_strings_and_record_columns() -> None:
    out = aggregate(_table(), by=[])
    assert [c for c in out.columns if not c.startswith("score_")] == []
    assert out.loc[0, "score_count"] == 6


def test_bad_names_are_refused() -> None:
    with pytest.raises(KeyError, match="nope"):
        aggregate(_table(), metrics=["nope"])
    with pytest.raises(ValueError, match="unknown statistic"):
        aggregate(_table(), stats=("mean", "mode"))


def test_t_quantile_without_and_with_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    assert t_quantile_975(1) == _T975[0]
    assert t_quantile_975(30) == _T975[29]
    # beyond the table the expansion matches the exact values to 1e-5
    exact = {40: 2.021075390, 60: 2.000297822, 120: 1.979930405, 1000: 1.962339081}
    for df, value in exact.items():
        assert t_quantile_975(df) == pytest.approx(value, abs=1e-5)
    assert math.isnan(t_quantile_975(0))


def test_steps_mean_and_band_per_group() -> None:
    steps = pd.DataFrame(
        {
            "run_id": ["r0", "r0", "r1", "r1", "r3", "r3", "r6"],
            "name": ["loss"] * 7,
            "step": [0, 1, 0, 1, 0, 1, 0],
            "value": [1.0, 0.5, 3.0, 1.5, 8.0, 4.0, 99.0],
        }
    )
    out = aggregate_steps(steps, _table(), by=["param_lr"], stats=("mean", "ci95", "count"))
    assert list(out.columns) == ["param_lr", "name", "step", "mean", "ci95", "count"]
    lr01 = out[out["param_lr"] == 0.1]  # r0, r1 (r6 failed)
    assert lr01["mean"].tolist() == [2.0, 1.0]
    assert lr01["count"].tolist() == [2, 2]
    assert lr01["ci95"].iloc[0] == pytest.approx(12.706204736 * math.sqrt(2) / math.sqrt(2))
    everything = aggregate_steps(steps)
    assert everything["count"].tolist() == [4, 3]
