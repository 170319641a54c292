"""The Results API on a real sweep: NaN and ±inf kept as values and counted, tidy steps,
names checked, versions compared, a missing path named."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from analysisstore import build_analysis_store

import metalab
from metalab_smk.errors import NotAnExperimentError, UnknownNameError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_analysis_store(tmp_path_factory.mktemp("analysis"), versions=("1", "2"))


@pytest.fixture(scope="module")
def results(store: Path) -> metalab.Results:
    return metalab.load_results(store, "lrsweep:1")


def test_nan_and_inf_are_float_values_counted_beside_the_count(results) -> None:
    frame = results.to_dataframe()
    assert str(frame["grad_norm"].dtype) == "float64"  # NaN in every run: still a float column
    assert frame["ratio"].map(math.isinf).sum() == 9
    table = results.aggregate(metrics=["grad_norm", "val_loss", "ratio"], by=["lr"])
    assert table["grad_norm_nan"].tolist() == [9, 9, 9, 9]
    assert table["grad_norm_count"].tolist() == [0, 0, 0, 0]
    assert (table["val_loss_nan"] + table["val_loss_count"]).tolist() == [9, 9, 9, 9]
    assert table["val_loss_nan"].tolist() == [0, 0, 0, 5]
    assert math.isinf(table["ratio_mean"].iloc[0]) and table["ratio_count"].iloc[0] == 9
    lines = results.report(width=160).splitlines()
    assert "grad_norm" in lines[1] and "3 NaN" in lines[2]
    assert any("NaN)" in line for line in lines if "0.1 " in line)  # a partly NaN case
    assert "inf" in lines[2]


def test_steps_is_a_tidy_table(results) -> None:
    steps = results.steps()
    assert list(steps.columns) == ["run_id", "param_depth", "param_lr", "metric", "step", "value"]
    assert len(steps) == 36 * 30 and set(steps["metric"]) == {"loss"}
    first = steps[steps["run_id"] == steps["run_id"].iloc[0]]
    assert first["step"].tolist() == list(range(30))
    assert len(results.filter(lr=0.1).steps(metrics=["loss"])) == 9 * 30
    assert results.steps(metrics=["nope"]).empty


def test_names_bare_or_prefixed_and_typos_listed(results) -> None:
    assert len(results.filter(lr=0.1)) == len(results.filter(param_lr=0.1)) == 9
    by_bare = results.aggregate(metrics=["accuracy"], by=["lr", "depth"])
    by_prefixed = results.aggregate(metrics=["accuracy"], by=["param_lr", "param_depth"])
    assert by_bare.equals(by_prefixed) and len(by_bare) == 12
    with pytest.raises(UnknownNameError, match=r"'lrr' is neither .*params: depth, lr; metrics: "):
        results.filter(lrr=0.1)
    with pytest.raises(UnknownNameError, match="accuracy"):
        results.aggregate(by=["dpeth"])


def test_importance_and_comparisons_on_a_real_sweep(store, results) -> None:
    table = results.importance("accuracy").set_index("source")
    assert table.loc["lr", "share"] > 0.8 and not table.loc["lr", "below_noise"]
    assert list(table.index[-2:]) == ["interactions", "seed noise"]
    pair = results.compare({"lr": 0.01, "depth": 2}, {"lr": 0.1, "depth": 2}, "accuracy")
    assert pair.pairs == 3 and pair.diff == pytest.approx(0.18, abs=0.05)
    newer = metalab.load_results(store, "lrsweep:2")
    delta = results.compare_versions(newer, "accuracy")
    assert len(delta) == 12
    assert delta["delta"].to_numpy() == pytest.approx([0.05] * 12)  # same seeds, +0.05


def test_load_results_on_a_missing_path(tmp_path) -> None:
    with pytest.raises(NotAnExperimentError, match="nope does not exist"):
        metalab.load_results(tmp_path / "nope")
