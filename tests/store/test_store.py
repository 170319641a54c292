"""Unit tests of the store layer: directory names, strict JSON, atomic writes, old records,
capture's name and scalar checks, and how runs are packed into jobs. No subprocesses."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metalab_smk.job.capture import CaptureError, check_name, scalar
from metalab_smk.store import jsonio
from metalab_smk.store.classes import batch_parts
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.jsonio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    from_strict_json,
    read_json,
    to_strict_json,
)
from metalab_smk.store.layout import ExperimentDir, experiment_id_from_dir, safe_experiment_id
from metalab_smk.store.records import SCHEMA_VERSION, ArtifactDescriptor, RunRecord, Status
from metalab_smk.sweep.batches import JOBS_PER_WORKER, MAX_LOCAL_CHUNK, choose_chunk_size


def _reject_constants(token: str) -> None:
    raise AssertionError(f"bare {token} token in strict JSON")


def _parse_strictly(text: str):
    """Standard JSON parsing that fails on NaN / Infinity / -Infinity tokens."""
    return json.loads(text, parse_constant=_reject_constants)


# safe_experiment_id ----------------------------------------------------------------------
TRICKY_IDS = [
    "a:b_c",
    "a_b:c",
    "a:b:c",
    "a_b_c:1",
    "a+b:c",
    "a:b+c",
    "a%3Ab:c",
    "a b:c",
    "a/b:c",
    "a:b/c",
    "A:b",
    "a:b",
    ".:.",
    "..:..",
    "näme:1",
    "x:",
]


def test_safe_experiment_id_has_no_collisions() -> None:
    names = [safe_experiment_id(eid) for eid in TRICKY_IDS]
    assert len(set(names)) == len(TRICKY_IDS), dict(zip(TRICKY_IDS, names, strict=True))
    assert safe_experiment_id("a:b_c") != safe_experiment_id("a_b:c")
    assert safe_experiment_id("a:b:c") not in {safe_experiment_id(e) for e in ("a:b_c", "a_b:c")}


@pytest.mark.parametrize("experiment_id", TRICKY_IDS)
def test_safe_experiment_id_is_one_plain_path_component(experiment_id: str) -> None:
    name = safe_experiment_id(experiment_id)
    assert "/" not in name and "\0" not in name and ":" not in name
    assert name not in (".", "..", "")
    assert re.fullmatch(r"[A-Za-z0-9%+._-]+", name)
    assert experiment_id_from_dir(name) == experiment_id
    root = Path("/collection")
    assert FileStoreConfig(root).experiment_dir(experiment_id).root == root / name


def test_safe_experiment_id_keeps_plain_ids_readable() -> None:
    assert safe_experiment_id("pi_mc:0.1") == "pi_mc+0.1"
    assert safe_experiment_id("hyperparameter_sweep:1.0") == "hyperparameter_sweep+1.0"


_PART = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(_PART, _PART, _PART, _PART)
def test_safe_experiment_id_is_injective(n1: str, v1: str, n2: str, v2: str) -> None:
    first, second = f"{n1}:{v1}", f"{n2}:{v2}"
    assert experiment_id_from_dir(safe_experiment_id(first)) == first
    if first != second:
        assert safe_experiment_id(first) != safe_experiment_id(second)


# strict JSON -----------------------------------------------------------------------------
def test_strict_json_round_trips_non_finite_floats_without_bare_tokens() -> None:
    value = {
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "nested": [1.5, {"deep": [math.nan, 2]}],
        "tuple": (math.inf, "x"),
        "np_float32": np.float32("nan"),
        "np_array": np.array([1.0, np.inf, -np.inf]),
        "fine": 0.1,
    }
    text = to_strict_json(value)
    assert "NaN" not in text and "Infinity" not in text
    _parse_strictly(text)  # valid for any standard JSON parser
    back = from_strict_json(text)
    assert math.isnan(back["nan"])
    assert back["inf"] == math.inf and back["ninf"] == -math.inf
    assert back["nested"][0] == 1.5
    assert math.isnan(back["nested"][1]["deep"][0]) and back["nested"][1]["deep"][1] == 2
    assert back["tuple"] == [math.inf, "x"]
    assert math.isnan(back["np_float32"])
    assert back["np_array"] == [1.0, math.inf, -math.inf]
    assert back["fine"] == 0.1


def test_atomic_write_json_and_read_json_round_trip_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "record.json"
    atomic_write_json(path, {"loss": math.nan, "best": -math.inf, "ok": [1, "two"]})
    _parse_strictly(path.read_text())
    back = read_json(path)
    assert math.isnan(back["loss"]) and back["best"] == -math.inf and back["ok"] == [1, "two"]


def test_read_json_still_loads_bare_nan_of_older_writers(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text('{"metrics": {"loss": NaN, "gain": Infinity}}')
    back = read_json(path)
    assert math.isnan(back["metrics"]["loss"]) and back["metrics"]["gain"] == math.inf


def test_strict_json_round_trips_numpy_float64_non_finite(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    atomic_write_json(path, {"mean": np.float64("nan"), "top": np.float64("-inf")})
    _parse_strictly(path.read_text())
    back = read_json(path)
    assert math.isnan(back["mean"]) and back["top"] == -math.inf


def test_strict_json_round_trips_a_dict_that_looks_like_its_marker() -> None:
    for value in ({"$float": "nan"}, {"$float": "not a number"}):
        assert from_strict_json(to_strict_json(value)) == value


# atomic writes ---------------------------------------------------------------------------
def _entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_atomic_write_leaves_only_the_target_with_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"\x00data")
    atomic_write_text(tmp_path / "sub" / "text.txt", "héllo")
    assert target.read_bytes() == b"\x00data"
    assert (tmp_path / "sub" / "text.txt").read_bytes() == "héllo".encode()
    assert _entries(tmp_path / "sub") == ["file.bin", "text.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_write_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert _entries(tmp_path) == ["file.txt"]


def test_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert _entries(tmp_path) == ["file.txt"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_rename_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    target = tmp_path / "record.json"
    atomic_write_json(target, {"v": 1})

    def fail(*args: object) -> None:
        raise error

    monkeypatch.setattr(jsonio.os, "replace", fail)
    with pytest.raises(type(error)):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert read_json(target) == {"v": 1}
    assert _entries(tmp_path) == ["record.json"]


def test_unserialisable_json_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    atomic_write_json(target, [1])
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises((ValueError, RecursionError)):
        atomic_write_json(target, circular)
    assert read_json(target) == [1]
    assert _entries(tmp_path) == ["data.json"]


def test_experiment_dir_paths() -> None:
    layout = ExperimentDir.at("/x/exp+1")
    rid = "0123456789abcdef"
    assert layout.record(rid) == Path("/x/exp+1/runs/0123456789abcdef.json")
    assert layout.failed_record(rid) == Path("/x/exp+1/failed/0123456789abcdef.json")
    assert layout.log(rid) == Path("/x/exp+1/logs/0123456789abcdef_run.log")
    assert layout.artifacts(rid) == Path("/x/exp+1/artifacts/0123456789abcdef")
    assert layout.results(rid) == Path("/x/exp+1/results/0123456789abcdef")
    assert layout.run_table == Path("/x/exp+1/.metalab/run_ids.txt")


def test_list_experiments_on_missing_or_empty_root(tmp_path: Path) -> None:
    assert FileStoreConfig(tmp_path / "nowhere").list_experiments() == []
    (tmp_path / "not-an-experiment").mkdir()
    assert FileStoreConfig(tmp_path).list_experiments() == []
    layout = FileStoreConfig(tmp_path).experiment_dir("b:2")
    atomic_write_json(layout.compiled, {"experiment_id": "b:2"})
    layout_a = FileStoreConfig(tmp_path).experiment_dir("a:b:1")
    atomic_write_json(layout_a.compiled, {"experiment_id": "a:b:1"})
    assert FileStoreConfig(tmp_path).list_experiments() == ["a:b:1", "b:2"]


# RunRecord -------------------------------------------------------------------------------
OLD_RECORD = {
    # a record of an older writer: no seed, run_index, stepped_metrics, warnings, notes,
    # artifacts, tags or _schema_version; plus a field this version does not know
    "run_id": "0123456789abcdef",
    "experiment_id": "old:1",
    "status": "success",
    "context_fingerprint": "c" * 16,
    "params_fingerprint": "p" * 16,
    "seed_fingerprint": "s" * 16,
    "started_at": "2024-01-01T00:00:00+00:00",
    "finished_at": "2024-01-01T00:00:01+00:00",
    "duration_ms": 1000,
    "metrics": {"loss": 0.5},
    "provenance": {"code_hash": "abc"},
    "error": None,
    "params_resolved": {"lr": 0.1},
    "retired_field": {"anything": True},
}


def test_run_record_from_old_schema_dict_gets_defaults() -> None:
    record = RunRecord.from_dict(OLD_RECORD)
    assert record.status is Status.SUCCESS
    assert record.run_id == "0123456789abcdef"
    assert record.metrics == {"loss": 0.5}
    assert record.params_resolved == {"lr": 0.1}
    assert record.seed == {}
    assert record.run_index is None
    assert record.stepped_metrics == []
    assert record.warnings == [] and record.tags == [] and record.artifacts == []
    assert record.notes is None
    data = record.to_dict()
    assert data["_schema_version"] == SCHEMA_VERSION
    assert data["status"] == "success"
    assert "retired_field" not in data
    assert json.loads(to_strict_json(data))["run_id"] == "0123456789abcdef"


def test_run_record_from_minimal_dict_and_failed_status() -> None:
    minimal = {"run_id": "f" * 16, "experiment_id": "old:1", "status": "failed"}
    record = RunRecord.from_dict(minimal)
    assert record.status is Status.FAILED
    assert record.duration_ms == 0 and record.started_at == "" and record.finished_at == ""
    assert record.context_fingerprint == record.params_fingerprint == ""
    assert record.error is None


def test_run_record_round_trips_through_strict_json(tmp_path: Path) -> None:
    record = RunRecord.from_dict(
        {
            **OLD_RECORD,
            "metrics": {"loss": math.nan, "best": math.inf},
            "seed": {"root_seed": 3, "replicate_index": 1},
            "run_index": 4,
            "stepped_metrics": ["loss"],
            "warnings": [{"category": "UserWarning", "message": "m"}],
        }
    )
    path = tmp_path / "r.json"
    atomic_write_json(path, record.to_dict())
    _parse_strictly(path.read_text())
    back = RunRecord.from_dict(read_json(path))
    assert math.isnan(back.metrics["loss"]) and back.metrics["best"] == math.inf
    assert back.seed == {"root_seed": 3, "replicate_index": 1}
    assert back.run_index == 4 and back.stepped_metrics == ["loss"]
    assert back.warnings == record.warnings


def test_artifact_descriptor_from_dict_ignores_unknown_keys() -> None:
    descriptor = ArtifactDescriptor.from_dict(
        {"artifact_id": "r/w", "name": "w", "kind": "numpy", "format": "numpy", "uri": "a/w.npy"}
        | {"legacy": 1}
    )
    assert descriptor.name == "w" and descriptor.metadata == {} and descriptor.size_bytes is None


# capture checks --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["weights", "loss_curve", "a.b", "A-1", "x2", "run.v1.npy"])
def test_check_name_accepts_plain_file_names(name: str) -> None:
    assert check_name("artifact", name) == name


@pytest.mark.parametrize(
    "name",
    ["", "../x", "..", "a/b", "/abs", "a\\b", ".hidden", "_manifest", "a..b", "a\nb", "ü", 3, None],
)
def test_check_name_refuses_names_that_escape_or_hide(name: object) -> None:
    with pytest.raises(CaptureError) as raised:
        check_name("artifact", name)
    message = str(raised.value)
    assert message.startswith(f"artifact name {name!r} is not allowed")
    assert "no '/'" in message and "no '..'" in message
    assert isinstance(raised.value, ValueError)  # catchable as a plain ValueError


def test_check_name_message_names_the_kind() -> None:
    with pytest.raises(CaptureError, match=r"^data name '\.\./d' is not allowed"):
        check_name("data", "../d")


@pytest.mark.parametrize(
    ("value", "expected", "kind"),
    [
        (1, 1, int),
        (2.5, 2.5, float),
        (True, True, bool),
        ("text", "text", str),
        (np.float64(2.5), 2.5, float),
        (np.float32(0.5), 0.5, float),
        (np.int64(7), 7, int),
        (np.bool_(False), False, bool),
        (np.array(3.0), 3.0, float),
    ],
)
def test_scalar_converts_numpy_scalars_to_python(value: object, expected: object, kind: type):
    converted = scalar("m", value)
    assert converted == expected
    assert type(converted) is kind


def test_scalar_keeps_nan() -> None:
    assert math.isnan(scalar("m", math.nan))


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ([1, 2], "list"),
        ((1,), "tuple"),
        ({"a": 1}, "dict"),
        (None, "NoneType"),
        (1j, "complex"),
        (np.array([1.0, 2.0]), "ndarray"),
    ],
)
def test_scalar_refuses_structures_with_a_hint(value: object, type_name: str) -> None:
    with pytest.raises(CaptureError) as raised:
        scalar("loss", value)
    message = str(raised.value)
    assert message.startswith("metric 'loss' must be a scalar")
    assert f"got {type_name}" in message
    assert "capture.data('loss', value)" in message and "capture.artifact" in message


# packing runs into jobs ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_runs", "cores", "expected"),
    [
        (0, 2, 1),
        (1, 2, 1),
        (2, 2, 1),
        (3, 2, 2),
        (8, 2, 4),
        (9, 2, 5),
        (1000, 2, 500),
        (1000, 4, 250),
        (100_000, 2, MAX_LOCAL_CHUNK),
        (100, 0, 100),  # no core count: one slot
    ],
)
def test_choose_chunk_size_auto(n_runs: int, cores: int, expected: int) -> None:
    assert choose_chunk_size(n_runs, cores, local=True) == expected


def test_choose_chunk_size_explicit_wins_and_must_be_positive() -> None:
    assert choose_chunk_size(1000, 2, 7) == 7
    assert choose_chunk_size(3, 2, 50) == 50
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"chunk_size={bad} must be at least 1"):
            choose_chunk_size(10, 2, bad)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2_000_000), st.integers(1, 256))
def test_choose_chunk_size_is_the_smallest_giving_a_job_per_core_or_a_few_on_slurm(
    n_runs, cores
) -> None:
    # on this machine; on a cluster whose jobs are cheap to start (a profile for another
    # scheduler: min_chunk 1); on SLURM
    settings = ((1, True, 1, MAX_LOCAL_CHUNK), (1, False, JOBS_PER_WORKER, 1000))
    settings += ((10, False, JOBS_PER_WORKER, 1000),)
    for min_chunk, local, jobs_per_core, cap in settings:
        chunk = choose_chunk_size(n_runs, cores, min_chunk=min_chunk, local=local)
        assert 1 <= chunk <= cap
        if min_chunk < chunk < cap:
            assert math.ceil(n_runs / chunk) <= cores * jobs_per_core
            assert math.ceil(n_runs / (chunk - 1)) > cores * jobs_per_core


def test_local_batches_are_strided_so_growing_run_times_are_shared_out() -> None:
    assert batch_parts(list(range(7)), 4, strided=True) == [[0, 2, 4, 6], [1, 3, 5]]
    assert batch_parts(list(range(7)), 4) == [[0, 1, 2, 3], [4, 5, 6]]
    indices = list(range(3, 1003, 3))
    for chunk in (1, 7, 100, 334, 1000):
        parts = batch_parts(indices, chunk, strided=True)
        assert len(parts) == math.ceil(len(indices) / chunk)
        assert max(map(len, parts)) <= chunk
        assert sorted(i for part in parts for i in part) == indices  # each run once
        # a run time that grows along the sweep: every batch gets about the same total
        totals = [sum(part) for part in parts]
        assert max(totals) - min(totals) <= max(indices)


def test_choose_chunk_size_uses_earlier_durations_and_the_minimum() -> None:
    assert choose_chunk_size(200, 2, median_run_seconds=60.0) == 1  # long runs: one each
    assert choose_chunk_size(200, 2, median_run_seconds=0.01, local=True) == 100  # one a core
    assert choose_chunk_size(200, 2, median_run_seconds=0.01) == 50  # not local: two a core
    assert choose_chunk_size(20, 100, min_chunk=10) == 10  # SLURM: at least 10 per job
    # SLURM with recorded durations: a job gets about a minute of short runs, while every
    # parallel slot still gets a job
    assert choose_chunk_size(10_000, 100, min_chunk=10, median_run_seconds=0.01) == 100
    assert choose_chunk_size(2_000, 100, min_chunk=10, median_run_seconds=0.5) == 20
    assert choose_chunk_size(10_000, 100, min_chunk=10, median_run_seconds=20.0) == 50
