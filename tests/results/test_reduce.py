"""Reduce: one row per run in run-table order, incremental reuse of unchanged rows."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from metalab_smk.results import summary as reduce
from metalab_smk.results.rows import RecordRows
from metalab_smk.store.jsonio import atomic_write_json, atomic_write_text
from metalab_smk.store.layout import ExperimentDir

IDS = [f"{i:016x}" for i in range(1, 6)]


def _record(run_id: str, status: str = "success", **metrics) -> dict:
    return {
        "run_id": run_id,
        "experiment_id": "r:1",
        "status": status,
        "duration_ms": 3,
        "started_at": "t0",
        "finished_at": "t1",
        "params_resolved": {"x": int(run_id, 16)},
        "metrics": metrics,
        "seed": {"root_seed": 1, "replicate_index": 0},
        "error": {"type": "ValueError", "message": "bad"} if status == "failed" else None,
    }


@pytest.fixture
def layout(tmp_path: Path) -> ExperimentDir:
    layout = ExperimentDir.at(tmp_path / "r+1")
    atomic_write_text(layout.run_table, "".join(f"{rid}\n" for rid in IDS))
    for rid in IDS[:3]:
        atomic_write_json(layout.record(rid), _record(rid, y=int(rid, 16) * 2))
    atomic_write_json(layout.failed_record(IDS[3]), _record(IDS[3], "failed"))
    return layout


@pytest.fixture
def _backdate(monkeypatch) -> None:
    """Records written before a collect count as unchanged at once (normally a record
    changed within REUSE_MARGIN_NS of the last listing is read again)."""
    monkeypatch.setattr(reduce, "REUSE_MARGIN_NS", 0)
    time.sleep(0.05)  # beyond the file-time resolution


def _count_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = reduce.read_valid_record
    monkeypatch.setattr(
        reduce,
        "read_valid_record",
        lambda layout, p, rid=None, **kw: reads.append(Path(p).stem) or real(layout, p, rid, **kw),
    )
    return reads


def test_collect_writes_one_row_per_recorded_run_in_order(layout: ExperimentDir) -> None:
    runs, steps = reduce.collect(layout.root)
    assert list(runs["run_id"]) == IDS[:4]
    assert list(runs["status"]) == ["success"] * 3 + ["failed"]
    assert list(runs["param_x"]) == [1, 2, 3, 4]
    assert runs["error_message"].iloc[3] == "bad"
    on_disk = pd.read_parquet(layout.summary_dir / "runs.parquet")
    assert list(on_disk["run_id"]) == IDS[:4] and steps.empty


def test_collect_rereads_only_new_or_changed_records(layout, monkeypatch, _backdate) -> None:
    reduce.collect(layout.root)
    time.sleep(0.05)
    atomic_write_json(layout.record(IDS[4]), _record(IDS[4], y=99))  # a new run
    atomic_write_json(layout.record(IDS[3]), _record(IDS[3], y=8))  # the failed run retried
    reads = _count_reads(monkeypatch)
    runs, _ = reduce.collect(layout.root)
    assert sorted(reads) == sorted([IDS[3], IDS[4]])
    assert list(runs["run_id"]) == IDS
    assert list(runs["status"]) == ["success"] * 5
    assert list(runs["y"]) == [2, 4, 6, 8, 99]
    assert reduce.summary_is_current(layout)


def test_full_rebuild_reads_everything(layout, monkeypatch, _backdate) -> None:
    reduce.collect(layout.root)
    reads = _count_reads(monkeypatch)
    runs, _ = reduce.records_frame(layout, incremental=False)
    assert len(reads) == 4 and len(runs) == 4


def test_rows_read_while_the_sweep_ran_spare_the_summary_reading_them(layout, monkeypatch):
    landed = RecordRows()
    landed.start(layout)  # the records on disk before the sweep are the summary's
    atomic_write_json(layout.record(IDS[4]), _record(IDS[4], y=99))
    atomic_write_json(layout.record("00000000000000ff"), _record("00000000000000ff"))
    assert landed.read_new(layout) == 1  # a record of another compile is not read
    assert landed.read_new(layout) == 0
    reads = _count_reads(monkeypatch)
    runs, _ = reduce.collect(layout.root, read=landed)
    assert sorted(reads) == IDS[:4]
    assert list(runs["run_id"]) == IDS and list(runs["y"])[4] == 99


def test_a_record_replaced_after_it_was_read_is_read_again(layout, monkeypatch):
    landed = RecordRows()
    landed.start(layout)
    atomic_write_json(layout.record(IDS[4]), _record(IDS[4], y=1))
    landed.read_new(layout)
    time.sleep(0.05)  # beyond the file-time resolution
    atomic_write_json(layout.record(IDS[4]), _record(IDS[4], y=2))  # same size
    reads = _count_reads(monkeypatch)
    runs, _ = reduce.collect(layout.root, read=landed)
    assert IDS[4] in reads and list(runs["y"])[4] == 2


def test_a_bad_record_read_while_landing_is_quarantined_by_the_summary(layout, capsys):
    landed = RecordRows()
    landed.start(layout)
    atomic_write_text(layout.record(IDS[4]), '{"run_id": "truncated')
    assert landed.read_new(layout) == 1 and not landed.rows
    assert capsys.readouterr().err == ""  # named once, by the summary
    runs, _ = reduce.collect(layout.root, read=landed)
    assert IDS[4] not in set(runs["run_id"])
    assert "moved it to quarantine" in capsys.readouterr().err
    assert list((layout.quarantine_dir / "runs").iterdir())


def test_rows_of_a_failed_attempt_are_dropped_when_the_run_succeeds(layout, monkeypatch):
    landed = RecordRows()
    landed.start(layout)
    atomic_write_json(layout.failed_record(IDS[4]), _record(IDS[4], "failed"))
    assert landed.read_new(layout) == 1 and len(landed.rows) == 1
    layout.failed_record(IDS[4]).unlink()  # the retry succeeds
    atomic_write_json(layout.record(IDS[4]), _record(IDS[4], y=7))
    assert landed.read_new(layout) == 1
    assert [key[0] for key in landed.rows] == [True]  # the success's rows alone
    reads = _count_reads(monkeypatch)
    runs, _ = reduce.collect(layout.root, read=landed)
    assert IDS[4] not in reads and list(runs["status"])[4] == "success"
    assert list(runs["y"])[4] == 7
