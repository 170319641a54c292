"""Experiment and Plan: run IDs, O(1) indexing, duplicate detection, stability."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import metalab
from metalab import DuplicateRunError, ExperimentError, Plan
from metalab_smk.core.identity import fingerprint, run_id, seed_fingerprint


@metalab.operation
def tiny_op(params):
    return params


def _experiment(params=None, replicates=2, **kwargs) -> metalab.Experiment:
    return metalab.Experiment(
        name="tiny",
        version="1",
        context=kwargs.pop("context", {}),
        operation=tiny_op,
        params=params or metalab.grid(x=[1, 2]),
        seeds=metalab.seeds(42, replicates),
        **kwargs,
    )


def test_golden_tiny_run_ids() -> None:
    experiment = _experiment()
    experiment.operation.__dict__["code_fp"] = "3832fb92ddb6d210"  # the golden's code_fp
    assert experiment.experiment_id == "tiny:1"
    plan = Plan(experiment)
    expected = [
        "decea3b613019d21",
        "e3a7b5bef0350de6",
        "2ef63e2d262ac0cd",
        "e6e29ed83a7da725",
    ]
    assert [run.run_id for run in plan] == expected
    assert list(plan.run_ids()) == expected
    del experiment.operation.__dict__["code_fp"]


def test_plan_ids_follow_the_identity_rules() -> None:
    plan = Plan(_experiment(metalab.grid(x=[1, 2, 3], y=["a", "b"]), replicates=3))
    assert len(plan) == 18
    for run in plan:
        expected = run_id(
            "tiny:1",
            fingerprint({}),
            fingerprint(run.params),
            seed_fingerprint(42, run.replicate_index),
            tiny_op.code_fp,
        )
        assert run.run_id == expected


def test_every_spelling_of_the_run_id_formula_agrees(tmp_path) -> None:
    """identity.run_id is the reference; Plan's fast path (iteration, run_ids, run_table
    and the compiled run table) must give the same IDs."""
    from metalab_smk.compile.compiler import write_run_table
    from metalab_smk.store.layout import ExperimentDir

    plan = Plan(_experiment(metalab.grid(x=[1, 2.5, None], y=["a", "é"]), replicates=3))
    expected = [
        run_id(
            "tiny:1",
            fingerprint({}),
            fingerprint(run.params),
            seed_fingerprint(42, run.replicate_index),
            tiny_op.code_fp,
        )
        for run in plan
    ]
    assert [run.run_id for run in plan] == expected
    assert list(plan.run_ids()) == plan.run_table() == expected
    layout = ExperimentDir(tmp_path / "tiny+1")
    assert write_run_table(layout, plan) == len(expected)
    assert layout.run_table.read_text().split() == expected


def test_numpy_bits_64_is_part_of_the_run_id() -> None:
    default = Plan(_experiment())
    wide_experiment = _experiment()
    wide_experiment.seeds = metalab.seeds(42, 2, numpy_bits=64)
    wide = Plan(wide_experiment)
    assert set(default.run_ids()).isdisjoint(wide.run_ids())
    assert [run.run_id for run in wide] == list(wide.run_ids()) == wide.run_table()
    assert all(run.seed.numpy_bits == 64 for run in wide)
    assert wide[1].run_id == run_id(
        "tiny:1",
        fingerprint({}),
        fingerprint({"x": 1}),
        fingerprint({"root_seed": 42, "replicate_index": 1, "numpy_bits": 64}),
        tiny_op.code_fp,
    )
    assert default.table_key() != wide.table_key()


def test_index_equals_iteration_and_order() -> None:
    plan = Plan(_experiment(metalab.grid(x=[1, 2, 3], y=["a", "b"]), replicates=3))
    runs = list(plan)
    for i, run in enumerate(runs):
        assert plan[i] == run
        assert plan[i - len(plan)] == run
        assert run.index == i == run.case_index * 3 + run.replicate_index
    assert [r.replicate_index for r in runs[:4]] == [0, 1, 2, 0]
    with pytest.raises(IndexError):
        plan[len(plan)]


def test_duplicate_param_cases_are_reported() -> None:
    source = metalab.manual([{"x": 1}, {"x": 2}, {"x": 1}, {"x": 1.0}])
    plan = Plan(_experiment(source))
    assert plan.duplicates() == [[0, 2]]
    with pytest.raises(DuplicateRunError, match=r"cases 0, 2 have params \{'x': 1\}.*replicates"):
        plan.check_unique()


def test_resolver_collapsing_cases_is_a_duplicate() -> None:
    experiment = _experiment(
        metalab.grid(x=[1, 2, 3]), param_resolver=lambda meta, p: {"x": min(p["x"], 2)}
    )
    with pytest.raises(DuplicateRunError, match="cases 1, 2"):
        Plan(experiment).check_unique()


def test_context_changes_run_ids_and_bad_context_names_its_field() -> None:
    a = Plan(_experiment(context={"data": "a"}))
    b = Plan(_experiment(context={"data": "b"}))
    assert a[0].run_id != b[0].run_id
    with pytest.raises(metalab.CanonicalizeError, match=r"context\['data'\]\['w'\]"):
        Plan(_experiment(context={"data": {"w": object()}}))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": {"x": [1]}}, "metalab.grid"),
        ({"seeds": 42}, r"metalab.seeds\(base="),
        ({"name": ""}, "non-empty"),
        ({"tags": "fast"}, "list of strings"),
    ],
)
def test_bad_experiments_are_refused(kwargs: dict, message: str) -> None:
    base = {
        "name": "e",
        "version": "1",
        "context": {},
        "operation": tiny_op,
        "params": metalab.grid(x=[1]),
        "seeds": metalab.seeds(1),
    }
    with pytest.raises(ExperimentError, match=message):
        metalab.Experiment(**{**base, **kwargs})


def test_plain_function_is_wrapped_as_operation() -> None:
    def plain(params):
        return params

    experiment = metalab.Experiment("e", "1", {}, plain, metalab.grid(x=[1]), metalab.seeds(1))
    assert isinstance(experiment.operation, metalab.Operation)


_ID_SCRIPT = textwrap.dedent(
    """
    import metalab
    from metalab import Plan

    def op(params):
        return None

    exp = metalab.Experiment(
        name="stable", version="3", context={"paths": {"b", "a"}, "cfg": {"z": 1, "y": 2.5}},
        operation=metalab.operation(code_version="1")(op),
        params=metalab.grid(lr=[0.1, 0.01], opt={"adam", "sgd"} and ["adam", "sgd"]),
        seeds=metalab.seeds(7, 2),
    )
    print(",".join(Plan(exp).run_ids()))
    """
)


def test_run_ids_are_stable_across_processes_and_hash_seeds() -> None:
    outputs = set()
    for hash_seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", _ID_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1
    ids = outputs.pop().split(",")
    assert len(ids) == 8 and len(set(ids)) == 8
