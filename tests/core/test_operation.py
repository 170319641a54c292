"""@operation: decoration forms, argument injection, code fingerprints."""

from __future__ import annotations

import hashlib
import inspect

import pytest

import metalab
from metalab import OperationError


@metalab.operation
def bare(params, seeds):
    return params["x"], seeds.root_seed


@metalab.operation()
def called(capture):
    return capture


@metalab.operation(name="renamed", code_version="2")
def versioned(params):
    return params


def test_decoration_forms() -> None:
    assert isinstance(bare, metalab.Operation) and bare.name == "bare"
    assert called.name == "called"
    assert versioned.name == "renamed"


def test_injects_only_declared_arguments() -> None:
    available = {
        "context": {},
        "params": {"x": 3},
        "seeds": metalab.SeedBundle(9, 0),
        "runtime": None,
        "capture": "cap",
    }
    assert bare.arguments == ("params", "seeds")
    assert bare.invoke(**available) == (3, 9)
    assert called.invoke(**available) == "cap"


def test_kwargs_receive_everything_and_defaults_are_left_alone() -> None:
    @metalab.operation
    def takes_all(params, verbose=False, **rest):
        return sorted(rest), verbose

    result = takes_all.invoke(context=1, params=2, seeds=3, runtime=4, capture=5)
    assert result == (["capture", "context", "runtime", "seeds"], False)


def test_code_fp_is_the_source_hash_including_decorator() -> None:
    source = inspect.getsource(bare.fn)
    assert source.startswith("@metalab.operation")
    assert bare.code_fp == hashlib.sha256(source.encode()).hexdigest()[:16]


def test_code_version_replaces_the_source_hash() -> None:
    assert versioned.code_fp == metalab.fingerprint("2")


def test_function_without_source_has_empty_code_fp() -> None:
    namespace: dict = {}
    exec("def generated(params):\n    return params\n", namespace)
    assert metalab.operation(namespace["generated"]).code_fp == ""


def test_unknown_argument_is_refused_at_decoration() -> None:
    with pytest.raises(OperationError, match=r"'config'.*context, params, seeds, runtime, capture"):

        @metalab.operation
        def bad(params, config):
            pass


def test_var_positional_is_refused() -> None:
    with pytest.raises(OperationError, match=r"\*args"):
        metalab.operation(lambda *args: None)


def test_non_string_code_version_is_refused() -> None:
    with pytest.raises(OperationError, match="code_version=2"):
        metalab.operation(code_version=2)(lambda params: None)
