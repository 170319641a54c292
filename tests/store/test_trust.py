"""Records you can trust: bad records quarantined, summaries that cover every record,
column types that survive, readers that stay inside the store, no leftovers, safe names."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_helpers import file_hashes

import metalab
from metalab_smk.core.naming import experiment_dirname
from metalab_smk.errors import ExperimentError, MetalabError, RecordError, StorePathError
from metalab_smk.results import summary as reduce
from metalab_smk.results.results import load_results
from metalab_smk.store.jsonio import (
    atomic_write_json,
    atomic_write_text,
    read_json,
    to_strict_json,
)
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.validate import (
    check_record,
    clean_leftovers,
    valid_record_exists,
    without_valid_record,
)
from metalab_smk.sweep.batches import missing_indices
from metalab_smk.sweep.status import sweep_status

IDS = [f"{i:016x}" for i in range(1, 7)]


def _record(run_id: str, status: str = "success", params=None, **metrics) -> dict:
    return {
        "run_id": run_id,
        "experiment_id": "t:1",
        "status": status,
        "duration_ms": 3,
        "started_at": "t0",
        "finished_at": "t1",
        "params_resolved": {"x": int(run_id, 16)} if params is None else params,
        "metrics": metrics,
        "seed": {"root_seed": 1, "replicate_index": 0},
        "error": {"type": "ValueError", "message": "bad"} if status != "success" else None,
    }


@pytest.fixture
def layout(tmp_path: Path) -> ExperimentDir:
    layout = ExperimentDir.at(tmp_path / "t+1")
    atomic_write_text(layout.run_table, "".join(f"{rid}\n" for rid in IDS))
    atomic_write_json(layout.compiled, {"experiment_id": "t:1"})
    return layout


def _write_records(layout: ExperimentDir, n: int = 4) -> None:
    for rid in IDS[:n]:
        atomic_write_json(layout.record(rid), _record(rid, y=int(rid, 16) * 2))


def _quarantined(layout: ExperimentDir) -> list[str]:
    return sorted(p.name.split(".")[0] for p in layout.quarantine_dir.rglob("*.json.*"))


# 1. a record is valid or it does not count ------------------------------------------------
def _bad(**fields) -> bytes:
    """A record of IDS[0] with ``fields`` replaced."""
    return to_strict_json({**_record(IDS[0]), **fields}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b'{"run_id": "0000000000000001", "stat', "not valid JSON"),
        (b"\x00\x00garbage", "not valid JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"run_id": "00000000000000ff", "status": "success"}', "run_id is"),
        (b'{"run_id": "0000000000000001", "status": "weird"}', "status"),
        (b'{"run_id": "0000000000000001", "status": "success"}', "lacks the field experiment_id"),
        (_bad(metrics=[1]), "'metrics' is an array, not dict"),
        (_bad(duration_ms="3"), "'duration_ms' is a string, not int"),
        (_bad(duration_ms=True), "'duration_ms' is a boolean, not int"),
        (_bad(params_resolved=None), "'params_resolved' is null"),
        (_bad(tags=["a", 1]), "'tags' is an array, not list"),
        (_bad(error="boom"), "'error' is a string"),
        (_bad(run_index=1.5), "'run_index' is a number, not int"),
        (_bad(artifacts=[{"name": "a"}]), "an artifact lacks artifact_id"),
        (_bad(seed={"replicate_index": 0}), "seed lacks root_seed"),
        (_bad(seed={"root_seed": "7"}), "seed field 'root_seed' is a string"),
    ],
)
def test_check_record_refuses_damaged_records(data: bytes, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        check_record(data, IDS[0])


def test_check_record_accepts_a_record_and_refuses_failed_one_in_runs() -> None:
    text = read_json_bytes(_record(IDS[0]))
    assert check_record(text, IDS[0], expect_success=True)["run_id"] == IDS[0]
    with pytest.raises(RecordError, match="does not belong in runs/"):
        check_record(read_json_bytes(_record(IDS[0], "failed")), IDS[0], expect_success=True)


def read_json_bytes(obj: dict) -> bytes:
    return to_strict_json(obj).encode()


def test_collect_quarantines_bad_records_with_one_warning_line_each(layout, capsys) -> None:
    _write_records(layout, 4)
    layout.record(IDS[0]).write_bytes(b"")  # crash before fsync
    layout.record(IDS[1]).write_bytes(b'{"run_id": "00000')  # truncated
    atomic_write_json(layout.record(IDS[2]), _record(IDS[5]))  # copied under the wrong name
    runs, _ = reduce.collect(layout.root)
    assert list(runs["run_id"]) == [IDS[3]]
    assert _quarantined(layout) == sorted(IDS[:3])
    assert not any(layout.record(rid).exists() for rid in IDS[:3])
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(lines) == 3
    for rid, line in zip(IDS[:3], sorted(lines, key=lambda t: t.split("/runs/")[1]), strict=True):
        assert str(layout.record(rid)) in line and "quarantine/runs/" in line
    assert reduce.summary_is_current(layout)
    assert list(load_results(layout.root).frame["run_id"]) == [IDS[3]]


def test_a_bad_success_record_falls_back_to_the_failed_one(layout) -> None:
    atomic_write_json(layout.failed_record(IDS[0]), _record(IDS[0], "failed"))
    layout.runs_dir.mkdir()
    layout.record(IDS[0]).write_bytes(b"garbage")
    runs, _ = reduce.collect(layout.root)
    assert list(runs["status"]) == ["failed"]
    assert reduce.summary_is_current(layout)


def test_status_names_bad_records_and_run_or_collect_quarantine_them(layout, capsys) -> None:
    _write_records(layout, 4)
    atomic_write_json(layout.failed_record(IDS[4]), _record(IDS[4], "failed"))
    layout.failed_record(IDS[4]).write_bytes(b"{not json")  # status reads failed records
    layout.record(IDS[0]).write_bytes(b"")
    layout.record(IDS[1]).write_bytes(_bad(run_id=IDS[1], metrics=[1]))  # wrong type
    before = file_hashes(layout.root)
    for status in (sweep_status(layout, check_records=True), sweep_status(layout, verify=True)):
        assert (status.done, status.failed, status.pending) == (2, 0, 4)  # no crash
    assert file_hashes(layout.root) == before  # named, nothing moved
    err = capsys.readouterr().err
    assert err.count("is not a valid record") == 6 and err.count("'metrics' is an array") == 2
    assert "the next `metalab run` moves it to quarantine" in err
    assert missing_indices(layout) == [0, 1, 4, 5]  # `metalab run`'s scan quarantines them
    assert _quarantined(layout) == [IDS[0], IDS[1]]
    layout.record(IDS[2]).write_bytes(b"garbage")
    assert not valid_record_exists(layout, IDS[2])  # the worker re-runs it
    assert valid_record_exists(layout, IDS[3])
    reduce.collect(layout.root)
    assert _quarantined(layout) == sorted([*IDS[:3], IDS[4]])


def test_the_worker_finds_the_runs_to_do_with_one_stat_each(layout, tmp_path) -> None:
    """``without_valid_record``: what a batch runs. Missing and bad records count as to
    do (a bad one is quarantined); a record that is a link leading out of the store is
    quarantined, never read, and its run is done again."""
    assert without_valid_record(layout, IDS[:2]) == [True, True]  # no runs/ yet
    _write_records(layout, 3)
    layout.record(IDS[1]).write_bytes(b"{truncated")
    (tmp_path / "outside.json").write_bytes(to_strict_json(_record(IDS[3])).encode())
    layout.record(IDS[3]).symlink_to(tmp_path / "outside.json")
    assert without_valid_record(layout, IDS) == [False, True, False, True, True, True]
    assert _quarantined(layout) == [IDS[1], IDS[3]]  # the link moved, not what it names
    assert (tmp_path / "outside.json").is_file()


def test_results_name_a_bad_record_instead_of_crashing(layout) -> None:
    _write_records(layout, 2)
    results = load_results(layout.root)
    layout.record(IDS[0]).write_bytes(b"garbage")  # damaged after the summary was built
    with pytest.raises(MetalabError, match=f"{IDS[0]}.json is not a valid record"):
        results[0].metrics  # noqa: B018


# 2. a summary is current only if it covers every record ---------------------------------
def test_a_record_landing_mid_collect_makes_the_summary_stale(layout, monkeypatch) -> None:
    _write_records(layout, 3)
    real = reduce._build

    def build_then_land(*args, **kwargs):
        result = real(*args, **kwargs)
        atomic_write_json(layout.record(IDS[3]), _record(IDS[3], y=8))  # after the listing
        return result

    monkeypatch.setattr(reduce, "_build", build_then_land)
    runs, _ = reduce.collect(layout.root)
    monkeypatch.setattr(reduce, "_build", real)
    assert len(runs) == 3  # the summary lacks the record ...
    assert not reduce.summary_is_current(layout)  # ... so it does not count as current
    assert len(load_results(layout.root)) == 4  # readers read the records in memory ...
    assert not reduce.summary_is_current(layout)  # ... and write nothing
    reduce.collect(layout.root)
    assert len(pd.read_parquet(layout.summary_runs)) == 4


def test_a_garbage_or_foreign_summary_is_rebuilt(layout) -> None:
    _write_records(layout, 3)
    reduce.collect(layout.root)
    layout.summary_runs.write_bytes(b"garbage")
    assert not reduce.summary_is_current(layout)
    assert len(load_results(layout.root)) == 3  # read from the records, nothing written
    assert layout.summary_runs.read_bytes() == b"garbage"
    assert reduce.ensure_summary(layout) is True
    pd.DataFrame({"run_id": [IDS[0]]}).to_parquet(layout.summary_runs)  # readable, no coverage
    assert not reduce.summary_is_current(layout)
    assert reduce.ensure_summary(layout) is True
    assert len(pd.read_parquet(layout.summary_runs)) == 3


def test_summary_coverage_changes_with_a_removed_or_replaced_record(layout) -> None:
    _write_records(layout, 3)
    reduce.collect(layout.root)
    assert reduce.summary_is_current(layout)
    layout.record(IDS[2]).unlink()
    assert not reduce.summary_is_current(layout)
    reduce.collect(layout.root)
    atomic_write_json(layout.failed_record(IDS[4]), _record(IDS[4], "failed"))
    assert not reduce.summary_is_current(layout)


# 3. types survive -------------------------------------------------------------------------
def test_int_columns_stay_int_across_incremental_collects_and_failed_runs(layout, tmp_path):
    for rid in IDS[:2]:
        atomic_write_json(layout.record(rid), _record(rid, params={"n": 20}, k=5))
    reduce.collect(layout.root)
    atomic_write_json(layout.failed_record(IDS[2]), _record(IDS[2], "failed", params={"n": 21}))
    atomic_write_json(layout.record(IDS[3]), _record(IDS[3], params={"n": 22}, k=7))
    runs, _ = reduce.collect(layout.root)
    assert str(runs["param_n"].dtype) == "int64"
    assert str(runs["k"].dtype) == "Int64" and runs["k"].isna().tolist() == [0, 0, 1, 0]
    frame = load_results(layout.root).to_dataframe()
    assert str(frame["param_n"].dtype) == "int64" and str(frame["k"].dtype) == "Int64"
    assert str(frame["duration_ms"].dtype) == "int64"
    frame.to_csv(tmp_path / "out.csv", index=False)
    text = (tmp_path / "out.csv").read_text()
    assert "20.0" not in text and ",20," in text


def test_huge_ints_are_stored_exactly_and_never_break_the_reduce(layout) -> None:
    atomic_write_json(layout.record(IDS[0]), _record(IDS[0], params={"p": 2**64}, m=10**30))
    atomic_write_json(layout.record(IDS[1]), _record(IDS[1], params={"p": 3}, m=1.5))
    atomic_write_json(
        layout.failed_record(IDS[2]), _record(IDS[2], "failed", params={"p": -(2**70)})
    )
    runs, _ = reduce.collect(layout.root)
    assert runs["param_p"].tolist() == [2**64, 3, -(2**70)]
    frame = load_results(layout.root).frame
    assert frame["param_p"].tolist() == [2**64, 3, -(2**70)]
    assert type(frame["param_p"][0]) is int
    assert frame["m"].tolist()[:2] == [10**30, 1.5]  # beyond 64 bits: exact, not a float
    assert type(frame["m"][0]) is int
    stats = load_results(layout.root).aggregate().set_index("param_p")
    assert stats.loc["3", "m_mean"] == 1.5  # exact params group by JSON text
    assert stats.loc[str(2**64), "m_mean"] == 1e30


def test_string_and_number_metric_is_kept_and_summary_says_what_it_does(layout) -> None:
    values = ["n/a", 2.0, 4, "err"]
    for rid, value in zip(IDS[:4], values, strict=True):
        atomic_write_json(layout.record(rid), _record(rid, params={"a": 1}, acc=value))
    reduce.collect(layout.root)
    results = load_results(layout.root)
    assert results.frame["acc"].tolist() == values  # exact, types kept
    with pytest.warns(UserWarning, match="'acc' mixes numbers with 2 other values"):
        stats = results.aggregate()
    assert stats["acc_mean"].tolist() == [3.0] and stats["acc_count"].tolist() == [2]


def test_true_one_and_one_point_zero_stay_distinct(layout) -> None:
    for rid, value in zip(IDS[:3], [1, 1.0, True], strict=True):
        atomic_write_json(layout.record(rid), _record(rid, params={"x": value}, y=1.0))
    reduce.collect(layout.root)
    results = load_results(layout.root)
    values = results.frame["param_x"].tolist()
    assert [type(v) for v in values] == [int, float, bool]
    assert [r.run_id for r in results.filter(x=True)] == [IDS[2]]
    assert [r.run_id for r in results.filter(x=1)] == [IDS[0]]
    assert [r.run_id for r in results.filter(x=1.0)] == [IDS[1]]
    assert [r.run_id for r in results.filter(x=[1, True])] == [IDS[0], IDS[2]]
    stats = results.aggregate()
    assert sorted(stats["param_x"]) == ["1", "1.0", "true"] and stats["y_count"].tolist() == [1] * 3


def test_bool_and_int_columns_do_not_match_each_other(layout) -> None:
    for i, rid in enumerate(IDS[:2]):
        atomic_write_json(layout.record(rid), _record(rid, params={"b": bool(i), "n": i}))
    reduce.collect(layout.root)
    results = load_results(layout.root)
    assert results.frame["param_b"].dtype == bool
    assert len(results.filter(b=1)) == 0 and len(results.filter(b=True)) == 1
    assert len(results.filter(n=True)) == 0 and len(results.filter(n=np.int64(1))) == 1


# 4. readers stay inside the store ---------------------------------------------------------
@pytest.mark.parametrize("uri", ["../outside.npy", "ABSOLUTE", "artifacts/../../outside.npy"])
def test_artifact_paths_that_leave_the_store_are_refused(layout, uri: str) -> None:
    outside = layout.root.parent / "outside.npy"
    np.save(outside, np.arange(3))
    layout.artifacts(IDS[0]).mkdir(parents=True)  # so that "artifacts/../.." resolves
    record = _record(IDS[0])
    record["artifacts"] = [
        {
            "artifact_id": "a1",
            "name": "w",
            "format": "numpy",
            "uri": str(outside) if uri == "ABSOLUTE" else uri,
            "kind": "array",
        }
    ]
    atomic_write_json(layout.record(IDS[0]), record)
    run = load_results(layout.root)[0]
    with pytest.raises(StorePathError, match="refusing"):
        run.artifact("w")


def test_a_foreign_absolute_artifact_path_maps_into_the_store(layout) -> None:
    """Upstream records hold absolute paths of the machine that wrote them: only the
    file name is used, inside this store."""
    target = layout.artifacts(IDS[0]) / "w.npy"
    target.parent.mkdir(parents=True)
    np.save(target, np.arange(4))
    record = _record(IDS[0])
    record["artifacts"] = [
        {
            "artifact_id": "a1",
            "name": "w",
            "format": "numpy",
            "kind": "array",
            "uri": "/elsewhere/store/artifacts/" + IDS[0] + "/w.npy",
        }
    ]
    atomic_write_json(layout.record(IDS[0]), record)
    assert load_results(layout.root)[0].artifact("w").tolist() == [0, 1, 2, 3]


def test_data_and_stepped_metric_names_cannot_escape(layout, capsys) -> None:
    outside = layout.root.parent / "secret.json"
    atomic_write_json(outside, {"data": [[0, 1.0]]})
    record = _record(IDS[0])
    record["stepped_metrics"] = ["../../../secret"]
    atomic_write_json(layout.record(IDS[0]), record)
    _, steps = reduce.collect(layout.root)
    assert steps.empty and "skipped stepped metric" in capsys.readouterr().err
    with pytest.raises(StorePathError):
        load_results(layout.root)[0].data("../../../secret")


def test_resolve_inside_allows_paths_within_the_store(layout) -> None:
    assert layout.resolve_inside("artifacts/a/../b/w.npy") == layout.root / "artifacts/b/w.npy"
    inside = layout.root / "artifacts" / "w.npy"  # an absolute path into the directory is fine
    assert layout.resolve_inside(str(inside)) == inside
    for bad in ("", "..", "/etc/passwd", "a/../../b", "~/x"):
        with pytest.raises(StorePathError):
            layout.resolve_inside(bad)


# 5. no leftovers --------------------------------------------------------------------------
def test_collect_removes_temp_files_of_dead_writers_and_empty_partial_logs(layout) -> None:
    _write_records(layout, 1)
    old = time.time() - 3600
    dead = 4_000_000  # above pid_max: never alive
    stale = [
        layout.summary_dir / f".runs.parquet.{dead}.tmp",
        layout.runs_dir / f".{IDS[1]}.json.{dead}.140.tmp",
        layout.logs_dir / f"{IDS[2]}_run.log.partial",
    ]
    fresh = [
        layout.summary_dir / f".steps.parquet.{dead}.tmp",  # too recent to judge
        layout.runs_dir / f".{IDS[3]}.json.{os.getpid()}.1.tmp",  # alive writer
        layout.logs_dir / f"{IDS[4]}_run.log.partial",  # not empty: a run in progress
    ]
    for path in stale + fresh:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" if path == fresh[2] else b"")
    for path in stale + fresh[1:]:
        os.utime(path, (old, old))
    reduce.collect(layout.root)
    assert [p.exists() for p in stale] == [False, False, False]
    assert [p.exists() for p in fresh] == [True, True, True]
    assert clean_leftovers(layout) == []


def test_scratch_folders_of_dead_children_are_cleaned_and_live_ones_kept(layout) -> None:
    """A batch child writes its records in its own ``.metalab/scratch/<host>-<pid>``
    folder; what a crashed one left is removed, a live child's folder stays."""
    old, dead, host = time.time() - 3600, 4_000_000, os.uname().nodename
    crashed = layout.child_scratch(dead)
    live = layout.child_scratch(os.getpid())
    remote_old, remote_new = layout.scratch_dir / "node7-12", layout.scratch_dir / "node8-12"
    leftover = crashed / f".{IDS[0]}.json.{dead}.140.tmp"
    for folder in (crashed, live, remote_old, remote_new):
        folder.mkdir(parents=True)
    leftover.write_bytes(b"{")
    os.utime(leftover, (old, old))
    os.utime(remote_old, (old, old))
    assert crashed.name == f"{host}-{dead}"
    assert clean_leftovers(layout) == [leftover]
    assert sorted(p.name for p in layout.scratch_dir.iterdir()) == sorted(
        [live.name, remote_new.name]
    )


