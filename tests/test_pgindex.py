"""The PostgreSQL index against a real server (scripts/local-postgres-start.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_helpers import FIXTURES, RUN_IDS, copy_upstream, fail_run

import metalab
from metalab_smk.cli import main as cli_main
from metalab_smk.results.pgindex import index_store
from metalab_smk.store.config import FileStoreConfig
from metalab_smk.store.upstream_import import import_upstream

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (postgres extra)")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Our store, converted from the upstream fixture (one failed run) plus a second
    experiment ``other:2.0`` with different params."""
    upstream = copy_upstream(tmp_path)
    fail_run(upstream, RUN_IDS[3])
    other = upstream / "other_2.0"
    shutil.copytree(upstream / "upsmall_1.0", other)
    for path in [other / "_meta.json", *other.glob("runs/*.json"), *other.glob("experiments/*")]:
        text = path.read_text().replace("upsmall:1.0", "other:2.0")
        text = text.replace('"lr": 0.1', '"lr": 0.2')
        for run_id in RUN_IDS:  # run IDs of another experiment differ (they hash its ID)
            text = text.replace(run_id, run_id[::-1])
        path.write_text(text)
    for path in sorted(other.rglob("*"), key=lambda p: -len(p.parts)):
        for run_id in RUN_IDS:
            if run_id in path.name:
                path.rename(path.with_name(path.name.replace(run_id, run_id[::-1])))
    root = tmp_path / "store"
    import_upstream(upstream, root)
    return root


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM metalab.{table}").fetchone()[0]


def test_index_then_load_equals_the_file_store(db: str, store: Path) -> None:
    report = index_store(store, db)
    assert [e[:2] for e in report.experiments] == [("other:2.0", 4), ("upsmall:1.0", 4)]
    files = metalab.load_results(store, experiment_id="upsmall:1.0")
    indexed = metalab.load_results(db, experiment_id="upsmall:1.0")
    pd.testing.assert_frame_equal(indexed.to_dataframe(), files.to_dataframe())
    pd.testing.assert_frame_equal(
        indexed.to_dataframe(include_derived=True), files.to_dataframe(include_derived=True)
    )
    assert indexed.summary() == files.summary()
    assert indexed.filter(lr=0.5).frame["run_id"].tolist() == RUN_IDS[2:]
    assert indexed.failed.frame["error_type"].tolist() == ["RuntimeError"]
    np.testing.assert_array_equal(indexed[0].artifact("weights"), files[0].artifact("weights"))
    assert indexed[1].data("curve") == files[1].data("curve")
    assert (_count(db, "steps"), _count(db, "derived"), _count(db, "artifacts")) == (18, 6, 6)


def test_index_is_idempotent_and_incremental(db: str, store: Path) -> None:
    index_store(store, db)
    assert [e[1] for e in index_store(store, db).experiments] == [0, 0]
    layout = FileStoreConfig(store).experiment_dir("upsmall:1.0")
    record = json.loads(layout.record(RUN_IDS[0]).read_text())
    record["metrics"]["final_loss"] = 9.0
    layout.record(RUN_IDS[0]).write_text(json.dumps(record))
    layout.record(RUN_IDS[1]).unlink()
    report = index_store(layout.root, db)
    assert report.experiments == [("upsmall:1.0", 1, 1, 3)]
    indexed = metalab.load_results(db, experiment_id="upsmall:1.0").to_dataframe()
    assert indexed["run_id"].tolist() == [RUN_IDS[0], *RUN_IDS[2:]]
    assert indexed["final_loss"].iloc[0] == 9.0
    assert _count(db, "runs") == 7
    rebuilt = index_store(store, db, rebuild=True)
    assert [e[1] for e in rebuilt.experiments] == [4, 3]


