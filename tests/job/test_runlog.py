"""Run logs: what a run writes lands in its log; a successful run that wrote nothing
leaves none, its file (only the header) becoming the next run's partial log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metalab_smk.job.runlog import HEADER_PREFIX, RunLog, discard_quiet_log, read_header
from metalab_smk.store.layout import ExperimentDir


@pytest.fixture
def layout(tmp_path: Path):
    layout = ExperimentDir.at(tmp_path / "exp+1")
    yield layout
    discard_quiet_log()


def _log(layout: ExperimentDir, run_id: str) -> RunLog:
    header = {"run_id": run_id, "pid": os.getpid()}
    return RunLog(layout.log(run_id), header, layout.partial_log(run_id, os.getpid()))


def _names(layout: ExperimentDir) -> list[str]:
    return sorted(os.listdir(layout.logs_dir))


def test_quiet_successes_reuse_one_file_and_leave_no_log(layout) -> None:
    with _log(layout, "a" * 16) as first:
        first.succeeded = True
    assert first.kept
    assert _names(layout) == [f"{'a' * 16}_run.log.{os.getpid()}.partial"]  # until the next
    inode = os.stat(layout.partial_log("a" * 16, os.getpid())).st_ino
    with _log(layout, "b" * 16) as second:
        partial = layout.partial_log("b" * 16, os.getpid())
        assert _names(layout) == [partial.name]  # renamed: in flight under its own name
        assert os.stat(partial).st_ino == inode
        assert read_header(partial)["run_id"] == "b" * 16  # the header was rewritten
        assert partial.read_text().count(HEADER_PREFIX) == 1
        second.succeeded = True
    assert second.kept
    discard_quiet_log()
    assert _names(layout) == []


def test_output_a_failure_or_a_warning_keeps_the_log(layout, capfd) -> None:
    with _log(layout, "a" * 16) as quiet:
        quiet.succeeded = True
    with _log(layout, "b" * 16) as printing:  # reuses the quiet file
        os.write(1, b"written to fd 1\n")  # as C code or a child process would
        printing.succeeded = True
    with _log(layout, "c" * 16) as logging_run:
        logging_run.logger.info("a logged line")
        logging_run.succeeded = True
    with _log(layout, "d" * 16) as failing:  # quiet, but not a success
        pass
    assert not (printing.kept or logging_run.kept or failing.kept)
    text = layout.log("b" * 16).read_text()
    assert text.splitlines()[1] == "written to fd 1"
    assert read_header(layout.log("b" * 16))["run_id"] == "b" * 16
    assert "a logged line" in layout.log("c" * 16).read_text()
    assert read_header(layout.log("d" * 16))["run_id"] == "d" * 16
    assert _names(layout) == [f"{c * 16}_run.log" for c in "bcd"]
    assert capfd.readouterr().out == ""  # nothing of the runs reached the terminal
