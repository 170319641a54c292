"""Seed-aware statistics checked against values computed by hand (ANOVA sums of squares,
paired t, Welch) and against the closed forms of the t and F tails."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from metalab_smk.errors import MetalabError, UnknownNameError
from metalab_smk.results.distributions import betainc, f_sf, t_two_sided
from metalab_smk.results.results import Results
from metalab_smk.results.stats import compare_cases, compare_versions, importance
from metalab_smk.store.layout import ExperimentDir


def _frame(cases: dict[tuple[float, int], list[float]]) -> pd.DataFrame:
    rows = []
    for (lr, depth), values in cases.items():
        for replicate, value in enumerate(values):
            rows.append(
                {
                    "run_id": f"{lr}-{depth}-{replicate}",
                    "status": "success",
                    "seed_root": 7,
                    "seed_replicate": replicate,
                    "param_lr": lr,
                    "param_depth": depth,
                    "score": value,
                }
            )
    return pd.DataFrame(rows)


GRID = {(0.1, 1): [1.0, 3.0], (0.1, 2): [2.0, 4.0], (0.2, 1): [5.0, 7.0], (0.2, 2): [8.0, 10.0]}


def test_importance_splits_the_variance_of_a_full_grid() -> None:
    out = importance(_frame(GRID), "score").set_index("source")
    # grand mean 5; SS total 68; within each case ±1: SS 8 on 4 df (noise 2)
    # lr means 2.5 | 7.5: SS 50, F 25; depth means 4 | 6: SS 8, F 4; interactions 2
    assert out.loc["lr", "ss"] == pytest.approx(50)
    assert out.loc["depth", "ss"] == pytest.approx(8)
    assert out.loc["interactions", "ss"] == pytest.approx(2)
    assert out.loc["seed noise", "ss"] == pytest.approx(8)
    assert out["share"].tolist() == pytest.approx([50 / 68, 8 / 68, 2 / 68, 8 / 68])
    assert out.loc["lr", "F"] == pytest.approx(25) and out.loc["depth", "F"] == pytest.approx(4)
    assert out.loc["lr", "p"] == pytest.approx(t_two_sided(5.0, 4))  # F(1, d) = t(d)^2
    assert out.loc["lr", "kind"] == "main effect"
    assert not out.loc["lr", "below_noise"] and not out.loc["depth", "below_noise"]
    assert out.attrs["noise_sd"] == pytest.approx(math.sqrt(2)) and out.attrs["full_grid"]
    # interactions: SS 2 on 4 - 1 - 2 = 1 df, F 1: no larger than seed noise
    assert out.loc["interactions", "F"] == pytest.approx(1)
    assert out.loc["interactions", "below_noise"]
    assert out.attrs["method"].startswith("main effects of a full grid")


def test_a_param_within_seed_noise_is_flagged() -> None:
    cases = {**GRID, (0.2, 2): [6.0, 8.0]}  # depth means 4 | 5: SS 2 = noise, F 1
    out = importance(_frame(cases), "score").set_index("source")
    assert out.loc["depth", "F"] == pytest.approx(1) and out.loc["depth", "below_noise"]
    assert out.loc["interactions", "ss"] == pytest.approx(0)
    assert out.loc["lr", "share"] == pytest.approx(32 / 42)


def test_a_partial_grid_gets_effects_adjusted_for_the_other_params() -> None:
    cases = {k: v for k, v in GRID.items() if k != (0.2, 2)}  # case means 2, 3, 6 (n 2 each)
    out = importance(_frame(cases), "score").set_index("source")
    # additive model on 3 cases: saturated (nothing left for interactions, on 0 df).
    # Without lr: depth=1 cases (2, 6) fitted by 4, residual 2·4 + 2·4 = 16 -> SS lr 16.
    # Without depth: lr=0.1 cases (2, 3) fitted by 2.5, residual 2·0.25·2 = 1 -> SS depth 1.
    # Seed noise: every run ±1 from its case mean: SS 6 on 3 df (2); total SS 23 1/3.
    assert out.loc["lr", "ss"] == pytest.approx(16) and out.loc["lr", "F"] == pytest.approx(8)
    assert out.loc["depth", "ss"] == pytest.approx(1)
    assert out.loc["depth", "F"] == pytest.approx(0.5)
    assert out.loc["depth", "below_noise"] and not out.loc["lr", "below_noise"]
    assert out.loc["interactions", "ss"] == pytest.approx(0)
    assert math.isnan(out.loc["interactions", "F"])
    assert out.loc["seed noise", "ss"] == pytest.approx(6)
    assert out.loc["lr", "share"] == pytest.approx(16 / (70 / 3))
    assert out.loc["lr", "p"] == pytest.approx(f_sf(8, 1, 3))
    assert out.loc["lr", "kind"] == "adjusted effect (degree 1)"  # 2 values: as indicators
    assert not out.attrs["full_grid"] and "additive model" in out.attrs["method"]


def test_random_search_gets_a_smooth_effect_per_numeric_param() -> None:
    # 8 random-search cases, 2 seeds each (value ± 1). a has 8 values: a cubic in its rank
    # u = -1, -5/7, ..., 1; y = 10·u_a (any monotone function of a with the same ranks
    # would do). b has 2 values, high where u_a is -1, -1/7, 1/7 or 1: it explains none
    # of y. Case means 10·u_a: SS a = 2·100·Σu² = 200·24/7; b and interactions 0; seed
    # noise SS 16 on 8 df (2).
    a = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]  # log-uniform-like values
    rows = []
    for rank, a_value in enumerate(a):
        u = (2 * rank - 7) / 7
        b_value = 1.0 if rank in (0, 3, 4, 7) else 0.0
        for replicate, delta in enumerate((-1, 1)):
            rows.append({"status": "success", "seed_root": 1, "seed_replicate": replicate,
                         "param_a": a_value, "param_b": b_value, "y": 10 * u + delta})  # fmt: skip
    out = importance(pd.DataFrame(rows), "y").set_index("source")
    assert out.loc["a", "kind"] == "adjusted effect (degree 3)" and out.loc["a", "levels"] == 8
    assert out.loc["a", "ss"] == pytest.approx(4800 / 7)
    assert out.loc["a", "F"] == pytest.approx(4800 / 7 / 3 / 2)
    assert out.loc["b", "ss"] == pytest.approx(0, abs=1e-9) and out.loc["b", "below_noise"]
    assert out.loc["interactions", "ss"] == pytest.approx(0, abs=1e-9)
    assert out.loc["interactions", "below_noise"]  # 8 - 1 - 3 - 1 = 3 df, F 0
    assert out.loc["seed noise", "share"] == pytest.approx(16 / (4800 / 7 + 16))
    assert out.attrs["noise_sd"] == pytest.approx(math.sqrt(2))
    assert "polynomial of degree <= 3 in their rank" in out.attrs["method"]
    assert out.attrs["cases"] == 8 and out.attrs["runs"] == 16


def test_more_replicates_weigh_more_in_the_model() -> None:
    rows = [{"status": "success", "seed_root": 1, "seed_replicate": r, "param_a": a,
             "param_b": b, "y": y}
            for (a, b, ys) in ((1, 1, [0.0, 2.0, 0.0, 2.0]), (1, 2, [4.0, 6.0]),
                               (2, 1, [8.0, 10.0]))
            for r, y in enumerate(ys)]  # fmt: skip
    out = importance(pd.DataFrame(rows), "y").set_index("source")
    # case means 1 (n 4), 5 (n 2), 9 (n 2); without a: b=1 cases (1, 9) fitted by the
    # weighted mean 11/3, residual 4·(8/3)² + 2·(16/3)² = 256/3
    assert out.loc["a", "ss"] == pytest.approx(256 / 3)


def test_failed_nan_and_infinite_runs_are_left_out_of_the_statistics() -> None:
    frame = _frame(GRID)
    extra = frame.iloc[[0, 1, 2]].copy()
    extra["run_id"] = ["x0", "x1", "x2"]
    extra["score"] = [math.nan, math.inf, 1e9]
    extra["status"] = ["success", "success", "failed"]
    out = importance(pd.concat([frame, extra], ignore_index=True), "score")
    assert out["ss"].tolist() == pytest.approx([50, 8, 2, 8])


def test_paired_comparison_on_shared_seeds() -> None:
    frame = _frame({(0.1, 1): [1.0, 2.0, 4.0], (0.2, 1): [2.0, 5.0, 6.0, 9.0]})
    result = compare_cases(frame, {"lr": 0.1}, "lr=0.2", "score")
    # differences 1, 3, 2: mean 2, sd 1, t = 2 sqrt(3) on 2 df
    assert (result.case_a, result.case_b) == ("lr=0.1", "lr=0.2")
    assert result.pairs == 3 and result.unpaired == 1  # replicate 3 of lr=0.2 has no partner
    assert result.diff == pytest.approx(2) and result.sd_diff == pytest.approx(1)
    assert result.t == pytest.approx(2 * math.sqrt(3))
    assert result.p == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14))
    half = 4.302652730 / math.sqrt(3)
    assert (result.ci95_low, result.ci95_high) == pytest.approx((2 - half, 2 + half), rel=1e-6)
    # bootstrap means of three draws from {1, 2, 3}: each extreme has probability 1/27
    assert (result.boot_low, result.boot_high) == (1.0, 3.0)
    assert result.mean_a == pytest.approx(7 / 3) and result.mean_b == pytest.approx(13 / 3)


def test_compare_names_cases_it_cannot_find() -> None:
    frame = _frame(GRID)
    with pytest.raises(MetalabError, match="2 cases"):
        compare_cases(frame, {"lr": 0.1}, {"lr": 0.2, "depth": 1}, "score")
    with pytest.raises(MetalabError, match="no case 'lr=9'"):
        compare_cases(frame, "lr=9", {"lr": 0.2, "depth": 1}, "score")
    with pytest.raises(UnknownNameError, match="params: lr, depth"):
        compare_cases(frame, {"lrr": 0.1}, {"lr": 0.2, "depth": 1}, "score")


def test_versions_compared_case_by_case_with_welch() -> None:
    old = _frame({(0.1, 1): [1.0, 2.0, 3.0], (0.3, 1): [1.0, 1.0]})
    new = _frame({(0.1, 1): [2.0, 4.0, 6.0], (0.2, 1): [0.0, 1.0]})
    out = compare_versions(old, new, "score")
    assert out["case"].tolist() == ["lr=0.1"]  # the only case both ran
    row = out.iloc[0]
    se = math.sqrt(1 / 3 + 4 / 3)  # variances 1 and 4 over 3 runs each
    welch = se**4 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)  # 50/17: rounded down to 2
    assert welch == pytest.approx(50 / 17)
    assert row["delta"] == pytest.approx(2)
    assert row["ci95_low"] == pytest.approx(2 - 4.302652730 * se)
    assert row["p"] == pytest.approx(t_two_sided(2 / se, 50 / 17))
    assert row["n_a"] == 3 and row["mean_b"] == pytest.approx(4)


def test_tails_match_closed_forms() -> None:
    for t in (0.3, 1.0, 2.5, 12.0):
        assert t_two_sided(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)
        assert t_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
    for f, d2 in ((0.5, 3), (4.0, 10), (30.0, 7)):
        assert f_sf(f, 2, d2) == pytest.approx((1 + 2 * f / d2) ** (-d2 / 2), rel=1e-10)
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)  # 1 - (0.6^4 + 4·0.4·0.6^3)
    assert t_two_sided(math.inf, 3) == 0.0 and math.isnan(t_two_sided(1.0, 0))


def test_results_methods_and_names(tmp_path) -> None:
    results = Results(ExperimentDir.at(tmp_path), _frame(GRID))
    assert results.importance("score")["source"].tolist()[0] == "lr"
    assert results.compare({"lr": 0.1, "depth": 1}, {"lr": 0.2, "depth": 1}, "score").diff == 4
    assert len(results.compare_versions(results, "score")) == 4
    assert results.aggregate(by=["lr"])["param_lr"].tolist() == [0.1, 0.2]
    assert results.aggregate(by=["param_lr"])["score_nan"].tolist() == [0, 0]
    assert len(results.filter(param_depth=2)) == 4 and len(results.filter(depth=2)) == 4
    for call in (lambda: results.aggregate(by=["lrr"]), lambda: results.filter(lrr=1)):
        with pytest.raises(UnknownNameError, match=r"'lrr' is neither.*params: lr, depth"):
            call()
