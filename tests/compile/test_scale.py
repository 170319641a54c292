"""Large sweeps stay fast: the run table is hashed in one pass and written once per
sweep definition, `metalab status` takes its counts from a current summary without
listing the record directories, and a no-op resume checks everything in one scan."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import metalab
from metalab_smk.compile.compiler import write_run_table
from metalab_smk.core.params.grid import GridSource
from metalab_smk.core.plan import Plan
from metalab_smk.results import summary as reduce
from metalab_smk.store.coverage import current_done_ids, status_coverage, stored_coverage
from metalab_smk.store.jsonio import atomic_write_json, atomic_write_text
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.runtable import RunTable
from metalab_smk.sweep.status import sweep_status

IDS = [f"{i:016x}" for i in range(1, 9)]
HOUR_AGO = time.time() - 3600


def _experiment(params, replicates: int = 1) -> metalab.Experiment:
    @metalab.operation(code_version="1")
    def op(params, seeds, capture):
        capture.metric("y", 1)

    return metalab.Experiment(
        name="scale",
        version="1",
        context={},
        operation=op,
        params=params,
        seeds=metalab.seeds(1, replicates=replicates),
    )


@pytest.mark.parametrize(
    "values",
    [
        {"i": list(range(50))},
        {"a": [1, 1.0, True, None, "x", "é"], "b": [[1, 2], {"k": 3}], "c": [2**70, -1]},
        {"s": ["a", "b\nc", '"q"']},
    ],
)
def test_grid_case_ids_match_the_cases_and_the_table_matches_the_plan(values, tmp_path) -> None:
    source = metalab.grid(**values)
    assert list(source.case_ids()) == [case.case_id for case in source]
    plan = Plan(_experiment(source, replicates=2))
    layout = ExperimentDir.at(tmp_path / "scale+1")
    assert write_run_table(layout, plan) == 2 * len(source)
    assert layout.read_run_ids() == list(plan.run_ids())


def test_the_run_table_is_written_once_per_definition(tmp_path, monkeypatch) -> None:
    layout = ExperimentDir.at(tmp_path / "scale+1")
    write_run_table(layout, Plan(_experiment(metalab.grid(i=list(range(20))))))
    assert layout.run_table_key.is_file()
    calls = []
    real = GridSource.case_ids

    def counted(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(GridSource, "case_ids", counted)
    same = Plan(_experiment(metalab.grid(i=list(range(20)))))
    assert write_run_table(layout, same) == 20 and calls == []  # nothing recomputed
    other = Plan(_experiment(metalab.grid(i=list(range(21)))))
    write_run_table(layout, other)
    assert calls == [1] and layout.read_run_ids() == list(other.run_ids())
    calls.clear()
    os.utime(layout.run_table, ns=(0, 0))  # touched by hand: computed again
    write_run_table(layout, other)
    assert calls == [1] and layout.count_runs() == 21


def test_a_source_that_computes_case_ids_otherwise_has_no_table_key() -> None:
    class Shifted(GridSource):
        manifest_type = ""  # not registered: GridSource manifests stay GridSource

        def case_ids(self):
            return (f"{int(c, 16) ^ 1:016x}" for c in super().case_ids())

    assert Shifted(i=[1, 2]).table_key() is None
    assert Plan(_experiment(Shifted(i=[1, 2]))).table_key() is None
    assert Plan(_experiment(metalab.grid(i=[1, 2]))).table_key() is not None


def test_grid_table_key_tells_values_apart() -> None:
    keys = {
        metalab.grid(x=[1]).table_key(),
        metalab.grid(x=[1.0]).table_key(),
        metalab.grid(x=[True]).table_key(),
        metalab.grid(x=["1"]).table_key(),
        metalab.grid(y=[1]).table_key(),
        metalab.grid(x=[1, 2]).table_key(),
        metalab.grid(x=[1], y=[2]).table_key(),
    }
    assert len(keys) == 7


def test_run_table_count_matches_positions(tmp_path) -> None:
    path = tmp_path / "run_ids.txt"
    path.write_text("".join(f"{rid}\n" for rid in IDS))
    table = RunTable(path)
    many = set(IDS[::2]) | {f"{i:016x}" for i in range(100, 140)}
    assert table.count(many) == 4 == len(table.positions(many))
    assert table.count(set(IDS) | {"short", "not-a-run-id-at-all"}) == len(IDS)
    assert table.count(IDS[:3]) == 3 and table.count([]) == 0
    assert RunTable(path).positions([IDS[5], "f" * 16]) == {IDS[5]: 5}  # by search


# status from the summary's coverage -------------------------------------------------------
def _record(run_id: str, status: str = "success") -> dict:
    return {
        "run_id": run_id,
        "experiment_id": "t:1",
        "status": status,
        "duration_ms": 3,
        "params_resolved": {"x": int(run_id, 16)},
        "metrics": {"y": 1},
        "error": None if status == "success" else {"type": "ValueError", "message": "bad"},
    }


@pytest.fixture
def layout(tmp_path: Path) -> ExperimentDir:
    layout = ExperimentDir.at(tmp_path / "t+1")
    atomic_write_text(layout.run_table, "".join(f"{rid}\n" for rid in IDS[:6]))
    atomic_write_json(layout.compiled, {"experiment_id": "t:1"})
    for rid in IDS[:3]:
        atomic_write_json(layout.record(rid), _record(rid))
    atomic_write_json(layout.record(IDS[7]), _record(IDS[7]))  # stale: not in the table
    atomic_write_json(layout.failed_record(IDS[3]), _record(IDS[3], "failed"))
    layout.logs_dir.mkdir()
    header = '# metalab run {"run_id": "%s", "pid": %d, "host": "%s"}\n'
    partial = layout.partial_log(IDS[4], os.getpid())
    partial.write_text(header % (IDS[4], os.getpid(), os.uname().nodename))
    return layout


def _settle(layout: ExperimentDir) -> None:
    """Directory times an hour old, as after a sweep that ended long ago."""
    for path in (layout.runs_dir, layout.failed_dir, layout.logs_dir, layout.run_table):
        os.utime(path, (HOUR_AGO, HOUR_AGO))


def _counts(status) -> tuple:
    return (status.total, status.done, status.failed, status.running, status.pending)


def _no_listing(monkeypatch) -> None:
    def refuse(self):
        raise AssertionError("listed a record directory")

    monkeypatch.setattr(ExperimentDir, "done_ids", refuse)
    monkeypatch.setattr(ExperimentDir, "failed_ids", refuse)
    monkeypatch.setattr(ExperimentDir, "partial_logs", refuse)


def test_status_of_a_settled_store_comes_from_the_coverage(layout, monkeypatch) -> None:
    _settle(layout)
    reduce.collect(layout.root)
    listed = sweep_status(layout, verify=True)  # verify always lists and reads
    assert _counts(listed) == (6, 3, 1, 1, 1) and listed.stale == 1
    _no_listing(monkeypatch)
    assert status_coverage(layout) is not None
    fast = sweep_status(layout)
    assert _counts(fast) == _counts(listed) and fast.stale == 1
    assert [run.run_id for run in fast.failed_runs] == [IDS[3]]
    assert reduce.summary_is_current(layout)


def test_a_store_not_settled_is_listed_once_then_trusted(layout, monkeypatch) -> None:
    _settle(layout)
    reduce.collect(layout.root)
    stored = stored_coverage(layout)
    assert "checked_at_ns" not in stored and "logs_checked_at_ns" not in stored
    # as if the summary had listed the directories a second after their last change
    stored["listed_at_ns"] = stored["logs_listed_at_ns"] = int((HOUR_AGO + 1) * 1e9)
    atomic_write_json(layout.coverage_file, stored)
    text = layout.coverage_file.read_bytes()
    assert _counts(sweep_status(layout)) == (6, 3, 1, 1, 1)  # lists; a reader writes nothing
    assert layout.coverage_file.read_bytes() == text
    assert _counts(sweep_status(layout, check_records=True)) == (6, 3, 1, 1, 1)
    assert layout.coverage_file.read_bytes() == text  # `metalab status` writes nothing
    assert status_coverage(layout, note=True) is not None  # a no-op `metalab run` notes it
    stamped = stored_coverage(layout)
    assert "checked_at_ns" in stamped and "logs_checked_at_ns" in stamped
    _no_listing(monkeypatch)
    assert _counts(sweep_status(layout)) == (6, 3, 1, 1, 1)


def test_status_sees_a_record_or_partial_log_after_the_summary(layout) -> None:
    _settle(layout)
    reduce.collect(layout.root)
    atomic_write_json(layout.record(IDS[5]), _record(IDS[5]))
    assert status_coverage(layout) is None
    assert _counts(sweep_status(layout)) == (6, 4, 1, 1, 0)
    reduce.collect(layout.root)
    _settle(layout)
    reduce.collect(layout.root)
    assert status_coverage(layout) is not None
    layout.partial_log(IDS[4], 1).write_text("")  # another attempt starts
    assert status_coverage(layout) is None
    layout.partial_log(IDS[4], 1).unlink()
    os.utime(layout.logs_dir, (HOUR_AGO, HOUR_AGO))
    assert status_coverage(layout) is not None  # same time, same partial logs


def test_no_op_scan_finds_done_runs_and_refuses_what_changed(layout) -> None:
    _settle(layout)
    reduce.collect(layout.root)
    assert current_done_ids(layout) == {*IDS[:3], IDS[7]}
    layout.record(IDS[0]).write_bytes(b"")  # a crash without fsync, in place
    assert current_done_ids(layout) is None  # quarantined: the summary is stale
    assert not layout.record(IDS[0]).exists()
    reduce.collect(layout.root)
    assert current_done_ids(layout) == {IDS[1], IDS[2], IDS[7]}


def test_no_op_scan_reads_records_newer_than_the_summary_once(layout, monkeypatch) -> None:
    import types

    from metalab_smk.store import coverage, validate

    reduce.collect(layout.root)  # right after the records landed: they are read once
    assert "validated_at_ns" not in stored_coverage(layout)
    later = types.SimpleNamespace(time_ns=lambda: time.time_ns() + 3_000_000_000)
    monkeypatch.setattr(coverage, "time", later)  # the scan runs 3 s later
    reads = []
    real = validate.read_valid_record
    monkeypatch.setattr(
        validate, "read_valid_record", lambda *a: reads.append(a[1].stem) or real(*a)
    )
    assert current_done_ids(layout) == {*IDS[:3], IDS[7]}
    assert sorted(reads) == sorted([*IDS[:3], IDS[7]])
    assert "validated_at_ns" in stored_coverage(layout)
    reads.clear()
    assert current_done_ids(layout) == {*IDS[:3], IDS[7]} and reads == []
