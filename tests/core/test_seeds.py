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


# Upstream metalab's SeedBundle.numpy(name) is
#   np.random.default_rng(_normalize_seed(self.derive(name)))
# with _normalize_seed(s) = abs(s) % (2**32) (github matthewmazurek/metalab,
# metalab/seeds/bundle.py). The values below are that algorithm's output, computed
# independently of metalab_smk: derive = big-endian int of sha256(f"{root}:{name}:{rep}")[:8].
# The stored upstream fixture (tests/test_upstream_store_rerun.py) confirms it end to end.
UPSTREAM_NUMPY_GOLDEN = [
    ((42, 0, "default"), 852875163, [0.5617421378437012, 0.39438142637825524, 0.997445419917461]),
    ((42, 1, "default"), 4216863369, [0.5600793176023886, 0.6510405456804912, 0.1655978960405654]),
    (
        (42, 0, "sampling"),
        3371413102,
        [0.6093976298149166, 0.9762000400660242, 0.14707029203454713],
    ),
    ((7, 0, "default"), 428064705, [0.6231142396910058, 0.13360524700171206, 0.9669308499394845]),
]


@pytest.mark.parametrize(("bundle", "seed", "values"), UPSTREAM_NUMPY_GOLDEN)
def test_numpy_gives_upstreams_stream(bundle: tuple, seed: int, values: list[float]) -> None:
    root, replicate, name = bundle
    seeds = SeedBundle(root, replicate)
    assert seeds.numpy_seed(name) == seed
    assert seeds.numpy(name).random(3).tolist() == values
    assert metalab.seeds(root, replicate + 1)[replicate].numpy(name).random(3).tolist() == values


def test_numpy_bits_64_is_opt_in_and_uses_the_full_seed() -> None:
    bundle = metalab.seeds(42, 1, numpy_bits=64)[0]
    assert bundle == SeedBundle(42, 0, numpy_bits=64)
    expected = [0.8407249503430587, 0.5459397771703873, 0.34812653859881426]
    assert bundle.numpy().random(3).tolist() == expected
    assert np.random.default_rng(bundle.derive()).random(3).tolist() == expected
    assert bundle.numpy_seed() == 852875163  # numpy_seed stays 32-bit
    assert bundle.to_dict() == {"root_seed": 42, "replicate_index": 0, "numpy_bits": 64}
    assert SeedBundle.from_dict(bundle.to_dict()) == bundle


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
    assert plan.to_manifest() == {"type": "SeedPlan", "base": 5, "replicates": 3}
    wide = metalab.seeds(5, 3, numpy_bits=64)
    assert wide.to_manifest()["numpy_bits"] == 64
    assert metalab.SeedPlan.from_manifest(wide.to_manifest()) == wide
    with pytest.raises(IndexError):
        plan[3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": "1"}, "base=.*must be an int"),
        ({"base": 1, "replicates": 0}, "replicates=0.*at least 1"),
        ({"base": 1.5}, "must be an int"),
        ({"base": 1, "numpy_bits": 16}, "numpy_bits=16.*32.*or 64"),
        ({"base": 1, "numpy_bits": 64.0}, "numpy_bits=64.0"),
    ],
)
def test_bad_seed_plans_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(metalab.ParamError, match=message):
        metalab.seeds(**kwargs)
