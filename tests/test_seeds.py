"""SeedBundle and SeedPlan: golden values and behaviour."""

from __future__ import annotations

import numpy as np
import pytest

import metalab
from metalab import SeedBundle


def test_golden_seed_values() -> None:
    assert SeedBundle(42, 0).derive("default") == 2164880486899767195
    assert SeedBundle(42, 0).derive("sampling") == 16451810078227672686
    assert SeedBundle(42, 1).derive("default") == 17311043386426800777
    assert SeedBundle(42, 0).numpy_seed() == 852875163
    assert SeedBundle(42, 0).rng().random() == 0.1710347192907522
    assert SeedBundle.for_preprocessing(42).root_seed == 5875625451538769114
    assert SeedBundle.for_preprocessing(42).replicate_index is None


def test_numpy_uses_the_full_64_bit_seed() -> None:
    bundle = SeedBundle(42, 0)
    expected = np.random.default_rng(bundle.derive("default")).random(3)
    assert np.array_equal(bundle.numpy().random(3), expected)
    truncated = np.random.default_rng(bundle.numpy_seed()).random(3)
    assert not np.array_equal(bundle.numpy().random(3), truncated)


def test_streams_differ_by_name_and_replicate() -> None:
    assert SeedBundle(1, 0).derive("a") != SeedBundle(1, 0).derive("b")
    assert SeedBundle(1, 0).derive("a") != SeedBundle(1, 1).derive("a")
    assert SeedBundle(1, None).derive("a") == SeedBundle(1, 0).derive("a")


def test_dict_round_trip() -> None:
    bundle = SeedBundle(7, 3)
    assert bundle.to_dict() == {"root_seed": 7, "replicate_index": 3}
    assert SeedBundle.from_dict(bundle.to_dict()) == bundle


def test_seed_plan() -> None:
    plan = metalab.seeds(base=5, replicates=3)
    assert len(plan) == 3
    assert list(plan) == [SeedBundle(5, 0), SeedBundle(5, 1), SeedBundle(5, 2)]
    assert plan[-1] == SeedBundle(5, 2)
    assert metalab.SeedPlan.from_manifest(plan.to_manifest()) == plan
    with pytest.raises(IndexError):
        plan[3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": "1"}, "base=.*must be an int"),
        ({"base": 1, "replicates": 0}, "replicates=0.*at least 1"),
        ({"base": 1.5}, "must be an int"),
    ],
)
def test_bad_seed_plans_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(metalab.ParamError, match=message):
        metalab.seeds(**kwargs)