def test_queries_across_experiments(db: str, store: Path) -> None:
    assert cli_main(["index", str(store), "--db", db]) == 0
    everything = metalab.load_results(db)
    assert len(everything) == 8
    assert sorted(set(everything.frame["experiment_id"])) == ["other:2.0", "upsmall:1.0"]
    low = metalab.load_results(db, params={"lr": 0.2})
    assert set(low.frame["experiment_id"]) == {"other:2.0"} and len(low) == 2
    np.testing.assert_array_equal(low[0].artifact("weights"), np.arange(6.0).reshape(2, 3) * 0.1)
    assert low[0].experiment.experiment_id == "other:2.0"
    assert everything[0].experiment.experiment_id == "other:2.0"
    assert everything[-1].experiment.experiment_id == "upsmall:1.0"
    ok = metalab.load_results(db, status="success", params={"lr": 0.5})
    assert len(ok) == 2 and set(ok.frame["status"]) == {"success"}
    fast = metalab.load_results(db, where="(r.metrics->>'final_loss')::float < 0.2")
    assert len(fast) == 2 and (fast.frame["final_loss"] < 0.2).all()
    assert len(metalab.load_results(db, experiment_id="upsm%")) == 4
    assert len(metalab.load_results(db, experiment_id=["other:2.0"], status="failed")) == 1
    assert len(metalab.load_results(db, tags="nope")) == 0
    sliced = everything.filter(status="failed")
    assert {run.run_id for run in sliced} == {RUN_IDS[3], RUN_IDS[3][::-1]}
    assert {run.experiment.experiment_id for run in sliced} == {"other:2.0", "upsmall:1.0"}
    assert len(sliced[0:1]) == 1


def test_errors_are_one_line_with_the_password_masked(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for url in (
        "postgresql://me:s3cret@127.0.0.1:1/metalab",
        "postgresql://me:s3cret@127.0.0.1:notaport/metalab",
    ):
        assert cli_main(["index", str(store), "--db", url]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "s3cret" not in err and "me:***@127.0.0.1" in err
    with pytest.raises(metalab.MetalabError, match=r"me:\*\*\*@"):
        metalab.load_results("postgresql://me:s3cret@127.0.0.1:1/metalab")


def test_load_results_names_missing_experiments(db: str, store: Path) -> None:
    with pytest.raises(metalab.MetalabError, match="no metalab index yet"):
        metalab.load_results(db)
    index_store(store, db)
    with pytest.raises(metalab.MetalabError, match=r"no experiment 'x:1'.*other:2.0"):
        metalab.load_results(db, experiment_id="x:1")


@pytest.mark.integration
def test_sweeps_keep_the_index_up_to_date(db: str, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "upsmall_experiment.py", tmp_path / "upsmall_experiment.py")
    script = (
        "import sys, metalab; sys.path.insert(0, '.'); import upsmall_experiment as m\n"
        "index = sys.argv[2] if len(sys.argv) > 2 else None\n"
        "h = metalab.run(m.exp, store=sys.argv[1], progress=False, index=index); h.wait()\n"
        "sys.exit(0 if h.status.is_complete else 1)\n"
    )
    env = {**os.environ, "METALAB_INDEX_URL": "postgresql://me:s3cret@127.0.0.1:1/down"}
    down = subprocess.run(
        [sys.executable, "-c", script, "a"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert down.returncode == 0, down.stderr
    warnings = [line for line in down.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "s3cret" not in warnings[0] and "records are safe" in warnings[0]
    assert len(metalab.load_results(tmp_path / "a")) == 4
    up = subprocess.run(
        [sys.executable, "-c", script, "b", db], cwd=tmp_path, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    indexed = metalab.load_results(db, experiment_id="upsmall:1.0")
    files = metalab.load_results(tmp_path / "b")
    pd.testing.assert_frame_equal(indexed.to_dataframe(), files.to_dataframe())
    assert set(indexed.frame["status"]) == {"success"}


def test_the_summary_rule_updates_the_index(db: str, store: Path) -> None:
    """``python -m metalab_smk.reduce DIR`` (the Snakemake summary rule) keeps the index
    of METALAB_INDEX_URL up to date; a database that is down is one warning line."""
    layout = FileStoreConfig(store).experiment_dir("upsmall:1.0")
    reduce = [sys.executable, "-m", "metalab_smk.reduce", str(layout.root)]
    env = {**os.environ, "METALAB_INDEX_URL": db}
    done = subprocess.run(reduce, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    indexed = metalab.load_results(db, experiment_id="upsmall:1.0")
    pd.testing.assert_frame_equal(
        indexed.to_dataframe(), metalab.load_results(layout.root).to_dataframe()
    )
    env["METALAB_INDEX_URL"] = "postgresql://me:s3cret@127.0.0.1:1/down"
    down = subprocess.run(reduce, env=env, capture_output=True, text=True, check=False)
    assert down.returncode == 0
    assert len(down.stderr.strip().splitlines()) == 1 and "s3cret" not in down.stderr