def test_atomic_writes_leave_no_temp_file(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert read_json(tmp_path / "a.json") == {"a": 1}


# 6. names ---------------------------------------------------------------------------------
def _experiment(name: str, version) -> metalab.Experiment:
    @metalab.operation
    def op(params, seeds, capture):
        capture.metric("y", 1)

    return metalab.Experiment(
        name=name,
        version=version,
        context={},
        operation=op,
        params=metalab.grid(x=[1]),
        seeds=metalab.seeds(1, 1),
    )


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("x" * 300, "1", "limit of file names"),
        ("é" * 50, "1", "limit of file names"),  # 6 bytes each after escaping
        ("a", "", "version is empty"),
        ("a", "  ", "version is empty"),
        ("a:b", "1", "cannot contain it"),
    ],
)
def test_names_that_cannot_make_a_directory_are_refused_in_one_line(name, version, message):
    with pytest.raises(ExperimentError, match=message) as caught:
        _experiment(name, version)
    assert "\n" not in str(caught.value)


def test_different_name_version_pairs_never_share_a_directory() -> None:
    pairs = [("a", "b:1"), ("a", "b+1"), ("a+b", "1"), ("a%2Bb", "1"), ("a b", "1"), ("a_b", "1")]
    pairs += [("x" * 120, "1"), ("x" * 119, "x1"), ("A", "1")]
    dirs = {experiment_dirname(n, v) for n, v in pairs}
    ids = {_experiment(n, v).experiment_id for n, v in pairs}
    assert len(dirs) == len(ids) == len(pairs)
    assert ExperimentDir.at("/s").root.name == "s"


