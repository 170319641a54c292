"""Param sources: golden values, O(1) indexing equal to iteration, manifests, errors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metalab
from metalab import ParamError
from metalab_smk.core.params import source_from_manifest


def double_lr(context_meta: dict, params: dict) -> dict:
    return {**params, "lr2": params["lr"] * 2}


def test_golden_grid_case() -> None:
    case = metalab.grid(a=[1, 2], b=["x", "y"])[3]
    assert case.params == {"a": 2, "b": "y"}
    assert case.case_id == "75a87ff1308c91b1"


def test_golden_random_values() -> None:
    source = metalab.random(space={"x": metalab.uniform(0, 1)}, n_trials=3, seed=1)
    assert [case.params["x"] for case in source] == [
        0.9961550089046658,
        0.7326714373288439,
        0.5305774322194995,
    ]
    assert [case.tags for case in source] == [["trial_0"], ["trial_1"], ["trial_2"]]


def test_grid_order_is_sorted_keys_last_fastest() -> None:
    source = metalab.grid(b=[1, 2, 3], a=["x", "y"])
    expected = [{"a": a, "b": b} for a, b in itertools.product(["x", "y"], [1, 2, 3])]
    assert [case.params for case in source] == expected
    assert len(source) == 6


def _all_sources() -> list[metalab.ParamSource]:
    return [
        metalab.grid(a=[1, 2, 3], b=["x", "y"], c=[0.5]),
        metalab.random(
            space={
                "lr": metalab.loguniform(1e-4, 1e-1),
                "n": metalab.loguniform_int(1, 1000),
                "k": metalab.randint(1, 5),
                "act": metalab.choice(["relu", "tanh"]),
                "p": metalab.uniform(0.1, 0.5),
            },
            n_trials=7,
            seed=3,
        ),
        metalab.manual([{"lr": 0.1}, {"lr": 0.01, "deep": True}], tags=["hand"]),
        metalab.with_resolver(metalab.grid(lr=[0.1, 0.2]), double_lr, {"rows": 3}),
    ]


@pytest.mark.parametrize("source", _all_sources(), ids=lambda s: type(s).__name__)
def test_index_equals_iteration_and_manifest_round_trip(source: metalab.ParamSource) -> None:
    cases = list(source)
    assert len(cases) == len(source)
    for i, case in enumerate(cases):
        assert source[i] == case
        assert source[i - len(source)] == case
    with pytest.raises(IndexError):
        source[len(source)]
    rebuilt = source_from_manifest(source.to_manifest())
    assert type(rebuilt) is type(source)
    assert list(rebuilt) == cases


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet="abcdefgh", min_size=1, max_size=3),
        st.lists(
            st.one_of(st.integers(), st.text(max_size=3), st.booleans()), min_size=1, max_size=4
        ),
        min_size=1,
        max_size=4,
    )
)
def test_grid_index_equals_iteration_property(values: dict) -> None:
    source = metalab.grid(**values)
    cases = list(source)
    assert len(cases) == len(source)
    for i in range(len(cases)):
        assert source[i] == cases[i]
        assert source[-1 - i] == cases[-1 - i]


@settings(max_examples=30, deadline=None)
@given(st.integers(-(10**6), 10**6), st.integers(1, 12), st.floats(0.001, 10), st.floats(11, 1e3))
def test_random_index_equals_iteration_property(seed: int, n: int, lo: float, hi: float) -> None:
    source = metalab.random(
        {"x": metalab.uniform(lo, hi), "y": metalab.loguniform(lo, hi)}, n_trials=n, seed=seed
    )
    cases = list(source)
    assert [source[i] for i in range(n)] == cases
    assert all(lo <= case.params["x"] <= hi for case in cases)


def test_manual_tags_and_case_ids() -> None:
    source = metalab.manual([{"a": 1}, {"a": 2}], tags=["t"])
    assert source[1].tags == ["t", "manual_1"]
    assert source[-2].tags == ["t", "manual_0"]
    assert source[0].case_id == metalab.fingerprint({"a": 1})


def test_resolver_object_with_resolve_method() -> None:
    class Clamp:
        def resolve(self, context_meta: dict, params: dict) -> dict:
            return {"x": min(params["x"], context_meta["max"])}

    source = metalab.with_resolver(metalab.grid(x=[1, 5]), Clamp(), {"max": 3})
    assert [case.params for case in source] == [{"x": 1}, {"x": 3}]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: metalab.grid(lr=[0.1, float("nan")]), r"lr\[1\].*NaN"),
        (lambda: metalab.grid(lr=[float("inf")]), r"lr\[0\].*Inf"),
        (
            lambda: metalab.grid(model="resnet"),
            r"grid\(model='resnet'\).*got a string.*\['resnet'\]",
        ),
        (lambda: metalab.grid(lr=[]), r"grid\(lr=\[\]\).*empty"),
        (lambda: metalab.grid(lr={0.1, 0.2}), "set has no order"),
        (lambda: metalab.grid(lr=0.1), r"expected a list of values.*lr=\[0.1\]"),
        (lambda: metalab.loguniform(0, 1), "both bounds must be positive"),
        (lambda: metalab.loguniform_int(-1, 10), r"loguniform_int\(low=-1.*positive"),
        (lambda: metalab.uniform(2, 1), "low is above high"),
        (lambda: metalab.choice([]), "empty"),
        (lambda: metalab.manual([]), "empty"),
        (lambda: metalab.manual([{"x": float("nan")}]), r"cases\[0\]\['x'\].*NaN"),
        (lambda: metalab.manual(["lr=0.1"]), "not a dict"),
        (lambda: metalab.random({"x": (0, 1)}, 3, 1), "not a distribution"),
        (lambda: metalab.random({"x": metalab.uniform(0, 1)}, 0, 1), "n_trials=0"),
    ],
)
def test_bad_params_raise_clear_errors(build, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        build()


def test_resolver_returning_nan_names_the_case() -> None:
    source = metalab.with_resolver(metalab.grid(x=[1, 2]), lambda m, p: {"y": float("nan")})
    with pytest.raises(ParamError, match=r"resolved case 0\['y'\].*NaN"):
        source[0]


def test_lambda_resolver_cannot_be_written_to_a_manifest() -> None:
    source = metalab.with_resolver(metalab.grid(x=[1]), lambda m, p: p)
    with pytest.raises(ParamError, match="module level"):
        source.to_manifest()


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(st.characters(exclude_categories=("Cc",)), min_size=1, max_size=4),
        st.lists(
            st.one_of(
                st.integers(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=4),
                st.none(),
                st.booleans(),
                st.lists(st.integers(), max_size=2),
                st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
            ),
            min_size=1,
            max_size=3,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_grid_case_id_fast_path_equals_fingerprint(values: dict) -> None:
    source = metalab.grid(**values)
    for case in source:
        assert case.case_id == metalab.fingerprint(case.params)
