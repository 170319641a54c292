"""Paths built from data stay inside their root (issue 20, item 1) and readers never
write into the store (item 5): the shared checks, the library's readers, the dashboard."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from metalab_smk.errors import StorePathError
from metalab_smk.results import summary as reduce
from metalab_smk.results.results import load_results
from metalab_smk.store.filestore import FileStore
from metalab_smk.store.jsonio import atomic_write_json, atomic_write_text
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.safepath import check_name, check_run_id, inside, join_inside

IDS = [f"{i:016x}" for i in range(1, 5)]


def _record(run_id: str, **extra) -> dict:
    return {
        "run_id": run_id,
        "experiment_id": "p:1",
        "status": "success",
        "duration_ms": 1,
        "started_at": "t0",
        "finished_at": "t1",
        "params_resolved": {"x": int(run_id, 16)},
        "metrics": {"y": 1.0},
        "artifacts": [],
        **extra,
    }


@pytest.fixture
def layout(tmp_path: Path) -> ExperimentDir:
    """An experiment directory of four runs, two done; ``tmp_path/secret.*`` lie outside it."""
    layout = ExperimentDir.at(tmp_path / "store" / "p+1")
    atomic_write_text(layout.run_table, "".join(f"{rid}\n" for rid in IDS))
    atomic_write_json(layout.compiled, {"experiment_id": "p:1", "name": "p", "version": "1"})
    for rid in IDS[:2]:
        atomic_write_json(layout.record(rid), _record(rid))
    (tmp_path / "secret.txt").write_text("another user's secret")
    atomic_write_json(tmp_path / "secret.json", _record(IDS[2], metrics={"y": 666.0}))
    np.save(tmp_path / "secret.npy", np.arange(3))
    return layout


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links as their target) with a hash of its bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# the shared checks ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["", "0" * 15, "0" * 17, "ABCDEF0123456789", "../../../etc/x", 7])
def test_a_run_id_is_exactly_16_lowercase_hex_digits(bad) -> None:
    assert check_run_id("0123456789abcdef") == "0123456789abcdef"
    with pytest.raises(StorePathError, match="not a run ID"):
        check_run_id(bad)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\0b", None])
def test_a_name_is_one_path_component(bad) -> None:
    assert check_name("run") == "run"
    with pytest.raises(StorePathError):
        check_name(bad)


def test_paths_resolve_inside_their_root_and_links_never_lead_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_text("x")
    (root / "in").symlink_to(root / "a")  # a link inside the root is fine
    (root / "out").symlink_to(tmp_path)
    assert join_inside(root, "in/f") == root / "in" / "f"
    for bad in ("out/x", "/etc/passwd", "a/../../x", "~/x", ""):
        with pytest.raises(StorePathError):
            join_inside(root, bad)
    with pytest.raises(StorePathError, match="leads outside"):
        inside(root, root / "out" / "secret")


# the library's readers ----------------------------------------------------------------------
def test_run_artifact_refuses_a_symlink_out_of_the_store(layout, tmp_path: Path) -> None:
    folder = layout.artifacts(IDS[0])
    folder.mkdir(parents=True)
    (folder / "w.npy").symlink_to(tmp_path / "secret.npy")
    uri = f"artifacts/{IDS[0]}/w.npy"
    descriptor = {"artifact_id": "a", "name": "w", "format": "numpy", "kind": "array", "uri": uri}
    atomic_write_json(layout.record(IDS[0]), _record(IDS[0], artifacts=[descriptor]))
    with pytest.raises(StorePathError, match="leads outside"):
        load_results(layout.root)[0].artifact("w")


def test_get_log_refuses_a_symlink_out_of_the_store_and_odd_names(layout, tmp_path) -> None:
    layout.logs_dir.mkdir()
    layout.log(IDS[0]).symlink_to(tmp_path / "secret.txt")
    layout.log(IDS[1]).write_text("fine")
    store = FileStore(layout.root)
    assert store.get_log(IDS[1]) == "fine"
    with pytest.raises(StorePathError, match="leads outside"):
        store.get_log(IDS[0])
    for name in ("../../secret", "a/b"):
        with pytest.raises(StorePathError):
            store.get_log(IDS[1], name)
    with pytest.raises(StorePathError, match="not a run ID"):
        store.get_log("../" * 4 + "secret")


def test_a_symlinked_record_is_skipped_by_readers_and_the_run_refused(layout, tmp_path, capsys):
    layout.record(IDS[2]).symlink_to(tmp_path / "secret.json")
    results = load_results(layout.root)
    assert sorted(results.frame["run_id"]) == IDS[:2]
    assert "symbolic link that leads outside" in capsys.readouterr().err
    assert FileStore(layout.root).get_run_record(IDS[0]) is not None
    with pytest.raises(StorePathError, match="leads outside"):
        FileStore(layout.root).get_run_record(IDS[2])


def test_a_crafted_summary_run_id_is_refused(layout) -> None:
    reduce.collect(layout.root)
    results = load_results(layout.root)
    results.frame.loc[0, "run_id"] = "../../../secret"
    with pytest.raises(StorePathError, match="not a run ID"):
        results[0].record  # noqa: B018


# readers never write ------------------------------------------------------------------------
def test_load_results_on_a_stale_store_writes_nothing_and_moves_no_bad_record(
    layout, capsys
) -> None:
    reduce.collect(layout.root)
    atomic_write_json(layout.record(IDS[2]), _record(IDS[2]))  # the summary is now stale
    layout.failed_dir.mkdir()
    (layout.failed_dir / f"{IDS[3]}.json").write_bytes(b"garbage")
    before = _tree(layout.root)
    results = load_results(layout.root)
    assert sorted(results.frame["run_id"]) == IDS[:3]  # the new record, read in memory
    assert [run.metrics for run in results] == [{"y": 1.0}] * 3
    FileStore(layout.root).list_run_records()
    assert _tree(layout.root) == before
    assert not reduce.summary_is_current(layout)
    assert "`metalab collect`" in capsys.readouterr().err
    reduce.collect(layout.root)  # collect brings it up to date and moves the bad record
    assert reduce.summary_is_current(layout) and layout.quarantine_dir.is_dir()


# the dashboard -----------------------------------------------------------------------------
@pytest.fixture
def client(layout: ExperimentDir):
    pytest.importorskip("starlette", reason="the dashboard needs the 'ui' extra")
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
    from starlette.testclient import TestClient

    from metalab_smk.ui.server import build_app
    from metalab_smk.ui.source import FileSource

    with TestClient(build_app(FileSource(layout.root.parent))) as client:
        yield client


def test_dashboard_refuses_a_symlinked_record_log_and_artifact(client, layout, tmp_path) -> None:
    layout.record(IDS[2]).symlink_to(tmp_path / "secret.json")
    layout.logs_dir.mkdir()
    layout.log(IDS[0]).symlink_to(tmp_path / "secret.txt")
    base = "/api/experiments/p:1/runs"
    response = client.get(f"{base}/{IDS[2]}")
    assert response.status_code == 404 and "666" not in response.text
    assert "leads outside" in response.json()["error"]
    log = client.get(f"{base}/{IDS[0]}/log")
    assert log.status_code == 404 and "secret" not in log.json().get("text", "")
    assert client.get(f"{base}/{IDS[1]}").json()["record"]["run_id"] == IDS[1]
    rows = client.get(f"{base}").json()
    assert "666" not in str(rows) and IDS[2] not in str(rows)


def test_a_quiet_success_after_a_killed_attempt_shows_no_log_not_the_killed_one(
    client, layout
) -> None:
    """A run killed once (its partial log left) that then succeeded printing nothing has
    no log: neither the dashboard nor get_log shows the killed attempt's as its own; a
    partial log newer than the record (a new attempt running) is still shown."""
    killed = layout.partial_log(IDS[0], 4_000_000)
    killed.parent.mkdir(parents=True)
    killed.write_text("# metalab run {}\nkilled attempt's output\n")
    old = time.time() - 60
    os.utime(killed, (old, old))
    base = "/api/experiments/p:1/runs"
    shown = client.get(f"{base}/{IDS[0]}/log").json()
    assert shown["missing"] and "killed" not in shown["text"] and not shown["partial"]
    assert FileStore(layout.root).get_log(IDS[0]) is None
    os.utime(killed, (old + 120, old + 120))  # newer than the record: in progress
    assert client.get(f"{base}/{IDS[0]}/log").json()["partial"]
    assert "killed attempt's output" in FileStore(layout.root).get_log(IDS[0])


def test_dashboard_refuses_a_symlinked_compiled_description(client, layout, tmp_path) -> None:
    other = ExperimentDir(layout.root.parent / "q+1")
    other.meta_dir.mkdir(parents=True)
    atomic_write_json(tmp_path / "foreign.json", {"experiment_id": "stolen:1"})
    other.compiled.symlink_to(tmp_path / "foreign.json")
    listed = [e["experiment_id"] for e in client.get("/api/experiments").json()["experiments"]]
    assert listed == ["p:1"]


def test_browsing_a_stale_store_leaves_its_files_byte_identical(client, layout) -> None:
    reduce.collect(layout.root)
    atomic_write_json(layout.record(IDS[2]), _record(IDS[2]))  # stale summary
    layout.failed_dir.mkdir()
    (layout.failed_dir / f"{IDS[3]}.json").write_bytes(b"garbage")  # a bad record
    before = _tree(layout.root.parent)
    base = "/api/experiments/p:1"
    assert client.get("/api/experiments").status_code == 200
    assert client.get(f"{base}/runs").json()["total"] == 3
    for path in ("/columns", "/manifest", "/in_progress", "/export?format=csv"):
        assert client.get(base + path).status_code == 200, path
    for rid in IDS:
        client.get(f"{base}/runs/{rid}")
        client.get(f"{base}/runs/{rid}/log")
    assert _tree(layout.root.parent) == before  # no summary, no quarantine, nothing new


def test_dashboard_manifest_does_not_follow_a_symlinked_param_manifest(client, layout, tmp_path):
    compiled = {"experiment_id": "p:1", "params": {"file": ".metalab/params.json"}}
    atomic_write_json(layout.compiled, compiled)
    atomic_write_json(tmp_path / "params.json", {"leaked": "another user's secret"})
    layout.params_manifest.symlink_to(tmp_path / "params.json")
    response = client.get("/api/experiments/p:1/manifest")
    assert response.status_code == 200 and "secret" not in response.text
