"""Upstream metalab stores, store locators, export/import (issue 12, parts 2-4)."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_helpers import FIXTURES, RUN_IDS, copy_upstream, fail_run, raw_record

import metalab
from metalab_smk.errors import MetalabError, StoreURIError
from metalab_smk.store.archive import export_store, import_archive
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.upstream_import import import_upstream
from metalab_smk.store.uri import file_path, mask_url


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return copy_upstream(tmp_path)


def test_load_results_reads_an_upstream_root_and_experiment_folder(upstream: Path) -> None:
    results = metalab.load_results(upstream)
    frame = results.to_dataframe()
    assert frame["run_id"].tolist() == RUN_IDS
    assert set(frame["status"]) == {"success"}
    assert frame["param_lr"].tolist() == [0.1, 0.1, 0.5, 0.5]
    for _, row in frame.iterrows():
        raw = raw_record(upstream, row["run_id"])
        assert row["final_loss"] == raw["metrics"]["final_loss"]
        assert row["loss"] == raw["metrics"]["final_loss"]  # last step of the stepped metric
    same = metalab.load_results(upstream / "upsmall_1.0").to_dataframe()
    pd.testing.assert_frame_equal(frame, same)
    assert metalab.load_results(upstream, experiment_id="upsmall:1.0").to_dataframe().equals(frame)


def test_upstream_runs_give_artifacts_data_derived_and_logs(upstream: Path) -> None:
    run = metalab.load_results(upstream)[2]
    assert not Path(run.artifacts()[0].uri).exists()  # an absolute path of another machine
    np.testing.assert_array_equal(run.artifact("weights"), np.arange(6.0).reshape(2, 3) * 0.5)
    assert run.data("curve") == pytest.approx(
        [run.metrics["final_loss"], run.metrics["final_loss"] / 2]
    )
    assert [row[0] for row in run.data("loss")] == [0, 1, 2]
    assert run.derived["half_final"] == pytest.approx(run.metrics["final_loss"] / 2)
    derived = metalab.load_results(upstream).to_dataframe(include_derived=True)
    assert derived["derived_half_final"].tolist() == pytest.approx(
        (derived["final_loss"] / 2).tolist()
    )
    log = upstream / "upsmall_1.0" / "logs" / f"{run.run_id}_run.log"
    assert "done lr=0.5" in log.read_text()


def test_upstream_pickle_artifacts_need_allow_pickle(upstream: Path) -> None:
    folder = upstream / "upsmall_1.0"
    run_id = RUN_IDS[0]
    (folder / "artifacts" / run_id / "state.pkl").write_bytes(pickle.dumps({"k": [1, 2]}))
    record = raw_record(upstream, run_id)
    record["artifacts"].append(
        {
            "artifact_id": "x",
            "name": "state",
            "kind": "pickle",
            "format": "pkl",
            "uri": f"/elsewhere/upsmall_1.0/artifacts/{run_id}/state.pkl",
            "metadata": {},
        }
    )
    (folder / "runs" / f"{run_id}.json").write_text(json.dumps(record))
    run = metalab.load_results(upstream)[0]
    with pytest.raises(MetalabError, match="allow_pickle=True"):
        run.artifact("state")
    assert run.artifact("state", allow_pickle=True) == {"k": [1, 2]}


def test_upstream_failed_runs_and_several_experiments(upstream: Path) -> None:
    fail_run(upstream, RUN_IDS[3])
    other = upstream / "other_2.0"
    shutil.copytree(upstream / "upsmall_1.0", other)
    for path in [other / "_meta.json", *other.glob("runs/*.json"), *other.glob("experiments/*")]:
        path.write_text(path.read_text().replace("upsmall:1.0", "other:2.0"))
    with pytest.raises(MetalabError, match="holds 2 experiments"):
        metalab.load_results(upstream)
    results = metalab.load_results(upstream, experiment_id="upsmall:1.0")
    assert results.frame["status"].tolist() == ["success"] * 3 + ["failed"]
    assert len(results.failed) == 1 and results.failed[0].error["type"] == "RuntimeError"
    assert results.failed.frame["error_message"].tolist() == ["diverged at lr=0.5"]
    assert len(metalab.load_results(upstream, experiment_id="other:2.0")) == 4
    report = import_upstream(upstream, upstream.parent / "ours")
    assert sorted(report.experiments) == ["other:2.0", "upsmall:1.0"]
    assert report.imported == 8 and not report.conflicts


def test_import_converts_with_relative_uris_and_is_idempotent(
    upstream: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "ours"
    report = import_upstream(upstream, dest)
    assert (report.imported, report.unchanged, report.conflicts) == (4, 0, [])
    again = import_upstream(upstream, dest)
    assert (again.imported, again.unchanged, again.conflicts) == (0, 4, [])
    layout = FileStoreConfig(dest).experiment_dir("upsmall:1.0")
    record = json.loads(layout.record(RUN_IDS[0]).read_text())
    assert record["artifacts"][0]["uri"] == f"artifacts/{RUN_IDS[0]}/weights.npz"
    assert record["seed"] == {"root_seed": 7, "replicate_index": 0}
    assert record["stepped_metrics"] == ["loss"] and record["run_index"] == 0
    assert json.loads(layout.data_file(RUN_IDS[0], "loss").read_text())["type"] == "stepped_metric"
    imported = metalab.load_results(dest)
    np.testing.assert_array_equal(
        imported[0].artifact("weights"), np.arange(6.0).reshape(2, 3) * 0.1
    )
    assert imported[0].seed == metalab.SeedBundle(7, 0)
    columns = ["run_id", "status", "param_lr", "loss", "final_loss"]
    pd.testing.assert_frame_equal(
        imported.to_dataframe()[columns], metalab.load_results(upstream).to_dataframe()[columns]
    )


def test_store_locators(tmp_path: Path) -> None:
    assert file_path(f"file://{tmp_path}/s") == tmp_path / "s"
    assert file_path(FileStoreConfig(tmp_path)) == tmp_path
    assert FileStoreConfig(f"file://{tmp_path}/x").root == str(tmp_path / "x")
    assert FileStoreConfig(FileStoreConfig(tmp_path)).root == str(tmp_path)
    with pytest.raises(StoreURIError, match=r"s3"):
        file_path("s3://bucket/x")
    with pytest.raises(StoreURIError, match=r"index="):
        file_path("postgresql://u:secret@h/db")
    assert mask_url("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"


@pytest.mark.integration
def test_imported_upstream_store_is_reused_by_run(upstream: Path, tmp_path: Path) -> None:
    """The fixture's operation, run on the converted store: finished runs are reused
    (same IDs, records untouched), the failed ones are retried and give upstream's numbers
    (``seeds.numpy()`` is upstream's stream)."""
    upstream_metrics = {rid: raw_record(upstream, rid)["metrics"] for rid in RUN_IDS}
    fail_run(upstream, RUN_IDS[2])
    fail_run(upstream, RUN_IDS[3])
    dest = tmp_path / "ours"
    shutil.copy(FIXTURES / "upsmall_experiment.py", tmp_path / "upsmall_experiment.py")
    done = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "import", str(upstream), f"file://{dest}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "imported 4 runs" in done.stdout
    script = (
        "import sys, metalab; sys.path.insert(0, '.'); import upsmall_experiment as m\n"
        f"h = metalab.run(m.exp, store=metalab.FileStoreConfig({str(dest)!r}), progress=False)\n"
        "h.wait()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "running 2 of 4 runs" in out.stdout
    results = metalab.load_results(dest)
    assert results.frame["run_id"].tolist() == RUN_IDS
    assert set(results.frame["status"]) == {"success"}
    started = dict(zip(results.frame["run_id"], results.frame["started_at"], strict=True))
    for run_id in RUN_IDS[:2]:
        assert started[run_id] == raw_record(upstream, run_id)["started_at"]  # reused, not rerun
    for run_id in RUN_IDS[2:]:
        assert started[run_id] != raw_record(upstream, run_id)["started_at"]  # retried
    for run in results:  # bit for bit: the reruns reproduce upstream's stored values
        assert run.metrics == upstream_metrics[run.run_id], run.run_id


@pytest.mark.integration
def test_export_import_move_and_resume(upstream: Path, tmp_path: Path) -> None:
    """A store exported, unpacked elsewhere (original deleted) loads and resumes."""
    pytest.importorskip("zstandard", reason="writes a .tar.zst: needs the zstd extra")
    original = tmp_path / "a" / "store"
    import_upstream(upstream, original)
    shutil.copy(FIXTURES / "upsmall_experiment.py", tmp_path / "upsmall_experiment.py")
    script = (
        "import sys, metalab; sys.path.insert(0, '.'); import upsmall_experiment as m\n"
        "h = metalab.run(m.exp, store=sys.argv[1], progress=False); h.wait()\n"
    )
    run = [sys.executable, "-c", script]
    assert subprocess.run([*run, str(original)], cwd=tmp_path, check=False).returncode == 0
    before = metalab.load_results(original).to_dataframe()
    for name, artifacts in (("s.tar.gz", True), ("s.tar.zst", False)):
        export_store(original, tmp_path / name, artifacts=artifacts)
    shutil.rmtree(tmp_path / "a")
    for text in [p.read_text() for p in (tmp_path.glob("**/runs/*.json"))]:
        assert str(tmp_path / "a") not in text
    moved = tmp_path / "b" / "store"
    assert import_archive(tmp_path / "s.tar.gz", moved).imported == 4
    report = import_archive(tmp_path / "s.tar.zst", moved)
    assert (report.imported, report.unchanged, report.conflicts) == (0, 4, [])
    pd.testing.assert_frame_equal(
        metalab.load_results(moved).to_dataframe(), before, check_dtype=False
    )
    out = subprocess.run([*run, str(moved)], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and "nothing to run" in out.stdout
    slim = tmp_path / "c"
    import_archive(tmp_path / "s.tar.zst", slim)
    assert not list(slim.glob("*/artifacts/*/*.npz"))
    assert len(metalab.load_results(slim)) == 4
    assert import_archive(tmp_path / "s.tar.gz", slim).unchanged == 4  # fills in artifacts
    assert len(list(slim.glob("*/artifacts/*/*.npz"))) == 4
    # a record that differs is never overwritten: it is reported
    layout = FileStoreConfig(moved).experiment_dir("upsmall:1.0")
    record = json.loads(layout.record(RUN_IDS[0]).read_text())
    record["metrics"]["final_loss"] = 1.0
    layout.record(RUN_IDS[0]).write_text(json.dumps(record))
    clash = import_archive(tmp_path / "s.tar.gz", moved)
    assert len(clash.conflicts) == 1 and RUN_IDS[0] in clash.conflicts[0]
    assert json.loads(layout.record(RUN_IDS[0]).read_text())["metrics"]["final_loss"] == 1.0


def test_fixture_experiment_plans_the_upstream_run_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same definition, same run IDs as upstream (the operation's source is verbatim)."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    import upsmall_experiment

    assert [run.run_id for run in metalab.Plan(upsmall_experiment.exp)] == RUN_IDS


def test_compile_into_a_file_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``store="file:///abs"`` is that directory, not a literal ./file: directory."""
    from metalab_smk.compile.compiler import compile_experiment

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(FIXTURES))
    import upsmall_experiment

    layout = compile_experiment(upsmall_experiment.exp, f"file://{tmp_path}/s")
    assert layout.root == tmp_path / "s" / "upsmall+1.0" and layout.compiled.is_file()
    assert not (tmp_path / "file:").exists()
    again = compile_experiment(upsmall_experiment.exp, FileStoreConfig(tmp_path / "s"))
    assert again.root == layout.root
    with pytest.raises(StoreURIError, match="index="):
        compile_experiment(upsmall_experiment.exp, "postgresql://me@h/db")


def test_index_passwords_are_never_written_to_disk(
    upstream: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run(index=URL)`` keeps the URL without its password in ``.metalab/index.json``
    (this process keeps it in memory); archives carry no index settings at all."""
    import tarfile

    from metalab_smk.results.index.upkeep import configured_url, remember_index

    store = tmp_path / "store"
    import_upstream(upstream, store)
    layout = FileStoreConfig(store).experiment_dir("upsmall:1.0")
    url = "postgresql://me:s3cret@db.invalid:5432/lab?sslmode=require"
    remember_index(layout, url)
    assert json.loads(layout.index_config.read_text()) == {
        "url": "postgresql://me@db.invalid:5432/lab?sslmode=require"
    }
    assert configured_url(layout) == url  # this process: as given
    note = capsys.readouterr().err
    assert "s3cret" not in note and "PGPASSWORD" in note
    layout.index_config.write_text(json.dumps({"url": url}))  # as written by older versions
    export_store(store, tmp_path / "s.tar.gz")
    with tarfile.open(tmp_path / "s.tar.gz") as tar:
        names = tar.getnames()
        contents = [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()]
    assert not any(name.endswith("index.json") for name in names)
    assert not any(b"s3cret" in content for content in contents)


def test_urls_and_connection_strings_are_masked() -> None:
    from metalab_smk.store.uri import one_line, strip_password

    cases = [  # (URL or key=value string, masked, its password)
        ("postgresql://me:s3cret@h:1/db", "postgresql://me:***@h:1/db", "s3cret"),
        ("postgresql://me:s3c@r/et@h/db", "postgresql://me:***@h/db", "s3c@r/et"),
        ("postgresql://me:s3c%40ret@h/db", "postgresql://me:***@h/db", "s3c@ret"),
        (
            "postgresql://me@h/db?password=s3cret&sslmode=require",
            "postgresql://me@h/db?password=***&sslmode=require",
            "s3cret",
        ),
        ("host=h password=s3cret dbname=db", "host=h password=*** dbname=db", "s3cret"),
        ("host=h password='s3c ret' dbname=db", "host=h password=*** dbname=db", "s3c ret"),
    ]
    for url, masked, password in cases:
        assert mask_url(url) == masked
        assert "s3c" not in one_line(f"error near {url}: {password!r} was refused", url)
        assert "s3c" not in strip_password(url)