def test_longest_allowed_name_compiles(tmp_path: Path) -> None:
    from metalab_smk.compile.compiler import compile_experiment

    name = "n" * 246  # "n" * 246 + "+1" is 248 bytes: at the limit with room for ".json"
    layout = compile_experiment(_experiment(name, "1"), tmp_path)
    assert layout.root.name == f"{name}+1" and layout.count_runs() == 1
    assert (tmp_path / f"{name}+1" / "experiments" / f"{name}+1.json").is_file()


def test_damaged_data_file_is_named(layout) -> None:
    _write_records(layout, 1)
    data = layout.results(IDS[0]) / "loss.json"
    data.parent.mkdir(parents=True)
    data.write_text("{trunc")
    with pytest.raises(MetalabError, match=r"loss\.json is not valid JSON"):
        load_results(layout.root)[0].data("loss")


# 7. large grids: the streamed run table and the status lookups ---------------------------
def test_streamed_run_table_matches_the_plan_and_run_table_lookups(tmp_path: Path) -> None:
    from metalab_smk.compile.compiler import write_run_table
    from metalab_smk.core.plan import Plan
    from metalab_smk.store.runtable import RunTable

    experiment = _experiment("big", "1")
    experiment.params = metalab.grid(a=list(range(300)), b=["x", 1.5, None, True])
    experiment.seeds = metalab.seeds(3, replicates=2)
    experiment.__dict__.pop("param_source", None)
    plan = Plan(experiment)
    layout = ExperimentDir.at(tmp_path / "big+1")
    assert write_run_table(layout, plan) == 2400
    expected = plan.run_table()
    assert layout.read_run_ids() == expected and layout.count_runs() == 2400
    mtime = layout.run_table.stat().st_mtime_ns
    write_run_table(layout, plan)  # unchanged content: the file is not rewritten
    assert layout.run_table.stat().st_mtime_ns == mtime
    table = RunTable(layout.run_table)
    wanted = [expected[7], expected[2399], "f" * 16, "not-a-run", expected[0]]
    assert table.positions(wanted) == {expected[7]: 7, expected[2399]: 2399, expected[0]: 0}
    assert table.run_id(5) == expected[5] and len(table) == 2400


