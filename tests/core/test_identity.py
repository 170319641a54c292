"""Canonical JSON, fingerprints and run IDs: golden values and error messages."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import metalab
from metalab_smk.core.identity import canonical, fingerprint, run_id, seed_fingerprint
from metalab_smk.errors import CanonicalizeError


def test_golden_canonical_and_fingerprints() -> None:
    assert canonical({"b": 1, "a": 2.5}) == '{"a":"2.5","b":1}'
    assert fingerprint({"x": 1}) == "5041bf1f713df204"
    assert fingerprint({}) == "44136fa355b3678a"
    assert fingerprint({"root_seed": 42, "replicate_index": 0}) == "00ccca107734f362"


def test_golden_run_id() -> None:
    rid = run_id("exp:1", fingerprint({}), fingerprint({"x": 1}), seed_fingerprint(42, 0), "")
    assert rid == "685952f06811b124"


def test_encoding_rules() -> None:
    assert canonical(None) == "null"
    assert canonical([True, 1, "s", 0.1]) == '[true,1,"s","0.1"]'
    assert canonical((1, 2)) == canonical([1, 2])
    assert canonical(b"\x01\xff") == '{"__bytes__":"01ff"}'
    assert canonical({3, 1, 2}) == "[1,2,3]"
    assert canonical(frozenset({"b", "a"})) == '["a","b"]'
    assert canonical({2: "x", 1: "y"}) == '{"1":"y","2":"x"}'
    assert canonical("é") == '"\\u00e9"'  # ensure_ascii stays on


def test_dataclass_encodes_as_its_fields_without_class_name() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: float

    assert canonical(Point(1, 2.0)) == canonical({"x": 1, "y": 2.0}) == '{"x":1,"y":"2.0"}'


def test_numpy_values_convert_to_python_first() -> None:
    assert canonical(np.float64(2.5)) == canonical(2.5) == '"2.5"'
    assert canonical(np.int64(7)) == "7"
    assert canonical(np.bool_(True)) == "true"
    assert canonical({"a": np.array([1, 2])}) == canonical({"a": [1, 2]})
    assert fingerprint({"x": np.float32(0.5)}) == fingerprint({"x": 0.5})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_non_finite_floats_are_refused_with_their_path(bad: float) -> None:
    with pytest.raises(CanonicalizeError, match=r"\['lr'\]\[1\].*NaN and \+-Inf"):
        canonical({"lr": [0.1, bad]})


def test_unsupported_type_names_field_path_and_fix() -> None:
    class Model:
        pass

    with pytest.raises(CanonicalizeError) as info:
        fingerprint({"model": {"weights": Model()}}, "context")
    message = str(info.value)
    assert "context['model']['weights']" in message
    assert "Model" in message and "fingerprint_payload" in message


def test_key_clash_after_str_is_refused() -> None:
    with pytest.raises(CanonicalizeError, match="two keys"):
        canonical({1: "a", "1": "b"})


def test_fingerprintable_uses_its_payload() -> None:
    class Dataset:
        def fingerprint_payload(self) -> dict:
            return {"name": "mnist", "rows": 10}

    assert fingerprint(Dataset()) == fingerprint({"name": "mnist", "rows": 10})
    assert isinstance(Dataset(), metalab.Fingerprintable)


def test_canonical_is_valid_json() -> None:
    value = {"z": [1, {"y": 2.25}], "a": None}
    assert json.loads(canonical(value)) == {"a": None, "z": [1, {"y": "2.25"}]}