# end to end: `metalab run`, `metalab status --verify` and plain `snakemake` --------------
EXPERIMENT = """
import metalab

@metalab.operation(code_version="1")
def op(params, seeds, capture):
    capture.metric("y", params["x"] * 2)

exp = metalab.Experiment(name="trust", version="1", context={}, operation=op,
    params=metalab.grid(x=[1, 2, 3, 4]), seeds=metalab.seeds(1))
"""


def _cli(cwd: Path, *args: str):
    import subprocess
    import sys

    env = {**os.environ, "METALAB_HASH_CACHE": str(cwd / "hash.sqlite")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    command = [sys.executable, "-m", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.integration
def test_metalab_run_recomputes_damaged_records_and_snakemake_after_collect(tmp_path):
    (tmp_path / "exp.py").write_text(EXPERIMENT)
    done = _cli(tmp_path, "metalab_smk.cli", "run", "exp.py", "--store", "store")
    assert done.returncode == 0, done.stderr
    layout = ExperimentDir.at(tmp_path / "store" / "trust+1")
    ids = layout.read_run_ids()
    time.sleep(2.1)  # past the margin for coarse file times
    layout.record(ids[0]).write_bytes(b"")  # a crash without fsync, in place
    layout.record(ids[1]).write_bytes(b"\x00garbage")  # damaged in place (summary current)
    (layout.runs_dir / "copy.tmp").write_bytes(b'{"run_id": "0000000000000000"}')
    os.replace(layout.runs_dir / "copy.tmp", layout.record(ids[3]))  # a bad copy
    done = _cli(tmp_path, "metalab_smk.cli", "run", "exp.py", "--store", "store")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("is not a valid record") == 3
    assert "running 3 of 4 runs" in done.stdout
    assert all(read_json(layout.record(rid))["run_id"] == rid for rid in ids)
    assert reduce.summary_is_current(layout)
    assert sorted(pd.read_parquet(layout.summary_runs)["y"]) == [2, 4, 6, 8]

    layout.record(ids[2]).write_bytes(b'{"run_id": "0000000000000000", "status": "success"}')
    before = file_hashes(layout.root)
    done = _cli(tmp_path, "metalab_smk.cli", "status", "--verify", str(layout.root))
    assert done.returncode == 0, done.stderr
    assert "3 done" in done.stdout and "1 pending" in done.stdout
    assert str(layout.record(ids[2])) in done.stderr and file_hashes(layout.root) == before
    done = _cli(tmp_path, "metalab_smk.cli", "collect", str(layout.root))
    assert done.returncode == 0 and str(layout.record(ids[2])) in done.stderr
    done = _cli(layout.root, "snakemake", "--cores", "1")  # plain Snakemake re-runs it
    assert done.returncode == 0, done.stderr
    assert read_json(layout.record(ids[2]))["metrics"] == {"y": 6}
    assert reduce.summary_is_current(layout)
    assert len(pd.read_parquet(layout.summary_runs)) == 4


def test_status_counts_without_writing_and_a_summary_that_cannot_be_written_is_an_error(
    layout, capsys
) -> None:
    from metalab_smk.cli import main
    from metalab_smk.errors import SummaryError

    _write_records(layout, 2)
    before = file_hashes(layout.root)
    assert main(["status", str(layout.root)]) == 0  # no summary yet: counted in memory
    assert "2 done" in capsys.readouterr().out and file_hashes(layout.root) == before
    reduce.collect(layout.root)
    layout.summary_runs.write_bytes(b"junk")
    before = file_hashes(layout.root)
    assert main(["status", str(layout.root)]) == 0
    assert "2 done" in capsys.readouterr().out and file_hashes(layout.root) == before
    for path in layout.summary_dir.iterdir():
        path.unlink()
    layout.summary_dir.rmdir()
    layout.summary_dir.write_text("not a directory")
    with pytest.raises(SummaryError, match="could not write the summary"):
        reduce.ensure_summary(layout)
    assert main(["status", str(layout.root)]) == 0
    assert "2 done" in capsys.readouterr().out


def test_status_stops_counting_a_record_damaged_after_the_summary(layout, capsys) -> None:
    from metalab_smk.cli import main

    _write_records(layout, 3)
    reduce.collect(layout.root)
    time.sleep(2.1)  # past the margin for coarse file times
    layout.record(IDS[1]).write_bytes(_bad(run_id=IDS[1], experiment_id=7))  # in place
    before = file_hashes(layout.root)
    assert main(["status", str(layout.root)]) == 0
    captured = capsys.readouterr()
    assert "2 done" in captured.out and "3 pending" not in captured.out
    assert captured.err.count("\n") == 1 and str(layout.record(IDS[1])) in captured.err
    assert "'experiment_id' is a number, not str" in captured.err
    assert file_hashes(layout.root) == before  # named only
    assert missing_indices(layout) == [1, 3, 4, 5]  # the next run quarantines it
    assert _quarantined(layout) == [IDS[1]]


def test_fsync_is_on_by_default_and_can_be_turned_off(tmp_path, monkeypatch) -> None:
    from metalab_smk.store import jsonio

    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(jsonio.os, "fsync", lambda fd: calls.append(fd) or real(fd))
    atomic_write_json(tmp_path / "a.json", {"a": 1})
    assert len(calls) == 2  # the file before the rename, the directory after
    monkeypatch.setenv("METALAB_FSYNC", "0")
    atomic_write_json(tmp_path / "b.json", {"b": 1})
    assert len(calls) == 2 and read_json(tmp_path / "b.json") == {"b": 1}


def test_a_bad_record_that_cannot_be_moved_is_skipped_with_a_warning(layout, capsys) -> None:
    _write_records(layout, 2)
    layout.record(IDS[0]).write_bytes(b"garbage")
    layout.quarantine_dir.write_text("not a directory")  # the move fails
    runs, _ = reduce.collect(layout.root)
    assert list(runs["run_id"]) == [IDS[1]]
    assert capsys.readouterr().err.count("could not move it to quarantine") == 1
    assert layout.record(IDS[0]).exists()


def test_column_kinds_from_the_set_of_value_types_match_the_rule_for_each_value() -> None:
    from metalab_smk.results.columns import _kind, _kind_of_each, _typed

    cases = [[], ["a"], [1.5, 2.0], [True], [1, 2], [1, 2**70], [1, 2.5], [1, "a"], [True, 1]]
    cases += [[np.int64(3)], [np.float64(1.0), 2.0], [2**70, 1.0], [np.bool_(True)]]
    for values in cases:
        assert _kind(values) == _kind_of_each(values), values
    # a numpy NaN is a null (float's subclass), so the ints stay ints
    with_nan = _typed(pd.Series([np.int64(1), np.float64("nan")], dtype=object), False)
    assert str(with_nan.dtype) == "Int64" and with_nan.isna().tolist() == [False, True]
    words = _typed(pd.Series(["a", np.float64("nan")], dtype=object), False)
    assert words.tolist() == ["a", None]
